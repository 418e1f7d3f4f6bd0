//! The pods bound to this node: one worker per pod (see [`worker`]), fed by a watch of the
//! node's pods and by a relist of the runtime (the kubelet's PLEG) that wakes a pod's worker
//! when one of its containers changes state.

mod backoff;
mod env;
mod hooks;
mod probes;
mod spec;
mod static_pods;
mod status;
mod volumes;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Agent;
use crate::cri::api;

/// CRI labels that tie sandboxes and containers to their pod, as the kubelet sets them.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// How often the static pod manifests are read.
const STATIC_SCAN: Duration = Duration::from_secs(2);

/// The static pods and their mirror pods in the API.
#[derive(Default)]
struct Statics {
    /// The static pods the manifests describe, by uid.
    pods: HashMap<String, Pod>,
    /// Mirror pods seen in the API, by the static pod uid they stand for.
    mirrors: HashMap<String, (String, String)>,
}

impl Statics {
    /// Starts, replaces and stops static pods after their manifests, and makes their mirror
    /// pods match.
    fn sync(
        &mut self,
        agent: &Arc<Agent>,
        workers: &mut HashMap<String, Worker>,
        stop: &CancellationToken,
    ) {
        let now = static_pods::read_manifests(agent, &agent.config.manifests_dir());
        for uid in self.pods.keys().filter(|uid| !now.contains_key(*uid)) {
            if let Some(w) = workers.get(uid) {
                w.desired.send_replace(Desired::Gone);
            }
        }
        for (uid, pod) in &now {
            if !self.pods.contains_key(uid) {
                dispatch(agent, workers, pod.clone(), stop);
            }
        }
        self.pods = now;
        for (hash, (ns, name)) in &self.mirrors {
            if !self.pods.contains_key(hash) {
                tokio::spawn(delete_mirror(agent.clone(), ns.clone(), name.clone()));
            }
        }
        for (uid, pod) in &self.pods {
            if !self.mirrors.contains_key(uid) {
                tokio::spawn(create_mirror(agent.clone(), pod.clone()));
            }
        }
    }

    /// Notes a mirror pod from the API (true: it is one, no worker of its own); a deleted
    /// one is removed for good, to be created again.
    fn saw_mirror(&mut self, agent: &Arc<Agent>, pod: &Pod) -> bool {
        let Some(hash) = static_pods::mirror_hash(pod) else {
            return false;
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            self.mirrors.remove(&hash);
            tokio::spawn(delete_mirror(agent.clone(), ns, name));
        } else {
            self.mirrors.insert(hash, (ns, name));
        }
        true
    }

    fn mirror_gone(&mut self, pod: &Pod) {
        if let Some(hash) = static_pods::mirror_hash(pod) {
            self.mirrors.remove(&hash);
        }
    }
}

async fn create_mirror(agent: Arc<Agent>, pod: Pod) {
    let node_uid = agent.node_uid.get().cloned().unwrap_or_default();
    let mirror: Pod = match serde_json::from_value(static_pods::mirror_of(&pod, &node_uid)) {
        Ok(p) => p,
        Err(e) => return tracing::warn!("mirror pod: {e}"),
    };
    let api: Api<Pod> = Api::namespaced(
        agent.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    match api.create(&Default::default(), &mirror).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => tracing::warn!(pod = ?pod.metadata.name, "creating the mirror pod: {e}"),
    }
}

async fn delete_mirror(agent: Arc<Agent>, ns: String, name: String) {
    let api: Api<Pod> = Api::namespaced(agent.client.clone(), &ns);
    let params = kube::api::DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let _ = api.delete(&name, &params).await;
}

/// How often the runtime is relisted for container state changes when no event says so
/// earlier (containerd's task events trigger a relist at once).
const RELIST: Duration = Duration::from_secs(1);

/// What a worker is told: the pod as last seen, or that it is gone from the API.
#[derive(Clone, Debug)]
pub enum Desired {
    Pod(Box<Pod>),
    Gone,
}

struct Worker {
    desired: watch::Sender<Desired>,
    wake: Arc<tokio::sync::Notify>,
    /// Set to the eviction message when the pod is to be evicted.
    evict: Evict,
}

/// An eviction asked of a worker: the message its pod fails with.
pub type Evict = Arc<std::sync::Mutex<Option<String>>>;

/// How often the eviction manager looks for a pod to evict under pressure.
const EVICTION_CHECK: Duration = Duration::from_secs(10);

/// Serves the node's pods until `stop`.
pub async fn run(agent: Arc<Agent>, stop: CancellationToken) {
    let api: Api<Pod> = Api::all(agent.client.clone());
    let selector = format!("spec.nodeName={}", agent.config.node_name);
    let mut events = watcher::watcher(api, watcher::Config::default().fields(&selector)).boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut listing: Option<Vec<String>> = None;
    let mut states: HashMap<String, (String, i32)> = HashMap::new();
    let mut relist = tokio::time::interval(RELIST);
    let runtime_changed = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(follow_runtime(
        agent.clone(),
        runtime_changed.clone(),
        stop.clone(),
    ));
    let mut statics = Statics::default();
    let mut scan = tokio::time::interval(STATIC_SCAN);
    let mut eviction = tokio::time::interval(EVICTION_CHECK);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = eviction.tick() => evict_one(&agent, &workers).await,
            _ = scan.tick() => statics.sync(&agent, &mut workers, &stop),
            _ = async { tokio::select! { _ = relist.tick() => {}, _ = runtime_changed.notified() => {} } } => {
                for uid in changed_pods(&agent, &mut states).await {
                    if let Some(w) = workers.get(&uid) {
                        w.wake.notify_one();
                    }
                }
            }
            event = events.next() => match event {
                Some(Ok(Event::Init)) => listing = Some(Vec::new()),
                Some(Ok(Event::InitApply(pod))) => {
                    if let Some(l) = listing.as_mut() {
                        l.push(pod.metadata.uid.clone().unwrap_or_default());
                    }
                    if !statics.saw_mirror(&agent, &pod) {
                        dispatch(&agent, &mut workers, pod, &stop);
                    }
                }
                Some(Ok(Event::InitDone)) => {
                    let mut present = listing.take().unwrap_or_default();
                    for (uid, w) in &workers {
                        if !present.contains(uid) && !statics.pods.contains_key(uid) {
                            w.desired.send_replace(Desired::Gone);
                        }
                    }
                    present.extend(statics.pods.keys().cloned());
                    tokio::spawn(worker::remove_orphans(agent.clone(), present));
                }
                Some(Ok(Event::Apply(pod))) => {
                    if !statics.saw_mirror(&agent, &pod) {
                        dispatch(&agent, &mut workers, pod, &stop);
                    }
                }
                Some(Ok(Event::Delete(pod))) => {
                    statics.mirror_gone(&pod);
                    if let Some(w) = workers.get(pod.metadata.uid.as_deref().unwrap_or("")) {
                        w.desired.send_replace(Desired::Gone);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!("watching the node's pods: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => break,
            },
        }
        workers.retain(|_, w| !w.desired.is_closed());
    }
}

fn dispatch(
    agent: &Arc<Agent>,
    workers: &mut HashMap<String, Worker>,
    pod: Pod,
    stop: &CancellationToken,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if let Some(w) = workers.get(&uid)
        && !w.desired.is_closed()
    {
        w.desired.send_replace(Desired::Pod(Box::new(pod)));
        return;
    }
    let (tx, rx) = watch::channel(Desired::Pod(Box::new(pod)));
    let wake = Arc::new(tokio::sync::Notify::new());
    let evict = Evict::default();
    tokio::spawn(worker::run(
        agent.clone(),
        rx,
        wake.clone(),
        evict.clone(),
        stop.clone(),
    ));
    workers.insert(
        uid,
        Worker {
            desired: tx,
            wake,
            evict,
        },
    );
}

/// Under memory or disk pressure, evicts the pod that upstream's ranking picks first (static
/// pods and pods already finished are not candidates).
async fn evict_one(agent: &Agent, workers: &HashMap<String, Worker>) {
    use crate::eviction::{self, Candidate};
    evict_over_local_limits(agent, workers);
    let t = &agent.config.eviction_hard;
    let memory = eviction::observe_memory(t);
    let disk = eviction::observe_disk(t, &agent.config.data_dir);
    let Some(observed) = [memory, disk].into_iter().find(|o| o.pressure) else {
        return;
    };
    let Ok(stats) = agent
        .cri
        .runtime
        .clone()
        .list_container_stats(api::ListContainerStatsRequest { filter: None })
        .await
    else {
        return;
    };
    let mut usage: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for s in stats.into_inner().stats {
        let Some(attrs) = s.attributes else { continue };
        let uid = attrs.labels.get(POD_UID).cloned().unwrap_or_default();
        let name = attrs
            .labels
            .get(CONTAINER_NAME)
            .cloned()
            .unwrap_or_default();
        let bytes = if observed.resource == "memory" {
            s.memory
                .and_then(|m| m.working_set_bytes)
                .map_or(0, |v| v.value)
        } else {
            s.writable_layer
                .and_then(|f| f.used_bytes)
                .map_or(0, |v| v.value)
        };
        usage.entry(uid).or_default().push((name, bytes as i64));
    }
    let request_name = if observed.resource == "memory" {
        "memory"
    } else {
        "ephemeral-storage"
    };
    let candidates: Vec<Candidate> = workers
        .iter()
        .filter_map(|(uid, w)| {
            let Desired::Pod(pod) = &*w.desired.borrow() else {
                return None;
            };
            let done = matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            // Mirror pods have no worker of their own; static pods are not evicted.
            if done || worker::is_static(pod) {
                return None;
            }
            let spec = pod.spec.as_ref()?;
            let used = usage.get(uid).cloned().unwrap_or_default();
            let containers = spec
                .containers
                .iter()
                .map(|c| {
                    let request = c
                        .resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .and_then(|r| r.get(request_name))
                        .and_then(|q| kox_api::quantity::Quantity::try_from(q).ok())
                        .map_or(0, |q| q.value());
                    let used = used
                        .iter()
                        .filter(|(n, _)| *n == c.name)
                        .map(|(_, b)| *b)
                        .sum();
                    (c.name.clone(), used, request)
                })
                .collect();
            Some(Candidate {
                uid: uid.clone(),
                priority: spec.priority.unwrap_or(0),
                containers,
            })
        })
        .collect();
    if let Some(victim) = eviction::pick(&candidates)
        && let Some(w) = workers.get(&victim.uid)
    {
        let message = eviction::message(&observed, victim);
        tracing::warn!(pod = %victim.uid, "evicting: {message}");
        if let Ok(mut slot) = w.evict.lock() {
            *slot = Some(message);
        }
        w.wake.notify_one();
    }
}

/// Wakes the relist on each of containerd's task events, so a container's exit is seen at
/// once; with another runtime (or containerd down) the periodic relist does alone.
async fn follow_runtime(
    agent: Arc<Agent>,
    changed: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let followed = stop
            .run_until_cancelled(agent.cri.follow_task_events(|topic| {
                tracing::trace!(topic, "runtime event");
                changed.notify_one();
            }))
            .await;
        match followed {
            None => return,
            Some(Err(e)) => tracing::debug!("runtime events: {e:#}"),
            Some(Ok(())) => {}
        }
        if stop
            .run_until_cancelled(tokio::time::sleep(Duration::from_secs(2)))
            .await
            .is_none()
        {
            return;
        }
    }
}

/// Evicts the pods whose disk-backed emptyDir volumes hold more than their `sizeLimit`, as
/// the kubelet's local storage eviction does, pressure or not.
fn evict_over_local_limits(agent: &Agent, workers: &HashMap<String, Worker>) {
    for w in workers.values() {
        let message = match &*w.desired.borrow() {
            Desired::Pod(pod) if !worker::is_static(pod) => {
                volumes::empty_dir_over_limit(agent, pod)
            }
            _ => None,
        };
        if let Some(message) = message
            && let Ok(mut slot) = w.evict.lock()
            && slot.is_none()
        {
            *slot = Some(message);
            w.wake.notify_one();
        }
    }
}

/// The pods whose containers or sandboxes changed state since the last relist.
async fn changed_pods(agent: &Agent, states: &mut HashMap<String, (String, i32)>) -> Vec<String> {
    let mut runtime = agent.cri.runtime.clone();
    let Ok(containers) = runtime
        .list_containers(api::ListContainersRequest { filter: None })
        .await
    else {
        return Vec::new();
    };
    let Ok(sandboxes) = runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
    else {
        return Vec::new();
    };
    let mut now: HashMap<String, (String, i32)> = HashMap::new();
    for c in containers.into_inner().containers {
        let uid = c.labels.get(POD_UID).cloned().unwrap_or_default();
        now.insert(c.id, (uid, c.state));
    }
    for s in sandboxes.into_inner().items {
        let uid = s.labels.get(POD_UID).cloned().unwrap_or_default();
        now.insert(s.id, (uid, s.state + 100));
    }
    let mut changed: Vec<String> = now
        .iter()
        .filter(|(id, v)| states.get(*id) != Some(v))
        .map(|(_, (uid, _))| uid.clone())
        .chain(
            states
                .iter()
                .filter(|(id, _)| !now.contains_key(*id))
                .map(|(_, (uid, _))| uid.clone()),
        )
        .collect();
    changed.sort();
    changed.dedup();
    *states = now;
    changed
}

/// Stops and removes every sandbox the runtime holds; returns how many.
pub async fn remove_all(cri: &crate::cri::Cri) -> anyhow::Result<usize> {
    let mut runtime = cri.runtime.clone();
    let sandboxes = runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items;
    for s in &sandboxes {
        cri.remove_sandbox(&s.id).await;
    }
    Ok(sandboxes.len())
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    let mut found: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found
}
