//! Engine-neutral snapshots: every key of a store at one revision, written to a file, and
//! restored into an empty store of any engine (`kox datastore snapshot save|restore`, and
//! `kox datastore migrate`, which is a save streamed straight into a restore).
//!
//! A restore writes the keys in the order of their `mod_revision`, so the target's revisions
//! keep the source's order (an object changed later still has the larger resourceVersion),
//! though not their numbers: clients list again after a restore, as after an etcd restore.
//!
//! File layout (integers little-endian): the magic `KOXSNAP1`, the snapshot's revision (i64)
//! and key count (u64); per key its length (u32) and bytes, value length (u32) and bytes,
//! create_revision, mod_revision and version (i64 each); then an FNV-1a 64 checksum (u64) of
//! everything before it, so a truncated or damaged file is refused instead of half restored.

use std::io::{Read, Write};

use crate::{Condition, Error, KeyRange, KeyValue, RangeRequest, Result, Revision, Store};

const MAGIC: &[u8; 8] = b"KOXSNAP1";
/// Keys read per range request while saving.
const PAGE: usize = 1000;

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The source's revision the snapshot was taken at.
    pub revision: Revision,
    /// Keys in the snapshot.
    pub keys: u64,
}

/// FNV-1a 64 over everything written or read through it.
struct Checksum<T> {
    inner: T,
    hash: u64,
}

impl<T> Checksum<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.hash ^= u64::from(*b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl<W: Write> Checksum<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.feed(bytes);
        self.inner.write_all(bytes)
    }
}

impl<R: Read> Checksum<R> {
    fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf)?;
        self.feed(&buf);
        Ok(buf)
    }

    fn take_u32(&mut self) -> std::io::Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn take_i64(&mut self) -> std::io::Result<i64> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Backend(format!("snapshot file: {e}"))
}

/// Writes every key of `store`, as of one revision, to `out`.
pub async fn save(store: &dyn Store, out: impl Write) -> Result<SnapshotInfo> {
    let all = KeyRange::between(Vec::new(), Vec::new());
    let first = store
        .range(RangeRequest::new(all.clone()).limit(PAGE))
        .await?;
    let revision = first.revision;
    let count = first.count as u64;
    let mut w = Checksum::new(out);
    w.put(MAGIC).map_err(io)?;
    w.put(&revision.to_le_bytes()).map_err(io)?;
    w.put(&count.to_le_bytes()).map_err(io)?;
    let mut written = 0u64;
    let mut page = first;
    loop {
        for kv in &page.kvs {
            write_kv(&mut w, kv).map_err(io)?;
            written += 1;
        }
        let Some(last) = page.kvs.last().filter(|_| page.more) else {
            break;
        };
        let mut next = last.key.clone();
        next.push(0);
        page = store
            .range(
                RangeRequest::new(KeyRange::between(next, Vec::new()))
                    .limit(PAGE)
                    .at_revision(revision),
            )
            .await?;
    }
    if written != count {
        return Err(Error::Backend(format!(
            "snapshot: the store listed {count} keys at revision {revision} but returned {written}"
        )));
    }
    let hash = w.hash;
    w.inner.write_all(&hash.to_le_bytes()).map_err(io)?;
    w.inner.flush().map_err(io)?;
    Ok(SnapshotInfo {
        revision,
        keys: count,
    })
}

fn write_kv<W: Write>(w: &mut Checksum<W>, kv: &KeyValue) -> std::io::Result<()> {
    let len =
        |n: usize| u32::try_from(n).map_err(|_| std::io::Error::other("a key or value over 4 GiB"));
    w.put(&len(kv.key.len())?.to_le_bytes())?;
    w.put(&kv.key)?;
    w.put(&len(kv.value.len())?.to_le_bytes())?;
    w.put(&kv.value)?;
    w.put(&kv.create_revision.to_le_bytes())?;
    w.put(&kv.mod_revision.to_le_bytes())?;
    w.put(&kv.version.to_le_bytes())
}

/// Reads and checks a whole snapshot: its revision and its keys.
pub fn read(input: impl Read) -> Result<(SnapshotInfo, Vec<KeyValue>)> {
    let mut r = Checksum::new(input);
    let magic = r.take(8).map_err(io)?;
    if magic != MAGIC {
        return Err(Error::Backend(
            "not a kox snapshot file (it does not start with KOXSNAP1)".into(),
        ));
    }
    let revision = r.take_i64().map_err(io)?;
    let count = r.take_i64().map_err(io)? as u64;
    let mut kvs = Vec::new();
    for _ in 0..count {
        let key_len = r.take_u32().map_err(io)? as usize;
        let key = r.take(key_len).map_err(io)?;
        let value_len = r.take_u32().map_err(io)? as usize;
        let value = r.take(value_len).map_err(io)?;
        kvs.push(KeyValue {
            key,
            value,
            create_revision: r.take_i64().map_err(io)?,
            mod_revision: r.take_i64().map_err(io)?,
            version: r.take_i64().map_err(io)?,
        });
    }
    let computed = r.hash;
    let mut stored = [0u8; 8];
    r.inner.read_exact(&mut stored).map_err(|_| {
        Error::Backend("snapshot file is truncated (no checksum at its end)".into())
    })?;
    if u64::from_le_bytes(stored) != computed {
        return Err(Error::Backend(
            "snapshot file is damaged: its checksum does not match".into(),
        ));
    }
    Ok((
        SnapshotInfo {
            revision,
            keys: count,
        },
        kvs,
    ))
}

/// Writes a snapshot's keys into `store`, which must hold no keys, in `mod_revision` order.
pub async fn restore(store: &dyn Store, input: impl Read) -> Result<SnapshotInfo> {
    let (info, mut kvs) = read(input)?;
    let existing = store
        .range(RangeRequest {
            count_only: true,
            ..RangeRequest::new(KeyRange::between(Vec::new(), Vec::new()))
        })
        .await?;
    if existing.count > 0 {
        return Err(Error::Backend(format!(
            "the target store is not empty ({} keys): restore into a fresh data directory or an empty etcd",
            existing.count
        )));
    }
    kvs.sort_by_key(|kv| kv.mod_revision);
    for kv in kvs {
        store.put(kv.key, kv.value, Condition::None).await?;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::embedded::{EmbeddedOptions, EmbeddedStore};

    fn open(dir: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap())
    }

    async fn fill(store: &dyn Store) {
        for i in 0..2500 {
            let key = format!("/registry/configmaps/default/cm-{i:05}");
            store
                .put(key.into_bytes(), vec![b'x'; i % 7], Condition::None)
                .await
                .unwrap();
        }
        // Later changes to early keys: the restore must keep their order.
        store
            .put(
                b"/registry/configmaps/default/cm-00000".to_vec(),
                b"changed".to_vec(),
                Condition::None,
            )
            .await
            .unwrap();
        store
            .delete(
                b"/registry/configmaps/default/cm-00001".to_vec(),
                Condition::None,
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_snapshot_restores_every_key_in_revision_order() {
        let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = open(src_dir.path());
        fill(src.as_ref()).await;
        let mut file = Vec::new();
        let info = save(src.as_ref(), &mut file).await.unwrap();
        assert_eq!(info.keys, 2499);
        // Writes after the snapshot are not in it.
        src.put(b"/later".to_vec(), b"x".to_vec(), Condition::None)
            .await
            .unwrap();

        let dst = open(dst_dir.path());
        assert_eq!(restore(dst.as_ref(), &file[..]).await.unwrap(), info);
        let all = |s: Arc<dyn Store>| async move {
            s.range(RangeRequest::new(KeyRange::between(Vec::new(), Vec::new())))
                .await
                .unwrap()
                .kvs
        };
        let (before, after) = (all(src.clone()).await, all(dst.clone()).await);
        let before: Vec<_> = before
            .into_iter()
            .filter(|kv| kv.key != b"/later")
            .collect();
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((&b.key, &b.value), (&a.key, &a.value));
        }
        let order = |kvs: &[KeyValue]| {
            let mut keys: Vec<_> = kvs
                .iter()
                .map(|kv| (kv.mod_revision, kv.key.clone()))
                .collect();
            keys.sort();
            keys.into_iter().map(|(_, k)| k).collect::<Vec<_>>()
        };
        assert_eq!(order(&before), order(&after), "revision order kept");

        // A second restore into the now non-empty store is refused.
        let err = restore(dst.as_ref(), &file[..]).await.unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }

    #[tokio::test]
    async fn a_damaged_or_truncated_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = open(dir.path());
        fill(src.as_ref()).await;
        let mut file = Vec::new();
        save(src.as_ref(), &mut file).await.unwrap();
        let truncated = &file[..file.len() - 100];
        assert!(read(truncated).is_err());
        let mut flipped = file.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        let err = read(&flipped[..]).unwrap_err().to_string();
        assert!(
            err.contains("damaged") || err.contains("snapshot file"),
            "{err}"
        );
        assert!(read(&b"hello"[..]).is_err());
    }
}
