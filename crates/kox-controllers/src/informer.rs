//! Shared informers: one list+watch per resource for every controller of the process, a cache
//! of the objects it saw, and event handlers that are called on each change.
//!
//! An [`InformerFactory`] hands out one [`Informer`] per resource type (typed objects, or the
//! metadata of any resource found through discovery); the first request starts its watch. A
//! handler registered after the initial list is replayed the cached objects as `Added`, so
//! controllers may start in any order. Handlers run on the watch's task while the cache is
//! locked for writing: they must only enqueue keys (upstream's rule), never call the API.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The cache key of an object: `namespace/name`, or `name` for cluster-scoped objects
/// (upstream's `MetaNamespaceKeyFunc`).
pub fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or("");
    match meta.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Splits a key from [`key_of`] into namespace (if any) and name.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

/// One change an informer observed.
#[derive(Debug)]
pub enum Change<'a, K> {
    /// A new object (also every cached object when a handler registers late).
    Added(&'a Arc<K>),
    /// An object changed; `old` is the cached state before.
    Updated {
        /// The previous state.
        old: &'a Arc<K>,
        /// The new state.
        new: &'a Arc<K>,
    },
    /// An object was deleted (the last state seen).
    Deleted(&'a Arc<K>),
}

impl<'a, K> Change<'a, K> {
    /// The object as it is now (the last state seen for a deletion).
    pub fn object(&self) -> &'a Arc<K> {
        match self {
            Change::Added(o) | Change::Deleted(o) => o,
            Change::Updated { new, .. } => new,
        }
    }

    /// The previous state of an update.
    pub fn old(&self) -> Option<&'a Arc<K>> {
        match self {
            Change::Updated { old, .. } => Some(old),
            _ => None,
        }
    }
}

type Handler<K> = Arc<dyn Fn(&Change<'_, K>) + Send + Sync>;

struct Inner<K> {
    objects: RwLock<BTreeMap<String, Arc<K>>>,
    /// Held while the watch applies a change and calls the handlers, so a handler that
    /// registers late is replayed a consistent cache.
    handlers: Mutex<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
}

/// A shared cache of one resource, fed by one watch. Cloning is cheap; every clone reads the
/// same cache.
pub struct Informer<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Resource + Clone + Send + Sync + 'static> Debug for Informer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("objects", &self.len())
            .field("synced", &self.has_synced())
            .finish()
    }
}

impl<K: Resource + Clone + Send + Sync + 'static> Informer<K> {
    /// An informer not yet fed by anything (see [`Informer::run`]); also handy in unit tests
    /// with [`Informer::apply`] and [`Informer::delete`].
    pub fn new() -> Self {
        Informer {
            inner: Arc::new(Inner {
                objects: RwLock::new(BTreeMap::new()),
                handlers: Mutex::new(Vec::new()),
                synced: watch::channel(false).0,
            }),
        }
    }

    /// The cached object with this key (see [`key_of`]).
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.read().get(key).cloned()
    }

    /// The cached object `namespace/name` (or `name` when `namespace` is `None`).
    pub fn get_in(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        match namespace.filter(|n| !n.is_empty()) {
            Some(ns) => self.get(&format!("{ns}/{name}")),
            None => self.get(name),
        }
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().values().cloned().collect()
    }

    /// The cached objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let lo = format!("{namespace}/");
        // '0' follows '/': the range holds exactly the keys starting with "<namespace>/".
        let hi = format!("{namespace}0");
        self.read().range(lo..hi).map(|(_, v)| v.clone()).collect()
    }

    /// The number of cached objects.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the initial list has been received.
    pub fn has_synced(&self) -> bool {
        *self.inner.synced.borrow()
    }

    /// Waits until the initial list has been received.
    pub async fn synced(&self) {
        let mut rx = self.inner.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Registers a handler. If the cache is already filled, the handler is first called with
    /// `Added` for every cached object.
    pub fn add_handler(&self, handler: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        let handler: Handler<K> = Arc::new(handler);
        let mut handlers = self.lock_handlers();
        for obj in self.read().values() {
            handler(&Change::Added(obj));
        }
        handlers.push(handler);
    }

    /// Records an object as created or updated and tells the handlers.
    pub fn apply(&self, obj: K) {
        let key = key_of(&obj);
        let obj = Arc::new(obj);
        let handlers = self.lock_handlers();
        let old = self.write().insert(key, obj.clone());
        let change = match &old {
            Some(old) => Change::Updated { old, new: &obj },
            None => Change::Added(&obj),
        };
        for h in handlers.iter() {
            h(&change);
        }
    }

    /// Records an object as deleted and tells the handlers.
    pub fn delete(&self, obj: K) {
        let key = key_of(&obj);
        let handlers = self.lock_handlers();
        let last = self.write().remove(&key).unwrap_or_else(|| Arc::new(obj));
        for h in handlers.iter() {
            h(&Change::Deleted(&last));
        }
    }

    /// Replaces the cache with a full list (after a (re)list), telling the handlers what was
    /// added, changed or deleted meanwhile; marks the informer synced.
    pub fn replace(&self, objects: Vec<K>) {
        let handlers = self.lock_handlers();
        let mut new: BTreeMap<String, Arc<K>> = objects
            .into_iter()
            .map(|o| (key_of(&o), Arc::new(o)))
            .collect();
        let mut cache = self.write();
        let old = &*cache;
        // (before, after) of each key that changed.
        type Pair<K> = (Option<Arc<K>>, Option<Arc<K>>);
        let mut changes: Vec<Pair<K>> = Vec::new();
        for (key, obj) in &new {
            match old.get(key) {
                None => changes.push((None, Some(obj.clone()))),
                Some(prev)
                    if prev.meta().resource_version != obj.meta().resource_version
                        || prev.meta().uid != obj.meta().uid =>
                {
                    changes.push((Some(prev.clone()), Some(obj.clone())))
                }
                Some(_) => {}
            }
        }
        for (key, prev) in old {
            if !new.contains_key(key) {
                changes.push((Some(prev.clone()), None));
            }
        }
        std::mem::swap(&mut *cache, &mut new);
        drop(cache);
        for (old, new) in &changes {
            let change = match (old, new) {
                (None, Some(n)) => Change::Added(n),
                (Some(o), Some(n)) => Change::Updated { old: o, new: n },
                (Some(o), None) => Change::Deleted(o),
                (None, None) => continue,
            };
            for h in handlers.iter() {
                h(&change);
            }
        }
        drop(handlers);
        self.inner.synced.send_replace(true);
    }

    /// Feeds the informer from a watcher stream until `stop`.
    pub async fn run<S>(self, stream: S, what: String, stop: CancellationToken)
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    {
        let mut stream = std::pin::pin!(stream);
        let mut relist: Option<Vec<K>> = None;
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => return,
                e = stream.next() => e,
            };
            match event {
                None => return,
                Some(Err(e)) => tracing::warn!("watch of {what}: {e}"),
                Some(Ok(watcher::Event::Init)) => relist = Some(Vec::new()),
                Some(Ok(watcher::Event::InitApply(obj))) => match relist.as_mut() {
                    Some(buf) => buf.push(obj),
                    None => self.apply(obj),
                },
                Some(Ok(watcher::Event::InitDone)) => {
                    self.replace(relist.take().unwrap_or_default())
                }
                Some(Ok(watcher::Event::Apply(obj))) => self.apply(obj),
                Some(Ok(watcher::Event::Delete(obj))) => self.delete(obj),
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<K>>> {
        self.inner.objects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<K>>> {
        self.inner
            .objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lock_handlers(&self) -> std::sync::MutexGuard<'_, Vec<Handler<K>>> {
        self.inner
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Resource + Clone + Send + Sync + 'static> Default for Informer<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// The metadata of an object of any resource (what the garbage collector and the namespace
/// controller need of resources they do not know).
pub type MetadataObject = PartialObjectMeta<DynamicObject>;

/// Hands out one shared [`Informer`] per resource, starting its watch on first request; the
/// watches stop with the factory's stop token. Cloning is cheap.
#[derive(Clone)]
pub struct InformerFactory {
    client: Client,
    stop: CancellationToken,
    informers: Arc<Mutex<HashMap<String, Box<dyn Any + Send + Sync>>>>,
}

impl Debug for InformerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .informers
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("InformerFactory")
            .field("informers", &keys)
            .finish()
    }
}

impl InformerFactory {
    /// A factory whose watches use `client` and end with `stop`.
    pub fn new(client: Client, stop: CancellationToken) -> Self {
        InformerFactory {
            client,
            stop,
            informers: Arc::default(),
        }
    }

    /// The shared informer of a typed resource (all namespaces), started if new.
    pub fn get<K>(&self) -> Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let key = format!(
            "typed:{}/{}/{}",
            <K as Resource>::group(&()),
            <K as Resource>::version(&()),
            <K as Resource>::plural(&())
        );
        self.get_or_start(key, |informer, what| {
            let api: Api<K> = Api::all(self.client.clone());
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            tokio::spawn(informer.run(stream, what, self.stop.clone()));
        })
    }

    /// The shared metadata-only informer of any resource (all namespaces), started if new.
    pub fn metadata(&self, resource: &ApiResource) -> Informer<MetadataObject> {
        let key = format!(
            "metadata:{}/{}/{}",
            resource.group, resource.version, resource.plural
        );
        self.get_or_start(key, |informer, what| {
            // An `Api` of `PartialObjectMeta` asks for metadata only.
            let api: Api<MetadataObject> = Api::all_with(self.client.clone(), resource);
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            tokio::spawn(informer.run(stream, what, self.stop.clone()));
        })
    }

    /// The metadata informer of a resource if one was started.
    pub fn existing_metadata(&self, resource: &ApiResource) -> Option<Informer<MetadataObject>> {
        let key = format!(
            "metadata:{}/{}/{}",
            resource.group, resource.version, resource.plural
        );
        let map = self.informers.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key)
            .and_then(|b| b.downcast_ref::<Informer<MetadataObject>>())
            .cloned()
    }

    fn get_or_start<K>(&self, key: String, start: impl FnOnce(Informer<K>, String)) -> Informer<K>
    where
        K: Resource + Clone + Send + Sync + 'static,
    {
        let mut map = self.informers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = map.get(&key).and_then(|b| b.downcast_ref::<Informer<K>>()) {
            return existing.clone();
        }
        let informer = Informer::<K>::new();
        map.insert(key.clone(), Box::new(informer.clone()));
        drop(map);
        start(informer.clone(), key);
        informer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(ns: &str, name: &str, rv: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn recording(inf: &Informer<ConfigMap>) -> Arc<Mutex<Vec<String>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        inf.add_handler(move |c| {
            let what = match c {
                Change::Added(_) => "add",
                Change::Updated { .. } => "update",
                Change::Deleted(_) => "delete",
            };
            s.lock()
                .unwrap()
                .push(format!("{what} {}", key_of(c.object().as_ref())));
        });
        seen
    }

    #[test]
    fn late_handler_is_replayed_the_cache() {
        let inf = Informer::new();
        inf.replace(vec![cm("a", "x", "1"), cm("b", "y", "2")]);
        let seen = recording(&inf);
        assert_eq!(*seen.lock().unwrap(), vec!["add a/x", "add b/y"]);
        assert!(inf.has_synced());
    }

    #[test]
    fn relist_reports_only_what_changed() {
        let inf = Informer::new();
        inf.replace(vec![
            cm("a", "x", "1"),
            cm("a", "y", "1"),
            cm("a", "z", "1"),
        ]);
        let seen = recording(&inf);
        seen.lock().unwrap().clear();
        inf.replace(vec![
            cm("a", "x", "1"),
            cm("a", "y", "2"),
            cm("a", "w", "3"),
        ]);
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec!["add a/w", "delete a/z", "update a/y"]);
    }

    #[test]
    fn namespace_listing_does_not_leak_neighbours() {
        let inf = Informer::new();
        for (ns, n) in [("a", "1"), ("ab", "2"), ("a", "3"), ("b", "4")] {
            inf.apply(cm(ns, n, "1"));
        }
        let names: Vec<String> = inf
            .list_namespace("a")
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, vec!["1", "3"]);
        assert!(inf.get_in(Some("ab"), "2").is_some());
        inf.delete(cm("ab", "2", "1"));
        assert!(inf.get("ab/2").is_none());
    }
}
