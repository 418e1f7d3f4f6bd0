//! The watch cache: one store watch per resource feeds every watcher of that resource and
//! serves `resourceVersion=0` lists, as upstream's cacher does.
//!
//! A cache holds the resource's current objects and a window of recent events. A watcher
//! subscribes atomically with a snapshot (initial ADDED events) or with the buffered events after
//! its resourceVersion, then receives live events through a bounded channel. A watcher whose
//! channel is full is dropped — its stream ends and the client lists again — so one slow client
//! never stalls the others or grows memory. Each event's JSON line is built once and shared.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use kox_store::{KeyRange, RangeRequest, Store, WatchEvent, prefix_end};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::registry::decode;
use crate::resources::ResourceDef;

/// Events kept for watchers resuming from a recent resourceVersion.
const WINDOW: usize = 10_000;
/// Events a watcher may have queued before it is dropped as too slow.
const WATCHER_BUFFER: usize = 1024;

/// One change, shared by every watcher; the rendered lines are built on first use.
pub struct CachedEvent {
    pub key: Vec<u8>,
    pub revision: i64,
    /// The object after the change (for a delete: the last state, stamped with the revision).
    pub object: Arc<Value>,
    /// The object before the change, if it existed.
    pub prev: Option<Arc<Value>>,
    pub deleted: bool,
    lines: [OnceLock<Bytes>; 3],
}

/// The watch-event types a cached event can be rendered as.
#[derive(Debug, Clone, Copy)]
pub enum EventType {
    Added = 0,
    Modified = 1,
    Deleted = 2,
}

impl EventType {
    pub fn name(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A JSON watch line `{"type":…,"object":…}\n`, encoded straight from `object` (building a
/// `json!` value would copy the whole object first).
pub fn event_line(kind: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    let mut line = serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

impl CachedEvent {
    /// The plain-JSON line for this event as `ty`, built once for all watchers.
    pub fn line(&self, ty: EventType) -> Bytes {
        self.lines[ty as usize]
            .get_or_init(|| event_line(ty.name(), &self.object))
            .clone()
    }
}

/// What a watcher receives.
pub enum Delivery {
    Event(Arc<CachedEvent>),
    Bookmark(i64),
}

struct Watcher {
    prefix: Vec<u8>,
    tx: mpsc::Sender<Delivery>,
}

#[derive(Default)]
struct State {
    /// Whether the cache has listed and is following the store.
    synced: bool,
    revision: i64,
    /// Bumped by every change of the objects (not by progress notifications).
    generation: u64,
    /// Every change after this revision is in `events` (the cache's history window).
    window_start: i64,
    objects: BTreeMap<Vec<u8>, Arc<Value>>,
    events: VecDeque<Arc<CachedEvent>>,
    watchers: HashMap<u64, Watcher>,
    next_id: u64,
}

/// The cache of one resource.
pub struct WatchCache {
    def: &'static ResourceDef,
    state: Mutex<State>,
    synced: tokio::sync::Notify,
}

/// A subscription: what to send first, then the live channel.
pub struct Subscription {
    /// Initial objects (for a watch without resourceVersion), at `revision`.
    pub initial: Vec<Arc<Value>>,
    /// Buffered events after the requested resourceVersion.
    pub replay: Vec<Arc<CachedEvent>>,
    pub revision: i64,
    pub rx: mpsc::Receiver<Delivery>,
    /// This watcher's id, for [`WatchCache::send_bookmark`].
    pub id: u64,
}

/// Where a subscription starts.
pub enum Start {
    /// Current state as ADDED events, then changes.
    Now,
    /// Exactly the changes after this resourceVersion.
    After(i64),
}

impl WatchCache {
    /// Subscribes to changes under `prefix`. `None` when `After(rv)` is outside the cache's
    /// window (the caller falls back to a store watch, which answers 410 for compacted history).
    pub async fn subscribe(&self, prefix: &[u8], start: Start) -> Option<Subscription> {
        self.wait_synced().await;
        let mut st = self.state.lock();
        let (initial, replay) = match start {
            Start::Now => {
                let initial = st
                    .objects
                    .range(prefix.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, v)| v.clone())
                    .collect();
                (initial, Vec::new())
            }
            Start::After(rv) => {
                if rv > st.revision {
                    return None;
                }
                if rv < st.window_start {
                    return None;
                }
                let replay = st
                    .events
                    .iter()
                    .filter(|e| e.revision > rv && e.key.starts_with(prefix))
                    .cloned()
                    .collect();
                (Vec::new(), replay)
            }
        };
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        let id = st.next_id;
        st.next_id += 1;
        st.watchers.insert(
            id,
            Watcher {
                prefix: prefix.to_vec(),
                tx,
            },
        );
        Some(Subscription {
            initial,
            replay,
            revision: st.revision,
            rx,
            id,
        })
    }

    /// Queues a bookmark at the cache's current revision behind the events already sent to
    /// watcher `id`; false once that watcher is gone.
    pub fn send_bookmark(&self, id: u64) -> bool {
        let st = self.state.lock();
        match st.watchers.get(&id) {
            Some(w) => {
                let _ = w.tx.try_send(Delivery::Bookmark(st.revision));
                true
            }
            None => false,
        }
    }

    /// A counter that moves whenever the cached objects change (and only then), so data
    /// derived from them (compiled RBAC) knows when to rebuild.
    pub async fn generation(&self) -> u64 {
        self.wait_synced().await;
        self.state.lock().generation
    }

    /// The object stored under exactly `key`, as the cache last saw it.
    pub async fn get(&self, key: &[u8]) -> Option<Arc<Value>> {
        self.wait_synced().await;
        self.state.lock().objects.get(key).cloned()
    }

    /// Like [`WatchCache::get`] without waiting: `None` while the cache is not following the
    /// store (starting, or relisting after its watch broke), so the caller asks the store.
    pub fn try_get(&self, key: &[u8]) -> Option<Option<Arc<Value>>> {
        let st = self.state.lock();
        st.synced.then(|| st.objects.get(key).cloned())
    }

    /// The objects under `prefix` without waiting; `None` while the cache is not synced.
    pub fn try_snapshot(&self, prefix: &[u8]) -> Option<Vec<Arc<Value>>> {
        let st = self.state.lock();
        st.synced.then(|| {
            st.objects
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect()
        })
    }

    /// The objects under `prefix` and the cache's revision (a `resourceVersion=0` list).
    pub async fn snapshot(&self, prefix: &[u8]) -> (Vec<Arc<Value>>, i64) {
        self.wait_synced().await;
        let st = self.state.lock();
        let items = st
            .objects
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, st.revision)
    }

    async fn wait_synced(&self) {
        loop {
            let notified = self.synced.notified();
            if self.state.lock().synced {
                return;
            }
            notified.await;
        }
    }

    /// Lists the resource, then follows the store's watch; on any break, starts over (ending
    /// current watchers, who resume or relist).
    async fn run(self: Arc<Self>, store: Arc<dyn Store>) {
        let prefix = self.def.key_prefix().into_bytes();
        let range = KeyRange::between(prefix.clone(), prefix_end(&prefix));
        loop {
            let listed = match store.range(RangeRequest::new(range.clone())).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(resource = self.def.plural, error = %e, "watch cache list failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            {
                let mut st = self.state.lock();
                st.objects = listed
                    .kvs
                    .iter()
                    .filter_map(|kv| decode(kv).ok().map(|v| (kv.key.clone(), Arc::new(v))))
                    .collect();
                st.revision = listed.revision;
                st.generation += 1;
                st.window_start = listed.revision;
                st.events.clear();
                st.watchers.clear();
                st.synced = true;
            }
            self.synced.notify_waiters();
            let mut watch = match store.watch(range.clone(), listed.revision + 1).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(resource = self.def.plural, error = %e, "watch cache watch failed; relisting");
                    continue;
                }
            };
            use futures::StreamExt;
            while let Some(item) = watch.next().await {
                match item {
                    Ok(ev) => self.apply(ev),
                    Err(e) => {
                        tracing::info!(resource = self.def.plural, error = %e, "watch cache restarting");
                        break;
                    }
                }
            }
            self.state.lock().synced = false;
        }
    }

    fn apply(&self, ev: WatchEvent) {
        let mut st = self.state.lock();
        let cached = match ev {
            WatchEvent::Progress { revision } => {
                st.revision = st.revision.max(revision);
                st.watchers.retain(|_, w| {
                    !matches!(
                        w.tx.try_send(Delivery::Bookmark(revision)),
                        Err(mpsc::error::TrySendError::Closed(_))
                    )
                });
                return;
            }
            WatchEvent::Put { kv, .. } => {
                let Ok(obj) = decode(&kv) else { return };
                let obj = Arc::new(obj);
                let prev = st.objects.insert(kv.key.clone(), obj.clone());
                CachedEvent {
                    key: kv.key,
                    revision: kv.mod_revision,
                    object: obj,
                    prev,
                    deleted: false,
                    lines: Default::default(),
                }
            }
            WatchEvent::Delete { prev, revision } => {
                let old = st.objects.remove(&prev.key);
                let Ok(mut obj) = decode(&prev) else { return };
                crate::meta::set_resource_version(&mut obj, revision);
                CachedEvent {
                    key: prev.key,
                    revision,
                    object: Arc::new(obj),
                    prev: old,
                    deleted: true,
                    lines: Default::default(),
                }
            }
        };
        let cached = Arc::new(cached);
        st.revision = cached.revision;
        st.generation += 1;
        if st.events.len() == WINDOW
            && let Some(evicted) = st.events.pop_front()
        {
            st.window_start = evicted.revision;
        }
        st.events.push_back(cached.clone());
        // A full buffer means the watcher is too slow: drop it (its stream ends).
        st.watchers.retain(|_, w| {
            !cached.key.starts_with(&w.prefix)
                || w.tx.try_send(Delivery::Event(cached.clone())).is_ok()
        });
    }
}

/// All caches, created on first use.
pub struct WatchCaches {
    store: Arc<dyn Store>,
    caches: Mutex<HashMap<String, Arc<WatchCache>>>,
}

impl WatchCaches {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// The cache of `def`, started (listing, then watching the store) on first use.
    pub fn get(&self, def: &'static ResourceDef) -> Arc<WatchCache> {
        let key = def.key_prefix();
        let mut caches = self.caches.lock();
        if let Some(c) = caches.get(&key) {
            return c.clone();
        }
        let cache = Arc::new(WatchCache {
            def,
            state: Mutex::new(State::default()),
            synced: tokio::sync::Notify::new(),
        });
        caches.insert(key, cache.clone());
        tokio::spawn(cache.clone().run(self.store.clone()));
        cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kox_store::Condition;
    use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
    use serde_json::json;

    fn configmaps() -> &'static ResourceDef {
        crate::resources::find("", "v1", "configmaps").expect("configmaps are served")
    }

    async fn put(store: &Arc<dyn Store>, name: &str, value: &str) -> i64 {
        let key = configmaps().key(Some("default"), name).into_bytes();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"v": value}});
        match store
            .put(
                key,
                serde_json::to_vec(&obj).expect("json"),
                Condition::None,
            )
            .await
            .expect("put")
        {
            kox_store::WriteOutcome::Committed { revision, .. } => revision,
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn next_event(sub: &mut Subscription) -> Arc<CachedEvent> {
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), sub.rx.recv())
                .await
                .expect("event in time")
            {
                Some(Delivery::Event(e)) => return e,
                Some(Delivery::Bookmark(_)) => continue,
                None => panic!("watch ended"),
            }
        }
    }

    async fn setup() -> (tempfile::TempDir, Arc<dyn Store>, WatchCaches) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("open store"),
        );
        let caches = WatchCaches::new(store.clone());
        (dir, store, caches)
    }

    #[tokio::test]
    async fn watch_from_now_sends_current_objects_then_live_changes() {
        let (_dir, store, caches) = setup().await;
        put(&store, "a", "1").await;
        let cache = caches.get(configmaps());
        let mut sub = cache
            .subscribe(b"/registry/configmaps/default/", Start::Now)
            .await
            .expect("subscribed");
        assert_eq!(sub.initial.len(), 1);
        let rev = put(&store, "b", "2").await;
        let e = next_event(&mut sub).await;
        assert_eq!(e.revision, rev);
        assert!(e.prev.is_none() && !e.deleted);
        assert_eq!(e.object["data"]["v"], "2");
    }

    #[tokio::test]
    async fn watch_after_a_resource_version_replays_exactly_the_later_changes() {
        let (_dir, store, caches) = setup().await;
        let cache = caches.get(configmaps());
        cache.snapshot(b"/registry/configmaps/").await;
        let first = put(&store, "a", "1").await;
        let second = put(&store, "a", "2").await;
        let third = put(&store, "b", "3").await;
        // Wait until the cache has seen the last write.
        let mut probe = cache
            .subscribe(b"/registry/", Start::After(first))
            .await
            .expect("in window");
        while probe.replay.last().map(|e| e.revision) != Some(third) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            probe = cache
                .subscribe(b"/registry/", Start::After(first))
                .await
                .expect("in window");
        }
        let revs: Vec<i64> = probe.replay.iter().map(|e| e.revision).collect();
        assert_eq!(revs, [second, third]);
        assert_eq!(
            probe.replay[0].prev.as_ref().expect("prev")["data"]["v"],
            "1"
        );
        assert!(
            cache
                .subscribe(b"/registry/", Start::After(third + 100))
                .await
                .is_none(),
            "future revisions are not served from the cache"
        );
    }

    #[tokio::test]
    async fn a_watcher_that_does_not_read_is_dropped_without_stalling_others() {
        let (_dir, store, caches) = setup().await;
        let cache = caches.get(configmaps());
        let mut slow = cache
            .subscribe(b"/registry/configmaps/", Start::Now)
            .await
            .expect("slow");
        let mut fast = cache
            .subscribe(b"/registry/configmaps/", Start::Now)
            .await
            .expect("fast");
        let total = WATCHER_BUFFER + 50;
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while n < total {
                next_event(&mut fast).await;
                n += 1;
            }
            n
        });
        for i in 0..total {
            put(&store, &format!("cm{}", i % 7), &i.to_string()).await;
        }
        assert_eq!(
            reader.await.expect("reader"),
            total,
            "the reading watcher got every event"
        );
        // The slow one got at most its buffer, then its stream ended.
        let mut got = 0;
        while let Ok(Some(d)) =
            tokio::time::timeout(std::time::Duration::from_secs(5), slow.rx.recv()).await
        {
            if matches!(d, Delivery::Event(_)) {
                got += 1;
            }
        }
        assert!(got <= WATCHER_BUFFER, "slow watcher received {got}");
        assert!(slow.rx.recv().await.is_none(), "slow watcher was ended");
    }
}
