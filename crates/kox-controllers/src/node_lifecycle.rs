//! The node lifecycle controller: watches each node's heartbeats — its Lease in
//! `kube-node-lease` and its `Ready` condition's `lastHeartbeatTime` — and when neither has
//! moved for `--node-monitor-grace-period` (40 s) marks the node's conditions `Unknown`
//! ("Kubelet stopped posting node status."), marks its pods not ready, and taints it
//! `node.kubernetes.io/unreachable` (or `not-ready` when the kubelet reports `Ready=False`)
//! with `NoSchedule` and `NoExecute`. The `NoExecute` taints — which make the
//! taint-eviction controller evict pods — are added at `--node-eviction-rate` per zone, more
//! slowly when most of a zone is down, and not at all when a whole zone is (upstream assumes
//! the control plane is cut off then, not the nodes).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::informer::Informer;
use crate::rate::TokenBucket;
use crate::{Context, Controller};

/// The taint of a node whose kubelet reports `Ready=False`.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose heartbeats stopped (`Ready=Unknown`).
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The fraction of a zone's nodes down from which it counts as partially disrupted.
const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
/// Zones up to this size stop evicting altogether when partially disrupted.
const LARGE_CLUSTER_SIZE_THRESHOLD: usize = 50;
/// The eviction rate of a partially disrupted large zone (`--secondary-node-eviction-rate`).
const SECONDARY_EVICTION_RATE: f64 = 0.01;

/// The node lifecycle controller (`--controllers` name `nodelifecycle`).
#[derive(Debug, Default)]
pub struct NodeLifecycleController;

/// The heartbeats last seen of one node and when (on the local clock) they last moved.
#[derive(Debug)]
struct Health {
    probed: Instant,
    lease_renew: Option<String>,
    heartbeat: Option<String>,
}

/// How much of a zone is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

fn zone_state(ready: usize, not_ready: usize) -> ZoneState {
    let total = ready + not_ready;
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f64 / total as f64 >= UNHEALTHY_ZONE_THRESHOLD {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// A token bucket of one: at most `rate` grants per second; a zero rate grants nothing, as
/// upstream swaps in a never-limiter then.
#[derive(Debug)]
struct Limiter {
    rate: f64,
    bucket: TokenBucket,
}

impl Limiter {
    fn new(rate: f64) -> Self {
        Limiter {
            rate,
            bucket: TokenBucket::new(rate, 1, Instant::now()),
        }
    }

    fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
        self.bucket.set_qps(rate, Instant::now());
    }

    fn try_take(&mut self) -> bool {
        self.rate > 0.0 && self.bucket.try_take(Instant::now())
    }
}

fn zone_of(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |k: &str| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
    format!(
        "{}:\u{0}:{}",
        get("topology.kubernetes.io/region"),
        get("topology.kubernetes.io/zone")
    )
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
}

fn ready_status(node: &Node) -> &str {
    condition(node, "Ready")
        .map(|c| c.status.as_str())
        .unwrap_or("Unknown")
}

/// The conditions of a node whose kubelet went silent: each of the kubelet's conditions
/// `Unknown`, as upstream writes them. `None` if they already are.
fn unknown_conditions(node: &Node, now: &Time) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(now.clone());
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// The node's taints with the condition taints of `effect` set to `want` (a key, or none).
fn with_condition_taint(
    taints: &[Taint],
    effect: &str,
    want: Option<&str>,
    now: &Time,
) -> Vec<Taint> {
    let mut out: Vec<Taint> = taints
        .iter()
        .filter(|t| {
            !(t.effect == effect
                && (t.key == NOT_READY || t.key == UNREACHABLE)
                && Some(t.key.as_str()) != want)
        })
        .cloned()
        .collect();
    if let Some(key) = want
        && !out.iter().any(|t| t.key == key && t.effect == effect)
    {
        out.push(Taint {
            key: key.into(),
            effect: effect.into(),
            time_added: (effect == "NoExecute").then(|| now.clone()),
            value: None,
        });
    }
    out
}

struct Monitor {
    client: kube::Client,
    nodes: Informer<Node>,
    leases: Informer<Lease>,
    pods: Informer<Pod>,
    recorder: Recorder,
    pod_recorder: Recorder,
    grace: Duration,
    eviction_rate: f64,
    health: HashMap<String, Health>,
    limiters: HashMap<String, Limiter>,
}

impl Monitor {
    async fn tick(&mut self) {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let nodes = self.nodes.list();
        let names: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        self.health.retain(|n, _| names.contains(n));
        // First: mark the nodes that went silent.
        for node in &nodes {
            if let Err(e) = self.check_heartbeats(node, &now).await {
                tracing::warn!(node = ?node.metadata.name, "node lifecycle: {e}");
            }
        }
        // Then: taints, from the (cached) conditions, per zone.
        let nodes = self.nodes.list();
        let mut zones: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        for node in &nodes {
            let z = zones.entry(zone_of(node)).or_default();
            if ready_status(node) == "True" {
                z.0 += 1;
            } else {
                z.1 += 1;
            }
            z.2 += 1;
        }
        for node in &nodes {
            let zone = zone_of(node);
            let (ready, not_ready, size) = zones[&zone];
            let state = zone_state(ready, not_ready);
            let rate = match state {
                ZoneState::Normal => self.eviction_rate,
                ZoneState::PartialDisruption if size > LARGE_CLUSTER_SIZE_THRESHOLD => {
                    SECONDARY_EVICTION_RATE
                }
                _ => 0.0,
            };
            self.limiters
                .entry(zone.clone())
                .or_insert_with(|| Limiter::new(rate))
                .set_rate(rate);
            if let Err(e) = self.reconcile_taints(node, &zone, state, &now).await {
                tracing::warn!(node = ?node.metadata.name, "node lifecycle: taints: {e}");
            }
        }
    }

    async fn check_heartbeats(&mut self, node: &Node, now: &Time) -> anyhow::Result<()> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let renew = self
            .leases
            .get_in(Some("kube-node-lease"), &name)
            .and_then(|l| {
                l.spec
                    .as_ref()?
                    .renew_time
                    .as_ref()
                    .map(|t| t.0.to_string())
            });
        let heartbeat = condition(node, "Ready")
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0.to_string());
        let health = self.health.entry(name.clone()).or_insert_with(|| Health {
            probed: Instant::now(),
            lease_renew: renew.clone(),
            heartbeat: heartbeat.clone(),
        });
        if health.lease_renew != renew || health.heartbeat != heartbeat {
            health.probed = Instant::now();
            health.lease_renew = renew;
            health.heartbeat = heartbeat;
        }
        if health.probed.elapsed() < self.grace {
            return Ok(());
        }
        let Some(conditions) = unknown_conditions(node, now) else {
            return Ok(());
        };
        let was_ready = ready_status(node) == "True";
        tracing::info!(node = %name, "node stopped posting status; marking it Unknown");
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        if was_ready {
            self.recorder.normal(
                node,
                "NodeNotReady",
                &format!("Node {name} status is now: NodeNotReady"),
            );
            self.mark_pods_not_ready(&name, now).await;
        }
        Ok(())
    }

    /// Upstream's `MarkPodsNotReady`: the node's pods stop counting as ready.
    async fn mark_pods_not_ready(&self, node: &str, now: &Time) {
        for pod in self.pods.list() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
                continue;
            }
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            if ready.is_none_or(|c| c.status != "True") {
                continue;
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let patch = serde_json::json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": now},
            ]}});
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(_) => {
                    self.pod_recorder
                        .warning(pod.as_ref(), "NodeNotReady", "Node is not ready")
                }
                Err(e) => tracing::debug!(pod = %format!("{ns}/{name}"), "marking not ready: {e}"),
            }
        }
    }

    async fn reconcile_taints(
        &mut self,
        node: &Node,
        zone: &str,
        state: ZoneState,
        now: &Time,
    ) -> anyhow::Result<()> {
        let key = match ready_status(node) {
            "True" => None,
            "False" => Some(NOT_READY),
            _ => Some(UNREACHABLE),
        };
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let mut want = with_condition_taint(&current, "NoSchedule", key, now);
        let has_no_execute = |taints: &[Taint], k: &str| {
            taints.iter().any(|t| t.key == k && t.effect == "NoExecute")
        };
        let no_execute = match (key, state) {
            (None, _) => None,
            // A whole zone down: keep (or put back) the pods; upstream assumes a partition.
            (Some(_), ZoneState::FullDisruption) => None,
            (Some(k), _) if has_no_execute(&current, k) => Some(k),
            (Some(k), _) => {
                let granted = self.limiters.get_mut(zone).is_some_and(|l| l.try_take());
                // Without a grant, the node keeps its other condition taint until the next
                // round (upstream swaps not-ready and unreachable without waiting).
                if granted
                    || has_no_execute(&current, NOT_READY)
                    || has_no_execute(&current, UNREACHABLE)
                {
                    Some(k)
                } else {
                    None
                }
            }
        };
        want = with_condition_taint(&want, "NoExecute", no_execute, now);
        if want == current {
            return Ok(());
        }
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut updated = node.clone();
        updated.spec.get_or_insert_with(Default::default).taints =
            (!want.is_empty()).then_some(want);
        let api: Api<Node> = Api::all(self.client.clone());
        match api.replace(&name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait::async_trait]
impl Controller for NodeLifecycleController {
    fn name(&self) -> &'static str {
        "nodelifecycle"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("node-controller")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["node-lifecycle-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let nodes = ctx.informers.get::<Node>();
        let leases = ctx.informers.get::<Lease>();
        let pods = ctx.informers.get::<Pod>();
        nodes.synced().await;
        leases.synced().await;
        pods.synced().await;
        let mut monitor = Monitor {
            client: ctx.client.clone(),
            nodes,
            leases,
            pods,
            recorder: ctx.recorder("node-controller"),
            pod_recorder: ctx.recorder("node-controller"),
            grace: ctx.config.node_monitor_grace_period,
            eviction_rate: ctx.config.node_eviction_rate,
            health: HashMap::new(),
            limiters: HashMap::new(),
        };
        let period = ctx
            .config
            .node_monitor_period
            .max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(period) => {}
            }
            monitor.tick().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::now())
    }

    #[test]
    fn zone_states_follow_upstream_thresholds() {
        assert_eq!(zone_state(5, 0), ZoneState::Normal);
        assert_eq!(zone_state(1, 1), ZoneState::Normal);
        assert_eq!(
            zone_state(2, 2),
            ZoneState::Normal,
            "2 down is never partial"
        );
        assert_eq!(zone_state(2, 3), ZoneState::PartialDisruption);
        assert_eq!(zone_state(0, 1), ZoneState::FullDisruption);
    }

    #[test]
    fn silent_node_conditions_become_unknown_with_upstream_wording() {
        let node = Node {
            status: Some(k8s_openapi::api::core::v1::NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    reason: Some("KubeletReady".into()),
                    ..NodeCondition::default()
                }]),
                ..Default::default()
            }),
            ..Node::default()
        };
        let c = unknown_conditions(&node, &now()).expect("changes");
        let ready = c.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(c.len(), 4);
        let mut again = node.clone();
        again.status.as_mut().unwrap().conditions = Some(c);
        assert!(unknown_conditions(&again, &now()).is_none());
    }

    #[test]
    fn condition_taints_swap_and_keep_others() {
        let other = Taint {
            key: "dedicated".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let t = with_condition_taint(
            std::slice::from_ref(&other),
            "NoExecute",
            Some(UNREACHABLE),
            &now(),
        );
        assert_eq!(t.len(), 2);
        assert!(t[1].time_added.is_some());
        let t = with_condition_taint(&t, "NoExecute", Some(NOT_READY), &now());
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].key, NOT_READY);
        let t = with_condition_taint(&t, "NoExecute", None, &now());
        assert_eq!(t, vec![other]);
    }

    #[test]
    fn limiter_grants_one_then_waits_for_the_rate() {
        let mut l = Limiter::new(0.1);
        assert!(l.try_take());
        assert!(!l.try_take());
        let mut off = Limiter::new(0.0);
        assert!(!off.try_take(), "a zero rate grants nothing");
    }
}
