//! The embedded engine: a durable store in one redb file, for a single server.
//!
//! - `tables.rs`: the on-disk layout (tables keyed by revision) and its encodings.
//! - `index.rs`: the in-memory key index (which revisions belong to which key).
//! - `reads.rs`: range reads and watch-replay chunks, from the index and one snapshot.
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
mod index;
mod reads;
mod tables;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableTable, TableHandle};
use tokio::sync::oneshot;

use self::index::KeyIndex;
use self::tables::{META, META_COMPACT, META_COMPACT_PROGRESS, OrBackend, REVS, VALUES};
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
    /// Which revisions belong to which key, and the current revision and compaction point.
    index: RwLock<KeyIndex>,
    hub: Hub,
}

impl Shared {
    fn db(&self) -> Result<Arc<Database>> {
        self.db.read().clone().ok_or(Error::Closed)
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
        let (index, compact_progress) = recover(&db)?;
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(Arc::clone(&db))),
            hub: Hub::new(index.revision),
            index: RwLock::new(index),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(db, Arc::clone(&shared), rx, &options, compact_progress);
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

/// Creates missing tables and rebuilds the key index by scanning `revs` (keys and metadata
/// only, never values). Returns the index and how far compaction's cleanup had got.
fn recover(db: &Database) -> Result<(KeyIndex, Revision)> {
    let txn = db.begin_write().or_backend()?;
    // The first layout of this engine kept tables keyed by key; it never shipped.
    if txn
        .list_tables()
        .or_backend()?
        .any(|t| t.name() == "history")
    {
        return Err(Error::Backend(
            "the store file was written by an earlier development layout of kox-store; \
             move the data directory away and start with an empty one"
                .into(),
        ));
    }
    let recovered = {
        txn.open_table(VALUES).or_backend()?;
        let revs = txn.open_table(REVS).or_backend()?;
        let meta = txn.open_table(META).or_backend()?;
        let compact = tables::read_meta(&meta, META_COMPACT)?.unwrap_or(1);
        let progress = tables::read_meta(&meta, META_COMPACT_PROGRESS)?.unwrap_or(1);
        let mut index = KeyIndex::new(1, compact);
        for record in revs.iter().or_backend()? {
            let (rev, bytes) = record.or_backend()?;
            let (key, entry) = tables::decode_rev(tables::from_disk(rev.value())?, bytes.value())?;
            index.push(key, entry);
        }
        if compact < 1 || compact > index.revision.max(1) || progress > compact {
            return Err(tables::corrupt("compaction point beyond the last revision"));
        }
        (index, progress)
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
        blocking(move || reads::read_range(&shared, &req)).await
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
        let compacted = self.shared.index.read().compact;
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
        let index = self.shared.index.read();
        Ok(StoreStatus {
            revision: index.revision,
            compact_revision: index.compact,
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

    /// The revisions present in the `revs` and `values` tables.
    fn on_disk(store: &EmbeddedStore) -> (Vec<u64>, Vec<u64>) {
        use redb::ReadableDatabase;
        let db = store.shared.db().unwrap();
        let txn = db.begin_read().unwrap();
        let revs = txn.open_table(REVS).unwrap();
        let values = txn.open_table(VALUES).unwrap();
        let revs = revs.iter().unwrap().map(|e| e.unwrap().0.value()).collect();
        let values = values
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value())
            .collect();
        (revs, values)
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
        // k keeps its newest version below the point; j's put and delete are gone; x is at it.
        assert_eq!(on_disk(&store), (vec![4, 7], vec![4, 7]));
        assert_eq!(store.shared.index.read().len(), 2);
        store.close().await;
    }

    #[test]
    fn file_of_the_first_development_layout_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = redb::Database::create(dir.path().join(DB_FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            let old: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("history");
            txn.open_table(old).unwrap();
            txn.commit().unwrap();
        }
        let Err(err) = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()) else {
            panic!("opened a file of the old layout");
        };
        assert!(
            err.to_string().contains("move the data directory away"),
            "{err}"
        );
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
