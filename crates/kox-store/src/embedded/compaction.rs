//! Compaction: the logical point (a `meta` counter, effective at once) and the physical cleanup
//! that follows it in bounded chunks, plus the auto-compaction policy.
//!
//! Moving the compaction point is one small write; reads and watches below it fail from that
//! commit on. The history it made obsolete is then removed by the writer thread a chunk of
//! revisions at a time — inside write batches while busy, in transactions of its own while idle —
//! so a large compaction never stalls writers. `meta` records how far the cleanup has got, so
//! after a crash the writer resumes there. For each key met in a chunk, the key index names every
//! obsolete revision of that key, wherever it lies below the point. Pages freed by these deletes
//! are reused by redb for later writes, so a store with a steady key set stops growing once
//! compaction keeps up.

use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use redb::{ReadableTable, Table};

use super::index::KeyIndex;
use super::tables::{self, OrBackend};
use crate::{Result, Revision};

/// What one chunk of cleanup did.
pub(crate) struct Chunk {
    /// Cleanup is done below this revision.
    pub progress: Revision,
    /// Keys whose obsolete revisions were removed: to prune from the index after the commit.
    pub keys: Vec<Vec<u8>>,
}

/// Removes the obsolete revisions of the keys written in up to `max_revisions` revisions from
/// `progress` on, below `compact_point`.
pub(crate) fn compact_chunk(
    revs: &mut Table<u64, &'static [u8]>,
    values: &mut Table<u64, &'static [u8]>,
    index: &KeyIndex,
    compact_point: Revision,
    progress: Revision,
    max_revisions: usize,
) -> Result<Chunk> {
    let mut keys = BTreeSet::new();
    let mut scanned = 0;
    let mut next = progress;
    let window = tables::to_disk(progress)..tables::to_disk(compact_point);
    for record in revs.range(window).or_backend()?.take(max_revisions) {
        scanned += 1;
        let (rev, bytes) = record.or_backend()?;
        let rev = tables::from_disk(rev.value())?;
        let (key, _) = tables::decode_rev(rev, bytes.value())?;
        keys.insert(key.to_vec());
        next = rev + 1;
    }
    for key in &keys {
        for victim in index.compaction_victims(key, compact_point) {
            revs.remove(tables::to_disk(victim)).or_backend()?;
            values.remove(tables::to_disk(victim)).or_backend()?;
        }
    }
    let progress = if scanned < max_revisions {
        compact_point
    } else {
        next
    };
    Ok(Chunk {
        progress,
        keys: keys.into_iter().collect(),
    })
}

/// The auto-compaction policy: keep at least `retention` of time and `min_revisions` revisions.
///
/// The writer samples its revision at every check; the newest sample older than `retention`
/// bounds the compaction point from above, as does `current - min_revisions`. Samples live in
/// memory only, so after a restart nothing is compacted until `retention` has passed again.
pub(crate) struct AutoCompactor {
    retention: Option<Duration>,
    min_revisions: i64,
    samples: VecDeque<(Instant, Revision)>,
}

impl AutoCompactor {
    /// `retention` of `None` disables auto-compaction.
    pub(crate) fn new(retention: Option<Duration>, min_revisions: i64) -> Self {
        Self {
            retention,
            min_revisions: min_revisions.max(0),
            samples: VecDeque::new(),
        }
    }

    /// Records `current` at `now` and returns the revision to compact to, if any.
    pub(crate) fn target(&mut self, now: Instant, current: Revision) -> Option<Revision> {
        let retention = self.retention?;
        self.samples.push_back((now, current));
        let cutoff = now.checked_sub(retention)?;
        // Keep the newest sample at or before the cutoff at the front; drop older ones.
        while self.samples.get(1).is_some_and(|(t, _)| *t <= cutoff) {
            self.samples.pop_front();
        }
        let (oldest_time, oldest_rev) = *self.samples.front()?;
        if oldest_time > cutoff {
            return None;
        }
        let target = oldest_rev.min(current - self.min_revisions);
        (target > 1).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_compacted_before_the_retention_has_passed() {
        let mut auto = AutoCompactor::new(Some(Duration::from_secs(300)), 10);
        let t0 = Instant::now();
        assert_eq!(auto.target(t0, 1000), None);
        assert_eq!(auto.target(t0 + Duration::from_secs(299), 2000), None);
        // The sample taken at t0 is now old enough.
        assert_eq!(auto.target(t0 + Duration::from_secs(301), 3000), Some(1000));
        assert_eq!(auto.target(t0 + Duration::from_secs(600), 4000), Some(2000));
    }

    #[test]
    fn minimum_revision_count_caps_the_target() {
        let mut auto = AutoCompactor::new(Some(Duration::ZERO), 10_000);
        let t0 = Instant::now();
        assert_eq!(auto.target(t0, 5_000), None);
        assert_eq!(auto.target(t0, 25_000), Some(15_000));
    }

    #[test]
    fn disabled_policy_never_compacts() {
        let mut auto = AutoCompactor::new(None, 0);
        assert_eq!(auto.target(Instant::now(), 1_000_000), None);
    }
}
