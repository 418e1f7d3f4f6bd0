//! The watcher hub: fans committed events out to watchers without ever blocking the writer.
//!
//! Watchers come in two groups, as in etcd's `watchableStore`:
//! - **synced** watchers live in the hub. After each commit the writer publishes the batch's events
//!   to them under the hub lock with a non-blocking `try_send`; a watcher whose buffer is full is
//!   ended with [`Error::WatcherLagged`] (its buffered events are still delivered first).
//! - **unsynced** watchers start behind the hub's revision. A task of their own replays history
//!   from disk in chunks, paced by the consumer, until it has read every revision the hub has
//!   published; it then joins the synced group under the same lock the writer publishes under,
//!   from the revision right after the last one it replayed. A write committed but not yet
//!   published when the watcher joins is skipped by the replay-or-live boundary (`min_rev`), so
//!   no revision is delivered twice or missed.
//!
//! A periodic tick (driven by the writer thread) sends [`WatchEvent::Progress`] to synced watchers
//! that received nothing since the previous tick.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::Shared;
use crate::{Error, KeyRange, Result, Revision, WatchEvent, WatchStream};

/// Revisions of the log scanned per replay chunk.
const REPLAY_CHUNK: usize = 1024;

/// How a watcher ended, read by its stream once the channel is drained.
#[derive(Default)]
struct EndSlot(Mutex<Option<Error>>);

impl EndSlot {
    fn set_if_empty(&self, error: Error) {
        let mut slot = self.0.lock();
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    fn take(&self) -> Option<Error> {
        self.0.lock().take()
    }
}

/// The store's side of one watcher. Dropping it ends the stream, with [`Error::Closed`] unless
/// another reason was recorded first.
pub(crate) struct WatchSender {
    tx: mpsc::Sender<WatchEvent>,
    end: Arc<EndSlot>,
}

impl WatchSender {
    fn end_with(self, error: Error) {
        self.end.set_if_empty(error);
    }
}

impl Drop for WatchSender {
    fn drop(&mut self) {
        self.end.set_if_empty(Error::Closed);
    }
}

/// Creates a watcher's channel: the store keeps the sender, the caller gets the stream.
pub(crate) fn channel(buffer: usize) -> (WatchSender, WatchStream) {
    let (tx, rx) = mpsc::channel(buffer.max(1));
    let end = Arc::new(EndSlot::default());
    let stream = futures::stream::unfold(
        (rx, Arc::clone(&end), false),
        |(mut rx, end, done)| async move {
            if done {
                return None;
            }
            match rx.recv().await {
                Some(event) => Some((Ok(event), (rx, end, false))),
                // The sender records why it ended before it is dropped.
                None => end.take().map(|error| (Err(error), (rx, end, true))),
            }
        },
    );
    (WatchSender { tx, end }, Box::pin(stream))
}

struct SyncedWatcher {
    range: KeyRange,
    /// Events below this revision were delivered by the replay (or predate the watch).
    min_rev: Revision,
    sender: WatchSender,
    /// Whether an event was sent since the last progress tick.
    active: bool,
}

impl SyncedWatcher {
    /// Offers `event`; `false` when the watcher is gone (lagged or dropped by its consumer).
    fn offer(&mut self, event: &WatchEvent) -> bool {
        match self.sender.tx.try_send(event.clone()) {
            Ok(()) => {
                self.active = true;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.sender.end.set_if_empty(Error::WatcherLagged);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

struct HubState {
    /// The revision of the last published write.
    revision: Revision,
    watchers: Vec<SyncedWatcher>,
    closed: bool,
}

/// The synced watchers and the last published revision.
pub(crate) struct Hub {
    state: Mutex<HubState>,
}

fn event_key(event: &WatchEvent) -> Option<&[u8]> {
    match event {
        WatchEvent::Put { kv, .. } => Some(&kv.key),
        WatchEvent::Delete { prev, .. } => Some(&prev.key),
        WatchEvent::Progress { .. } => None,
    }
}

impl Hub {
    pub(crate) fn new(revision: Revision) -> Self {
        Self {
            state: Mutex::new(HubState {
                revision,
                watchers: Vec::new(),
                closed: false,
            }),
        }
    }

    /// Delivers a committed batch (events in revision order, ending at `revision`).
    pub(crate) fn publish(&self, events: &[WatchEvent], revision: Revision) {
        let mut state = self.state.lock();
        state.revision = revision;
        if events.is_empty() {
            return;
        }
        state.watchers.retain_mut(|w| {
            for event in events {
                let wanted = event.revision() >= w.min_rev
                    && event_key(event).is_some_and(|k| w.range.contains(k));
                if wanted && !w.offer(event) {
                    return false;
                }
            }
            true
        });
    }

    /// Sends progress to quiet synced watchers and forgets watchers whose consumer is gone.
    pub(crate) fn progress_tick(&self) {
        let mut state = self.state.lock();
        let progress = WatchEvent::Progress {
            revision: state.revision,
        };
        let revision = state.revision;
        state.watchers.retain_mut(|w| {
            if w.sender.tx.is_closed() {
                return false;
            }
            let quiet = !std::mem::replace(&mut w.active, false);
            // A watcher waiting for a future revision has nothing to be told yet.
            if quiet && w.min_rev <= revision + 1 {
                let kept = w.offer(&progress);
                w.active = false;
                return kept;
            }
            true
        });
    }

    /// Registers a watcher from `start` (0 = the next write) if nothing it needs is published
    /// yet; otherwise hands the sender back for a replay.
    fn try_join(
        &self,
        range: &KeyRange,
        start: Revision,
        sender: WatchSender,
    ) -> Option<WatchSender> {
        let mut state = self.state.lock();
        if state.closed {
            sender.end_with(Error::Closed);
            return None;
        }
        let min_rev = if start <= 0 {
            state.revision + 1
        } else {
            start
        };
        if min_rev <= state.revision {
            return Some(sender);
        }
        state.watchers.push(SyncedWatcher {
            range: range.clone(),
            min_rev,
            sender,
            active: false,
        });
        None
    }

    /// Ends every watcher with [`Error::Closed`] and refuses new ones.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        for w in state.watchers.drain(..) {
            w.sender.end_with(Error::Closed);
        }
    }

    /// Number of synced watchers (for tests).
    #[cfg(test)]
    pub(crate) fn synced_len(&self) -> usize {
        self.state.lock().watchers.len()
    }
}

/// Starts a watch: joins the hub directly, or spawns a replay that joins it once caught up.
pub(crate) fn start(shared: &Arc<Shared>, range: KeyRange, start: Revision, sender: WatchSender) {
    if let Some(sender) = shared.hub.try_join(&range, start, sender) {
        tokio::spawn(replay(Arc::clone(shared), range, start, sender));
    }
}

/// Feeds an unsynced watcher from disk until it has caught up with the hub, then joins it.
async fn replay(shared: Arc<Shared>, range: KeyRange, start: Revision, mut sender: WatchSender) {
    let mut next = start;
    loop {
        let chunk = {
            let shared = Arc::clone(&shared);
            let range = range.clone();
            tokio::task::spawn_blocking(move || read_chunk(&shared, &range, next)).await
        };
        let (events, after) = match chunk {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(error)) => return sender.end_with(error),
            Err(join) => {
                return sender.end_with(Error::Backend(format!("watch replay failed: {join}")));
            }
        };
        for event in events {
            if sender.tx.send(event).await.is_err() {
                return; // The consumer dropped the stream.
            }
        }
        next = after;
        match shared.hub.try_join(&range, next, sender) {
            None => return,
            Some(back) => sender = back,
        }
    }
}

/// One chunk of history from `from`.
fn read_chunk(
    shared: &Shared,
    range: &KeyRange,
    from: Revision,
) -> Result<(Vec<WatchEvent>, Revision)> {
    super::reads::read_events(shared, range, from, REPLAY_CHUNK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyValue;
    use futures::StreamExt;

    fn put(key: &str, rev: Revision) -> WatchEvent {
        WatchEvent::Put {
            kv: KeyValue {
                key: key.into(),
                value: vec![],
                create_revision: rev,
                mod_revision: rev,
                version: 1,
            },
            prev: None,
        }
    }

    #[tokio::test]
    async fn full_watcher_is_ended_with_lagged_after_its_buffered_events() {
        let hub = Hub::new(1);
        let (sender, mut stream) = channel(2);
        assert!(hub.try_join(&KeyRange::prefix("a"), 0, sender).is_none());
        hub.publish(&[put("a1", 2), put("a2", 3), put("a3", 4)], 4);
        assert_eq!(hub.synced_len(), 0);
        assert_eq!(stream.next().await.unwrap().unwrap(), put("a1", 2));
        assert_eq!(stream.next().await.unwrap().unwrap(), put("a2", 3));
        assert!(matches!(
            stream.next().await,
            Some(Err(Error::WatcherLagged))
        ));
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn joining_watcher_skips_events_its_replay_already_delivered() {
        let hub = Hub::new(5);
        let (sender, mut stream) = channel(8);
        // The replay read revisions 6 and 7 from disk: committed, not yet published.
        assert!(hub.try_join(&KeyRange::prefix("a"), 8, sender).is_none());
        hub.publish(&[put("a6", 6), put("a7", 7), put("a8", 8)], 8);
        assert_eq!(stream.next().await.unwrap().unwrap(), put("a8", 8));
    }

    #[tokio::test]
    async fn watcher_behind_the_hub_is_handed_back_for_replay() {
        let hub = Hub::new(5);
        let (sender, _stream) = channel(2);
        assert!(hub.try_join(&KeyRange::prefix("a"), 3, sender).is_some());
        let (sender, _stream) = channel(2);
        assert!(hub.try_join(&KeyRange::prefix("a"), 6, sender).is_none());
    }

    #[tokio::test]
    async fn quiet_watcher_gets_progress_and_busy_one_does_not() {
        let hub = Hub::new(1);
        let (quiet, mut quiet_stream) = channel(8);
        let (busy, mut busy_stream) = channel(8);
        hub.try_join(&KeyRange::prefix("q"), 0, quiet);
        hub.try_join(&KeyRange::prefix("b"), 0, busy);
        hub.publish(&[put("b1", 2)], 2);
        hub.progress_tick();
        assert_eq!(
            quiet_stream.next().await.unwrap().unwrap(),
            WatchEvent::Progress { revision: 2 }
        );
        assert_eq!(busy_stream.next().await.unwrap().unwrap(), put("b1", 2));
        hub.close();
        assert!(matches!(busy_stream.next().await, Some(Err(Error::Closed))));
    }
}
