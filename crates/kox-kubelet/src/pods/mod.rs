//! The pods bound to this node: one worker per pod (see [`worker`]), fed by a watch of the
//! node's pods and by a relist of the runtime (the kubelet's PLEG) that wakes a pod's worker
//! when one of its containers changes state.

mod backoff;
mod env;
mod hooks;
mod probes;
mod spec;
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

/// How often the runtime is relisted for container state changes.
const RELIST: Duration = Duration::from_millis(500);

/// What a worker is told: the pod as last seen, or that it is gone from the API.
#[derive(Clone, Debug)]
pub enum Desired {
    Pod(Box<Pod>),
    Gone,
}

struct Worker {
    desired: watch::Sender<Desired>,
    wake: Arc<tokio::sync::Notify>,
}

/// Serves the node's pods until `stop`.
pub async fn run(agent: Arc<Agent>, stop: CancellationToken) {
    let api: Api<Pod> = Api::all(agent.client.clone());
    let selector = format!("spec.nodeName={}", agent.config.node_name);
    let mut events = watcher::watcher(api, watcher::Config::default().fields(&selector)).boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut listing: Option<Vec<String>> = None;
    let mut states: HashMap<String, (String, i32)> = HashMap::new();
    let mut relist = tokio::time::interval(RELIST);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = relist.tick() => {
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
                    dispatch(&agent, &mut workers, pod, &stop);
                }
                Some(Ok(Event::InitDone)) => {
                    let present = listing.take().unwrap_or_default();
                    for (uid, w) in &workers {
                        if !present.contains(uid) {
                            w.desired.send_replace(Desired::Gone);
                        }
                    }
                    tokio::spawn(worker::remove_orphans(agent.clone(), present));
                }
                Some(Ok(Event::Apply(pod))) => dispatch(&agent, &mut workers, pod, &stop),
                Some(Ok(Event::Delete(pod))) => {
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
    tokio::spawn(worker::run(agent.clone(), rx, wake.clone(), stop.clone()));
    workers.insert(uid, Worker { desired: tx, wake });
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
        let _ = runtime
            .stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await;
        let _ = runtime
            .remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await;
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
