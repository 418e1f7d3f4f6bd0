//! Watches over etcd: one gRPC watch stream per [`crate::Store::watch`], followed by a task that
//! converts etcd's responses into [`WatchEvent`]s.
//!
//! - Every watch asks for `prev_kv` (Put events carry the replaced value, Delete events the last
//!   one) and for etcd's server-side progress notifications, which become
//!   [`WatchEvent::Progress`]; with [`super::EtcdOptions::progress_request_interval`] the task also
//!   asks for one periodically.
//! - A cancellation for compaction ends the stream with [`Error::Compacted`]; any other
//!   cancellation, the stream's end or a transport error ends it with [`Error::Backend`], so the
//!   caller (the API server's watch cache) relists.
//! - The call returns once etcd confirmed the watch, so a watch from revision 0 sees every write
//!   that starts after the call returned.

use etcd_client::{EventType, WatchOptions, WatchResponse};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{EtcdStore, convert, etcd_range};
use crate::{Error, KeyRange, Result, Revision, WatchEvent, WatchStream};

/// Responses converted ahead of the consumer; beyond that, etcd's stream is not read (gRPC flow
/// control holds the server back).
const BUFFER: usize = 1024;

pub(super) async fn start(
    store: &EtcdStore,
    range: KeyRange,
    start_revision: Revision,
) -> Result<WatchStream> {
    let (key, end) = etcd_range(&range);
    let mut options = WatchOptions::new()
        .with_prev_key()
        .with_progress_notify()
        .with_start_revision(start_revision.max(0));
    if let Some(end) = end {
        options = options.with_range(end);
    }
    let timeout = store.options.request_timeout;
    let mut client = store.watch.clone();
    let timed_out = || Error::Backend(format!("etcd watch timed out after {timeout:?}"));
    let stream = tokio::time::timeout(timeout, client.watch(key, Some(options)))
        .await
        .map_err(|_| timed_out())?
        .map_err(super::backend)?;
    let (mut requests, mut responses) = stream.split();
    let created = tokio::time::timeout(timeout, responses.message())
        .await
        .map_err(|_| timed_out())?
        .map_err(super::backend)?
        .ok_or_else(|| Error::Backend("etcd closed the watch before confirming it".into()))?;
    if created.canceled() || created.compact_revision() > 0 {
        return Err(cancelled(&created, start_revision));
    }
    let watch_id = created.watch_id();
    let progress_every = store.options.progress_request_interval;
    let (tx, rx) = mpsc::channel::<Result<WatchEvent>>(BUFFER);
    tokio::spawn(async move {
        let mut ticker = progress_every.map(|every| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        // The next revision this watch can report; progress never goes below what was sent.
        let mut next = start_revision;
        let mut last_sent: Revision = 0;
        loop {
            let tick = async {
                match ticker.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let resp = tokio::select! {
                _ = tx.closed() => {
                    let _ = requests.cancel(watch_id).await;
                    return;
                }
                _ = tick => {
                    if let Err(e) = requests.request_progress().await {
                        let _ = tx.send(Err(Error::Backend(format!("etcd watch broken: {e}")))).await;
                        return;
                    }
                    continue;
                }
                resp = responses.message() => resp,
            };
            let resp = match resp {
                Ok(Some(resp)) => resp,
                Ok(None) => {
                    let _ = tx
                        .send(Err(Error::Backend("etcd ended the watch stream".into())))
                        .await;
                    return;
                }
                Err(e) => {
                    let _ = tx
                        .send(Err(Error::Backend(format!("etcd watch broken: {e}"))))
                        .await;
                    return;
                }
            };
            if resp.canceled() || resp.compact_revision() > 0 {
                let _ = tx.send(Err(cancelled(&resp, next))).await;
                return;
            }
            if resp.events().is_empty() {
                if resp.created() {
                    continue;
                }
                // A progress notification: nothing in range changed up to the header revision.
                let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                if revision > last_sent {
                    last_sent = revision;
                    if tx
                        .send(Ok(WatchEvent::Progress { revision }))
                        .await
                        .is_err()
                    {
                        let _ = requests.cancel(watch_id).await;
                        return;
                    }
                }
                continue;
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let item = match event.event_type() {
                    EventType::Put => Ok(WatchEvent::Put {
                        kv: convert(kv),
                        prev: event.prev_kv().map(convert),
                    }),
                    EventType::Delete => match event.prev_kv() {
                        Some(prev) => Ok(WatchEvent::Delete {
                            prev: convert(prev),
                            revision: kv.mod_revision(),
                        }),
                        None => Err(Error::Backend(format!(
                            "etcd sent the delete of {} at {} without its last value",
                            String::from_utf8_lossy(kv.key()),
                            kv.mod_revision()
                        ))),
                    },
                };
                let failed = item.is_err();
                last_sent = last_sent.max(kv.mod_revision());
                next = kv.mod_revision() + 1;
                if tx.send(item).await.is_err() || failed {
                    let _ = requests.cancel(watch_id).await;
                    return;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(stream.boxed())
}

/// The error ending a watch that etcd cancelled.
fn cancelled(resp: &WatchResponse, requested: Revision) -> Error {
    if resp.compact_revision() > 0 {
        Error::Compacted {
            requested,
            compacted: resp.compact_revision(),
        }
    } else {
        Error::Backend(format!(
            "etcd cancelled the watch: {}",
            match resp.cancel_reason() {
                "" => "no reason given",
                reason => reason,
            }
        ))
    }
}
