//! The on-disk layout: four redb tables, their record encodings and the read paths over them.
//!
//! | table | key | value | why |
//! |---|---|---|---|
//! | `current` | key | `create_rev, mod_rev, version, value` | current reads and condition checks touch one B-tree entry per key, whatever the history depth |
//! | `history` | `(key, revision)` | put: `create_rev, version, value`; delete: tombstone | MVCC reads at an old revision and the value + `prev` of replayed watch events |
//! | `log` | revision | key | watch replay walks revisions in order; compaction finds what each revision touched without scanning `history` |
//! | `meta` | name | u64 | the current revision and the compaction point, committed atomically with the writes |
//!
//! Every write touches `current`, `history`, `log` and `meta` in the same transaction, so the four
//! agree after any crash. The newest version of a key is stored twice (in `current` and
//! `history`); that doubles the bytes of a write but keeps a current read free of history depth.
//!
//! Compaction at `C` (see `compaction.rs`) removes `log` entries below `C` and, for each key, every
//! `history` entry below `C` except the newest one if that is a put. So a read at any revision
//! `>= C` finds the newest version at or below it, and every event at a revision `>= C` still finds
//! its `prev`.

use std::ops::Bound;

use redb::{ReadableTable, TableDefinition};

use crate::{Error, KeyRange, KeyValue, RangeRequest, RangeResponse, Result, Revision, WatchEvent};

/// key → encoded [`KeyValue`] without the key.
pub(crate) const CURRENT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("current");
/// (key, revision) → encoded [`HistoryRecord`].
pub(crate) const HISTORY: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("history");
/// revision → the key written at that revision.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Named counters.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// `meta` name of the revision of the last committed write.
pub(crate) const META_REVISION: &str = "revision";
/// `meta` name of the compaction point.
pub(crate) const META_COMPACT: &str = "compact_revision";

/// Converts any redb error into the store's [`Error::Backend`].
pub(crate) trait OrBackend<T> {
    fn or_backend(self) -> Result<T>;
}

impl<T, E: Into<redb::Error>> OrBackend<T> for std::result::Result<T, E> {
    fn or_backend(self) -> Result<T> {
        self.map_err(|e| Error::Backend(e.into().to_string()))
    }
}

/// An error for bytes on disk that do not decode.
pub(crate) fn corrupt(what: &str) -> Error {
    Error::Backend(format!("corrupt store file: {what}"))
}

fn rev_to_disk(revision: Revision) -> u64 {
    // Revisions handed to the tables are always >= 1; clamp defensively rather than wrap.
    u64::try_from(revision).unwrap_or(0)
}

fn rev_from_disk(revision: u64) -> Result<Revision> {
    Revision::try_from(revision).map_err(|_| corrupt("revision out of range"))
}

fn read_i64(bytes: &[u8], at: usize) -> Result<i64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_le_bytes)
        .ok_or_else(|| corrupt("truncated record"))
}

/// Encodes a `current` record.
pub(crate) fn encode_current(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + kv.value.len());
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.version.to_le_bytes());
    out.extend_from_slice(&kv.value);
    out
}

/// Decodes a `current` record of `key`.
pub(crate) fn decode_current(key: &[u8], bytes: &[u8]) -> Result<KeyValue> {
    Ok(KeyValue {
        key: key.to_vec(),
        create_revision: read_i64(bytes, 0)?,
        mod_revision: read_i64(bytes, 8)?,
        version: read_i64(bytes, 16)?,
        value: bytes[24..].to_vec(),
    })
}

/// One version of a key in `history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HistoryRecord {
    Put {
        create_revision: Revision,
        version: i64,
        value: Vec<u8>,
    },
    Tombstone,
}

const TAG_PUT: u8 = 0;
const TAG_TOMBSTONE: u8 = 1;

/// Encodes the `history` record of a put of `kv`.
pub(crate) fn encode_history_put(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + kv.value.len());
    out.push(TAG_PUT);
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.version.to_le_bytes());
    out.extend_from_slice(&kv.value);
    out
}

/// The `history` record of a delete.
pub(crate) const HISTORY_TOMBSTONE: &[u8] = &[TAG_TOMBSTONE];

/// Whether an encoded `history` record is a tombstone, without decoding the value.
pub(crate) fn is_tombstone(bytes: &[u8]) -> bool {
    bytes.first() == Some(&TAG_TOMBSTONE)
}

pub(crate) fn decode_history(bytes: &[u8]) -> Result<HistoryRecord> {
    match bytes.first() {
        Some(&TAG_PUT) => Ok(HistoryRecord::Put {
            create_revision: read_i64(bytes, 1)?,
            version: read_i64(bytes, 9)?,
            value: bytes[17..].to_vec(),
        }),
        Some(&TAG_TOMBSTONE) => Ok(HistoryRecord::Tombstone),
        _ => Err(corrupt("unknown history record")),
    }
}

impl HistoryRecord {
    /// The key-value this record describes, if it is a put.
    fn into_kv(self, key: &[u8], revision: Revision) -> Option<KeyValue> {
        match self {
            HistoryRecord::Put {
                create_revision,
                version,
                value,
            } => Some(KeyValue {
                key: key.to_vec(),
                value,
                create_revision,
                mod_revision: revision,
                version,
            }),
            HistoryRecord::Tombstone => None,
        }
    }
}

/// Reads a `meta` counter, with `default` when absent.
pub(crate) fn read_meta(
    table: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<Option<Revision>> {
    match table.get(name).or_backend()? {
        Some(v) => Ok(Some(rev_from_disk(v.value())?)),
        None => Ok(None),
    }
}

/// The current value of `key`.
pub(crate) fn get_current(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<KeyValue>> {
    match table.get(key).or_backend()? {
        Some(v) => Ok(Some(decode_current(key, v.value())?)),
        None => Ok(None),
    }
}

/// The newest version of `key` strictly below `revision` (`None` if absent or deleted then).
pub(crate) fn get_before(
    history: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
    key: &[u8],
    revision: Revision,
) -> Result<Option<KeyValue>> {
    let upper = rev_to_disk(revision);
    let mut iter = history.range((key, 0u64)..(key, upper)).or_backend()?;
    match iter.next_back() {
        Some(entry) => {
            let (k, v) = entry.or_backend()?;
            let rev = rev_from_disk(k.value().1)?;
            Ok(decode_history(v.value())?.into_kv(key, rev))
        }
        None => Ok(None),
    }
}

/// Lower and upper bound of a key range.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The bounds of `range` over the `current` table; `None` when the range is empty.
fn key_bounds(range: &KeyRange) -> Option<KeyBounds<'_>> {
    let start = range.start.as_slice();
    match &range.end {
        None => Some((Bound::Included(start), Bound::Included(start))),
        Some(end) if end.is_empty() => Some((Bound::Included(start), Bound::Unbounded)),
        Some(end) if end.as_slice() <= start => None,
        Some(end) => Some((Bound::Included(start), Bound::Excluded(end.as_slice()))),
    }
}

/// Collects range results: at most `limit` kvs, counting all of them.
struct Collector {
    kvs: Vec<KeyValue>,
    count: usize,
    limit: Option<usize>,
    count_only: bool,
}

impl Collector {
    fn new(req: &RangeRequest) -> Self {
        Self {
            kvs: Vec::new(),
            count: 0,
            limit: req.limit.filter(|l| *l > 0),
            count_only: req.count_only,
        }
    }

    /// Whether a found key should be decoded into `kvs`.
    fn wants_value(&self) -> bool {
        !self.count_only && self.limit.is_none_or(|l| self.kvs.len() < l)
    }

    fn finish(self, revision: Revision) -> RangeResponse {
        let more = self.count > self.kvs.len() && !self.count_only;
        let more = more || (self.count_only && self.limit.is_some_and(|l| self.count > l));
        RangeResponse {
            kvs: self.kvs,
            revision,
            more,
            count: self.count,
        }
    }
}

/// A range read over the `current` table (the current revision).
pub(crate) fn range_current(
    current: &impl ReadableTable<&'static [u8], &'static [u8]>,
    req: &RangeRequest,
    revision: Revision,
) -> Result<RangeResponse> {
    let mut out = Collector::new(req);
    if let Some(bounds) = key_bounds(&req.range) {
        for entry in current.range::<&[u8]>(bounds).or_backend()? {
            let (k, v) = entry.or_backend()?;
            if out.wants_value() {
                out.kvs.push(decode_current(k.value(), v.value())?);
            }
            out.count += 1;
        }
    }
    Ok(out.finish(revision))
}

/// A range read over `history` as of `revision` (older than the current revision).
pub(crate) fn range_at(
    history: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
    req: &RangeRequest,
    revision: Revision,
) -> Result<RangeResponse> {
    let mut out = Collector::new(req);
    let Some((start, end)) = key_bounds(&req.range) else {
        return Ok(out.finish(revision));
    };
    let at = rev_to_disk(revision);
    let lower = match start {
        Bound::Included(s) => Bound::Included((s, 0u64)),
        _ => Bound::Unbounded,
    };
    let upper = match end {
        Bound::Included(e) => Bound::Included((e, at)),
        Bound::Excluded(e) => Bound::Excluded((e, 0u64)),
        Bound::Unbounded => Bound::Unbounded,
    };
    // Entries are ordered by key, then revision: the newest version at or below `at` is the last
    // one of each key's run that is not newer than `at`.
    let mut run_key: Option<Vec<u8>> = None;
    let mut newest: Option<(u64, bool)> = None; // (revision, is tombstone) of the run's candidate
    let mut newest_bytes: Option<Vec<u8>> = None;
    for entry in history.range::<(&[u8], u64)>((lower, upper)).or_backend()? {
        let (k, v) = entry.or_backend()?;
        let (key, rev) = k.value();
        if run_key.as_deref() != Some(key) {
            if let Some(prev_key) = run_key.take() {
                flush_run(&prev_key, newest.take(), newest_bytes.take(), &mut out)?;
            }
            run_key = Some(key.to_vec());
        }
        if rev <= at {
            let bytes = v.value();
            let tombstone = is_tombstone(bytes);
            newest = Some((rev, tombstone));
            // Only copy the value when it may be returned.
            newest_bytes = (!tombstone && out.wants_value()).then(|| bytes.to_vec());
        }
    }
    if let Some(prev_key) = run_key.take() {
        flush_run(&prev_key, newest, newest_bytes, &mut out)?;
    }
    Ok(out.finish(revision))
}

/// Adds the candidate of one key's run of history entries to `out`, unless it is a tombstone.
fn flush_run(
    key: &[u8],
    newest: Option<(u64, bool)>,
    bytes: Option<Vec<u8>>,
    out: &mut Collector,
) -> Result<()> {
    if let Some((rev, false)) = newest {
        if out.wants_value() {
            let record = decode_history(bytes.as_deref().unwrap_or_default())?;
            if let Some(kv) = record.into_kv(key, rev_from_disk(rev)?) {
                out.kvs.push(kv);
            }
        }
        out.count += 1;
    }
    Ok(())
}

/// Watch events of `range` from revision `from` (inclusive), scanning at most `max_scan`
/// revisions of the log. Returns the events and the next revision to scan from.
///
/// `snapshot_revision` is the current revision of the same snapshot; the caller checks `from`
/// against the compaction point.
pub(crate) fn read_events(
    log: &impl ReadableTable<u64, &'static [u8]>,
    history: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
    range: &KeyRange,
    from: Revision,
    max_scan: usize,
    snapshot_revision: Revision,
) -> Result<(Vec<WatchEvent>, Revision)> {
    let mut events = Vec::new();
    let mut next = from.max(1);
    let mut scanned = 0;
    for entry in log.range(rev_to_disk(next)..).or_backend()?.take(max_scan) {
        scanned += 1;
        let (k, v) = entry.or_backend()?;
        let revision = rev_from_disk(k.value())?;
        let key = v.value();
        next = revision + 1;
        if !range.contains(key) {
            continue;
        }
        let record = history
            .get((key, k.value()))
            .or_backend()?
            .ok_or_else(|| corrupt("log entry without history"))?;
        let prev = get_before(history, key, revision)?;
        let event = match decode_history(record.value())?.into_kv(key, revision) {
            Some(kv) => WatchEvent::Put { kv, prev },
            None => WatchEvent::Delete {
                prev: prev.ok_or_else(|| corrupt("delete without a previous value"))?,
                revision,
            },
        };
        events.push(event);
    }
    if scanned < max_scan {
        // The log is exhausted: the caller has caught up with this snapshot.
        next = next.max(snapshot_revision + 1);
    }
    Ok((events, next))
}

/// Groups history entries below `below` of one key: which to delete under the compaction rule.
/// `entries` are `(revision, is_tombstone)` in ascending order.
pub(crate) fn compaction_victims(entries: &[(u64, bool)]) -> Vec<u64> {
    let mut victims: Vec<u64> = entries.iter().map(|(rev, _)| *rev).collect();
    if let Some((last_rev, false)) = entries.last() {
        victims.retain(|rev| rev != last_rev);
    }
    victims
}

/// An in-memory summary used by tests: key → revisions present in `history`.
#[cfg(test)]
pub(crate) fn history_revisions(
    history: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
) -> Result<std::collections::BTreeMap<Vec<u8>, Vec<u64>>> {
    let mut out: std::collections::BTreeMap<Vec<u8>, Vec<u64>> = Default::default();
    for entry in history.iter().or_backend()? {
        let (k, _) = entry.or_backend()?;
        let (key, rev) = k.value();
        out.entry(key.to_vec()).or_default().push(rev);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(value: &[u8]) -> KeyValue {
        KeyValue {
            key: b"k".to_vec(),
            value: value.to_vec(),
            create_revision: 3,
            mod_revision: 7,
            version: 4,
        }
    }

    #[test]
    fn current_record_round_trips() {
        let original = kv(b"hello");
        assert_eq!(
            decode_current(b"k", &encode_current(&original)).unwrap(),
            original
        );
    }

    #[test]
    fn history_record_round_trips() {
        let original = kv(b"");
        let decoded = decode_history(&encode_history_put(&original)).unwrap();
        assert_eq!(decoded.into_kv(b"k", 7), Some(original));
        assert_eq!(
            decode_history(HISTORY_TOMBSTONE).unwrap(),
            HistoryRecord::Tombstone
        );
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        assert!(decode_current(b"k", &[1, 2, 3]).is_err());
        assert!(decode_history(&[TAG_PUT, 1]).is_err());
        assert!(decode_history(&[9]).is_err());
        assert!(decode_history(&[]).is_err());
    }

    #[test]
    fn compaction_keeps_only_newest_put_below_the_point() {
        assert_eq!(
            compaction_victims(&[(2, false), (5, false), (9, false)]),
            vec![2, 5]
        );
        assert_eq!(compaction_victims(&[(2, false), (5, true)]), vec![2, 5]);
        assert_eq!(compaction_victims(&[(4, false)]), Vec::<u64>::new());
        assert_eq!(compaction_victims(&[]), Vec::<u64>::new());
    }
}
