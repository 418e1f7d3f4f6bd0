//! The node: registration, status (capacity from the machine, conditions, images, nodeInfo)
//! and the Lease heartbeat, as the kubelet's node status and lease controllers.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kox_api::quantity::{Format, Quantity};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{Agent, cri::api};

/// How often the Lease is renewed (the kubelet's default).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How often the status is reported when nothing changed (`nodeStatusReportFrequency`).
const STATUS_REPORT: Duration = Duration::from_secs(300);
/// How often the status is computed to see whether it changed.
const STATUS_CHECK: Duration = Duration::from_secs(10);
/// Images reported in the node's status at most (`nodeStatusMaxImages`).
const MAX_IMAGES: usize = 50;

/// The machine's resources as the kubelet reports them.
#[derive(Clone, Debug)]
pub struct Machine {
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    pub ephemeral_bytes: i64,
}

impl Machine {
    pub fn read(data_dir: &std::path::Path) -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        Machine {
            cpu_milli: cpus * 1000,
            memory_bytes: meminfo("MemTotal:").unwrap_or(0),
            ephemeral_bytes: disk_bytes(data_dir).map_or(0, |(total, _)| total),
        }
    }
}

/// A `/proc/meminfo` field in bytes.
pub fn meminfo(field: &str) -> Option<i64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_field(&text, field)
}

/// A field of `/proc/meminfo` text (`MemTotal:`, given in KiB) in bytes.
pub fn meminfo_field(text: &str, field: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What `statvfs` tells of a filesystem, in bytes and inodes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FsUsage {
    pub capacity: u64,
    /// Free to unprivileged users (what `df` calls available).
    pub available: u64,
    /// Used by anything (capacity less the free blocks, the root-reserved ones included).
    pub used: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// The filesystem holding `path`.
pub fn fs_usage(path: &std::path::Path) -> Option<FsUsage> {
    let st = rustix::fs::statvfs(path).ok()?;
    let block = st.f_frsize;
    Some(FsUsage {
        capacity: st.f_blocks * block,
        available: st.f_bavail * block,
        used: st.f_blocks.saturating_sub(st.f_bfree) * block,
        inodes: st.f_files,
        inodes_free: st.f_ffree,
    })
}

/// (total, available) bytes of the filesystem holding `path`.
pub fn disk_bytes(path: &std::path::Path) -> Option<(i64, i64)> {
    let fs = fs_usage(path)?;
    Some((fs.capacity as i64, fs.available as i64))
}

fn reserved(agent: &Agent, resource: &str) -> i64 {
    let sum = |m: &BTreeMap<String, Quantity>| {
        m.get(resource).map_or(0, |q| {
            if resource == "cpu" {
                q.milli_value()
            } else {
                q.value()
            }
        })
    };
    sum(&agent.config.kube_reserved) + sum(&agent.config.system_reserved)
}

fn resources(agent: &Agent, less_reserved: bool) -> Value {
    let m = &agent.machine;
    let minus = |r: &str| if less_reserved { reserved(agent, r) } else { 0 };
    // Allocatable leaves the hard eviction threshold out, as the kubelet's does.
    let memory_eviction = match (&agent.config.eviction_hard.memory_available, less_reserved) {
        (crate::eviction::Minimum::Bytes(b), true) => *b,
        (crate::eviction::Minimum::Fraction(f), true) => (m.memory_bytes as f64 * f) as i64,
        (_, false) => 0,
    };
    let cpu = Quantity::from_milli((m.cpu_milli - minus("cpu")).max(0), Format::DecimalSI);
    let memory_kib = (m.memory_bytes - minus("memory") - memory_eviction).max(0) / 1024;
    let storage = (m.ephemeral_bytes - minus("ephemeral-storage")).max(0);
    let storage = if less_reserved {
        storage / 10 * 9
    } else {
        storage
    };
    json!({
        "cpu": cpu.to_string(),
        "memory": format!("{memory_kib}Ki"),
        "ephemeral-storage": storage.to_string(),
        "pods": agent.config.max_pods.to_string(),
        "hugepages-1Gi": "0", "hugepages-2Mi": "0",
    })
}

/// The Node object the agent registers.
fn node_object(agent: &Agent) -> Node {
    let c = &agent.config;
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", c.node_name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", crate::oci::go_arch()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", crate::oci::go_arch()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(c.labels.clone());
    Node {
        metadata: ObjectMeta {
            name: Some(c.node_name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_string(),
                "0".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: (!c.taints.is_empty()).then(|| c.taints.clone()),
            pod_cidr: Some(c.pod_cidr.clone()),
            pod_cidrs: Some(vec![c.pod_cidr.clone()]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Registers the node (or takes over the Node of the same name, keeping its spec) and returns
/// its uid.
pub async fn register(agent: &Agent) -> Result<String> {
    let api: Api<Node> = Api::all(agent.client.clone());
    let obj = node_object(agent);
    let node = match api.create(&PostParams::default(), &obj).await {
        Ok(n) => n,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let labels = json!({"metadata": {"labels": obj.metadata.labels}});
            api.patch(
                &agent.config.node_name,
                &PatchParams::default(),
                &Patch::Merge(labels),
            )
            .await
            .context("updating the labels of the registered node")?
        }
        Err(e) => return Err(e).context(format!("registering node {}", agent.config.node_name)),
    };
    Ok(node.metadata.uid.unwrap_or_default())
}

fn text_of(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    let text = text_of("/etc/os-release");
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": if ok { "True" } else { "False" }, "reason": reason,
           "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now})
}

/// Why the node is not ready, from the runtime's own conditions; `None` when it is.
async fn not_ready_reason(agent: &Agent) -> Option<String> {
    let status = match agent
        .cri
        .runtime
        .clone()
        .status(api::StatusRequest { verbose: false })
        .await
    {
        Ok(s) => s.into_inner().status.unwrap_or_default(),
        Err(e) => return Some(format!("container runtime is down: {}", e.message())),
    };
    let failing: Vec<String> = status
        .conditions
        .iter()
        .filter(|c| !c.status)
        .map(|c| {
            format!(
                "{}=false reason:{} message:{}",
                c.r#type, c.reason, c.message
            )
        })
        .collect();
    (!failing.is_empty()).then(|| {
        let network = failing.iter().any(|f| f.starts_with("NetworkReady"));
        let what = if network {
            "container runtime network not ready"
        } else {
            "container runtime not ready"
        };
        format!("{what}: {}", failing.join(", "))
    })
}

async fn images(agent: &Agent) -> Vec<Value> {
    let Ok(list) = agent
        .cri
        .images
        .clone()
        .list_images(api::ListImagesRequest { filter: None })
        .await
    else {
        return Vec::new();
    };
    let mut images: Vec<_> = list.into_inner().images;
    images.sort_by_key(|i| std::cmp::Reverse(i.size));
    images
        .into_iter()
        .take(MAX_IMAGES)
        .map(|i| {
            let names: Vec<String> = i.repo_digests.iter().chain(&i.repo_tags).cloned().collect();
            json!({"names": names, "sizeBytes": i.size})
        })
        .collect()
}

/// The status as the kubelet reports it; `conditions` carry `now` as heartbeat.
async fn status(agent: &Agent, now: &str) -> Value {
    let c = &agent.config;
    let not_ready = not_ready_reason(agent).await;
    let thresholds = &agent.config.eviction_hard;
    let memory_pressure = crate::eviction::observe_memory(thresholds).pressure;
    let disk_pressure = crate::eviction::observe_disk(thresholds, &agent.config.data_dir).pressure;
    agent.pressure.set(memory_pressure, disk_pressure);
    let conditions = vec![
        if memory_pressure {
            condition(
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                now,
            )
        } else {
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                now,
            )
        },
        if disk_pressure {
            condition(
                "DiskPressure",
                true,
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
                now,
            )
        } else {
            condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                now,
            )
        },
        condition(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            now,
        ),
        match &not_ready {
            None => condition(
                "Ready",
                true,
                "KubeletReady",
                "kubelet is posting ready status",
                now,
            ),
            Some(why) => condition("Ready", false, "KubeletNotReady", why, now),
        },
    ];
    json!({
        "capacity": resources(agent, false),
        "allocatable": resources(agent, true),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": c.node_ip.to_string()},
            {"type": "Hostname", "address": c.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.api_port}},
        "nodeInfo": {
            "machineID": text_of("/etc/machine-id"),
            "systemUUID": text_of("/sys/class/dmi/id/product_uuid"),
            "bootID": text_of("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": text_of("/proc/sys/kernel/osrelease"),
            "osImage": os_image(),
            "containerRuntimeVersion": format!("{}://{}", agent.runtime_version.0, agent.runtime_version.1),
            "kubeletVersion": c.kubelet_version,
            "kubeProxyVersion": c.kubelet_version,
            "operatingSystem": "linux",
            "architecture": crate::oci::go_arch(),
        },
        "images": images(agent).await,
    })
}

/// `status` without the heartbeat times, to tell whether anything changed.
fn without_times(mut status: Value) -> Value {
    if let Some(conditions) = status["conditions"].as_array_mut() {
        for c in conditions {
            if let Some(c) = c.as_object_mut() {
                c.remove("lastHeartbeatTime");
                c.remove("lastTransitionTime");
            }
        }
    }
    status
}

/// Keeps the status current (on change, and every 5 minutes) and the Lease renewed.
pub async fn heartbeat(agent: std::sync::Arc<Agent>, node_uid: String, stop: CancellationToken) {
    let lease = tokio::spawn(lease_loop(agent.clone(), node_uid, stop.clone()));
    let nodes: Api<Node> = Api::all(agent.client.clone());
    let mut last: Option<(Value, tokio::time::Instant)> = None;
    let mut transitions: BTreeMap<String, (String, String)> = BTreeMap::new();
    loop {
        let now = crate::now_rfc3339();
        let mut status = status(&agent, &now).await;
        let plain = without_times(status.clone());
        let due = match &last {
            None => true,
            Some((prev, at)) => *prev != plain || at.elapsed() >= STATUS_REPORT,
        };
        if due {
            keep_transition_times(&mut status, &mut transitions, &now);
            let patch = json!({"status": status});
            match nodes
                .patch_status(
                    &agent.config.node_name,
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await
            {
                Ok(_) => last = Some((plain, tokio::time::Instant::now())),
                Err(e) => tracing::warn!("reporting the node's status: {e}"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(STATUS_CHECK) => {}
        }
    }
    let _ = lease.await;
}

/// A condition's `lastTransitionTime` stays until its status changes.
fn keep_transition_times(
    status: &mut Value,
    seen: &mut BTreeMap<String, (String, String)>,
    now: &str,
) {
    let Some(conditions) = status["conditions"].as_array_mut() else {
        return;
    };
    for c in conditions {
        let type_ = c["type"].as_str().unwrap_or("").to_string();
        let state = c["status"].as_str().unwrap_or("").to_string();
        let entry = seen
            .entry(type_)
            .or_insert_with(|| (state.clone(), now.to_string()));
        if entry.0 != state {
            *entry = (state, now.to_string());
        }
        c["lastTransitionTime"] = json!(entry.1);
    }
}

async fn lease_loop(agent: std::sync::Arc<Agent>, node_uid: String, stop: CancellationToken) {
    let leases: Api<Lease> = Api::namespaced(agent.client.clone(), "kube-node-lease");
    let name = agent.config.node_name.clone();
    let mut held: Option<Lease> = None;
    loop {
        held = renew(&leases, &name, &node_uid, held.take()).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(LEASE_RENEW) => {}
        }
    }
}

/// Renews the Lease (a PUT of the last one written; on failure read or create it again).
async fn renew(
    leases: &Api<Lease>,
    name: &str,
    node_uid: &str,
    held: Option<Lease>,
) -> Option<Lease> {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let mut lease = match held {
        Some(l) => l,
        None => match leases.get_opt(name).await {
            Ok(Some(l)) => l,
            Ok(None) => Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("kube-node-lease".into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: name.into(),
                        uid: node_uid.into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: None,
            },
            Err(e) => {
                tracing::warn!("reading the node's lease: {e}");
                return None;
            }
        },
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(name.into());
    spec.lease_duration_seconds = Some(40);
    spec.renew_time = Some(now);
    let written = if lease.metadata.resource_version.is_some() {
        leases.replace(name, &PostParams::default(), &lease).await
    } else {
        leases.create(&PostParams::default(), &lease).await
    };
    match written {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::debug!("renewing the node's lease: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_are_read_in_bytes() {
        let text = "MemTotal:       2048 kB\nMemFree:         512 kB\nBogus:\n";
        let cases = [
            ("MemTotal:", Some(2048 * 1024)),
            ("MemFree:", Some(512 * 1024)),
            ("Bogus:", None),
            ("SwapTotal:", None),
        ];
        for (field, want) in cases {
            assert_eq!(meminfo_field(text, field), want, "{field}");
        }
    }

    #[test]
    fn statvfs_describes_the_filesystem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = fs_usage(dir.path()).expect("statvfs");
        assert!(fs.capacity > 0 && fs.available <= fs.capacity && fs.used <= fs.capacity);
        assert!(fs.inodes_free <= fs.inodes);
        let (total, available) = disk_bytes(dir.path()).expect("disk bytes");
        assert_eq!(total as u64, fs.capacity);
        assert_eq!(available as u64, fs.available);
        assert_eq!(fs_usage(&dir.path().join("missing")), None);
    }
}
