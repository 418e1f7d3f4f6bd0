//! The on-disk layout: three redb tables keyed by revision, and their record encodings.
//!
//! | table | key | value |
//! |---|---|---|
//! | `revs` | revision | put: `tag, create_rev, version, key`; delete: `tag, 0, 0, key` |
//! | `values` | revision | the value written at that revision (puts only) |
//! | `meta` | name | the compaction point and how far its cleanup has got |
//!
//! **Why keyed by revision** (as etcd's backend is): every write appends at the end of `revs` and
//! `values`, so a batch of writes to scattered keys dirties a handful of pages instead of one
//! random leaf per key per table, and the fsync that makes a batch durable stays cheap. The cost
//! is an in-memory index of which revisions belong to which key (`index.rs`), rebuilt at open by
//! scanning `revs` — which is why keys and metadata live apart from values: the scan never reads
//! a value. The current revision is the last entry of `revs` (the write at the current revision
//! is never compacted), so no counter is rewritten by every commit.
//!
//! Compaction at `C` (see `compaction.rs`) removes, per key, every revision below `C` except the
//! newest one if that is a put. So a read at any revision `>= C` finds the newest version at or
//! below it, and every event at a revision `>= C` still finds its `prev`.

use redb::{ReadableTable, TableDefinition};

use super::index::Entry;
use crate::{Error, Result, Revision};

/// revision → encoded key and metadata of the write at that revision.
pub(crate) const REVS: TableDefinition<u64, &[u8]> = TableDefinition::new("revs");
/// revision → value of the put at that revision.
pub(crate) const VALUES: TableDefinition<u64, &[u8]> = TableDefinition::new("values");
/// Named counters.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// `meta` name of the compaction point.
pub(crate) const META_COMPACT: &str = "compact_revision";
/// `meta` name of the revision below which compaction's cleanup is done.
pub(crate) const META_COMPACT_PROGRESS: &str = "compact_progress";

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

/// A revision as a table key (revisions are always >= 1).
pub(crate) fn to_disk(revision: Revision) -> u64 {
    u64::try_from(revision).unwrap_or(0)
}

pub(crate) fn from_disk(revision: u64) -> Result<Revision> {
    Revision::try_from(revision).map_err(|_| corrupt("revision out of range"))
}

const TAG_PUT: u8 = 0;
const TAG_DELETE: u8 = 1;
const HEADER: usize = 17;

/// Encodes the `revs` record of a write of `key`.
pub(crate) fn encode_rev(key: &[u8], entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + key.len());
    out.push(if entry.deleted { TAG_DELETE } else { TAG_PUT });
    out.extend_from_slice(&entry.create.to_le_bytes());
    out.extend_from_slice(&entry.version.to_le_bytes());
    out.extend_from_slice(key);
    out
}

fn read_i64(bytes: &[u8], at: usize) -> Result<i64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_le_bytes)
        .ok_or_else(|| corrupt("truncated record"))
}

/// Decodes the `revs` record of revision `rev` into its key and index entry.
pub(crate) fn decode_rev(rev: Revision, bytes: &[u8]) -> Result<(&[u8], Entry)> {
    let deleted = match bytes.first() {
        Some(&TAG_PUT) => false,
        Some(&TAG_DELETE) => true,
        _ => return Err(corrupt("unknown revision record")),
    };
    let entry = Entry {
        rev,
        create: read_i64(bytes, 1)?,
        version: read_i64(bytes, 9)?,
        deleted,
    };
    Ok((&bytes[HEADER..], entry))
}

/// Reads a `meta` counter.
pub(crate) fn read_meta(
    table: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<Option<Revision>> {
    match table.get(name).or_backend()? {
        Some(v) => Ok(Some(from_disk(v.value())?)),
        None => Ok(None),
    }
}

/// The values written at `revisions` (`None` where compaction removed one), in the same order.
///
/// Revisions close together are read with one scan of the table, scattered ones by lookups.
pub(crate) fn fetch_values(
    values: &impl ReadableTable<u64, &'static [u8]>,
    revisions: &[Revision],
) -> Result<Vec<Option<Vec<u8>>>> {
    let mut out = vec![None; revisions.len()];
    let mut order: Vec<usize> = (0..revisions.len()).collect();
    order.sort_unstable_by_key(|&i| revisions[i]);
    let (Some(&first), Some(&last)) = (order.first(), order.last()) else {
        return Ok(out);
    };
    let (min, max) = (to_disk(revisions[first]), to_disk(revisions[last]));
    let span = max.saturating_sub(min).saturating_add(1);
    if span <= 4 * revisions.len() as u64 {
        let mut wanted = order.iter().peekable();
        for entry in values.range(min..=max).or_backend()? {
            let (rev, value) = entry.or_backend()?;
            let rev = from_disk(rev.value())?;
            while let Some(&&i) = wanted.peek() {
                if revisions[i] > rev {
                    break;
                }
                if revisions[i] == rev {
                    out[i] = Some(value.value().to_vec());
                }
                wanted.next();
            }
        }
    } else {
        for (slot, rev) in out.iter_mut().zip(revisions) {
            *slot = values
                .get(to_disk(*rev))
                .or_backend()?
                .map(|v| v.value().to_vec());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_record_round_trips() {
        let put = Entry {
            rev: 7,
            create: 3,
            version: 4,
            deleted: false,
        };
        let bytes = encode_rev(b"key", &put);
        assert_eq!(decode_rev(7, &bytes).unwrap(), (&b"key"[..], put));
        let del = Entry {
            rev: 9,
            create: 0,
            version: 0,
            deleted: true,
        };
        assert_eq!(
            decode_rev(9, &encode_rev(b"", &del)).unwrap(),
            (&b""[..], del)
        );
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        assert!(decode_rev(1, &[TAG_PUT, 1, 2]).is_err());
        assert!(decode_rev(1, &[9; 20]).is_err());
        assert!(decode_rev(1, &[]).is_err());
    }

    #[test]
    fn values_are_fetched_in_request_order_dense_or_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut values = txn.open_table(VALUES).unwrap();
            for rev in [2u64, 3, 4, 5, 1000] {
                values.insert(rev, rev.to_string().as_bytes()).unwrap();
            }
            let got = fetch_values(&values, &[4, 2, 6, 3]).unwrap();
            let want: Vec<Option<Vec<u8>>> = vec![
                Some(b"4".to_vec()),
                Some(b"2".to_vec()),
                None,
                Some(b"3".to_vec()),
            ];
            assert_eq!(got, want);
            let got = fetch_values(&values, &[1000, 2]).unwrap();
            assert_eq!(got, vec![Some(b"1000".to_vec()), Some(b"2".to_vec())]);
            assert!(fetch_values(&values, &[]).unwrap().is_empty());
        }
        txn.commit().unwrap();
    }
}
