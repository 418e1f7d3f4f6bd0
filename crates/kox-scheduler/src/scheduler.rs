//! The scheduler's loop: watches feed the cache and the queue; while this process leads, it
//! pops pods, runs the plugins, assumes the chosen node and binds asynchronously.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Binding, Event, EventSource, Namespace, Node, ObjectReference, Pod, ReplicationController,
    Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::algorithm::{self, Outcome};
use crate::cache::Cache;
use crate::config::ProfileConfig;
use crate::framework::{Nomination, PodInfo, Workloads, pod_key};
use crate::metrics::Metrics;
use crate::plugins::{inter_pod_affinity, pod_topology_spread};
use crate::profile::{DEFAULT_SCHEDULER_NAME, Profile};
use crate::queue::SchedulingQueue;
use kox_api::label_selector::Selector;
use kox_component::delegated_auth::DelegatedAuth;
use kox_component::healthz;
use kox_component::leader::{self, LeaderElectionConfig};

/// How the scheduler runs.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// The `schedulerName` this scheduler serves (default `default-scheduler`); pods naming
    /// another scheduler are left alone.
    pub scheduler_name: String,
    /// Where `/healthz` is served over HTTPS (default `0.0.0.0:10259`); `None` serves nothing.
    pub health_address: Option<SocketAddr>,
    /// Leader election through a Lease (default on); `None` schedules unconditionally.
    pub leader_election: Option<LeaderElectionConfig>,
    /// The profiles (from a `KubeSchedulerConfiguration`); empty means the default profile
    /// named [`SchedulerConfig::scheduler_name`].
    pub profiles: Vec<ProfileConfig>,
    /// The configuration's top-level `percentageOfNodesToScore`.
    pub percentage_of_nodes_to_score: Option<u32>,
}

impl SchedulerConfig {
    /// Builds the profiles' plugins; fails on an unknown plugin or bad plugin arguments.
    pub fn build_profiles(&self) -> anyhow::Result<Vec<Profile>> {
        if self.profiles.is_empty() {
            let mut p =
                Profile::build(&ProfileConfig::default(), self.percentage_of_nodes_to_score)?;
            p.scheduler_name = self.scheduler_name.clone();
            return Ok(vec![p]);
        }
        self.profiles
            .iter()
            .map(|p| Profile::build(p, self.percentage_of_nodes_to_score))
            .collect()
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheduler_name: "default-scheduler".into(),
            health_address: Some(SocketAddr::from(([0, 0, 0, 0], 10259))),
            leader_election: Some(LeaderElectionConfig::for_lease("kube-scheduler")),
            profiles: Vec::new(),
            percentage_of_nodes_to_score: None,
        }
    }
}

/// The state the watches write and the scheduling loop reads.
struct State {
    cache: Cache,
    queue: SchedulingQueue,
    next_start: usize,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    metrics: Arc<Metrics>,
    /// The scheduler names of the profiles; pods naming another scheduler are left alone.
    scheduler_names: Vec<String>,
    client: Client,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn scheduler_name_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SCHEDULER_NAME)
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl Shared {
    fn pod_applied(&self, pod: Pod) {
        let key = pod_key(&pod);
        let pod = Arc::new(pod);
        let now = Instant::now();
        let mut st = self.lock();
        if is_terminal(&pod) {
            st.queue.delete(&key);
            if st.cache.remove_pod(&key) {
                st.queue.move_all_unschedulable(now);
            }
        } else if let Some(node) = node_name(&pod) {
            st.queue.delete(&key);
            let news = st.cache.is_placement_news(&pod);
            st.cache.add_pod(pod.clone(), node);
            if news {
                // Pods waiting for affinity to, or spreading with, such a pod may fit now.
                let namespaces = st.cache.namespace_labels();
                let moved = st.queue.move_unschedulable_where(now, |waiting| {
                    inter_pod_affinity::placed_pod_may_help(waiting, &pod, &namespaces)
                        || pod_topology_spread::placed_pod_may_help(waiting, &pod)
                });
                if moved {
                    drop(st);
                    self.wake.notify_one();
                }
            }
        } else if st.cache.is_assumed(&key) {
            // An event from before our binding landed; the binding's own event follows.
        } else {
            let name = scheduler_name_of(&pod);
            let ours = self.scheduler_names.iter().any(|n| n == name);
            // Pods with scheduling gates wait until every gate is removed.
            let gated = pod
                .spec
                .as_ref()
                .and_then(|s| s.scheduling_gates.as_ref())
                .is_some_and(|g| !g.is_empty());
            let nominated = pod
                .status
                .as_ref()
                .and_then(|s| s.nominated_node_name.as_deref())
                .map(str::to_string);
            if ours {
                st.cache.set_nominated(pod.clone(), nominated.as_deref());
            }
            if ours && !gated && pod.metadata.deletion_timestamp.is_none() {
                st.queue.add(pod, now);
                drop(st);
                self.wake.notify_one();
            } else {
                st.queue.delete(&key);
            }
        }
    }

    fn pod_deleted(&self, key: &str) {
        let mut st = self.lock();
        st.queue.delete(key);
        if st.cache.remove_pod(key) {
            st.queue.move_all_unschedulable(Instant::now());
            drop(st);
            self.wake.notify_one();
        }
    }

    fn namespace_applied(&self, ns: Namespace) {
        let name = ns.metadata.name.unwrap_or_default();
        let mut st = self.lock();
        // New labels may satisfy a namespace selector (upstream's NamespaceUpdate event).
        if st
            .cache
            .set_namespace(&name, ns.metadata.labels.unwrap_or_default())
        {
            st.queue.move_all_unschedulable(Instant::now());
            drop(st);
            self.wake.notify_one();
        }
    }

    fn node_applied(&self, node: Node) {
        let mut st = self.lock();
        if st.cache.set_node(node) {
            st.queue.move_all_unschedulable(Instant::now());
            drop(st);
            self.wake.notify_one();
        }
    }
}

/// Keeps the cache and queue in step with the pods.
async fn watch_pods(shared: Arc<Shared>, stop: CancellationToken) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut listed: Option<HashSet<String>> = None;
    let mut known: HashSet<String> = HashSet::new();
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => ev,
        };
        match ev {
            None => return,
            Some(Err(e)) => {
                tracing::warn!("scheduler pod watch: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(Ok(watcher::Event::Init)) => listed = Some(HashSet::new()),
            Some(Ok(watcher::Event::InitApply(pod) | watcher::Event::Apply(pod))) => {
                let key = pod_key(&pod);
                if let Some(l) = listed.as_mut() {
                    l.insert(key.clone());
                }
                known.insert(key);
                shared.pod_applied(pod);
            }
            Some(Ok(watcher::Event::InitDone)) => {
                // Pods gone while the watch was down.
                if let Some(l) = listed.take() {
                    for key in known.difference(&l).cloned().collect::<Vec<_>>() {
                        shared.pod_deleted(&key);
                    }
                    known = l;
                }
            }
            Some(Ok(watcher::Event::Delete(pod))) => {
                let key = pod_key(&pod);
                known.remove(&key);
                shared.pod_deleted(&key);
            }
        }
    }
}

/// Keeps one kind of the cache's [`Workloads`] selectors (Services, ReplicationControllers,
/// ReplicaSets, StatefulSets: what PodTopologySpread's default constraints select by) in step
/// with its objects.
async fn watch_workloads<K, T>(
    shared: Arc<Shared>,
    stop: CancellationToken,
    field: fn(&mut Workloads) -> &mut HashMap<String, T>,
    selector: fn(&K) -> T,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    T: Send + 'static,
{
    let key = |o: &K| {
        Workloads::key(
            o.meta().namespace.as_deref().unwrap_or("default"),
            o.meta().name.as_deref().unwrap_or(""),
        )
    };
    let api: Api<K> = Api::all(shared.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut staged: Option<HashMap<String, T>> = None;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => ev,
        };
        match ev {
            None => return,
            Some(Err(e)) => {
                tracing::warn!("scheduler {} watch: {e}", K::kind(&()));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(Ok(watcher::Event::Init)) => staged = Some(HashMap::new()),
            Some(Ok(watcher::Event::InitApply(o))) => {
                if let Some(s) = staged.as_mut() {
                    s.insert(key(&o), selector(&o));
                }
            }
            Some(Ok(watcher::Event::InitDone)) => {
                if let Some(s) = staged.take() {
                    *field(shared.lock().cache.workloads_mut()) = s;
                }
            }
            Some(Ok(watcher::Event::Apply(o))) => {
                let (k, v) = (key(&o), selector(&o));
                field(shared.lock().cache.workloads_mut()).insert(k, v);
            }
            Some(Ok(watcher::Event::Delete(o))) => {
                field(shared.lock().cache.workloads_mut()).remove(&key(&o));
            }
        }
    }
}

fn compiled(selector: Option<&LabelSelector>) -> Selector {
    Selector::from_label_selector(selector).unwrap_or_else(|_| Selector::nothing())
}

/// Keeps one cluster-scoped kind the cache holds by name (nodes, namespaces) in step with its
/// objects: `applied` takes each added or changed object, `remove` drops a name, and after a
/// relist every name in `names` the list no longer has is dropped.
async fn watch_named<K>(
    shared: Arc<Shared>,
    stop: CancellationToken,
    applied: fn(&Shared, K),
    names: fn(&Cache) -> Vec<String>,
    remove: fn(&mut Cache, &str),
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::all(shared.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut listed: Option<HashSet<String>> = None;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => ev,
        };
        match ev {
            None => return,
            Some(Err(e)) => {
                tracing::warn!("scheduler {} watch: {e}", K::kind(&()));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(Ok(watcher::Event::Init)) => listed = Some(HashSet::new()),
            Some(Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o))) => {
                if let Some(l) = listed.as_mut() {
                    l.insert(o.meta().name.clone().unwrap_or_default());
                }
                applied(&shared, o);
            }
            Some(Ok(watcher::Event::InitDone)) => {
                if let Some(l) = listed.take() {
                    let mut st = shared.lock();
                    for name in names(&st.cache) {
                        if !l.contains(&name) {
                            remove(&mut st.cache, &name);
                        }
                    }
                }
            }
            Some(Ok(watcher::Event::Delete(o))) => {
                remove(
                    &mut shared.lock().cache,
                    o.meta().name.as_deref().unwrap_or(""),
                );
            }
        }
    }
}

/// Runs the scheduler until `stop` is cancelled.
pub async fn run(
    client: Client,
    config: SchedulerConfig,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let profiles = config.build_profiles()?;
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            cache: Cache::default(),
            queue: SchedulingQueue::default(),
            next_start: 0,
        }),
        wake: Notify::new(),
        metrics: metrics.clone(),
        scheduler_names: profiles.iter().map(|p| p.scheduler_name.clone()).collect(),
        client: client.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = config.health_address {
        let auth = Arc::new(DelegatedAuth::new(client.clone()));
        tasks.spawn(healthz::serve(
            "scheduler",
            addr,
            metrics,
            auth,
            stop.clone(),
        ));
    }
    tasks.spawn(watch_pods(shared.clone(), stop.clone()));
    tasks.spawn(watch_named::<Node>(
        shared.clone(),
        stop.clone(),
        Shared::node_applied,
        Cache::node_names,
        Cache::remove_node,
    ));
    // Namespace labels, for inter-pod affinity's namespace selectors.
    tasks.spawn(watch_named::<Namespace>(
        shared.clone(),
        stop.clone(),
        Shared::namespace_applied,
        Cache::namespace_names,
        Cache::remove_namespace,
    ));
    tasks.spawn(watch_workloads::<Service, _>(
        shared.clone(),
        stop.clone(),
        |w| &mut w.services,
        |o| o.spec.as_ref().and_then(|s| s.selector.clone()),
    ));
    tasks.spawn(watch_workloads::<ReplicationController, _>(
        shared.clone(),
        stop.clone(),
        |w| &mut w.replication_controllers,
        |o| {
            o.spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default()
        },
    ));
    tasks.spawn(watch_workloads::<ReplicaSet, _>(
        shared.clone(),
        stop.clone(),
        |w| &mut w.replica_sets,
        |o| compiled(o.spec.as_ref().map(|s| &s.selector)),
    ));
    tasks.spawn(watch_workloads::<StatefulSet, _>(
        shared.clone(),
        stop.clone(),
        |w| &mut w.stateful_sets,
        |o| compiled(o.spec.as_ref().map(|s| &s.selector)),
    ));
    let (leading_tx, leading) = watch::channel(config.leader_election.is_none());
    if let Some(le) = config.leader_election.clone() {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &le.namespace);
        tasks.spawn(leader::run(leases, le, leading_tx, stop.clone()));
    }
    let profiles = profiles.into_iter().map(Arc::new).collect();
    schedule_loop(shared, profiles, leading, stop.clone()).await;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn schedule_loop(
    shared: Arc<Shared>,
    profiles: Vec<Arc<Profile>>,
    mut leading: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    loop {
        // A busy queue never idles, so look for the stop between attempts too.
        if stop.is_cancelled() {
            return;
        }
        if !*leading.borrow_and_update() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = leading.changed() => continue,
            }
        }
        let (popped, next_flush) = {
            let mut st = shared.lock();
            let next = st.queue.flush(Instant::now());
            (st.queue.pop(), next)
        };
        let Some(queued) = popped else {
            let sleep = next_flush
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(10));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = leading.changed() => {}
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
            continue;
        };
        let name = scheduler_name_of(&queued.pod);
        match profiles.iter().find(|p| p.scheduler_name == name) {
            Some(profile) => schedule_one(&shared, profile, queued.pod),
            None => shared.lock().queue.delete(&pod_key(&queued.pod)),
        }
        // Let the watches and binders run between attempts.
        tokio::task::yield_now().await;
    }
}

fn schedule_one(shared: &Arc<Shared>, profile: &Arc<Profile>, pod: Arc<Pod>) {
    let key = pod_key(&pod);
    let info = PodInfo::new(pod.clone());
    let (outcome, state) = {
        let mut st = shared.lock();
        let mut start = st.next_start;
        let (mut outcome, state) =
            algorithm::schedule_with_state(profile, &st.cache, &info, &mut start);
        st.next_start = start;
        if let Outcome::Fits(node) = &outcome {
            let reserved = algorithm::run_reserve(&profile.plugins, &state, &info, node);
            if !reserved.is_success() {
                outcome = Outcome::ReserveFailed(reserved.reasons.join(", "));
            }
        }
        match &outcome {
            Outcome::Fits(node) => {
                st.cache.assume(pod.clone(), node);
                st.queue.done(&key);
            }
            Outcome::Unschedulable(_, nomination) => {
                if let Some(n) = nomination {
                    // Keep the room being made for this pod from going to others meanwhile.
                    st.cache.set_nominated(pod.clone(), Some(&n.node));
                }
                st.queue.unschedulable(&key, Instant::now())
            }
            Outcome::NoNodes => st.queue.unschedulable(&key, Instant::now()),
            Outcome::ReserveFailed(_) => st.queue.add_after_error(pod.clone(), Instant::now()),
        }
        (outcome, state)
    };
    let shared = shared.clone();
    let component = profile.scheduler_name.clone();
    match outcome {
        Outcome::Fits(node) => {
            let profile = profile.clone();
            tokio::spawn(async move {
                if !bind(shared, component, pod, &node).await {
                    algorithm::run_unreserve(&profile.plugins, &state, &info, &node);
                }
            });
        }
        Outcome::Unschedulable(err, nomination) => {
            shared.metrics.unschedulable.fetch_add(1, Ordering::Relaxed);
            let msg = err.to_string();
            tokio::spawn(async move {
                if let Some(n) = nomination {
                    preempt(&shared, &component, &pod, n).await;
                }
                record_failure(&shared, &component, &pod, "Unschedulable", &msg).await
            });
        }
        Outcome::NoNodes => {
            // Upstream's ErrNoNodesAvailable: unschedulable and unresolvable.
            shared.metrics.unschedulable.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                record_failure(
                    &shared,
                    &component,
                    &pod,
                    "Unschedulable",
                    "no nodes available to schedule pods",
                )
                .await
            });
        }
        Outcome::ReserveFailed(msg) => {
            shared.metrics.errors.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                record_failure(&shared, &component, &pod, "SchedulerError", &msg).await
            });
        }
    }
}

/// Carries out a preemption as upstream's `prepareCandidate`: each victim gets the
/// `DisruptionTarget` condition, a `Preempted` event and is deleted; the preemptor's
/// `status.nominatedNodeName` names the node it waits for.
async fn preempt(shared: &Shared, component: &str, pod: &Pod, nomination: Nomination) {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    shared
        .metrics
        .preemption_victims
        .fetch_add(nomination.victims.len() as u64, Ordering::Relaxed);
    for victim in &nomination.victims {
        let vns = victim
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let vname = victim.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(shared.client.clone(), &vns);
        let condition = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
            "message": format!("{component}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second).ok(),
        }]}});
        if let Err(e) = api
            .patch_status(
                &vname,
                &PatchParams::default(),
                &Patch::Strategic(condition),
            )
            .await
        {
            tracing::debug!(pod = %format!("{vns}/{vname}"), "marking the preemption victim: {e}");
        }
        let msg = format!("Preempted by pod {uid} on node {}", nomination.node);
        emit_event(
            shared,
            component,
            victim,
            "Normal",
            "Preempted",
            "Preempting",
            &msg,
        )
        .await;
        match api.delete(&vname, &Default::default()).await {
            Ok(_) => {
                tracing::info!(victim = %format!("{vns}/{vname}"), preemptor = %format!("{ns}/{name}"), node = %nomination.node, "preempted")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(victim = %format!("{vns}/{vname}"), "deleting the preemption victim: {e}")
            }
        }
    }
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    let patch = serde_json::json!({"status": {"nominatedNodeName": nomination.node}});
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        tracing::debug!(pod = %format!("{ns}/{name}"), "setting nominatedNodeName: {e}");
    }
}

/// Binds an assumed pod (upstream's DefaultBinder); on failure forgets the assumption, retries
/// the pod after backoff and returns false.
async fn bind(shared: Arc<Shared>, component: String, pod: Arc<Pod>, node: &str) -> bool {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..ObjectReference::default()
        },
    };
    let res: Result<serde_json::Value, _> = api
        .create_subresource("binding", &name, &PostParams::default(), &binding)
        .await;
    match res {
        Ok(_) => {
            shared.metrics.scheduled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(pod = %format!("{ns}/{name}"), %node, "bound");
            let msg = format!("Successfully assigned {ns}/{name} to {node}");
            emit_event(
                &shared,
                &component,
                &pod,
                "Normal",
                "Scheduled",
                "Binding",
                &msg,
            )
            .await;
            true
        }
        Err(e) => {
            shared.metrics.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(pod = %format!("{ns}/{name}"), %node, "binding failed: {e}");
            let key = pod_key(&pod);
            let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
            let mut st = shared.lock();
            st.cache.forget(&key);
            if !gone && pod.metadata.deletion_timestamp.is_none() {
                st.queue.add_after_error(pod.clone(), Instant::now());
            }
            false
        }
    }
}

/// Writes `PodScheduled=False` and a `FailedScheduling` event, as upstream's failure handler.
async fn record_failure(shared: &Shared, component: &str, pod: &Pod, reason: &str, msg: &str) {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    let same = current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(msg)
    });
    if !same {
        let api: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
        let patch = serde_json::json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": reason, "message": msg,
            "lastProbeTime": null,
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second).ok(),
        }]}});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            tracing::debug!(pod = %format!("{ns}/{name}"), "updating PodScheduled: {e}");
        }
    }
    emit_event(
        shared,
        component,
        pod,
        "Warning",
        "FailedScheduling",
        "Scheduling",
        msg,
    )
    .await;
}

/// Creates a core/v1 Event about a pod from the profile's scheduler name.
async fn emit_event(
    shared: &Shared,
    component: &str,
    pod: &Pod,
    type_: &str,
    reason: &str,
    action: &str,
    msg: &str,
) {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..ObjectReference::default()
        },
        reason: Some(reason.into()),
        message: Some(msg.into()),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        action: Some(action.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(shared.client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!("recording event {reason}: {e}");
    }
}
