//! The writer thread: group commit of every write, plus the periodic ticks.
//!
//! All writes go through one channel to this thread. It takes what is pending (up to
//! `max_batch` requests), applies them in order inside one redb write transaction — each write
//! gets its own revision and sees the effects of the earlier ones in the batch — commits once
//! with [`Durability::Immediate`] (one fsync for the whole batch), publishes the events to the
//! watcher hub and only then answers the callers. While the disk syncs one batch, the next one
//! accumulates in the channel, so durable throughput grows with the number of concurrent writers
//! instead of being capped by the disk's fsync rate.
//!
//! Publishing before answering means a caller that saw its write acknowledged and then starts a
//! watch from "the next write" never receives its own write as new.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use redb::{Database, Durability, Table};
use tokio::sync::oneshot;

use super::compaction::{self, AutoCompactor};
use super::tables::{self, CURRENT, HISTORY, LOG, META, META_COMPACT, META_REVISION, OrBackend};
use super::{EmbeddedOptions, Shared};
use crate::{Condition, Error, KeyValue, Result, Revision, WatchEvent, WriteOutcome};

/// Most value bytes taken into one batch, so a burst of large values does not make one huge
/// transaction.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Log revisions compacted per batch while writes are flowing.
const BUSY_COMPACTION_CHUNK: usize = 512;
/// Log revisions compacted per transaction while idle.
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

/// The tables a write transaction works on, opened once per transaction.
struct Tables<'txn> {
    current: Table<'txn, &'static [u8], &'static [u8]>,
    history: Table<'txn, (&'static [u8], u64), &'static [u8]>,
    log: Table<'txn, u64, &'static [u8]>,
    meta: Table<'txn, &'static str, u64>,
}

/// The revision bookkeeping of a transaction in progress.
#[derive(Clone, Copy)]
struct Revisions {
    current: Revision,
    compact: Revision,
}

pub(crate) struct Writer {
    db: Arc<Database>,
    shared: Arc<Shared>,
    rx: Receiver<Request>,
    max_batch: usize,
    revisions: Revisions,
    /// History below the compaction point is still to be removed.
    compaction_pending: bool,
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
        current: Revision,
        compact: Revision,
        compaction_pending: bool,
    ) -> Self {
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
            revisions: Revisions { current, compact },
            compaction_pending,
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

    /// Runs until a shutdown request or until every sender is gone.
    pub(crate) fn run(mut self) {
        // Should this thread ever unwind, watchers and readers learn that the store is closed
        // instead of waiting forever.
        let _closed_on_exit = CloseOnExit(Arc::clone(&self.shared));
        let mut shutdown_reply = None;
        loop {
            let deadline = self.next_progress.min(self.next_auto);
            let wait = if self.compaction_pending {
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
                    if self.compaction_pending {
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
            Ok((outcomes, events, revisions)) => {
                self.committed(revisions);
                self.shared.hub.publish(&events, revisions.current);
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
    fn apply_batch(
        &mut self,
        batch: &[Request],
    ) -> Result<(Vec<Outcome>, Vec<WatchEvent>, Revisions)> {
        let mut txn = self.db.begin_write().or_backend()?;
        txn.set_durability(Durability::Immediate).or_backend()?;
        let mut revs = self.revisions;
        let mut pending = self.compaction_pending;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        {
            let mut t = open_tables(&txn)?;
            for request in batch {
                let outcome = match request {
                    Request::Put {
                        key,
                        value,
                        condition,
                        ..
                    } => Outcome::Write(apply_put(
                        &mut t,
                        &mut revs,
                        key,
                        value,
                        *condition,
                        &mut events,
                    )?),
                    Request::Delete { key, condition, .. } => Outcome::Write(apply_delete(
                        &mut t,
                        &mut revs,
                        key,
                        *condition,
                        &mut events,
                    )?),
                    Request::Compact { revision, .. } => {
                        Outcome::Compact(set_compaction(&mut revs, *revision))
                    }
                    Request::Shutdown { .. } => continue,
                };
                outcomes.push(outcome);
            }
            if pending || revs.compact != self.revisions.compact {
                let chunk = BUSY_COMPACTION_CHUNK.max(2 * batch.len());
                pending =
                    compaction::compact_chunk(&mut t.log, &mut t.history, revs.compact, chunk)?;
            }
            write_meta(&mut t.meta, revs)?;
        }
        txn.commit().or_backend()?;
        self.compaction_pending = pending;
        Ok((outcomes, events, revs))
    }

    /// Moves the compaction point (if `new_point` is given) and removes a chunk of history.
    fn compact_step(&mut self, new_point: Option<Revision>) {
        let result = (|| -> Result<(bool, Revisions)> {
            let mut revs = self.revisions;
            if let Some(point) = new_point {
                revs.compact = revs.compact.max(point.min(revs.current));
            }
            let mut txn = self.db.begin_write().or_backend()?;
            txn.set_durability(Durability::Immediate).or_backend()?;
            let pending = {
                let mut t = open_tables(&txn)?;
                let pending = compaction::compact_chunk(
                    &mut t.log,
                    &mut t.history,
                    revs.compact,
                    IDLE_COMPACTION_CHUNK,
                )?;
                write_meta(&mut t.meta, revs)?;
                pending
            };
            txn.commit().or_backend()?;
            Ok((pending, revs))
        })();
        match result {
            Ok((pending, revs)) => {
                self.compaction_pending = pending;
                self.committed(revs);
            }
            Err(error) => {
                // Leave the work pending for a later attempt, but do not spin on a broken disk.
                tracing::error!(%error, "store compaction failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn committed(&mut self, revs: Revisions) {
        self.revisions = revs;
        self.shared.revision.store(revs.current, Ordering::Release);
        self.shared
            .compact_revision
            .store(revs.compact, Ordering::Release);
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

fn open_tables(txn: &redb::WriteTransaction) -> Result<Tables<'_>> {
    Ok(Tables {
        current: txn.open_table(CURRENT).or_backend()?,
        history: txn.open_table(HISTORY).or_backend()?,
        log: txn.open_table(LOG).or_backend()?,
        meta: txn.open_table(META).or_backend()?,
    })
}

fn write_meta(meta: &mut Table<&'static str, u64>, revs: Revisions) -> Result<()> {
    let to_disk = |r: Revision| u64::try_from(r).unwrap_or(0);
    meta.insert(META_REVISION, to_disk(revs.current))
        .or_backend()?;
    meta.insert(META_COMPACT, to_disk(revs.compact))
        .or_backend()?;
    Ok(())
}

/// Applies a put; `Err` only for a backend failure (the whole batch is then abandoned).
fn apply_put(
    t: &mut Tables<'_>,
    revs: &mut Revisions,
    key: &[u8],
    value: &[u8],
    condition: Condition,
    events: &mut Vec<WatchEvent>,
) -> Result<Result<WriteOutcome>> {
    let current = tables::get_current(&t.current, key)?;
    if !condition_holds(condition, current.as_ref()) {
        return Ok(Ok(WriteOutcome::Failed { current }));
    }
    let revision = revs.current + 1;
    let kv = KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
        create_revision: current.as_ref().map_or(revision, |c| c.create_revision),
        mod_revision: revision,
        version: current.as_ref().map_or(1, |c| c.version + 1),
    };
    let disk_rev = u64::try_from(revision).unwrap_or(0);
    t.current
        .insert(key, tables::encode_current(&kv).as_slice())
        .or_backend()?;
    t.history
        .insert((key, disk_rev), tables::encode_history_put(&kv).as_slice())
        .or_backend()?;
    t.log.insert(disk_rev, key).or_backend()?;
    revs.current = revision;
    events.push(WatchEvent::Put {
        kv,
        prev: current.clone(),
    });
    Ok(Ok(WriteOutcome::Committed {
        revision,
        prev: current,
    }))
}

/// Applies a delete; `Err` only for a backend failure (the whole batch is then abandoned).
fn apply_delete(
    t: &mut Tables<'_>,
    revs: &mut Revisions,
    key: &[u8],
    condition: Condition,
    events: &mut Vec<WatchEvent>,
) -> Result<Result<WriteOutcome>> {
    let Some(current) = tables::get_current(&t.current, key)? else {
        return Ok(Ok(WriteOutcome::Failed { current: None }));
    };
    if !condition_holds(condition, Some(&current)) {
        return Ok(Ok(WriteOutcome::Failed {
            current: Some(current),
        }));
    }
    let revision = revs.current + 1;
    let disk_rev = u64::try_from(revision).unwrap_or(0);
    t.current.remove(key).or_backend()?;
    t.history
        .insert((key, disk_rev), tables::HISTORY_TOMBSTONE)
        .or_backend()?;
    t.log.insert(disk_rev, key).or_backend()?;
    revs.current = revision;
    events.push(WatchEvent::Delete {
        prev: current.clone(),
        revision,
    });
    Ok(Ok(WriteOutcome::Committed {
        revision,
        prev: Some(current),
    }))
}

/// Moves the compaction point of a transaction in progress (the `compact` request).
fn set_compaction(revs: &mut Revisions, revision: Revision) -> Result<()> {
    if revision > revs.current {
        return Err(Error::FutureRevision {
            requested: revision,
            current: revs.current,
        });
    }
    revs.compact = revs.compact.max(revision);
    Ok(())
}
