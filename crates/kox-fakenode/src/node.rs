//! The simulated nodes: registration, status, and Lease heartbeats.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::FakeNodesConfig;

/// How many API requests the registration keeps in flight.
const CONCURRENCY: usize = 32;
/// The heartbeat interval is cut into this many slots; each node renews in its own slot, so
/// the renewals are spread evenly over the interval as independent kubelets' are.
const SLOTS: usize = 100;
/// Heartbeat requests (Lease renewals, status reports) waiting for an answer at most.
const HEARTBEATS_IN_FLIGHT: usize = 256;
/// The zone label of nodes spread over zones (`--zones`).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// One simulated node.
#[derive(Clone, Debug)]
pub struct FakeNode {
    /// Node name.
    pub name: String,
    /// Its InternalIP.
    pub ip: String,
    /// The first three octets of its pod range (`10.a.b`): pods get `10.a.b.2` onwards.
    pub pod_prefix: String,
    /// The node's uid (owner of its Lease).
    pub uid: String,
    /// Its index (the number in its name): its heartbeat slot.
    pub index: usize,
    /// Its Lease as last written, renewed by updating this copy (as the kubelet does).
    pub lease: Arc<std::sync::Mutex<Option<Lease>>>,
}

/// The simulated nodes by name.
pub type Nodes = HashMap<String, FakeNode>;

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The Node object of simulated node `index`.
pub fn node_object(config: &FakeNodesConfig, index: usize) -> Node {
    let name = format!("{}{index}", config.name_prefix);
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
        ("type", "kox-fake-node"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if config.zones > 0 {
        labels.insert(ZONE_LABEL.into(), format!("zone-{}", index % config.zones));
    }
    labels.extend(config.labels.clone());
    Node {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_string(),
                "0".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: (!config.taints.is_empty()).then(|| config.taints.clone()),
            pod_cidr: Some(format!("{}.0/24", pod_prefix(index))),
            pod_cidrs: Some(vec![format!("{}.0/24", pod_prefix(index))]),
            ..Default::default()
        }),
        status: None,
    }
}

fn pod_prefix(index: usize) -> String {
    format!("10.{}.{}", (index >> 8) & 255, index & 255)
}

fn node_ip(index: usize) -> String {
    // Offset by one so no node gets a network address (`172.16.0.0`).
    let index = index + 1;
    format!(
        "172.{}.{}.{}",
        16 + ((index >> 16) & 15),
        (index >> 8) & 255,
        index & 255
    )
}

/// The node's status as a kubelet reports it.
fn node_status(config: &FakeNodesConfig, name: &str, ip: &str) -> Value {
    let now = now_rfc3339();
    let resources = json!({
        "cpu": config.cpu, "memory": config.memory, "pods": config.pods,
        "ephemeral-storage": "100Gi",
    });
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({"status": {
        "capacity": resources,
        "allocatable": resources,
        "phase": "Running",
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "kox-fake", "osImage": "kox fake node",
            "containerRuntimeVersion": "kox-fake://0.1.0",
            "kubeletVersion": "v1.32.0-kox-fake", "kubeProxyVersion": "v1.32.0-kox-fake",
            "operatingSystem": "linux", "architecture": "amd64",
        },
    }})
}

/// Creates (or adopts) every node and reports it Ready.
pub async fn register(client: &Client, config: &FakeNodesConfig) -> anyhow::Result<Nodes> {
    let api: Api<Node> = Api::all(client.clone());
    let results: Vec<anyhow::Result<FakeNode>> = futures::stream::iter(0..config.count)
        .map(|i| {
            let api = api.clone();
            async move {
                let obj = node_object(config, i);
                let name = obj.metadata.name.clone().unwrap_or_default();
                let created = match api.create(&PostParams::default(), &obj).await {
                    Ok(n) => n,
                    Err(kube::Error::Api(s)) if s.code == 409 => api.get(&name).await?,
                    Err(e) => return Err(anyhow::anyhow!("registering node {name}: {e}")),
                };
                let ip = node_ip(i);
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(node_status(config, &name, &ip)),
                )
                .await
                .map_err(|e| anyhow::anyhow!("reporting the status of node {name}: {e}"))?;
                Ok(FakeNode {
                    uid: created.metadata.uid.unwrap_or_default(),
                    name,
                    ip,
                    pod_prefix: pod_prefix(i),
                    index: i,
                    lease: Default::default(),
                })
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results
        .into_iter()
        .map(|r| r.map(|n| (n.name.clone(), n)))
        .collect()
}

/// How many heartbeats pass between two status reports of a node.
fn status_every(config: &FakeNodesConfig) -> u64 {
    let beat = config.heartbeat.as_secs_f64().max(0.001);
    ((config.status_report.as_secs_f64() / beat).round() as u64).max(1)
}

/// Whether node `index` reports its status in heartbeat round `round`: every
/// [`status_every`] rounds, each node in a different round, so the reports are spread too.
/// Round 0 reports nothing (registration just did).
fn reports_status(index: usize, round: u64, every: u64) -> bool {
    round > 0 && (round + index as u64).is_multiple_of(every)
}

/// Renews each node's Lease every heartbeat, in the node's own slot of the interval, and
/// reports its Ready status every [`FakeNodesConfig::status_report`], until `stop`.
///
/// As with independent kubelets, a slow answer does not hold the other nodes' renewals back:
/// up to [`HEARTBEATS_IN_FLIGHT`] requests wait at once; beyond that, the next slots wait (the
/// Lease lasts four heartbeats) instead of piling requests up.
pub async fn heartbeat(
    client: Client,
    config: Arc<FakeNodesConfig>,
    nodes: Arc<Nodes>,
    stop: CancellationToken,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let node_api: Api<Node> = Api::all(client);
    let mut slots: Vec<Vec<FakeNode>> = vec![Vec::new(); SLOTS];
    for node in nodes.values() {
        slots[node.index % SLOTS].push(node.clone());
    }
    let every = status_every(&config);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(HEARTBEATS_IN_FLIGHT));
    let mut tick = tokio::time::interval(config.heartbeat / SLOTS as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    loop {
        for slot in &slots {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            for node in slot {
                let permit = tokio::select! {
                    _ = stop.cancelled() => return,
                    p = in_flight.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                let (leases, node_api, config, node) = (
                    leases.clone(),
                    node_api.clone(),
                    config.clone(),
                    node.clone(),
                );
                let with_status = reports_status(node.index, round, every);
                tokio::spawn(async move {
                    let _permit = permit;
                    renew_lease(&leases, &node, config.heartbeat).await;
                    if with_status {
                        let status = node_status(&config, &node.name, &node.ip);
                        if let Err(e) = node_api
                            .patch_status(
                                &node.name,
                                &PatchParams::default(),
                                &Patch::Merge(status),
                            )
                            .await
                        {
                            tracing::debug!(node = %node.name, "status update: {e}");
                        }
                    }
                });
            }
        }
        round += 1;
    }
}

/// Renews the node's Lease as the kubelet's lease controller does: a PUT of the Lease last
/// written with a new `renewTime` (cheaper for the server than a patch); when that fails (a
/// conflict, the Lease gone) the Lease is read again, or created, and updated from there.
async fn renew_lease(leases: &Api<Lease>, node: &FakeNode, heartbeat: Duration) {
    let cached = node.lease.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(lease) = cached
        && let Ok(renewed) = update_renew_time(leases, node, lease).await
    {
        remember(node, Some(renewed));
        return;
    }
    let latest = match leases.get(&node.name).await {
        Ok(lease) => lease,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let created = leases
                .create(&PostParams::default(), &new_lease(node, heartbeat))
                .await;
            if let Err(e) = &created {
                tracing::debug!(node = %node.name, "creating lease: {e}");
            }
            remember(node, created.ok());
            return;
        }
        Err(e) => {
            tracing::debug!(node = %node.name, "reading lease: {e}");
            remember(node, None);
            return;
        }
    };
    match update_renew_time(leases, node, latest).await {
        Ok(renewed) => remember(node, Some(renewed)),
        Err(e) => {
            tracing::debug!(node = %node.name, "renewing lease: {e}");
            remember(node, None);
        }
    }
}

fn remember(node: &FakeNode, lease: Option<Lease>) {
    *node.lease.lock().unwrap_or_else(|e| e.into_inner()) = lease;
}

async fn update_renew_time(
    leases: &Api<Lease>,
    node: &FakeNode,
    mut lease: Lease,
) -> Result<Lease, kube::Error> {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
    spec.holder_identity = Some(node.name.clone());
    leases
        .replace(&node.name, &PostParams::default(), &lease)
        .await
}

fn new_lease(node: &FakeNode, heartbeat: Duration) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            namespace: Some("kube-node-lease".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.name.clone(),
                uid: node.uid.clone(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.name.clone()),
            lease_duration_seconds: Some((heartbeat.as_secs() * 4) as i32),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..LeaseSpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_distinct_names_addresses_and_pod_ranges() {
        let config = FakeNodesConfig {
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            ..FakeNodesConfig::default()
        };
        let n = node_object(&config, 257);
        assert_eq!(n.metadata.name.as_deref(), Some("fake-node-257"));
        let labels = n.metadata.labels.expect("labels");
        assert_eq!(labels["zone"], "a");
        assert_eq!(labels["kubernetes.io/hostname"], "fake-node-257");
        assert_eq!(
            n.spec.and_then(|s| s.pod_cidr).as_deref(),
            Some("10.1.1.0/24")
        );
        assert_eq!(node_ip(257), "172.16.1.2");
        assert_ne!(node_ip(0), node_ip(65536));
        assert_eq!(node_ip(0), "172.16.0.1");
    }

    #[test]
    fn zones_are_assigned_round_robin_only_when_asked() {
        let config = FakeNodesConfig {
            zones: 3,
            ..FakeNodesConfig::default()
        };
        let zone = |i| node_object(&config, i).metadata.labels.expect("labels")[ZONE_LABEL].clone();
        assert_eq!(
            [zone(0), zone(1), zone(2), zone(3)],
            ["zone-0", "zone-1", "zone-2", "zone-0"]
        );
        let plain = node_object(&FakeNodesConfig::default(), 0);
        assert!(
            !plain
                .metadata
                .labels
                .expect("labels")
                .contains_key(ZONE_LABEL)
        );
    }

    #[test]
    fn status_is_reported_every_five_minutes_spread_over_the_nodes() {
        // Lease every 10 s, status every 300 s: 30 rounds between two reports of a node.
        let config = FakeNodesConfig::default();
        let every = status_every(&config);
        assert_eq!(every, 30);
        // Each node reports once in any 30 consecutive rounds (after the first)...
        for index in [0, 1, 29, 4999] {
            let n = (1..=30)
                .filter(|&r| reports_status(index, r, every))
                .count();
            assert_eq!(n, 1, "node {index}");
        }
        // ...and in any round only a thirtieth of the nodes do.
        let in_round = (0..5000).filter(|&i| reports_status(i, 7, every)).count();
        assert!((166..=167).contains(&in_round), "{in_round}");
        assert!((0..5000).all(|i| !reports_status(i, 0, every)));
        let fast = FakeNodesConfig {
            heartbeat: Duration::from_secs(1),
            status_report: Duration::from_millis(500),
            ..FakeNodesConfig::default()
        };
        assert_eq!(status_every(&fast), 1);
    }
}
