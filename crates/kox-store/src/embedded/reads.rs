//! Reads: range requests and watch-replay chunks, served from the key index and one redb read
//! snapshot.
//!
//! The snapshot is opened while holding the index's read lock. The writer updates the index only
//! after a commit, so every revision the index names is in the snapshot; compaction may remove
//! some of them later, but never from an open snapshot. A value missing from the snapshot
//! therefore means a compaction committed before the snapshot and passed the revision asked for:
//! that is reported as [`Error::Compacted`].

use redb::ReadableDatabase;

use super::Shared;
use super::index::Entry;
use super::tables::{self, META, META_COMPACT, OrBackend, REVS, VALUES};
use crate::{Error, KeyRange, KeyValue, RangeRequest, RangeResponse, Result, Revision, WatchEvent};

fn kv(key: Vec<u8>, entry: &Entry, value: Vec<u8>) -> KeyValue {
    KeyValue {
        key,
        value,
        create_revision: entry.create,
        mod_revision: entry.rev,
        version: entry.version,
    }
}

/// The error for a revision whose data a compaction removed.
fn compacted_in(txn: &redb::ReadTransaction, requested: Revision) -> Result<Error> {
    let compacted =
        tables::read_meta(&txn.open_table(META).or_backend()?, META_COMPACT)?.unwrap_or(1);
    Ok(Error::Compacted {
        requested,
        compacted,
    })
}

/// A range read at `req.revision` (or the current revision).
pub(crate) fn read_range(shared: &Shared, req: &RangeRequest) -> Result<RangeResponse> {
    let db = shared.db()?;
    let (txn, found, count, at) = {
        let index = shared.index.read();
        let txn = db.begin_read().or_backend()?;
        let current = index.revision;
        let at = match req.revision {
            Some(rev) if rev > 0 => rev,
            _ => current,
        };
        if at > current {
            return Err(Error::FutureRevision {
                requested: at,
                current,
            });
        }
        if at < index.compact {
            return Err(Error::Compacted {
                requested: at,
                compacted: index.compact,
            });
        }
        let limit = if req.count_only {
            Some(0)
        } else {
            req.limit.filter(|l| *l > 0)
        };
        let (found, count) = index.range_at(&req.range, at, limit);
        (txn, found, count, at)
    };
    let more = match req.limit.filter(|l| *l > 0) {
        Some(limit) => count > limit,
        None => false,
    };
    let revisions: Vec<Revision> = found.iter().map(|(_, e)| e.rev).collect();
    let values = tables::fetch_values(&txn.open_table(VALUES).or_backend()?, &revisions)?;
    let mut kvs = Vec::with_capacity(found.len());
    for ((key, entry), value) in found.into_iter().zip(values) {
        match value {
            Some(value) => kvs.push(kv(key, &entry, value)),
            None => return Err(compacted_in(&txn, at)?),
        }
    }
    Ok(RangeResponse {
        kvs,
        revision: at,
        more,
        count,
    })
}

/// Watch events of `range` from revision `from` (inclusive), scanning at most `max_scan`
/// revisions. Returns the events and the revision to continue from.
pub(crate) fn read_events(
    shared: &Shared,
    range: &KeyRange,
    from: Revision,
    max_scan: usize,
) -> Result<(Vec<WatchEvent>, Revision)> {
    let db = shared.db()?;
    let (txn, upto) = {
        let index = shared.index.read();
        if from < index.compact {
            return Err(Error::Compacted {
                requested: from,
                compacted: index.compact,
            });
        }
        (db.begin_read().or_backend()?, index.revision)
    };

    // The writes in the window that fall in the range.
    let mut hits: Vec<(Vec<u8>, Entry)> = Vec::new();
    let mut next = from.max(1);
    let mut scanned = 0;
    {
        let revs = txn.open_table(REVS).or_backend()?;
        for record in revs
            .range(tables::to_disk(next)..=tables::to_disk(upto))
            .or_backend()?
            .take(max_scan)
        {
            scanned += 1;
            let (rev, bytes) = record.or_backend()?;
            let rev = tables::from_disk(rev.value())?;
            let (key, entry) = tables::decode_rev(rev, bytes.value())?;
            next = rev + 1;
            if range.contains(key) {
                hits.push((key.to_vec(), entry));
            }
        }
    }
    if scanned < max_scan {
        next = next.max(upto + 1);
    }

    // What each write replaced, from the index; pruned only below the compaction point.
    let prevs: Vec<Option<Entry>> = {
        let index = shared.index.read();
        if from < index.compact {
            return Err(Error::Compacted {
                requested: from,
                compacted: index.compact,
            });
        }
        hits.iter()
            .map(|(key, entry)| index.before(key, entry.rev))
            .collect()
    };

    let mut wanted: Vec<Revision> = hits
        .iter()
        .filter(|(_, e)| !e.deleted)
        .map(|(_, e)| e.rev)
        .collect();
    wanted.extend(prevs.iter().flatten().map(|e| e.rev));
    let fetched = tables::fetch_values(&txn.open_table(VALUES).or_backend()?, &wanted)?;
    // A revision can be both an event's value and the next event's `prev`.
    let fetched = wanted
        .into_iter()
        .zip(fetched)
        .collect::<std::collections::HashMap<_, _>>();
    let value_of = |rev: Revision| -> Result<Vec<u8>> {
        match fetched.get(&rev).cloned().flatten() {
            Some(value) => Ok(value),
            None => Err(compacted_in(&txn, from)?),
        }
    };

    let mut events = Vec::with_capacity(hits.len());
    for ((key, entry), prev) in hits.into_iter().zip(prevs) {
        let prev = match prev {
            Some(p) => Some(kv(key.clone(), &p, value_of(p.rev)?)),
            None => None,
        };
        let event = if entry.deleted {
            let prev = prev.ok_or_else(|| tables::corrupt("a delete without a previous value"))?;
            WatchEvent::Delete {
                prev,
                revision: entry.rev,
            }
        } else {
            let value = value_of(entry.rev)?;
            WatchEvent::Put {
                kv: kv(key, &entry, value),
                prev,
            }
        };
        events.push(event);
    }
    Ok((events, next))
}
