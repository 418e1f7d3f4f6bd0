//! The embedded engine: a durable store in one redb file, for a single server.
//!
//! - `tables.rs`: the on-disk layout and the read paths (current, MVCC, watch replay).
//! - `writer.rs`: the one writer thread and its group commit; every write is fsync'd before it is
//!   acknowledged, many writes share one fsync.
//! - `watch.rs`: the watcher hub (synced watchers fed by the writer, unsynced ones replaying
//!   history from disk until they catch up).
//! - `compaction.rs`: the compaction point, the chunked removal of old history, the auto-compaction
//!   policy.
//!
//! Reads run on tokio's blocking pool in their own redb read transaction (a consistent snapshot);
//! writes are sent to the writer thread. A crash at any point leaves the last committed
//! transaction: redb commits atomically, and the revision counter is committed with the writes.

mod compaction;
mod tables;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::oneshot;

use self::tables::{CURRENT, HISTORY, LOG, META, META_COMPACT, META_REVISION, OrBackend};
use self::watch::Hub;
use self::writer::{Request, Writer};
use crate::{
    Condition, Error, KeyRange, MAX_VALUE_SIZE, RangeRequest, RangeResponse, Result, Revision,
    Store, StoreStatus, WatchStream, WriteOutcome,
};

/// Name of the database file inside the store directory.
pub const DB_FILE_NAME: &str = "store.redb";

/// Tuning of the embedded engine.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How often a watcher that received nothing gets a [`crate::WatchEvent::Progress`].
    /// Default: 5 s.
    pub progress_notify_interval: Duration,
    /// Events buffered per watcher; a watcher whose buffer is full is ended with
    /// [`Error::WatcherLagged`]. Default: 4096.
    pub watcher_buffer: usize,
    /// Auto-compaction keeps at least this much time of history; `None` disables
    /// auto-compaction. Default: 5 minutes.
    pub auto_compaction_retention: Option<Duration>,
    /// Auto-compaction also keeps at least this many revisions. Default: 10,000.
    pub auto_compaction_min_revisions: i64,
    /// How often auto-compaction checks whether it can compact. Default: 30 s.
    pub auto_compaction_interval: Duration,
    /// Most writes committed together in one transaction (one fsync). Default: 1024.
    pub max_batch: usize,
    /// Size of redb's page cache in bytes. Default: 64 MiB.
    pub cache_size: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            progress_notify_interval: Duration::from_secs(5),
            watcher_buffer: 4096,
            auto_compaction_retention: Some(Duration::from_secs(300)),
            auto_compaction_min_revisions: 10_000,
            auto_compaction_interval: Duration::from_secs(30),
            max_batch: 1024,
            cache_size: 64 * 1024 * 1024,
        }
    }
}

/// State shared by the store handle, the writer thread and the watch replays.
pub(crate) struct Shared {
    /// `None` once closed; readers clone the handle for the length of one transaction.
    db: RwLock<Option<Arc<Database>>>,
    /// The revision of the last committed write.
    revision: AtomicI64,
    compact_revision: AtomicI64,
    hub: Hub,
}

impl Shared {
    fn db(&self) -> Result<Arc<Database>> {
        self.db.read().clone().ok_or(Error::Closed)
    }

    fn read_range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let db = self.db()?;
        let txn = db.begin_read().or_backend()?;
        let meta = txn.open_table(META).or_backend()?;
        let current = tables::read_meta(&meta, META_REVISION)?.unwrap_or(1);
        let compacted = tables::read_meta(&meta, META_COMPACT)?.unwrap_or(1);
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
        if at < compacted {
            return Err(Error::Compacted {
                requested: at,
                compacted,
            });
        }
        if at == current {
            tables::range_current(&txn.open_table(CURRENT).or_backend()?, req, at)
        } else {
            tables::range_at(&txn.open_table(HISTORY).or_backend()?, req, at)
        }
    }
}

/// The embedded engine. Cheap to share behind an `Arc`; [`EmbeddedStore::close`] (or drop) stops
/// its writer thread and closes the file.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Request>,
    writer: Mutex<Option<JoinHandle<()>>>,
    watcher_buffer: usize,
    file: PathBuf,
}

/// What `open` found on disk.
struct Recovered {
    revision: Revision,
    compact: Revision,
    compaction_pending: bool,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `dir`, in file [`DB_FILE_NAME`].
    ///
    /// Blocks while redb opens the file, which after a crash includes a repair pass over it; call
    /// it from `spawn_blocking` in latency-sensitive async code. Must be called within a tokio
    /// runtime only for [`Store::watch`] later, which spawns tasks.
    pub fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Backend(format!(
                "cannot create store directory {}: {e}",
                dir.display()
            ))
        })?;
        let file = dir.join(DB_FILE_NAME);
        let db = redb::Builder::new()
            .set_cache_size(options.cache_size)
            .create(&file)
            .map_err(|e| {
                Error::Backend(format!("cannot open store file {}: {e}", file.display()))
            })?;
        let recovered = recover(&db)?;
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(Arc::clone(&db))),
            revision: AtomicI64::new(recovered.revision),
            compact_revision: AtomicI64::new(recovered.compact),
            hub: Hub::new(recovered.revision),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(
            db,
            Arc::clone(&shared),
            rx,
            &options,
            recovered.revision,
            recovered.compact,
            recovered.compaction_pending,
        );
        let handle = std::thread::Builder::new()
            .name("kox-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::Backend(format!("cannot start the store writer thread: {e}")))?;
        Ok(Self {
            shared,
            tx,
            writer: Mutex::new(Some(handle)),
            watcher_buffer: options.watcher_buffer,
            file,
        })
    }

    /// The database file.
    pub fn file_path(&self) -> &Path {
        &self.file
    }

    /// Finishes the writes already queued, ends every watcher with [`Error::Closed`], and closes
    /// the file. Later calls fail with [`Error::Closed`].
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .tx
            .send(Request::Shutdown { reply: Some(reply) })
            .is_ok()
        {
            let _ = done.await;
        }
        let handle = self.writer.lock().take();
        if let Some(handle) = handle {
            // The thread has answered and is exiting; joining takes no time.
            let _ = handle.join();
        }
    }

    async fn write(
        &self,
        request: Request,
        reply: oneshot::Receiver<Result<WriteOutcome>>,
    ) -> Result<WriteOutcome> {
        self.tx.send(request).map_err(|_| Error::Closed)?;
        reply.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Some(handle) = self.writer.lock().take() {
            let _ = self.tx.send(Request::Shutdown { reply: None });
            let _ = handle.join();
        }
    }
}

/// Creates missing tables and reads the revision bookkeeping, checking it against the log.
fn recover(db: &Database) -> Result<Recovered> {
    let txn = db.begin_write().or_backend()?;
    let recovered = {
        txn.open_table(CURRENT).or_backend()?;
        txn.open_table(HISTORY).or_backend()?;
        let log = txn.open_table(LOG).or_backend()?;
        let mut meta = txn.open_table(META).or_backend()?;
        let revision = tables::read_meta(&meta, META_REVISION)?.unwrap_or(1);
        let compact = tables::read_meta(&meta, META_COMPACT)?.unwrap_or(1);
        if revision < 1 || compact < 1 || compact > revision {
            return Err(tables::corrupt("revision bookkeeping out of order"));
        }
        let last_logged = log.last().or_backend()?.map(|(rev, _)| rev.value());
        let expected = if revision > 1 {
            Some(u64::try_from(revision).unwrap_or(0))
        } else {
            None
        };
        if last_logged != expected {
            return Err(tables::corrupt(
                "the log does not end at the current revision",
            ));
        }
        let first_logged = log.first().or_backend()?.map(|(rev, _)| rev.value());
        let compaction_pending =
            first_logged.is_some_and(|first| first < u64::try_from(compact).unwrap_or(0));
        meta.insert(META_REVISION, u64::try_from(revision).unwrap_or(1))
            .or_backend()?;
        meta.insert(META_COMPACT, u64::try_from(compact).unwrap_or(1))
            .or_backend()?;
        Recovered {
            revision,
            compact,
            compaction_pending,
        }
    };
    txn.commit().or_backend()?;
    Ok(recovered)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Backend(format!("store read task failed: {e}")))?
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.read_range(&req)).await
    }

    async fn put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        condition: Condition,
    ) -> Result<WriteOutcome> {
        if value.len() > MAX_VALUE_SIZE {
            return Err(Error::ValueTooLarge {
                size: value.len(),
                limit: MAX_VALUE_SIZE,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.write(
            Request::Put {
                key,
                value,
                condition,
                reply,
            },
            rx,
        )
        .await
    }

    async fn delete(&self, key: Vec<u8>, condition: Condition) -> Result<WriteOutcome> {
        let (reply, rx) = oneshot::channel();
        self.write(
            Request::Delete {
                key,
                condition,
                reply,
            },
            rx,
        )
        .await
    }

    async fn watch(&self, range: KeyRange, start_revision: Revision) -> Result<WatchStream> {
        if self.shared.db.read().is_none() {
            return Err(Error::Closed);
        }
        let compacted = self.shared.compact_revision.load(Ordering::Acquire);
        if start_revision > 0 && start_revision < compacted {
            return Err(Error::Compacted {
                requested: start_revision,
                compacted,
            });
        }
        let (sender, stream) = watch::channel(self.watcher_buffer);
        watch::start(&self.shared, range, start_revision, sender);
        Ok(stream)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Compact { revision, reply })
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    async fn status(&self) -> Result<StoreStatus> {
        if self.shared.db.read().is_none() {
            return Err(Error::Closed);
        }
        Ok(StoreStatus {
            revision: self.shared.revision.load(Ordering::Acquire),
            compact_revision: self.shared.compact_revision.load(Ordering::Acquire),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyValue, WatchEvent};
    use futures::StreamExt;

    fn open(dir: &Path) -> EmbeddedStore {
        EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap()
    }

    async fn put(store: &EmbeddedStore, key: &str, value: &str) -> Revision {
        match store
            .put(key.into(), value.into(), Condition::None)
            .await
            .unwrap()
        {
            WriteOutcome::Committed { revision, .. } => revision,
            other => panic!("{other:?}"),
        }
    }

    fn on_disk(store: &EmbeddedStore) -> (std::collections::BTreeMap<Vec<u8>, Vec<u64>>, Vec<u64>) {
        let db = store.shared.db().unwrap();
        let txn = db.begin_read().unwrap();
        let history = tables::history_revisions(&txn.open_table(HISTORY).unwrap()).unwrap();
        let log = txn.open_table(LOG).unwrap();
        let log = log.iter().unwrap().map(|e| e.unwrap().0.value()).collect();
        (history, log)
    }

    #[tokio::test]
    async fn compaction_removes_superseded_history_and_deleted_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for v in ["1", "2", "3"] {
            put(&store, "k", v).await; // 2, 3, 4
        }
        put(&store, "j", "1").await; // 5
        store.delete("j".into(), Condition::None).await.unwrap(); // 6
        let x = put(&store, "x", "1").await; // 7
        store.compact(x).await.unwrap();
        let (history, log) = on_disk(&store);
        let expected: std::collections::BTreeMap<Vec<u8>, Vec<u64>> =
            [(b"k".to_vec(), vec![4]), (b"x".to_vec(), vec![7])]
                .into_iter()
                .collect();
        assert_eq!(history, expected);
        assert_eq!(log, vec![7]);
        store.close().await;
    }

    #[tokio::test]
    async fn reopened_store_keeps_writes_and_continues_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let first = put(&store, "a", "1").await;
        put(&store, "a", "2").await;
        store.compact(first + 1).await.unwrap();
        let last = put(&store, "b", "1").await;
        store.close().await;
        assert!(matches!(store.status().await, Err(Error::Closed)));
        assert!(matches!(
            store.put("c".into(), vec![], Condition::None).await,
            Err(Error::Closed)
        ));

        let store = open(dir.path());
        let status = store.status().await.unwrap();
        assert_eq!(
            (status.revision, status.compact_revision),
            (last, first + 1)
        );
        let a = store
            .range(RangeRequest::new(KeyRange::key("a")))
            .await
            .unwrap()
            .kvs;
        assert_eq!(
            a,
            vec![KeyValue {
                key: b"a".to_vec(),
                value: b"2".to_vec(),
                create_revision: first,
                mod_revision: first + 1,
                version: 2
            }]
        );
        assert_eq!(put(&store, "c", "1").await, last + 1);
    }

    #[tokio::test]
    async fn closing_ends_open_watches_with_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut watch = store.watch(KeyRange::prefix(""), 0).await.unwrap();
        let r = put(&store, "a", "1").await;
        assert_eq!(watch.next().await.unwrap().unwrap().revision(), r);
        store.close().await;
        assert!(matches!(watch.next().await, Some(Err(Error::Closed))));
        assert!(watch.next().await.is_none());
        assert!(matches!(
            store.watch(KeyRange::prefix(""), 0).await,
            Err(Error::Closed)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_watcher_is_ended_with_lagged_without_slowing_writers() {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions {
            watcher_buffer: 8,
            ..Default::default()
        };
        let store = Arc::new(EmbeddedStore::open(dir.path(), options).unwrap());
        let mut slow = store.watch(KeyRange::prefix(""), 0).await.unwrap();
        for i in 0..20 {
            put(&store, "k", &i.to_string()).await;
        }
        let mut delivered = 0;
        let end = loop {
            match slow.next().await {
                Some(Ok(WatchEvent::Put { .. })) => delivered += 1,
                Some(Ok(other)) => panic!("{other:?}"),
                Some(Err(e)) => break e,
                None => panic!("stream ended without an error"),
            }
        };
        assert!(matches!(end, Error::WatcherLagged), "{end:?}");
        assert_eq!(delivered, 8);
        assert!(slow.next().await.is_none());
    }
}
