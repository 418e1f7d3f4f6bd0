//! WATCH: newline-delimited JSON events over a chunked response, from the store's watch.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kox_store::{KeyRange, WatchEvent, prefix_end};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::list::{Filter, ListQuery, list_prefix};
use crate::registry::{Registry, decode};
use crate::render::Render;
use crate::resources::ResourceDef;
use crate::watch_cache::{CachedEvent, Delivery, EventType, Start, Subscription};

/// How long a watch without `timeoutSeconds` stays open (upstream: 30–60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

fn event_line(kind: &str, object: Value) -> Bytes {
    crate::watch_cache::event_line(kind, &object)
}

fn expired_line(e: &ApiError) -> Bytes {
    event_line("ERROR", e.to_status())
}

impl Registry {
    /// Opens a watch; the stream yields one JSON line per event and ends at the timeout.
    pub async fn watch(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        q: &ListQuery,
        render: Render,
    ) -> ApiResult<futures::stream::BoxStream<'static, Bytes>> {
        let filter = Filter::new(def, q)?;
        let prefix = list_prefix(def, namespace);
        let range = KeyRange::between(prefix.as_bytes().to_vec(), prefix_end(prefix.as_bytes()));
        let requested = crate::meta::requested_resource_version(q.resource_version.as_deref())?;
        let send_initial = q.send_initial_events.unwrap_or(requested.is_none());
        let timeout = q
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_WATCH_TIMEOUT);
        let start = if send_initial {
            Start::Now
        } else {
            Start::After(requested.unwrap_or_default())
        };
        let cache = self.caches.get(def);
        if let Some(sub) = cache.subscribe(prefix.as_bytes(), start).await {
            if q.allow_watch_bookmarks {
                schedule_bookmarks(std::sync::Arc::downgrade(&cache), sub.id, timeout);
            }
            return Ok(cached_stream(def, filter, sub, q, render)
                .take_until(tokio::time::sleep(timeout))
                .boxed());
        }
        // Initial state as synthetic ADDED events, then changes from the snapshot on.
        let (initial, start) = match requested {
            Some(rv) if !send_initial => (Vec::new(), rv + 1),
            _ => {
                let mut lq = ListQuery {
                    resource_version: None,
                    continue_token: None,
                    limit: None,
                    ..q.clone()
                };
                if let Some(rv) = requested {
                    lq.resource_version = Some(rv.to_string());
                }
                let listed = self.list(def, namespace, &lq).await?;
                let next = listed.resource_version + 1;
                (listed.into_owned(), next)
            }
        };
        let timeout = q
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_WATCH_TIMEOUT);
        let bookmarks = q.allow_watch_bookmarks;
        // Encoded as the client reads, as above.
        let mut head = futures::stream::iter(initial)
            .map(move |o| event_line("ADDED", render.event_object(def, o)))
            .boxed();
        if send_initial && bookmarks && q.send_initial_events == Some(true) {
            // The end of the initial events, as upstream marks it for streaming lists.
            let mut bm = bookmark(def, start - 1);
            bm["metadata"]["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
            head = head
                .chain(futures::stream::iter([event_line("BOOKMARK", bm)]))
                .boxed();
        }
        let body = match self.store.watch(range, start).await {
            Ok(store_watch) => {
                let events = store_watch
                    .scan((), move |_, item| {
                        let out = match item {
                            Ok(ev) => Some(translate(def, &filter, ev, bookmarks, render)),
                            Err(kox_store::Error::Compacted {
                                requested,
                                compacted,
                            }) => {
                                let e = ApiError::gone(format!(
                                    "too old resource version: {requested} ({compacted})"
                                ));
                                return futures::future::ready(Some(vec![expired_line(&e)]));
                            }
                            // A lagging watcher is ended; the client lists again.
                            Err(_) => None,
                        };
                        futures::future::ready(out)
                    })
                    .flat_map(futures::stream::iter);
                events.boxed()
            }
            Err(kox_store::Error::Compacted {
                requested,
                compacted,
            }) => {
                let e = ApiError::gone(format!(
                    "too old resource version: {} ({compacted})",
                    requested - 1
                ));
                futures::stream::iter(vec![expired_line(&e)]).boxed()
            }
            Err(e) => return Err(e.into()),
        };
        let deadline = tokio::time::sleep(timeout);
        Ok(head.chain(body).take_until(deadline).boxed())
    }
}

fn bookmark(def: &ResourceDef, rv: i64) -> Value {
    json!({ "kind": def.kind, "apiVersion": def.api_version(), "metadata": { "resourceVersion": rv.to_string() } })
}

/// One store event as zero or one watch lines, applying the selectors as upstream does: an
/// object that stops matching is reported DELETED, one that starts matching ADDED.
fn translate(
    def: &ResourceDef,
    filter: &Filter,
    ev: WatchEvent,
    bookmarks: bool,
    render: Render,
) -> Vec<Bytes> {
    let parse = |kv: &kox_store::KeyValue| decode(kv).ok();
    match ev {
        WatchEvent::Progress { revision } => {
            if bookmarks {
                vec![event_line("BOOKMARK", bookmark(def, revision))]
            } else {
                Vec::new()
            }
        }
        WatchEvent::Put { kv, prev } => {
            let Some(new) = parse(&kv) else {
                return Vec::new();
            };
            let old_matched = prev
                .as_ref()
                .and_then(parse)
                .is_some_and(|o| filter.matches(&o));
            let new_matches = filter.matches(&new);
            let kind = match (prev.is_some() && old_matched, new_matches) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => {
                    // It stopped matching: report its last matching state at this revision.
                    let Some(mut last) = prev.as_ref().and_then(parse) else {
                        return Vec::new();
                    };
                    crate::meta::set_resource_version(&mut last, kv.mod_revision);
                    return vec![event_line("DELETED", render.event_object(def, last))];
                }
                (false, false) => return Vec::new(),
            };
            vec![event_line(kind, render.event_object(def, new))]
        }
        WatchEvent::Delete { prev, revision } => {
            let Some(mut old) = parse(&prev) else {
                return Vec::new();
            };
            if !filter.matches(&old) {
                return Vec::new();
            }
            crate::meta::set_resource_version(&mut old, revision);
            vec![event_line("DELETED", render.event_object(def, old))]
        }
    }
}

/// Bookmarks as upstream's cacher times them: 2 s before the watch's deadline, and every
/// minute before that, so a client can resume close to where it was.
fn schedule_bookmarks(
    cache: std::sync::Weak<crate::watch_cache::WatchCache>,
    id: u64,
    timeout: Duration,
) {
    const PERIOD: Duration = Duration::from_secs(60);
    let last = timeout.saturating_sub(Duration::from_secs(2));
    tokio::spawn(async move {
        let mut elapsed = Duration::ZERO;
        loop {
            let next = (elapsed + PERIOD).min(last);
            tokio::time::sleep(next - elapsed).await;
            elapsed = next;
            let Some(cache) = cache.upgrade() else { return };
            if !cache.send_bookmark(id) || elapsed >= last {
                return;
            }
        }
    });
}

/// A watch served from the resource's watch cache.
fn cached_stream(
    def: &'static ResourceDef,
    filter: Filter,
    sub: Subscription,
    q: &ListQuery,
    render: Render,
) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    let bookmarks = q.allow_watch_bookmarks;
    let initial_end = q.send_initial_events == Some(true) && bookmarks;
    let filter = std::sync::Arc::new(filter);
    // The initial state is encoded one event at a time as the client reads: a watcher that
    // does not read holds the shared objects, not a copy of the collection's encoding.
    let f = filter.clone();
    let initial = futures::stream::iter(sub.initial)
        .filter(move |o| futures::future::ready(f.matches(o)))
        .map(move |o| render_line(def, render, "ADDED", &o));
    let initial_end = initial_end.then(|| {
        let mut bm = bookmark(def, sub.revision);
        bm["metadata"]["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        event_line("BOOKMARK", bm)
    });
    let f = filter.clone();
    let replay = futures::stream::iter(sub.replay)
        .filter_map(move |e| futures::future::ready(translate_cached(def, &f, &e, render)));
    let live = tokio_stream::wrappers::ReceiverStream::new(sub.rx).filter_map(move |d| {
        let out = match d {
            Delivery::Event(e) => translate_cached(def, &filter, &e, render),
            Delivery::Bookmark(rv) if bookmarks => Some(event_line("BOOKMARK", bookmark(def, rv))),
            Delivery::Bookmark(_) => None,
        };
        futures::future::ready(out)
    });
    initial
        .chain(futures::stream::iter(initial_end))
        .chain(replay)
        .chain(live)
}

fn render_line(def: &ResourceDef, render: Render, kind: &str, obj: &Value) -> Bytes {
    match render {
        Render::Object => crate::watch_cache::event_line(kind, obj),
        _ => event_line(kind, render.event_object(def, obj.clone())),
    }
}

/// A cached event as this watcher sees it, applying its selectors as upstream does.
fn translate_cached(
    def: &ResourceDef,
    filter: &Filter,
    e: &CachedEvent,
    render: Render,
) -> Option<Bytes> {
    let ty = if e.deleted {
        if !filter.matches(&e.object) {
            return None;
        }
        EventType::Deleted
    } else {
        let old_matched = e.prev.as_ref().is_some_and(|p| filter.matches(p));
        match (old_matched, filter.matches(&e.object)) {
            (true, true) => EventType::Modified,
            (false, true) => EventType::Added,
            (true, false) => EventType::Deleted,
            (false, false) => return None,
        }
    };
    if let (EventType::Deleted, false, Some(prev)) = (ty, e.deleted, e.prev.as_ref()) {
        // It stopped matching: upstream reports the last matching state at this revision.
        let mut last = (**prev).clone();
        crate::meta::set_resource_version(&mut last, e.revision);
        return Some(render_line(def, render, ty.name(), &last));
    }
    Some(match render {
        Render::Object => e.line(ty),
        _ => render_line(def, render, ty.name(), &e.object),
    })
}
