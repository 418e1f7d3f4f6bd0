//! The in-memory key index: for every key, the revisions at which it was written or deleted
//! (etcd's `keyIndex`).
//!
//! The tables on disk are keyed by revision, so the index is what answers "which revision of
//! this key is visible at revision R". It holds no values, only `(revision, create_revision,
//! version, deleted)` per write, and is rebuilt from the `revs` table when the store opens.
//!
//! The writer thread is its only mutator and updates it after each commit, under the write lock;
//! readers take the read lock just long enough to open their redb snapshot and copy what they
//! need, so the index a reader sees never lags the snapshot it reads values from.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::{KeyRange, Revision};

/// One write of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The revision of the write.
    pub rev: Revision,
    /// Revision of the write that created the key (0 for a deletion).
    pub create: Revision,
    /// Writes since creation (0 for a deletion).
    pub version: i64,
    pub deleted: bool,
}

impl Entry {
    /// The entry when it is a put.
    fn live(self) -> Option<Entry> {
        (!self.deleted).then_some(self)
    }
}

/// Every key's writes, plus the revision bookkeeping they are consistent with.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    keys: BTreeMap<Vec<u8>, Vec<Entry>>,
    /// The revision of the last write in the index (the store's current revision).
    pub revision: Revision,
    /// The compaction point: reads below it are refused.
    pub compact: Revision,
}

/// Lower and upper bound of a key range.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The `BTreeMap` bounds of a key range; `None` when it selects nothing.
fn bounds(range: &KeyRange) -> Option<KeyBounds<'_>> {
    let start = range.start.as_slice();
    match &range.end {
        None => Some((Bound::Included(start), Bound::Included(start))),
        Some(end) if end.is_empty() => Some((Bound::Included(start), Bound::Unbounded)),
        Some(end) if end.as_slice() <= start => None,
        Some(end) => Some((Bound::Included(start), Bound::Excluded(end.as_slice()))),
    }
}

/// The newest entry of `entries` at or below `at`.
fn newest_at(entries: &[Entry], at: Revision) -> Option<Entry> {
    let n = entries.partition_point(|e| e.rev <= at);
    n.checked_sub(1).map(|i| entries[i])
}

impl KeyIndex {
    pub(crate) fn new(revision: Revision, compact: Revision) -> Self {
        Self {
            keys: BTreeMap::new(),
            revision,
            compact,
        }
    }

    /// Records a write; revisions of one key must arrive in increasing order.
    pub(crate) fn push(&mut self, key: &[u8], entry: Entry) {
        match self.keys.get_mut(key) {
            Some(entries) => entries.push(entry),
            None => {
                self.keys.insert(key.to_vec(), vec![entry]);
            }
        }
        self.revision = self.revision.max(entry.rev);
    }

    /// The current version of `key`, if it exists.
    pub(crate) fn current(&self, key: &[u8]) -> Option<Entry> {
        self.keys.get(key)?.last().copied()?.live()
    }

    /// The version of `key` visible strictly before revision `rev`, if it existed then.
    pub(crate) fn before(&self, key: &[u8], rev: Revision) -> Option<Entry> {
        newest_at(self.keys.get(key)?, rev - 1)?.live()
    }

    /// The keys of `range` visible at `at` with their versions, in key order: at most `limit`
    /// of them (all when `None`), and the total count.
    pub(crate) fn range_at(
        &self,
        range: &KeyRange,
        at: Revision,
        limit: Option<usize>,
    ) -> (Vec<(Vec<u8>, Entry)>, usize) {
        let mut found = Vec::new();
        let mut count = 0;
        let Some(bounds) = bounds(range) else {
            return (found, 0);
        };
        let limit = limit.unwrap_or(usize::MAX);
        for (key, entries) in self.keys.range::<[u8], _>(bounds) {
            if let Some(entry) = newest_at(entries, at).and_then(Entry::live) {
                if found.len() < limit {
                    found.push((key.clone(), entry));
                }
                count += 1;
            }
        }
        (found, count)
    }

    /// The revisions of `key` that compaction at `compact` removes: every write below it except
    /// the newest one, and that one too if it is a deletion.
    pub(crate) fn compaction_victims(&self, key: &[u8], compact: Revision) -> Vec<Revision> {
        let Some(entries) = self.keys.get(key) else {
            return Vec::new();
        };
        let below = entries.partition_point(|e| e.rev < compact);
        let keep_last = below > 0 && !entries[below - 1].deleted;
        let victims = if keep_last { below - 1 } else { below };
        entries[..victims].iter().map(|e| e.rev).collect()
    }

    /// Forgets what [`Self::compaction_victims`] named for `key`, and the key itself if nothing
    /// of it remains.
    pub(crate) fn prune(&mut self, key: &[u8], compact: Revision) {
        let victims = self.compaction_victims(key, compact).len();
        if victims == 0 {
            return;
        }
        if let Some(entries) = self.keys.get_mut(key) {
            entries.drain(..victims);
            if entries.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// Number of keys with an entry (live or deleted but not compacted away).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(rev: Revision, create: Revision, version: i64) -> Entry {
        Entry {
            rev,
            create,
            version,
            deleted: false,
        }
    }

    fn del(rev: Revision) -> Entry {
        Entry {
            rev,
            create: 0,
            version: 0,
            deleted: true,
        }
    }

    fn index(writes: &[(&str, Entry)]) -> KeyIndex {
        let mut index = KeyIndex::new(1, 1);
        for (key, entry) in writes {
            index.push(key.as_bytes(), *entry);
        }
        index
    }

    #[test]
    fn visibility_follows_revisions_and_deletes() {
        let idx = index(&[
            ("a", put(2, 2, 1)),
            ("a", put(4, 2, 2)),
            ("a", del(6)),
            ("a", put(8, 8, 1)),
        ]);
        assert_eq!(idx.current(b"a"), Some(put(8, 8, 1)));
        assert_eq!(idx.before(b"a", 4), Some(put(2, 2, 1)));
        assert_eq!(idx.before(b"a", 8), None);
        assert_eq!(idx.before(b"a", 2), None);
        let at = |rev| {
            idx.range_at(&KeyRange::key("a"), rev, None)
                .0
                .first()
                .map(|(_, e)| *e)
        };
        assert_eq!(
            (at(1), at(3), at(5), at(7), at(9)),
            (
                None,
                Some(put(2, 2, 1)),
                Some(put(4, 2, 2)),
                None,
                Some(put(8, 8, 1))
            )
        );
    }

    #[test]
    fn range_counts_past_the_limit() {
        let idx = index(&[
            ("k1", put(2, 2, 1)),
            ("k2", put(3, 3, 1)),
            ("k3", put(4, 4, 1)),
            ("k2", del(5)),
        ]);
        let (found, count) = idx.range_at(&KeyRange::prefix("k"), 5, Some(1));
        assert_eq!((found.len(), count), (1, 2));
        let (_, count) = idx.range_at(&KeyRange::prefix("k"), 4, None);
        assert_eq!(count, 3);
    }

    #[test]
    fn compaction_keeps_the_newest_put_below_the_point() {
        let mut idx = index(&[
            ("a", put(2, 2, 1)),
            ("a", put(3, 2, 2)),
            ("b", put(4, 4, 1)),
            ("b", del(5)),
            ("a", put(6, 2, 3)),
        ]);
        assert_eq!(idx.compaction_victims(b"a", 6), vec![2]);
        assert_eq!(idx.compaction_victims(b"b", 6), vec![4, 5]);
        idx.prune(b"a", 6);
        idx.prune(b"b", 6);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.before(b"a", 6), Some(put(3, 2, 2)));
        assert_eq!(idx.current(b"a"), Some(put(6, 2, 3)));
    }
}
