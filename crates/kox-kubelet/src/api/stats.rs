//! Resource usage of the node and its pods, as the kubelet serves it to metrics-server,
//! `kubectl top` and the eviction tooling:
//!
//! - `GET /stats/summary` — the Summary API (`stats/v1alpha1`, upstream's JSON field names);
//!   `?only_cpu_and_memory=true` leaves the filesystems out.
//! - `GET /metrics/resource` — the same CPU and memory numbers in the Prometheus text format,
//!   as upstream's resource metrics collector writes them.
//!
//! Where the numbers come from:
//! - node CPU: `/proc/stat` (busy ticks of all CPUs); its start time is the boot time there;
//! - node memory: `/proc/meminfo` and `/proc/vmstat`, computed as cAdvisor computes the root
//!   cgroup's on cgroup v2 (where the root has no `memory.current`, runc reads `/proc/meminfo`):
//!   usage = MemTotal − MemFree, working set = usage − Inactive(file), available =
//!   MemTotal − working set, rss = AnonPages;
//! - node filesystem: `statvfs` of the data directory; image filesystem: the runtime's
//!   `ImageFsInfo` (bytes and inodes its images use) on the `statvfs` of its mountpoint;
//! - containers: CRI `ListContainerStats` (cumulative CPU, memory, writable layer) with start
//!   times from `ListContainers`, logs measured in the pod's log directory;
//! - pods: CRI `ListPodSandboxStats` (the pod cgroup) when the runtime answers it, otherwise the
//!   sum of the pod's containers; ephemeral storage is the containers' writable layers and the
//!   pod's logs.
//!
//! `usageNanoCores` is a rate: the previous cumulative reading of each container, pod and of
//! the node is kept in [`CpuRates`] and the rate taken between it and the current one, as
//! upstream's CRI stats provider does (a rate the runtime computed itself is used as is).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use http::{Response, StatusCode};
use kox_component::http_proxy::{Body, full};
use serde::{Serialize, Serializer};

use super::{ApiError, json};
use crate::Agent;
use crate::cri::api;
use crate::node::{FsUsage, fs_usage, meminfo_field};
use crate::pods::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID};

// ---------------------------------------------------------------------------------------------
// The Summary API's types (upstream's stats/v1alpha1 types.go).

/// A point in time, in nanoseconds since the epoch; written as `metav1.Time` is (RFC 3339 to
/// the second, `null` when unset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub i64);

impl Time {
    fn now() -> Time {
        Time(jiff::Timestamp::now().as_nanosecond() as i64)
    }
    fn millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 0 {
            return s.serialize_none();
        }
        match jiff::Timestamp::from_second(self.0.div_euclid(1_000_000_000)) {
            Ok(t) => s.serialize_str(&t.to_string()),
            Err(_) => s.serialize_none(),
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_fs: Option<FsStats>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: Time,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<FsStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<FsStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

impl FsStats {
    /// The filesystem's size and room, without usage (the caller knows what it measures).
    fn of(fs: &FsUsage, time: Time) -> FsStats {
        FsStats {
            time,
            available_bytes: Some(fs.available),
            capacity_bytes: Some(fs.capacity),
            inodes_free: Some(fs.inodes_free),
            inodes: Some(fs.inodes),
            ..FsStats::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU rates.

/// A cumulative CPU reading: core-nanoseconds used, at a time in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CpuSample {
    at: i64,
    used: u64,
}

/// Cores used between two readings, in nanocores; none when the counter went back (a
/// restarted container) or no time passed.
fn nano_cores(prev: CpuSample, cur: CpuSample) -> Option<u64> {
    let elapsed = cur.at - prev.at;
    if elapsed <= 0 || cur.used < prev.used {
        return None;
    }
    Some(((cur.used - prev.used) as f64 / elapsed as f64 * 1e9) as u64)
}

/// The last CPU reading of each container, pod and of the node (`/`), and the rate computed
/// with it; shared by the API's requests.
#[derive(Debug, Default)]
pub struct CpuRates {
    last: Mutex<HashMap<String, (CpuSample, Option<u64>)>>,
}

impl CpuRates {
    /// The rate for `key` at the reading `cur`. With `update`, the rate is taken against the
    /// previous reading and `cur` replaces it; without, the rate last computed is returned
    /// (as upstream's resource metrics leave the summary's window alone).
    fn rate(&self, key: &str, cur: CpuSample, update: bool) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let cached = last.get(key).copied();
        if !update {
            return cached.and_then(|(_, rate)| rate);
        }
        match cached {
            // The same reading again (the runtime caches its stats): the rate still holds.
            Some((prev, rate)) if cur.at == prev.at && cur.used == prev.used => rate,
            Some((prev, _)) if cur.at < prev.at => None,
            _ => {
                let rate = cached.and_then(|(prev, _)| nano_cores(prev, cur));
                last.insert(key.to_string(), (cur, rate));
                rate
            }
        }
    }

    /// Forgets what is no longer running.
    fn retain(&self, live: &HashSet<String>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.retain(|k, _| live.contains(k));
    }
}

/// The key of the node's own reading (cAdvisor's name for the root cgroup).
const NODE_KEY: &str = "/";

// ---------------------------------------------------------------------------------------------
// The node, from /proc.

/// (busy core-nanoseconds of all CPUs, boot time in seconds) from `/proc/stat` text; busy is
/// everything but idle and iowait (guest time is already in user and nice).
fn parse_proc_stat(text: &str, ticks_per_second: u64) -> Option<(u64, i64)> {
    let cpu = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal guest guest_nice
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    let boot = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let ns_per_tick = 1_000_000_000 / ticks_per_second.max(1);
    Some((busy * ns_per_tick, boot))
}

/// The node's memory from `/proc/meminfo` and `/proc/vmstat` text (see the module's doc).
fn node_memory(meminfo: &str, vmstat: &str, time: Time) -> Option<MemoryStats> {
    let field = |name: &str| meminfo_field(meminfo, name).map(|b| b.max(0) as u64);
    let total = field("MemTotal:")?;
    let usage = total.saturating_sub(field("MemFree:")?);
    let working_set = usage.saturating_sub(field("Inactive(file):").unwrap_or(0));
    let vm = |name: &str| {
        vmstat
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(MemoryStats {
        time,
        available_bytes: Some(total.saturating_sub(working_set)),
        usage_bytes: Some(usage),
        working_set_bytes: Some(working_set),
        rss_bytes: field("AnonPages:"),
        page_faults: vm("pgfault"),
        major_page_faults: vm("pgmajfault"),
    })
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The node's stats but its image filesystem.
fn node_stats(agent: &Agent, rates: &CpuRates, update: bool) -> NodeStats {
    let now = Time::now();
    let ticks = rustix::param::clock_ticks_per_second();
    let (busy, boot) = parse_proc_stat(&read("/proc/stat"), ticks).unwrap_or((0, 0));
    let sample = CpuSample {
        at: now.0,
        used: busy,
    };
    let fs = fs_usage(&agent.config.data_dir).map(|fs| FsStats {
        used_bytes: Some(fs.used),
        inodes_used: Some(fs.inodes.saturating_sub(fs.inodes_free)),
        ..FsStats::of(&fs, now)
    });
    NodeStats {
        node_name: agent.config.node_name.clone(),
        start_time: Time(boot * 1_000_000_000),
        cpu: Some(CpuStats {
            time: now,
            usage_nano_cores: rates.rate(NODE_KEY, sample, update),
            usage_core_nano_seconds: Some(busy),
        }),
        memory: node_memory(&read("/proc/meminfo"), &read("/proc/vmstat"), now),
        fs,
        runtime: None,
    }
}

/// The image filesystem: the runtime's usage on its mountpoint's filesystem.
fn image_fs(info: &api::ImageFsInfoResponse, now: Time) -> Option<FsStats> {
    let usage = info.image_filesystems.first()?;
    let mountpoint = usage.fs_id.as_ref().map(|f| f.mountpoint.as_str())?;
    let fs = fs_usage(Path::new(mountpoint))?;
    Some(FsStats {
        used_bytes: usage.used_bytes.as_ref().map(|v| v.value),
        inodes_used: usage.inodes_used.as_ref().map(|v| v.value),
        ..FsStats::of(
            &fs,
            if usage.timestamp > 0 {
                Time(usage.timestamp)
            } else {
                now
            },
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Pods and containers, from CRI.

/// A sandbox per pod: its ready ones, or the newest when none is (upstream's
/// `removeTerminatedPods`).
fn current_sandboxes(mut all: Vec<api::PodSandbox>) -> Vec<api::PodSandbox> {
    all.sort_by_key(|s| s.created_at);
    let mut by_pod: HashMap<String, Vec<api::PodSandbox>> = HashMap::new();
    for s in all {
        let uid = s
            .metadata
            .as_ref()
            .map(|m| m.uid.clone())
            .unwrap_or_default();
        by_pod.entry(uid).or_default().push(s);
    }
    let ready = api::PodSandboxState::SandboxReady as i32;
    by_pod
        .into_values()
        .flat_map(|mut list| {
            if list.iter().any(|s| s.state == ready) {
                list.retain(|s| s.state == ready);
            } else {
                list.drain(..list.len() - 1);
            }
            list
        })
        .collect()
}

/// A container per sandbox and name: the running ones, or the newest when none runs
/// (upstream's `removeTerminatedContainers`).
fn current_containers(mut all: Vec<api::Container>) -> Vec<api::Container> {
    all.sort_by_key(|c| c.created_at);
    let mut by_name: HashMap<(String, String), Vec<api::Container>> = HashMap::new();
    for c in all {
        let name = c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        by_name
            .entry((c.pod_sandbox_id.clone(), name))
            .or_default()
            .push(c);
    }
    let running = api::ContainerState::ContainerRunning as i32;
    by_name
        .into_values()
        .flat_map(|mut list| {
            if list.iter().any(|c| c.state == running) {
                list.retain(|c| c.state == running);
            } else {
                list.drain(..list.len() - 1);
            }
            list
        })
        .collect()
}

fn value(v: &Option<api::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

/// CPU stats from a CRI reading; `key` names its rate. No reading at all reads as zero, as
/// upstream reports it.
fn cpu_stats(usage: Option<&api::CpuUsage>, key: &str, rates: &CpuRates, update: bool) -> CpuStats {
    let Some(cpu) = usage else {
        return CpuStats {
            time: Time::now(),
            usage_nano_cores: Some(0),
            usage_core_nano_seconds: Some(0),
        };
    };
    let used = value(&cpu.usage_core_nano_seconds);
    let rate = match (value(&cpu.usage_nano_cores), used) {
        (Some(from_runtime), _) => Some(from_runtime),
        (None, Some(used)) => rates.rate(
            key,
            CpuSample {
                at: cpu.timestamp,
                used,
            },
            update,
        ),
        (None, None) => None,
    };
    CpuStats {
        time: Time(cpu.timestamp),
        usage_nano_cores: rate,
        usage_core_nano_seconds: used,
    }
}

fn memory_stats(usage: Option<&api::MemoryUsage>) -> MemoryStats {
    let Some(m) = usage else {
        return MemoryStats {
            time: Time::now(),
            working_set_bytes: Some(0),
            ..MemoryStats::default()
        };
    };
    MemoryStats {
        time: Time(m.timestamp),
        available_bytes: value(&m.available_bytes),
        usage_bytes: value(&m.usage_bytes),
        working_set_bytes: value(&m.working_set_bytes),
        rss_bytes: value(&m.rss_bytes),
        page_faults: value(&m.page_faults),
        major_page_faults: value(&m.major_page_faults),
    }
}

/// The writable layer's usage on its filesystem (`fs` by its mountpoint).
fn rootfs_stats(layer: &api::FilesystemUsage, fs: Option<&FsUsage>) -> FsStats {
    let time = Time(layer.timestamp);
    let base = fs.map_or_else(
        || FsStats {
            time,
            ..FsStats::default()
        },
        |fs| FsStats::of(fs, time),
    );
    FsStats {
        used_bytes: value(&layer.used_bytes),
        inodes_used: value(&layer.inodes_used),
        ..base
    }
}

/// Sums of a pod's containers, for a runtime without pod sandbox stats (the pod cgroup's own
/// overhead is then missing; available bytes are left out, the pod's limit being unknown).
fn sum_cpu(containers: &[ContainerStats]) -> Option<CpuStats> {
    let cpus: Vec<&CpuStats> = containers.iter().filter_map(|c| c.cpu.as_ref()).collect();
    let time = cpus.iter().map(|c| c.time).max()?;
    let sum = |f: fn(&CpuStats) -> Option<u64>| cpus.iter().map(|c| f(c)).sum::<Option<u64>>();
    Some(CpuStats {
        time,
        usage_nano_cores: sum(|c| c.usage_nano_cores),
        usage_core_nano_seconds: sum(|c| c.usage_core_nano_seconds),
    })
}

fn sum_memory(containers: &[ContainerStats]) -> Option<MemoryStats> {
    let mems: Vec<&MemoryStats> = containers
        .iter()
        .filter_map(|c| c.memory.as_ref())
        .collect();
    let time = mems.iter().map(|m| m.time).max()?;
    let sum = |f: fn(&MemoryStats) -> Option<u64>| mems.iter().map(|m| f(m)).sum::<Option<u64>>();
    Some(MemoryStats {
        time,
        available_bytes: None,
        usage_bytes: sum(|m| m.usage_bytes),
        working_set_bytes: sum(|m| m.working_set_bytes),
        rss_bytes: sum(|m| m.rss_bytes),
        page_faults: sum(|m| m.page_faults),
        major_page_faults: sum(|m| m.major_page_faults),
    })
}

/// Bytes and entries under `dir` (not following links); zero when it does not exist.
fn dir_usage(dir: &Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries.flatten().fold((0, 0), |(bytes, inodes), e| {
        let Ok(meta) = e.metadata() else {
            return (bytes, inodes);
        };
        let (b, i) = if meta.is_dir() {
            dir_usage(&e.path())
        } else {
            (0, 0)
        };
        (bytes + meta.len() + b, inodes + 1 + i)
    })
}

/// Usage of a log directory on the node's filesystem.
fn logs_stats(dir: &Path, nodefs: Option<&FsUsage>, time: Time) -> FsStats {
    let (bytes, inodes) = dir_usage(dir);
    let base = nodefs.map_or_else(
        || FsStats {
            time,
            ..FsStats::default()
        },
        |fs| FsStats::of(fs, time),
    );
    FsStats {
        used_bytes: Some(bytes),
        inodes_used: Some(inodes),
        ..base
    }
}

/// The pod's ephemeral storage: its containers' writable layers and its logs, on the node's
/// filesystem.
fn ephemeral_storage(
    containers: &[ContainerStats],
    pod_logs: &FsStats,
    nodefs: Option<&FsUsage>,
    time: Time,
) -> FsStats {
    let base = nodefs.map_or_else(
        || FsStats {
            time,
            ..FsStats::default()
        },
        |fs| FsStats::of(fs, time),
    );
    let rootfs = |f: fn(&FsStats) -> Option<u64>| {
        containers
            .iter()
            .filter_map(|c| c.rootfs.as_ref().and_then(f))
            .sum::<u64>()
    };
    FsStats {
        used_bytes: Some(rootfs(|r| r.used_bytes) + pod_logs.used_bytes.unwrap_or(0)),
        inodes_used: Some(rootfs(|r| r.inodes_used) + pod_logs.inodes_used.unwrap_or(0)),
        ..base
    }
}

/// What the runtime answered, for one summary.
#[derive(Debug, Default)]
struct Runtime {
    sandboxes: Vec<api::PodSandbox>,
    containers: Vec<api::Container>,
    stats: Vec<api::ContainerStats>,
    /// Pod sandbox stats by sandbox id; empty when the runtime has none to give.
    pod_stats: HashMap<String, api::LinuxPodSandboxStats>,
    image_fs: Option<api::ImageFsInfoResponse>,
}

async fn ask_runtime(agent: &Agent, with_fs: bool) -> Result<Runtime, ApiError> {
    // A client per concurrent call (clones share the one connection).
    let runtime = &agent.cri.runtime;
    let (mut for_sandboxes, mut for_containers) = (runtime.clone(), runtime.clone());
    let (mut for_stats, mut for_pod_stats) = (runtime.clone(), runtime.clone());
    let mut images = agent.cri.images.clone();
    let fail = |what: &str, e: tonic::Status| {
        ApiError::internal(format!(
            "failed to get summary stats: {what}: {}",
            e.message()
        ))
    };
    let (sandboxes, containers, stats, pod_stats) = tokio::join!(
        for_sandboxes.list_pod_sandbox(api::ListPodSandboxRequest { filter: None }),
        for_containers.list_containers(api::ListContainersRequest { filter: None }),
        for_stats.list_container_stats(api::ListContainerStatsRequest { filter: None }),
        // An empty filter, not none: containerd then skips sandboxes that are not ready
        // (without one it fails the whole list on the first stopped sandbox).
        for_pod_stats.list_pod_sandbox_stats(api::ListPodSandboxStatsRequest {
            filter: Some(api::PodSandboxStatsFilter::default()),
        }),
    );
    let image_fs = if with_fs {
        images
            .image_fs_info(api::ImageFsInfoRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    } else {
        None
    };
    Ok(Runtime {
        sandboxes: sandboxes
            .map_err(|e| fail("listing pod sandboxes", e))?
            .into_inner()
            .items,
        containers: containers
            .map_err(|e| fail("listing containers", e))?
            .into_inner()
            .containers,
        stats: stats
            .map_err(|e| fail("listing container stats", e))?
            .into_inner()
            .stats,
        pod_stats: pod_stats_by_sandbox(pod_stats),
        image_fs,
    })
}

/// Pod sandbox stats by sandbox id. containerd 1.6 answers the call but reads the pod's
/// cgroup parent, which pods run here are created without, so it fails; any failure means
/// summing containers instead (upstream falls back only on Unimplemented).
fn pod_stats_by_sandbox(
    answer: Result<tonic::Response<api::ListPodSandboxStatsResponse>, tonic::Status>,
) -> HashMap<String, api::LinuxPodSandboxStats> {
    let Ok(answer) = answer else {
        return HashMap::new();
    };
    answer
        .into_inner()
        .stats
        .into_iter()
        .filter_map(|s| Some((s.attributes?.id, s.linux?)))
        .collect()
}

fn label<'a>(labels: &'a HashMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map_or("", String::as_str)
}

fn pod_ref(sandbox: &api::PodSandbox) -> PodReference {
    match &sandbox.metadata {
        Some(m) => PodReference {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
        },
        None => PodReference {
            name: label(&sandbox.labels, POD_NAME).into(),
            namespace: label(&sandbox.labels, POD_NAMESPACE).into(),
            uid: label(&sandbox.labels, POD_UID).into(),
        },
    }
}

/// Everything a summary is made of, collected.
struct Inputs<'a> {
    agent: &'a Agent,
    rates: &'a CpuRates,
    update: bool,
    with_fs: bool,
    nodefs: Option<FsUsage>,
    now: Time,
}

impl Inputs<'_> {
    fn container(
        &self,
        c: &api::Container,
        s: &api::ContainerStats,
        uid: &str,
        fs: &mut HashMap<String, Option<FsUsage>>,
    ) -> ContainerStats {
        let name = c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_else(|| {
                let labels = s.attributes.as_ref().map(|a| &a.labels);
                labels.map_or(String::new(), |l| label(l, CONTAINER_NAME).into())
            });
        let mut stats = ContainerStats {
            name,
            start_time: Time(c.created_at),
            cpu: Some(cpu_stats(s.cpu.as_ref(), &c.id, self.rates, self.update)),
            memory: Some(memory_stats(s.memory.as_ref())),
            ..ContainerStats::default()
        };
        if self.with_fs {
            stats.rootfs = s.writable_layer.as_ref().map(|layer| {
                let mountpoint = layer.fs_id.as_ref().map_or("", |f| f.mountpoint.as_str());
                let on = fs
                    .entry(mountpoint.to_string())
                    .or_insert_with(|| fs_usage(Path::new(mountpoint)));
                rootfs_stats(layer, on.as_ref())
            });
            let dir = self.log_dir(uid).join(&stats.name);
            stats.logs = Some(logs_stats(&dir, self.nodefs.as_ref(), self.now));
        }
        stats
    }

    /// A pod's log directory, as its worker makes it.
    fn log_dir(&self, uid: &str) -> std::path::PathBuf {
        self.agent.config.pods_dir().join(uid).join("logs")
    }

    fn pods(&self, rt: &Runtime) -> (Vec<PodStats>, HashSet<String>) {
        let sandboxes: HashMap<&str, &api::PodSandbox> =
            rt.sandboxes.iter().map(|s| (s.id.as_str(), s)).collect();
        let stats: HashMap<&str, &api::ContainerStats> = rt
            .stats
            .iter()
            .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s)))
            .collect();
        let mut fs_by_mountpoint = HashMap::new();
        let mut pods: HashMap<&str, PodStats> = HashMap::new();
        let mut live = HashSet::from([NODE_KEY.to_string()]);
        for c in &rt.containers {
            let (Some(sandbox), Some(s)) = (
                sandboxes.get(c.pod_sandbox_id.as_str()),
                stats.get(c.id.as_str()),
            ) else {
                continue;
            };
            let pod = pods.entry(sandbox.id.as_str()).or_insert_with(|| PodStats {
                pod_ref: pod_ref(sandbox),
                start_time: Time(sandbox.created_at),
                ..PodStats::default()
            });
            let uid = pod.pod_ref.uid.clone();
            pod.containers
                .push(self.container(c, s, &uid, &mut fs_by_mountpoint));
            live.insert(c.id.clone());
        }
        let pods = pods
            .into_iter()
            .map(|(id, mut pod)| {
                self.pod_totals(&mut pod, rt.pod_stats.get(id), id);
                live.insert(format!("pod/{id}"));
                pod
            })
            .collect();
        (pods, live)
    }

    fn pod_totals(
        &self,
        pod: &mut PodStats,
        sandbox: Option<&api::LinuxPodSandboxStats>,
        id: &str,
    ) {
        pod.containers.sort_by(|a, b| a.name.cmp(&b.name));
        match sandbox {
            Some(s) => {
                pod.cpu = Some(cpu_stats(
                    s.cpu.as_ref(),
                    &format!("pod/{id}"),
                    self.rates,
                    self.update,
                ));
                pod.memory = Some(memory_stats(s.memory.as_ref()));
            }
            None => {
                pod.cpu = sum_cpu(&pod.containers);
                pod.memory = sum_memory(&pod.containers);
            }
        }
        if self.with_fs {
            let logs = logs_stats(&self.log_dir(&pod.pod_ref.uid), None, self.now);
            pod.ephemeral_storage = Some(ephemeral_storage(
                &pod.containers,
                &logs,
                self.nodefs.as_ref(),
                self.now,
            ));
        }
    }
}

/// The node's summary. With `update`, CPU rates move to this reading (the summary's
/// behaviour); without, the last rates are reported. Without `with_fs`, CPU and memory only.
pub async fn summary(
    agent: &Agent,
    rates: &CpuRates,
    update: bool,
    with_fs: bool,
) -> Result<Summary, ApiError> {
    let rt = ask_runtime(agent, with_fs).await?;
    let rt = Runtime {
        sandboxes: current_sandboxes(rt.sandboxes),
        containers: current_containers(rt.containers),
        ..rt
    };
    let mut node = node_stats(agent, rates, update);
    let inputs = Inputs {
        agent,
        rates,
        update,
        with_fs,
        nodefs: fs_usage(&agent.config.data_dir),
        now: Time::now(),
    };
    if with_fs {
        let image_fs = rt.image_fs.as_ref().and_then(|i| image_fs(i, inputs.now));
        node.runtime = Some(RuntimeStats { image_fs });
    } else {
        node.fs = None;
    }
    let (mut pods, live) = inputs.pods(&rt);
    if update {
        rates.retain(&live);
    }
    pods.sort_by(|a, b| a.pod_ref.cmp(&b.pod_ref));
    Ok(Summary { node, pods })
}

/// `GET /stats/summary`.
pub async fn serve_summary(
    agent: &Agent,
    rates: &CpuRates,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let only_cpu_and_memory = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "only_cpu_and_memory" && v == "true");
    let summary = summary(agent, rates, true, !only_cpu_and_memory).await?;
    let body = serde_json::to_value(&summary)
        .map_err(|e| ApiError::internal(format!("encoding the summary: {e}")))?;
    Ok(json(StatusCode::OK, &body))
}

// ---------------------------------------------------------------------------------------------
// /metrics/resource.

/// A metric family as upstream declares it.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
}

const NODE_CPU: Family = Family {
    name: "node_cpu_usage_seconds_total",
    help: "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    kind: "counter",
};
const NODE_MEMORY: Family = Family {
    name: "node_memory_working_set_bytes",
    help: "[STABLE] Current working set of the node in bytes",
    kind: "gauge",
};
const CONTAINER_CPU: Family = Family {
    name: "container_cpu_usage_seconds_total",
    help: "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    kind: "counter",
};
const CONTAINER_MEMORY: Family = Family {
    name: "container_memory_working_set_bytes",
    help: "[STABLE] Current working set of the container in bytes",
    kind: "gauge",
};
const CONTAINER_START: Family = Family {
    name: "container_start_time_seconds",
    help: "[STABLE] Start time of the container since unix epoch in seconds",
    kind: "gauge",
};
const POD_CPU: Family = Family {
    name: "pod_cpu_usage_seconds_total",
    help: "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    kind: "counter",
};
const POD_MEMORY: Family = Family {
    name: "pod_memory_working_set_bytes",
    help: "[STABLE] Current working set of the pod in bytes",
    kind: "gauge",
};
const RESOURCE_SCRAPE_ERROR: Family = Family {
    name: "resource_scrape_error",
    help: "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    kind: "gauge",
};
// Deprecated upstream in 1.29 in favour of resource_scrape_error; still written for scrapers
// that read it.
const SCRAPE_ERROR: Family = Family {
    name: "scrape_error",
    help: "[ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise",
    kind: "gauge",
};

/// One sample: label pairs (in name order), value, timestamp in milliseconds.
type Sample = (Vec<(&'static str, String)>, f64, Option<i64>);

/// A float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it, as upstream's Prometheus
/// text does: the shortest digits that read back the same, in exponent form (two exponent
/// digits at least) when the exponent is below -4 or 6 and up (`1.2627968e+07`).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// A label value escaped as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn write_family(out: &mut String, family: &Family, mut samples: Vec<Sample>) {
    if samples.is_empty() {
        return;
    }
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    out.push_str(&format!(
        "# HELP {} {}\n# TYPE {} {}\n",
        family.name, family.help, family.name, family.kind
    ));
    for (labels, v, ts) in samples {
        out.push_str(family.name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            out.push_str(&format!("{{{}}}", pairs.join(",")));
        }
        out.push(' ');
        out.push_str(&go_float(v));
        if let Some(ts) = ts {
            out.push_str(&format!(" {ts}"));
        }
        out.push('\n');
    }
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn cpu_sample(labels: Vec<(&'static str, String)>, cpu: &Option<CpuStats>) -> Option<Sample> {
    let cpu = cpu.as_ref()?;
    Some((
        labels,
        seconds(cpu.usage_core_nano_seconds?),
        Some(cpu.time.millis()),
    ))
}

fn memory_sample(labels: Vec<(&'static str, String)>, m: &Option<MemoryStats>) -> Option<Sample> {
    let m = m.as_ref()?;
    Some((labels, m.working_set_bytes? as f64, Some(m.time.millis())))
}

/// The resource metrics of a summary, or only the scrape error when there is none; families
/// in name order, as the registry writes them.
fn render_metrics(summary: Option<&Summary>) -> String {
    let mut out = String::new();
    if let Some(s) = summary {
        let container_labels = |p: &PodStats, c: &ContainerStats| {
            vec![
                ("container", c.name.clone()),
                ("namespace", p.pod_ref.namespace.clone()),
                ("pod", p.pod_ref.name.clone()),
            ]
        };
        let pod_labels = |p: &PodStats| {
            vec![
                ("namespace", p.pod_ref.namespace.clone()),
                ("pod", p.pod_ref.name.clone()),
            ]
        };
        let containers = || {
            s.pods
                .iter()
                .flat_map(|p| p.containers.iter().map(move |c| (p, c)))
        };
        write_family(
            &mut out,
            &CONTAINER_CPU,
            containers()
                .filter_map(|(p, c)| cpu_sample(container_labels(p, c), &c.cpu))
                .collect(),
        );
        write_family(
            &mut out,
            &CONTAINER_MEMORY,
            containers()
                .filter_map(|(p, c)| memory_sample(container_labels(p, c), &c.memory))
                .collect(),
        );
        write_family(
            &mut out,
            &CONTAINER_START,
            containers()
                .filter(|(_, c)| c.start_time.0 >= 1_000_000_000)
                .map(|(p, c)| (container_labels(p, c), c.start_time.0 as f64 / 1e9, None))
                .collect(),
        );
        write_family(
            &mut out,
            &NODE_CPU,
            cpu_sample(vec![], &s.node.cpu).into_iter().collect(),
        );
        write_family(
            &mut out,
            &NODE_MEMORY,
            memory_sample(vec![], &s.node.memory).into_iter().collect(),
        );
        write_family(
            &mut out,
            &POD_CPU,
            s.pods
                .iter()
                .filter_map(|p| cpu_sample(pod_labels(p), &p.cpu))
                .collect(),
        );
        write_family(
            &mut out,
            &POD_MEMORY,
            s.pods
                .iter()
                .filter_map(|p| memory_sample(pod_labels(p), &p.memory))
                .collect(),
        );
    }
    let error = if summary.is_some() { 0.0 } else { 1.0 };
    write_family(
        &mut out,
        &RESOURCE_SCRAPE_ERROR,
        vec![(vec![], error, None)],
    );
    write_family(&mut out, &SCRAPE_ERROR, vec![(vec![], error, None)]);
    out
}

/// `GET /metrics/resource`.
pub async fn serve_resource_metrics(agent: &Agent, rates: &CpuRates) -> Response<Body> {
    let summary = match summary(agent, rates, false, false).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("resource metrics: {}", e.message);
            None
        }
    };
    let mut resp = Response::new(full(render_metrics(summary.as_ref())));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, used: i64) -> CpuSample {
        CpuSample {
            at,
            used: used as u64,
        }
    }

    #[test]
    fn nano_cores_is_the_rate_between_readings() {
        let cases = [
            // (previous, current, rate)
            (
                sample(0, 0),
                sample(1_000_000_000, 500_000_000),
                Some(500_000_000),
            ),
            (
                sample(0, 0),
                sample(2_000_000_000, 3_000_000_000),
                Some(1_500_000_000),
            ),
            (sample(10, 100), sample(10, 200), None),
            (sample(10, 100), sample(5, 200), None),
            (sample(0, 900), sample(1_000_000_000, 100), None),
            (sample(0, 7), sample(1_000_000_000, 7), Some(0)),
        ];
        for (prev, cur, want) in cases {
            assert_eq!(nano_cores(prev, cur), want, "{prev:?} -> {cur:?}");
        }
    }

    #[test]
    fn rates_need_two_readings_and_survive_a_repeated_one() {
        let rates = CpuRates::default();
        let s = 1_000_000_000;
        // (reading, update, rate)
        let steps = [
            (sample(s, s), true, None),
            (sample(2 * s, 2 * s), true, Some(1_000_000_000)),
            (sample(2 * s, 2 * s), true, Some(1_000_000_000)),
            (sample(3 * s, 2 * s), false, Some(1_000_000_000)),
            (sample(4 * s, 2 * s + s / 4), true, Some(125_000_000)),
            // A restart: the counter starts again, no rate until the next reading.
            (sample(5 * s, 10), true, None),
            (sample(6 * s, 10 + s / 2), true, Some(500_000_000)),
        ];
        for (i, (reading, update, want)) in steps.into_iter().enumerate() {
            assert_eq!(rates.rate("c1", reading, update), want, "step {i}");
        }
        assert_eq!(rates.rate("other", sample(s, s), false), None);
        rates.retain(&HashSet::new());
        assert_eq!(rates.rate("c1", sample(7 * s, s), true), None);
    }

    #[test]
    fn proc_stat_gives_busy_time_and_boot() {
        let text =
            "cpu  100 20 30 4000 50 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\nbtime 1700000000\n";
        let cases = [
            (text, 100, Some((171 * 10_000_000, 1_700_000_000))),
            (text, 1000, Some((171 * 1_000_000, 1_700_000_000))),
            ("cpu  1 1 1 1\n", 100, Some((30_000_000, 0))),
            ("intr 5\n", 100, None),
        ];
        for (text, hz, want) in cases {
            assert_eq!(parse_proc_stat(text, hz), want, "{text:?}");
        }
    }

    #[test]
    fn node_memory_follows_cadvisor_for_the_root() {
        let meminfo = "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\n\
                       AnonPages:       300 kB\nInactive(file):  100 kB\n";
        let vmstat = "pgfault 12345\npgmajfault 67\npgfault_extra 1\n";
        let got = node_memory(meminfo, vmstat, Time(5)).expect("parsed");
        assert_eq!(
            got,
            MemoryStats {
                time: Time(5),
                available_bytes: Some(300 * 1024),
                usage_bytes: Some(800 * 1024),
                working_set_bytes: Some(700 * 1024),
                rss_bytes: Some(300 * 1024),
                page_faults: Some(12345),
                major_page_faults: Some(67),
            }
        );
        assert_eq!(node_memory("MemFree: 1 kB\n", "", Time(5)), None);
        let bare = node_memory("MemTotal: 10 kB\nMemFree: 4 kB\n", "", Time(5)).expect("parsed");
        assert_eq!(bare.working_set_bytes, Some(6 * 1024));
        assert_eq!(bare.page_faults, None);
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (4.67812, "4.67812"),
            (10.0, "10"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (12627968.0, "1.2627968e+07"),
            (1.7e9 + 0.5, "1.7000000005e+09"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-10, "1.5e-10"),
            (1e100, "1e+100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    fn sandbox(
        id: &str,
        uid: &str,
        state: api::PodSandboxState,
        created_at: i64,
    ) -> api::PodSandbox {
        api::PodSandbox {
            id: id.into(),
            metadata: Some(api::PodSandboxMetadata {
                name: "p".into(),
                uid: uid.into(),
                namespace: "ns".into(),
                attempt: 0,
            }),
            state: state as i32,
            created_at,
            ..Default::default()
        }
    }

    fn container(
        id: &str,
        sandbox: &str,
        name: &str,
        state: api::ContainerState,
        created_at: i64,
    ) -> api::Container {
        api::Container {
            id: id.into(),
            pod_sandbox_id: sandbox.into(),
            metadata: Some(api::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            state: state as i32,
            created_at,
            ..Default::default()
        }
    }

    fn ids<T>(list: Vec<T>, id: fn(&T) -> &str) -> Vec<String> {
        let mut ids: Vec<String> = list.iter().map(|x| id(x).to_string()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn terminated_sandboxes_and_containers_are_dropped_when_newer_ones_exist() {
        use api::ContainerState::{ContainerExited, ContainerRunning};
        use api::PodSandboxState::{SandboxNotready, SandboxReady};
        let cases = [
            (
                vec![
                    sandbox("a", "u1", SandboxNotready, 1),
                    sandbox("b", "u1", SandboxReady, 2),
                ],
                vec!["b"],
            ),
            (
                vec![
                    sandbox("a", "u1", SandboxNotready, 1),
                    sandbox("b", "u1", SandboxNotready, 2),
                ],
                vec!["b"],
            ),
            (
                vec![
                    sandbox("a", "u1", SandboxReady, 1),
                    sandbox("b", "u2", SandboxNotready, 2),
                ],
                vec!["a", "b"],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ids(current_sandboxes(input), |s| &s.id), want);
        }
        let cases = [
            (
                vec![
                    container("1", "s", "app", ContainerExited, 1),
                    container("2", "s", "app", ContainerRunning, 2),
                ],
                vec!["2"],
            ),
            (
                vec![
                    container("1", "s", "app", ContainerExited, 1),
                    container("2", "s", "app", ContainerExited, 2),
                ],
                vec!["2"],
            ),
            (
                vec![
                    container("1", "s", "app", ContainerRunning, 1),
                    container("2", "s", "side", ContainerExited, 2),
                ],
                vec!["1", "2"],
            ),
            (
                vec![
                    container("1", "s", "app", ContainerRunning, 1),
                    container("2", "t", "app", ContainerRunning, 2),
                ],
                vec!["1", "2"],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ids(current_containers(input), |c| &c.id), want);
        }
    }

    fn u(v: u64) -> Option<api::UInt64Value> {
        Some(api::UInt64Value { value: v })
    }

    #[test]
    fn container_cpu_takes_the_runtime_rate_or_computes_one() {
        let rates = CpuRates::default();
        let reading = |at: i64, used: u64, nano: Option<u64>| api::CpuUsage {
            timestamp: at,
            usage_core_nano_seconds: u(used),
            usage_nano_cores: nano.and_then(u),
        };
        let (s, ns) = (1_000_000_000i64, 1_000_000_000u64);
        let first = cpu_stats(Some(&reading(s, 0, None)), "c", &rates, true);
        assert_eq!(first.usage_nano_cores, None);
        let second = cpu_stats(Some(&reading(2 * s, ns / 10, None)), "c", &rates, true);
        assert_eq!(second.usage_nano_cores, Some(100_000_000));
        assert_eq!(second.usage_core_nano_seconds, Some(ns / 10));
        assert_eq!(second.time, Time(2 * s));
        let given = cpu_stats(Some(&reading(3 * s, ns, Some(42))), "c", &rates, true);
        assert_eq!(given.usage_nano_cores, Some(42));
        let none = cpu_stats(None, "c", &rates, true);
        assert_eq!(
            (none.usage_nano_cores, none.usage_core_nano_seconds),
            (Some(0), Some(0))
        );
    }

    fn stats_of(
        cpu: Option<(i64, u64, Option<u64>)>,
        mem: Option<(i64, u64)>,
        rootfs: Option<u64>,
    ) -> ContainerStats {
        ContainerStats {
            name: "c".into(),
            cpu: cpu.map(|(t, used, nano)| CpuStats {
                time: Time(t),
                usage_nano_cores: nano,
                usage_core_nano_seconds: Some(used),
            }),
            memory: mem.map(|(t, ws)| MemoryStats {
                time: Time(t),
                working_set_bytes: Some(ws),
                usage_bytes: Some(ws * 2),
                ..MemoryStats::default()
            }),
            rootfs: rootfs.map(|b| FsStats {
                used_bytes: Some(b),
                inodes_used: Some(1),
                ..FsStats::default()
            }),
            ..ContainerStats::default()
        }
    }

    #[test]
    fn pod_totals_sum_the_containers() {
        let cases = [
            (vec![], None, None),
            (
                vec![
                    stats_of(Some((5, 10, Some(1))), Some((5, 100)), None),
                    stats_of(Some((7, 20, Some(2))), Some((6, 50)), None),
                ],
                Some((7, 30, Some(3))),
                Some((6, 150, 300)),
            ),
            // A container without a rate yet: the pod has none either.
            (
                vec![
                    stats_of(Some((5, 10, None)), None, None),
                    stats_of(Some((7, 20, Some(2))), None, None),
                ],
                Some((7, 30, None)),
                None,
            ),
        ];
        for (containers, cpu, memory) in cases {
            let got_cpu = sum_cpu(&containers).map(|c| {
                (
                    c.time.0,
                    c.usage_core_nano_seconds.unwrap_or(0),
                    c.usage_nano_cores,
                )
            });
            assert_eq!(got_cpu, cpu);
            let got_mem = sum_memory(&containers).map(|m| {
                (
                    m.time.0,
                    m.working_set_bytes.unwrap_or(0),
                    m.usage_bytes.unwrap_or(0),
                )
            });
            assert_eq!(got_mem, memory);
        }
    }

    #[test]
    fn ephemeral_storage_adds_writable_layers_and_logs() {
        let fs = FsUsage {
            capacity: 1000,
            available: 400,
            used: 500,
            inodes: 50,
            inodes_free: 20,
        };
        let logs = FsStats {
            used_bytes: Some(7),
            inodes_used: Some(2),
            ..FsStats::default()
        };
        let containers = [
            stats_of(None, None, Some(30)),
            stats_of(None, None, None),
            stats_of(None, None, Some(5)),
        ];
        let got = ephemeral_storage(&containers, &logs, Some(&fs), Time(9));
        assert_eq!(
            got,
            FsStats {
                time: Time(9),
                available_bytes: Some(400),
                capacity_bytes: Some(1000),
                used_bytes: Some(42),
                inodes_free: Some(20),
                inodes: Some(50),
                inodes_used: Some(4),
            }
        );
    }

    #[test]
    fn log_directories_are_measured() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("app")).expect("mkdir");
        std::fs::write(dir.path().join("app/0.log"), b"hello").expect("write");
        std::fs::write(dir.path().join("app/1.log"), b"abc").expect("write");
        assert_eq!(dir_usage(&dir.path().join("app")), (8, 2));
        let (bytes, inodes) = dir_usage(dir.path());
        assert_eq!(inodes, 3);
        assert!(bytes >= 8);
        assert_eq!(dir_usage(&dir.path().join("missing")), (0, 0));
    }

    #[test]
    fn pod_sandbox_stats_failures_mean_summing_containers() {
        let failed = Err(tonic::Status::unknown("cgroupPath is empty"));
        assert!(pod_stats_by_sandbox(failed).is_empty());
        let unimplemented = Err(tonic::Status::unimplemented("no"));
        assert!(pod_stats_by_sandbox(unimplemented).is_empty());
        let answer = api::ListPodSandboxStatsResponse {
            stats: vec![api::PodSandboxStats {
                attributes: Some(api::PodSandboxAttributes {
                    id: "s1".into(),
                    ..Default::default()
                }),
                linux: Some(api::LinuxPodSandboxStats::default()),
                windows: None,
            }],
        };
        let got = pod_stats_by_sandbox(Ok(tonic::Response::new(answer)));
        assert_eq!(got.keys().collect::<Vec<_>>(), vec!["s1"]);
    }

    fn example() -> Summary {
        let t = Time(1_624_396_278_302_000_000);
        Summary {
            node: NodeStats {
                node_name: "n1".into(),
                start_time: Time(1_600_000_000_000_000_000),
                cpu: Some(CpuStats {
                    time: t,
                    usage_nano_cores: Some(5),
                    usage_core_nano_seconds: Some(10_000_000_000),
                }),
                memory: Some(MemoryStats {
                    time: t,
                    working_set_bytes: Some(1000),
                    ..MemoryStats::default()
                }),
                ..NodeStats::default()
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "pod_a".into(),
                    namespace: "namespace_a".into(),
                    uid: "u".into(),
                },
                start_time: t,
                containers: vec![
                    ContainerStats {
                        name: "container_b".into(),
                        start_time: Time(1_624_396_000_500_000_000),
                        cpu: Some(CpuStats {
                            time: t,
                            usage_nano_cores: None,
                            usage_core_nano_seconds: Some(4_678_120_000),
                        }),
                        memory: Some(MemoryStats {
                            time: t,
                            working_set_bytes: Some(12_627_968),
                            ..MemoryStats::default()
                        }),
                        ..ContainerStats::default()
                    },
                    ContainerStats {
                        name: "container_a".into(),
                        start_time: Time(0),
                        cpu: None,
                        memory: None,
                        ..ContainerStats::default()
                    },
                ],
                cpu: Some(CpuStats {
                    time: t,
                    usage_nano_cores: None,
                    usage_core_nano_seconds: Some(4_678_120_000),
                }),
                memory: Some(MemoryStats {
                    time: t,
                    working_set_bytes: Some(12_627_968),
                    ..MemoryStats::default()
                }),
                ephemeral_storage: None,
            }],
        }
    }

    #[test]
    fn resource_metrics_are_written_as_upstream_writes_them() {
        let want = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="container_b",namespace="namespace_a",pod="pod_a"} 4.67812 1624396278302
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="container_b",namespace="namespace_a",pod="pod_a"} 1.2627968e+07 1624396278302
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="container_b",namespace="namespace_a",pod="pod_a"} 1.6243960005e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 10 1624396278302
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1000 1624396278302
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="namespace_a",pod="pod_a"} 4.67812 1624396278302
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="namespace_a",pod="pod_a"} 1.2627968e+07 1624396278302
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
# HELP scrape_error [ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
"#;
        assert_eq!(render_metrics(Some(&example())), want);
        let failed = render_metrics(None);
        assert!(
            failed.starts_with("# HELP resource_scrape_error"),
            "{failed}"
        );
        assert!(failed.ends_with("\nscrape_error 1\n"), "{failed}");
    }

    #[test]
    fn metric_samples_sort_by_labels_and_escape_values() {
        let mut out = String::new();
        let samples: Vec<Sample> = vec![
            (
                vec![("namespace", "b".into()), ("pod", "x".into())],
                2.0,
                Some(7),
            ),
            (
                vec![("namespace", "a".into()), ("pod", "q\"\\\n".into())],
                1.0,
                None,
            ),
        ];
        write_family(&mut out, &POD_MEMORY, samples);
        let lines: Vec<&str> = out.lines().skip(2).collect();
        assert_eq!(
            lines,
            vec![
                r#"pod_memory_working_set_bytes{namespace="a",pod="q\"\\\n"} 1"#,
                r#"pod_memory_working_set_bytes{namespace="b",pod="x"} 2 7"#,
            ]
        );
        let mut none = String::new();
        write_family(&mut none, &POD_MEMORY, vec![]);
        assert_eq!(none, "");
    }

    #[test]
    fn summary_json_uses_upstream_field_names() {
        let mut summary = example();
        summary.pods[0].ephemeral_storage = Some(FsStats {
            time: Time(1_624_396_278_302_000_000),
            used_bytes: Some(3),
            ..FsStats::default()
        });
        summary.node.runtime = Some(RuntimeStats { image_fs: None });
        let v = serde_json::to_value(&summary).expect("json");
        assert_eq!(v["node"]["nodeName"], "n1");
        assert_eq!(v["node"]["startTime"], "2020-09-13T12:26:40Z");
        assert_eq!(v["node"]["cpu"]["time"], "2021-06-22T21:11:18Z");
        assert_eq!(v["node"]["cpu"]["usageNanoCores"], 5);
        assert_eq!(v["node"]["cpu"]["usageCoreNanoSeconds"], 10_000_000_000u64);
        assert_eq!(v["node"]["memory"]["workingSetBytes"], 1000);
        assert!(v["node"]["memory"].get("availableBytes").is_none());
        assert!(v["node"].get("fs").is_none());
        assert_eq!(v["node"]["runtime"], serde_json::json!({}));
        let pod = &v["pods"][0];
        assert_eq!(
            pod["podRef"],
            serde_json::json!({"name": "pod_a", "namespace": "namespace_a", "uid": "u"})
        );
        assert_eq!(pod["ephemeral-storage"]["usedBytes"], 3);
        assert_eq!(pod["containers"][0]["name"], "container_b");
        assert_eq!(pod["containers"][1]["startTime"], serde_json::Value::Null);
        assert!(pod["containers"][1].get("cpu").is_none());
    }
}
