//! The garbage collector: deletes objects whose owners (`metadata.ownerReferences`) are gone,
//! and carries out the two deletion policies that need help:
//!
//! - **Orphan** (`orphan` finalizer on the owner): removes the owner's reference from each
//!   dependent, then the finalizer, so the dependents stay.
//! - **Foreground** (`foregroundDeletion` finalizer on the owner): deletes the dependents first
//!   and removes the finalizer once no dependent with `blockOwnerDeletion: true` remains.
//! - **Background** (the default): the owner goes at once; its dependents, now without an
//!   existing owner, are deleted here.
//!
//! Every resource discovery lists with list, watch and delete is watched through one shared
//! metadata informer; their handlers keep an index of owners to dependents and enqueue the
//! UIDs to look at. A dependent's owners are checked in that cache and, if absent there, with
//! a live GET (the owner may be newer than the cache), as upstream's `attemptToDeleteItem`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::discovery;
use crate::informer::{Informer, MetadataObject};
use crate::{Action, Change, Context, Controller, WorkQueue};

/// The finalizer asking for dependents to be orphaned.
pub const ORPHAN: &str = "orphan";
/// The finalizer asking for dependents to be deleted first.
pub const FOREGROUND: &str = "foregroundDeletion";

/// How often discovery is read again to watch new resources (upstream's 30 s).
const RESYNC_DISCOVERY: Duration = Duration::from_secs(30);

/// The garbage collector (`--controllers` name `garbagecollector`).
#[derive(Debug, Default)]
pub struct GarbageCollector;

/// What the index knows of one object.
#[derive(Clone, Debug)]
struct Node {
    resource: String,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    /// owner UID → dependent UIDs.
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    fn set(&mut self, uid: &str, node: Option<Node>) -> Vec<String> {
        let mut touched_owners = Vec::new();
        if let Some(old) = self.nodes.remove(uid) {
            for o in &old.owners {
                if let Some(d) = self.dependents.get_mut(&o.uid) {
                    d.remove(uid);
                    if d.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
                touched_owners.push(o.uid.clone());
            }
        }
        if let Some(node) = node {
            for o in &node.owners {
                self.dependents
                    .entry(o.uid.clone())
                    .or_default()
                    .insert(uid.to_string());
            }
            self.nodes.insert(uid.to_string(), node);
        }
        touched_owners
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// `(apiVersion, kind)`.
type KindKey = (String, String);

/// A watched resource: its API, whether it is namespaced, and its informer.
type Watched = (ApiResource, bool, Informer<MetadataObject>);

#[derive(Clone)]
struct Gc {
    client: Client,
    graph: Arc<Mutex<Graph>>,
    /// `group/version/plural` → the resource and its informer.
    watched: Arc<Mutex<HashMap<String, Watched>>>,
    /// Every resource discovery listed: `(apiVersion, kind)` → (resource, namespaced).
    kinds: Arc<Mutex<HashMap<KindKey, (ApiResource, bool)>>>,
    queue: WorkQueue,
    recorder: crate::events::Recorder,
}

fn resource_id(r: &ApiResource) -> String {
    format!("{}/{}/{}", r.group, r.version, r.plural)
}

fn has_finalizer(obj: &MetadataObject, f: &str) -> bool {
    obj.metadata.finalizers.iter().flatten().any(|x| x == f)
}

#[async_trait::async_trait]
impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbagecollector"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("generic-garbage-collector")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["garbage-collector-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let gc = Gc {
            client: ctx.client.clone(),
            graph: Arc::default(),
            watched: Arc::default(),
            kinds: Arc::default(),
            queue: ctx.queue("garbage_collector_attempt_to_delete"),
            recorder: ctx.recorder("garbage-collector-controller"),
        };
        // Watch everything deletable, then keep watching what discovery adds.
        loop {
            match gc.refresh_resources(&ctx).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!("garbage collector: discovery failed: {e}; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        }
        let informers: Vec<Informer<MetadataObject>> = gc
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|(_, _, i)| i.clone())
            .collect();
        for i in informers {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = i.synced() => {}
            }
        }
        tracing::debug!("garbage collector: caches synced");
        let refresher = {
            let gc = gc.clone();
            let ctx = ctx.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(RESYNC_DISCOVERY) => {}
                    }
                    if let Err(e) = gc.refresh_resources(&ctx).await {
                        tracing::debug!("garbage collector: discovery: {e}");
                    }
                }
            })
        };
        let worker = gc.clone();
        // Upstream's --concurrent-gc-syncs default.
        gc.queue
            .run_workers(20, stop, move |uid| {
                let gc = worker.clone();
                async move { gc.process(&uid).await }
            })
            .await;
        refresher.abort();
        Ok(())
    }
}

impl Gc {
    /// Reads discovery and starts an informer for each new deletable resource.
    async fn refresh_resources(&self, ctx: &Context) -> anyhow::Result<()> {
        let discovered = discovery::discover(&self.client).await?;
        {
            let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
            for r in &discovered.resources {
                kinds.insert(
                    (r.api.api_version.clone(), r.api.kind.clone()),
                    (r.api.clone(), r.namespaced),
                );
            }
        }
        for r in discovered.resources {
            if !(r.supports("list") && r.supports("watch") && r.supports("delete")) {
                continue;
            }
            // Upstream's GC ignores events.
            if r.api.plural == "events" && matches!(r.api.group.as_str(), "" | "events.k8s.io") {
                continue;
            }
            let id = resource_id(&r.api);
            if self
                .watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&id)
            {
                continue;
            }
            let informer = ctx.informers.metadata(&r.api);
            self.watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone(), (r.api.clone(), r.namespaced, informer.clone()));
            let graph = self.graph.clone();
            let queue = self.queue.clone();
            informer.add_handler(move |change| on_change(&graph, &queue, &id, change));
        }
        Ok(())
    }

    fn informer(&self, resource: &str) -> Option<Watched> {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(resource)
            .cloned()
    }

    /// The cached object and its resource for a UID.
    fn lookup(&self, uid: &str) -> Option<(Node, ApiResource, Arc<MetadataObject>)> {
        let node = self
            .graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .get(uid)
            .cloned()?;
        let (api, _, informer) = self.informer(&node.resource)?;
        let obj = informer.get_in(node.namespace.as_deref(), &node.name)?;
        Some((node, api, obj))
    }

    fn api(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    async fn process(&self, uid: &str) -> anyhow::Result<Action> {
        let Some((node, resource, obj)) = self.lookup(uid) else {
            return Ok(Action::await_change());
        };
        if obj.metadata.uid.as_deref() != Some(uid) {
            return Ok(Action::await_change());
        }
        if obj.metadata.deletion_timestamp.is_some() {
            if has_finalizer(&obj, ORPHAN) {
                return self.orphan_dependents(uid, &node, &resource, &obj).await;
            }
            if has_finalizer(&obj, FOREGROUND) {
                return self
                    .delete_dependents_first(uid, &node, &resource, &obj)
                    .await;
            }
            return Ok(Action::await_change());
        }
        if node.owners.is_empty() {
            return Ok(Action::await_change());
        }
        self.attempt_to_delete(uid, &node, &resource, &obj).await
    }

    /// Upstream's `attemptToDeleteItem`: classifies the owners as solid, dangling (gone) or
    /// waiting for their dependents' deletion, and acts.
    async fn attempt_to_delete(
        &self,
        uid: &str,
        node: &Node,
        resource: &ApiResource,
        obj: &MetadataObject,
    ) -> anyhow::Result<Action> {
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for owner in &node.owners {
            let (state, misplaced) = self.owner_state(owner, node.namespace.as_deref()).await?;
            if misplaced {
                // Upstream's reportInvalidNamespaceOwnerRef: the owner was seen, in another
                // namespace than its dependent's; as the reference reads, it does not exist.
                self.recorder.record(
                    ObjectReference {
                        api_version: Some(resource.api_version.clone()),
                        kind: Some(resource.kind.clone()),
                        namespace: node.namespace.clone(),
                        name: Some(node.name.clone()),
                        uid: Some(uid.to_string()),
                        ..ObjectReference::default()
                    },
                    "Warning",
                    "OwnerRefInvalidNamespace",
                    &invalid_namespace_message(owner, node.namespace.as_deref()),
                );
            }
            match state {
                OwnerState::Solid => solid.push(owner.clone()),
                OwnerState::Dangling => dangling.push(owner.clone()),
                OwnerState::WaitingForDependents => waiting.push(owner.clone()),
            }
        }
        let api = self.api(resource, node.namespace.as_deref());
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(Action::await_change());
            }
            // Some owners stay: only drop the references to the others.
            let gone: HashSet<&str> = dangling
                .iter()
                .chain(&waiting)
                .map(|o| o.uid.as_str())
                .collect();
            let keep: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|o| !gone.contains(o.uid.as_str()))
                .collect();
            let patch = json!({"metadata": {
                "ownerReferences": none_if_empty(&keep),
                "resourceVersion": obj.metadata.resource_version,
            }});
            patch_ignoring_gone(&api, &node.name, &patch).await?;
            return Ok(Action::await_change());
        }
        let has_dependents = !self
            .graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dependents_of(uid)
            .is_empty();
        let policy = if !waiting.is_empty() && has_dependents {
            // An owner waits for us and we have dependents of our own: go in the foreground
            // too, so the owner's wait covers the whole tree.
            "Foreground"
        } else if has_finalizer(obj, ORPHAN) {
            "Orphan"
        } else if has_finalizer(obj, FOREGROUND) {
            "Foreground"
        } else {
            "Background"
        };
        tracing::debug!(
            "garbage collector: deleting {}/{} {} ({policy}): its owners are gone",
            resource.api_version,
            resource.kind,
            node.name
        );
        let params = DeleteParams {
            propagation_policy: Some(match policy {
                "Foreground" => kube::api::PropagationPolicy::Foreground,
                "Orphan" => kube::api::PropagationPolicy::Orphan,
                _ => kube::api::PropagationPolicy::Background,
            }),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&node.name, &params).await {
            Ok(_) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                Ok(Action::await_change())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The owner's state, and whether it was seen in another namespace than its dependent's
    /// (a namespaced owner can only own objects of its own namespace: as referenced, it is
    /// looked up in the dependent's namespace, where it does not exist).
    async fn owner_state(
        &self,
        owner: &OwnerReference,
        dependent_namespace: Option<&str>,
    ) -> anyhow::Result<(OwnerState, bool)> {
        let cached = {
            let graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
            graph.nodes.get(&owner.uid).cloned()
        };
        let mut misplaced = false;
        if let Some(node) = cached
            && let Some((_, _, informer)) = self.informer(&node.resource)
            && let Some(obj) = informer.get_in(node.namespace.as_deref(), &node.name)
        {
            if node.namespace.is_none() || node.namespace.as_deref() == dependent_namespace {
                return Ok((state_of(&obj), false));
            }
            misplaced = true;
        }
        // Not cached: ask the API server (the owner may be newer than the cache).
        let found = self
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(owner.api_version.clone(), owner.kind.clone()))
            .cloned();
        let Some((resource, namespaced)) = found else {
            anyhow::bail!(
                "owner {} {} of kind {} is not a served resource",
                owner.api_version,
                owner.name,
                owner.kind
            );
        };
        let api = self.api(
            &resource,
            if namespaced {
                dependent_namespace
            } else {
                None
            },
        );
        if namespaced && dependent_namespace.is_none() {
            // A cluster-scoped dependent cannot be owned by a namespaced object.
            return Ok((OwnerState::Dangling, misplaced));
        }
        match api.get_metadata_opt(&owner.name).await? {
            Some(obj) if obj.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                Ok((state_of(&obj), misplaced))
            }
            _ => Ok((OwnerState::Dangling, misplaced)),
        }
    }

    /// The Orphan policy: drop our reference from every dependent, then our finalizer.
    async fn orphan_dependents(
        &self,
        uid: &str,
        node: &Node,
        resource: &ApiResource,
        obj: &MetadataObject,
    ) -> anyhow::Result<Action> {
        let dependents = self
            .graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dependents_of(uid);
        for dep in dependents {
            let Some((dnode, dres, dobj)) = self.lookup(&dep) else {
                continue;
            };
            let keep: Vec<&OwnerReference> = dnode.owners.iter().filter(|o| o.uid != uid).collect();
            let patch = json!({"metadata": {
                "ownerReferences": none_if_empty(&keep),
                "resourceVersion": dobj.metadata.resource_version,
            }});
            let api = self.api(&dres, dnode.namespace.as_deref());
            patch_ignoring_gone(&api, &dnode.name, &patch).await?;
        }
        self.remove_finalizer(node, resource, obj, ORPHAN).await?;
        Ok(Action::await_change())
    }

    /// The Foreground policy: delete the dependents; once none blocks (blockOwnerDeletion)
    /// any more, remove our finalizer.
    async fn delete_dependents_first(
        &self,
        uid: &str,
        node: &Node,
        resource: &ApiResource,
        obj: &MetadataObject,
    ) -> anyhow::Result<Action> {
        let dependents = self
            .graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dependents_of(uid);
        let mut blocking = 0;
        for dep in &dependents {
            let Some((dnode, _, dobj)) = self.lookup(dep) else {
                continue;
            };
            let blocks = dnode
                .owners
                .iter()
                .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
            if blocks {
                blocking += 1;
            }
            if dobj.metadata.deletion_timestamp.is_none() {
                // The dependent sees us waiting and deletes itself (in the foreground if it
                // has dependents of its own).
                self.queue.add(dep.clone());
            }
        }
        if blocking == 0 {
            self.remove_finalizer(node, resource, obj, FOREGROUND)
                .await?;
        }
        Ok(Action::await_change())
    }

    async fn remove_finalizer(
        &self,
        node: &Node,
        resource: &ApiResource,
        obj: &MetadataObject,
        finalizer: &str,
    ) -> anyhow::Result<()> {
        let keep: Vec<&String> = obj
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .collect();
        let patch = json!({"metadata": {
            "finalizers": none_if_empty(&keep),
            "resourceVersion": obj.metadata.resource_version,
        }});
        let api = self.api(resource, node.namespace.as_deref());
        patch_ignoring_gone(&api, &node.name, &patch).await
    }
}

/// A list for a merge patch; an empty one removes the field (as upstream's objects omit empty
/// lists).
fn none_if_empty<T: serde::Serialize>(items: &[T]) -> serde_json::Value {
    if items.is_empty() {
        serde_json::Value::Null
    } else {
        json!(items)
    }
}

async fn patch_ignoring_gone(
    api: &Api<DynamicObject>,
    name: &str,
    patch: &serde_json::Value,
) -> anyhow::Result<()> {
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, PartialEq)]
enum OwnerState {
    Solid,
    Dangling,
    WaitingForDependents,
}

/// The message of upstream's `OwnerRefInvalidNamespace` event: the reference as the
/// dependent's namespace reads it (upstream's objectReference formatting).
fn invalid_namespace_message(owner: &OwnerReference, namespace: Option<&str>) -> String {
    let ns = namespace.unwrap_or("");
    format!(
        "ownerRef [{}/{}, namespace: {ns}, name: {}, uid: {}] does not exist in namespace {ns:?}",
        owner.api_version, owner.kind, owner.name, owner.uid
    )
}

fn state_of(owner: &MetadataObject) -> OwnerState {
    if owner.metadata.deletion_timestamp.is_some() && has_finalizer(owner, FOREGROUND) {
        OwnerState::WaitingForDependents
    } else {
        OwnerState::Solid
    }
}

/// The informers' handler: keeps the index and enqueues what may need work.
fn on_change(
    graph: &Mutex<Graph>,
    queue: &WorkQueue,
    resource: &str,
    change: &Change<'_, MetadataObject>,
) {
    let obj = change.object();
    let Some(uid) = obj.metadata.uid.clone() else {
        return;
    };
    let mut graph = graph.lock().unwrap_or_else(|e| e.into_inner());
    if let Change::Deleted(_) = change {
        let owners = graph.set(&uid, None);
        // Dependents may have lost their last owner; owners in the foreground may be free.
        for d in graph.dependents_of(&uid) {
            queue.add(d);
        }
        for o in owners {
            queue.add(o);
        }
        return;
    }
    let node = Node {
        resource: resource.to_string(),
        namespace: obj.metadata.namespace.clone().filter(|n| !n.is_empty()),
        name: obj.metadata.name.clone().unwrap_or_default(),
        owners: obj.metadata.owner_references.clone().unwrap_or_default(),
    };
    let has_owners = !node.owners.is_empty();
    let old_owners = graph.set(&uid, Some(node));
    let being_deleted = obj.metadata.deletion_timestamp.is_some()
        && (has_finalizer(obj, ORPHAN) || has_finalizer(obj, FOREGROUND));
    if has_owners || being_deleted {
        queue.add(uid.clone());
    }
    if being_deleted {
        for d in graph.dependents_of(&uid) {
            queue.add(d);
        }
    }
    // Owners this object no longer references may be waiting for it.
    let now: HashSet<&str> = obj
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|o| o.uid.as_str())
        .collect();
    for o in old_owners {
        if !now.contains(o.as_str()) {
            queue.add(o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;

    fn meta(uid: &str, owners: &[&str]) -> MetadataObject {
        MetadataObject {
            types: None,
            _phantom: std::marker::PhantomData,
            metadata: ObjectMeta {
                name: Some(format!("n-{uid}")),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                owner_references: Some(
                    owners
                        .iter()
                        .map(|o| OwnerReference {
                            uid: o.to_string(),
                            name: format!("n-{o}"),
                            kind: "ReplicaSet".into(),
                            api_version: "apps/v1".into(),
                            ..OwnerReference::default()
                        })
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
        }
    }

    async fn drain(q: &WorkQueue) -> Vec<String> {
        let mut out = Vec::new();
        while !q.is_empty() {
            let k = q.get().await.unwrap();
            q.done(&k);
            out.push(k);
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn owner_deletion_enqueues_its_dependents() {
        let graph = Mutex::new(Graph::default());
        let q = WorkQueue::new("t");
        let rs = Arc::new(meta("rs", &[]));
        let p1 = Arc::new(meta("p1", &["rs"]));
        let p2 = Arc::new(meta("p2", &["rs"]));
        on_change(&graph, &q, "apps/v1/replicasets", &Change::Added(&rs));
        on_change(&graph, &q, "v1/pods", &Change::Added(&p1));
        on_change(&graph, &q, "v1/pods", &Change::Added(&p2));
        assert_eq!(
            drain(&q).await,
            vec!["p1", "p2"],
            "dependents are checked on sight"
        );
        on_change(&graph, &q, "apps/v1/replicasets", &Change::Deleted(&rs));
        assert_eq!(drain(&q).await, vec!["p1", "p2"]);
        let g = graph.lock().unwrap();
        assert_eq!(
            g.dependents_of("rs").len(),
            2,
            "the index survives the owner"
        );
    }

    #[tokio::test]
    async fn dropping_an_owner_reference_updates_the_index_and_wakes_the_owner() {
        let graph = Mutex::new(Graph::default());
        let q = WorkQueue::new("t");
        let old = Arc::new(meta("p", &["rs"]));
        let new = Arc::new(meta("p", &[]));
        on_change(&graph, &q, "v1/pods", &Change::Added(&old));
        drain(&q).await;
        on_change(
            &graph,
            &q,
            "v1/pods",
            &Change::Updated {
                old: &old,
                new: &new,
            },
        );
        assert_eq!(drain(&q).await, vec!["rs"]);
        assert!(graph.lock().unwrap().dependents_of("rs").is_empty());
    }

    #[test]
    fn an_owner_in_another_namespace_is_reported_as_upstream() {
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: "u-1".into(),
            ..OwnerReference::default()
        };
        assert_eq!(
            invalid_namespace_message(&owner, Some("b")),
            r#"ownerRef [v1/ConfigMap, namespace: b, name: owner, uid: u-1] does not exist in namespace "b""#
        );
        assert_eq!(
            invalid_namespace_message(&owner, None),
            r#"ownerRef [v1/ConfigMap, namespace: , name: owner, uid: u-1] does not exist in namespace """#
        );
    }

    #[test]
    fn an_owner_in_foreground_deletion_is_waiting() {
        let mut o = meta("o", &[]);
        assert_eq!(state_of(&o), OwnerState::Solid);
        o.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        assert_eq!(
            state_of(&o),
            OwnerState::Solid,
            "being deleted in the background"
        );
        o.metadata.finalizers = Some(vec![FOREGROUND.into()]);
        assert_eq!(state_of(&o), OwnerState::WaitingForDependents);
    }
}
