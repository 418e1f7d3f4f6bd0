//! The writer thread: group commit of every write, plus the periodic ticks.
//!
//! All writes go through one channel to this thread. It takes what is pending (up to
//! `max_batch` requests), applies them in order inside one redb write transaction — each write
//! gets its own revision and sees the effects of the earlier ones in the batch through a small
//! overlay over the key index — commits once with [`Durability::Immediate`] (one fsync for the
//! whole batch), updates the key index, publishes the events to the watcher hub and only then
//! answers the callers. While the disk syncs one batch, the next one accumulates in the channel,
//! so durable throughput grows with the number of concurrent writers instead of being capped by
//! the disk's fsync rate.
//!
//! The index is updated only after a successful commit, so a failed commit leaves nothing to
//! undo. Publishing before answering means a caller that saw its write acknowledged and then
//! starts a watch from "the next write" never receives its own write as new.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, Table};
use tokio::sync::oneshot;

use super::compaction::{self, AutoCompactor, Chunk};
use super::index::{Entry, KeyIndex};
use super::tables::{self, META, META_COMPACT, META_COMPACT_PROGRESS, OrBackend, REVS, VALUES};
use super::{EmbeddedOptions, Shared};
use crate::{Condition, Error, KeyValue, Result, Revision, WatchEvent, WriteOutcome};

/// Most value bytes taken into one batch, so a burst of large values does not make one huge
/// transaction.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Revisions of compaction cleanup per batch while writes are flowing.
const BUSY_COMPACTION_CHUNK: usize = 512;
/// Revisions of compaction cleanup per transaction while idle.
const IDLE_COMPACTION_CHUNK: usize = 4096;

/// A request to the writer thread.
pub(crate) enum Request {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        condition: Condition,
        reply: oneshot::Sender<Result<WriteOutcome>>,
    },
    Delete {
        key: Vec<u8>,
        condition: Condition,
        reply: oneshot::Sender<Result<WriteOutcome>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Stop after the requests before this one; answered once the database file is closed.
    Shutdown { reply: Option<oneshot::Sender<()>> },
}

impl Request {
    fn size(&self) -> usize {
        match self {
            Request::Put { key, value, .. } => key.len() + value.len(),
            Request::Delete { key, .. } => key.len(),
            _ => 0,
        }
    }
}

/// The result of one request, sent after the commit.
enum Outcome {
    Write(Result<WriteOutcome>),
    Compact(Result<()>),
}

/// The revision bookkeeping, committed and in progress.
#[derive(Clone, Copy)]
struct Revisions {
    current: Revision,
    compact: Revision,
    /// Compaction cleanup is done below this revision.
    progress: Revision,
}

/// Everything a committed transaction changes outside redb.
struct Committed {
    revisions: Revisions,
    /// New writes, in revision order, for the index.
    writes: Vec<(Vec<u8>, Entry)>,
    /// Keys compaction cleaned up, to prune from the index.
    pruned: Vec<Vec<u8>>,
    events: Vec<WatchEvent>,
}

/// The state of a write transaction in progress: tables, revisions and the keys it changed.
struct Batch<'txn> {
    revs: Table<'txn, u64, &'static [u8]>,
    values: Table<'txn, u64, &'static [u8]>,
    meta: Table<'txn, &'static str, u64>,
    revisions: Revisions,
    /// The newest entry of each key written in this transaction (shadows the index).
    overlay: HashMap<Vec<u8>, Entry>,
    writes: Vec<(Vec<u8>, Entry)>,
    events: Vec<WatchEvent>,
}

pub(crate) struct Writer {
    db: Arc<Database>,
    shared: Arc<Shared>,
    rx: Receiver<Request>,
    max_batch: usize,
    revisions: Revisions,
    auto: AutoCompactor,
    progress_interval: Duration,
    auto_interval: Duration,
    next_progress: Instant,
    next_auto: Instant,
}

fn condition_holds(condition: Condition, current: Option<&KeyValue>) -> bool {
    match condition {
        Condition::None => true,
        Condition::Absent => current.is_none(),
        Condition::ModRevision(rev) => current.is_some_and(|kv| kv.mod_revision == rev),
    }
}

impl Writer {
    pub(crate) fn new(
        db: Arc<Database>,
        shared: Arc<Shared>,
        rx: Receiver<Request>,
        options: &EmbeddedOptions,
        compact_progress: Revision,
    ) -> Self {
        let (current, compact) = {
            let index = shared.index.read();
            (index.revision, index.compact)
        };
        let now = Instant::now();
        let progress_interval = options
            .progress_notify_interval
            .max(Duration::from_millis(1));
        let auto_interval = options
            .auto_compaction_interval
            .max(Duration::from_millis(1));
        Self {
            db,
            shared,
            rx,
            max_batch: options.max_batch.max(1),
            revisions: Revisions {
                current,
                compact,
                progress: compact_progress,
            },
            auto: AutoCompactor::new(
                options.auto_compaction_retention,
                options.auto_compaction_min_revisions,
            ),
            progress_interval,
            auto_interval,
            next_progress: now + progress_interval,
            next_auto: now + auto_interval,
        }
    }

    fn compaction_pending(&self) -> bool {
        self.revisions.progress < self.revisions.compact
    }

    /// Runs until a shutdown request or until every sender is gone.
    pub(crate) fn run(mut self) {
        // Should this thread ever unwind, watchers and readers learn that the store is closed
        // instead of waiting forever.
        let _closed_on_exit = CloseOnExit(Arc::clone(&self.shared));
        let mut shutdown_reply = None;
        loop {
            let deadline = self.next_progress.min(self.next_auto);
            let wait = if self.compaction_pending() {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match self.rx.recv_timeout(wait) {
                Ok(first) => {
                    let (batch, shutdown) = self.take_batch(first);
                    if !batch.is_empty() {
                        self.commit_batch(batch);
                    }
                    if let Some(reply) = shutdown {
                        shutdown_reply = reply;
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.compaction_pending() {
                        self.compact_step(None);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.run_ticks(Instant::now());
        }
        self.shutdown(shutdown_reply);
    }

    /// The requests to commit together, and the shutdown request if one was reached.
    #[allow(clippy::type_complexity)]
    fn take_batch(
        &mut self,
        first: Request,
    ) -> (Vec<Request>, Option<Option<oneshot::Sender<()>>>) {
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(request) = next {
            if let Request::Shutdown { reply } = request {
                return (batch, Some(reply));
            }
            bytes += request.size();
            batch.push(request);
            if batch.len() >= self.max_batch || bytes >= MAX_BATCH_BYTES {
                break;
            }
            next = self.rx.try_recv().ok();
        }
        (batch, None)
    }

    fn commit_batch(&mut self, batch: Vec<Request>) {
        match self.apply_batch(&batch) {
            Ok((outcomes, committed)) => {
                self.committed(committed);
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    match (request, outcome) {
                        (
                            Request::Put { reply, .. } | Request::Delete { reply, .. },
                            Outcome::Write(r),
                        ) => {
                            let _ = reply.send(r);
                        }
                        (Request::Compact { reply, .. }, Outcome::Compact(r)) => {
                            let _ = reply.send(r);
                        }
                        _ => {}
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "store write batch failed; nothing in it was written");
                let message = error.to_string();
                for request in batch {
                    let error = || Error::Backend(message.clone());
                    match request {
                        Request::Put { reply, .. } | Request::Delete { reply, .. } => {
                            let _ = reply.send(Err(error()));
                        }
                        Request::Compact { reply, .. } => {
                            let _ = reply.send(Err(error()));
                        }
                        Request::Shutdown { .. } => {}
                    }
                }
            }
        }
    }

    /// Applies `batch` in one durable transaction.
    fn apply_batch(&mut self, batch: &[Request]) -> Result<(Vec<Outcome>, Committed)> {
        let mut txn = self.db.begin_write().or_backend()?;
        txn.set_durability(Durability::Immediate).or_backend()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let (revisions, writes, events, pruned) = {
            let index = self.shared.index.read();
            let mut b = Batch::open(&txn, self.revisions, batch.len())?;
            for request in batch {
                let outcome = match request {
                    Request::Put {
                        key,
                        value,
                        condition,
                        ..
                    } => Outcome::Write(b.put(&index, key, value, *condition)?),
                    Request::Delete { key, condition, .. } => {
                        Outcome::Write(b.delete(&index, key, *condition)?)
                    }
                    Request::Compact { revision, .. } => {
                        Outcome::Compact(b.set_compaction(*revision))
                    }
                    Request::Shutdown { .. } => continue,
                };
                outcomes.push(outcome);
            }
            let chunk = BUSY_COMPACTION_CHUNK.max(2 * batch.len());
            let pruned = b.compact(&index, self.revisions.compact, chunk)?;
            (b.revisions, b.writes, b.events, pruned)
        };
        txn.commit().or_backend()?;
        Ok((
            outcomes,
            Committed {
                revisions,
                writes,
                pruned,
                events,
            },
        ))
    }

    /// Moves the compaction point (if `new_point` is given) and cleans up a chunk of history.
    fn compact_step(&mut self, new_point: Option<Revision>) {
        let result = (|| -> Result<Committed> {
            let mut txn = self.db.begin_write().or_backend()?;
            txn.set_durability(Durability::Immediate).or_backend()?;
            let committed = {
                let index = self.shared.index.read();
                let mut b = Batch::open(&txn, self.revisions, 0)?;
                if let Some(point) = new_point {
                    b.revisions.compact = b.revisions.compact.max(point.min(b.revisions.current));
                }
                let pruned = b.compact(&index, self.revisions.compact, IDLE_COMPACTION_CHUNK)?;
                Committed {
                    revisions: b.revisions,
                    writes: Vec::new(),
                    pruned,
                    events: Vec::new(),
                }
            };
            txn.commit().or_backend()?;
            Ok(committed)
        })();
        match result {
            Ok(committed) => {
                self.committed(committed);
            }
            Err(error) => {
                // Leave the work pending for a later attempt, but do not spin on a broken disk.
                tracing::error!(%error, "store compaction failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Makes a commit visible: index, then watchers.
    fn committed(&mut self, committed: Committed) {
        let Committed {
            revisions,
            writes,
            pruned,
            events,
        } = committed;
        {
            let mut index = self.shared.index.write();
            for (key, entry) in &writes {
                index.push(key, *entry);
            }
            index.revision = revisions.current;
            index.compact = revisions.compact;
            for key in &pruned {
                index.prune(key, revisions.compact);
            }
        }
        self.revisions = revisions;
        self.shared.hub.publish(&events, revisions.current);
    }

    fn run_ticks(&mut self, now: Instant) {
        if now >= self.next_progress {
            self.shared.hub.progress_tick();
            self.next_progress = now + self.progress_interval;
        }
        if now >= self.next_auto {
            self.next_auto = now + self.auto_interval;
            if let Some(target) = self.auto.target(now, self.revisions.current)
                && target > self.revisions.compact
            {
                self.compact_step(Some(target));
            }
        }
    }

    /// Ends the watchers and closes the database file before answering the shutdown request.
    fn shutdown(self, reply: Option<oneshot::Sender<()>>) {
        self.shared.hub.close();
        self.shared.db.write().take();
        // Readers still holding the database finish their short transactions; wait for them so
        // the file is closed (and its lock released) when `close` returns.
        let give_up = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.db) > 1 && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(self.db);
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
    }
}

/// Marks the store closed when the writer thread ends, however it ends.
struct CloseOnExit(Arc<Shared>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.hub.close();
        self.0.db.write().take();
    }
}

impl<'txn> Batch<'txn> {
    fn open(
        txn: &'txn redb::WriteTransaction,
        revisions: Revisions,
        capacity: usize,
    ) -> Result<Self> {
        Ok(Self {
            revs: txn.open_table(REVS).or_backend()?,
            values: txn.open_table(VALUES).or_backend()?,
            meta: txn.open_table(META).or_backend()?,
            revisions,
            overlay: HashMap::with_capacity(capacity),
            writes: Vec::with_capacity(capacity),
            events: Vec::with_capacity(capacity),
        })
    }

    /// The current value of `key` as this transaction sees it.
    fn current(&self, index: &KeyIndex, key: &[u8]) -> Result<Option<KeyValue>> {
        let entry = match self.overlay.get(key) {
            Some(entry) => (!entry.deleted).then_some(*entry),
            None => index.current(key),
        };
        let Some(entry) = entry else {
            return Ok(None);
        };
        let value = self
            .values
            .get(tables::to_disk(entry.rev))
            .or_backend()?
            .ok_or_else(|| tables::corrupt("the current value of a key is missing"))?
            .value()
            .to_vec();
        Ok(Some(KeyValue {
            key: key.to_vec(),
            value,
            create_revision: entry.create,
            mod_revision: entry.rev,
            version: entry.version,
        }))
    }

    fn record(&mut self, key: &[u8], entry: Entry) -> Result<()> {
        self.revs
            .insert(
                tables::to_disk(entry.rev),
                tables::encode_rev(key, &entry).as_slice(),
            )
            .or_backend()?;
        self.overlay.insert(key.to_vec(), entry);
        self.writes.push((key.to_vec(), entry));
        self.revisions.current = entry.rev;
        Ok(())
    }

    /// Applies a put; `Err` only for a backend failure (the whole batch is then abandoned).
    fn put(
        &mut self,
        index: &KeyIndex,
        key: &[u8],
        value: &[u8],
        condition: Condition,
    ) -> Result<Result<WriteOutcome>> {
        let current = self.current(index, key)?;
        if !condition_holds(condition, current.as_ref()) {
            return Ok(Ok(WriteOutcome::Failed { current }));
        }
        let rev = self.revisions.current + 1;
        let entry = Entry {
            rev,
            create: current.as_ref().map_or(rev, |c| c.create_revision),
            version: current.as_ref().map_or(1, |c| c.version + 1),
            deleted: false,
        };
        self.values
            .insert(tables::to_disk(rev), value)
            .or_backend()?;
        self.record(key, entry)?;
        let kv = KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: entry.create,
            mod_revision: rev,
            version: entry.version,
        };
        self.events.push(WatchEvent::Put {
            kv,
            prev: current.clone(),
        });
        Ok(Ok(WriteOutcome::Committed {
            revision: rev,
            prev: current,
        }))
    }

    /// Applies a delete; `Err` only for a backend failure (the whole batch is then abandoned).
    fn delete(
        &mut self,
        index: &KeyIndex,
        key: &[u8],
        condition: Condition,
    ) -> Result<Result<WriteOutcome>> {
        let Some(current) = self.current(index, key)? else {
            return Ok(Ok(WriteOutcome::Failed { current: None }));
        };
        if !condition_holds(condition, Some(&current)) {
            return Ok(Ok(WriteOutcome::Failed {
                current: Some(current),
            }));
        }
        let rev = self.revisions.current + 1;
        self.record(
            key,
            Entry {
                rev,
                create: 0,
                version: 0,
                deleted: true,
            },
        )?;
        self.events.push(WatchEvent::Delete {
            prev: current.clone(),
            revision: rev,
        });
        Ok(Ok(WriteOutcome::Committed {
            revision: rev,
            prev: Some(current),
        }))
    }

    /// Moves the compaction point (the `compact` request).
    fn set_compaction(&mut self, revision: Revision) -> Result<()> {
        if revision > self.revisions.current {
            return Err(Error::FutureRevision {
                requested: revision,
                current: self.revisions.current,
            });
        }
        self.revisions.compact = self.revisions.compact.max(revision);
        Ok(())
    }

    /// Cleans up a chunk of history if compaction is behind, and records the compaction state
    /// if it changed since `committed_compact`. Returns the keys to prune from the index.
    fn compact(
        &mut self,
        index: &KeyIndex,
        committed_compact: Revision,
        chunk: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let point_moved = self.revisions.compact != committed_compact;
        if !point_moved && self.revisions.progress >= self.revisions.compact {
            return Ok(Vec::new());
        }
        let Chunk { progress, keys } = compaction::compact_chunk(
            &mut self.revs,
            &mut self.values,
            index,
            self.revisions.compact,
            self.revisions.progress,
            chunk,
        )?;
        self.revisions.progress = progress;
        self.meta
            .insert(META_COMPACT, tables::to_disk(self.revisions.compact))
            .or_backend()?;
        self.meta
            .insert(META_COMPACT_PROGRESS, tables::to_disk(progress))
            .or_backend()?;
        Ok(keys)
    }
}
