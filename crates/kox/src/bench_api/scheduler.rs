//! `kox bench scheduler`: scheduling throughput with the whole stack on this machine.
//!
//! It starts `kox server --disable-scheduler --disable-controller-manager`, `kox fake-nodes
//! --count N` and `kox scheduler` as three processes, like upstream's `scheduler_perf`
//! `SchedulingBasic` (nodes first, then bare pods created by several concurrent writers). It
//! measures from the first create until every pod is bound (seen with `spec.nodeName` on a
//! watch): pods/s overall, and the scheduling phase's per-second binding rate (upstream's
//! `SchedulingThroughput`: average and percentiles of the pods bound in each second).
//!
//! Workloads: `basic` (pods with requests, as `pod-default.yaml`), `anti-affinity` (required
//! podAntiAffinity on `kubernetes.io/hostname` within a group label, as
//! `pod-with-pod-anti-affinity.yaml`, in groups so that 10,000 pods fit 5,000 nodes) and
//! `topology-spread` (a `topologySpreadConstraints` on `topology.kubernetes.io/zone`, maxSkew 5,
//! DoNotSchedule, as `pod-with-topology-spreading.yaml`, on nodes spread over `--zones`).
//!
//! Before the pods, it reads the load the idle nodes' heartbeats put on the API server (writes/s
//! by resource from `/metrics`, and the server's CPU); at the end, the peak RSS and the CPU of
//! every process. It measures; it never fails on a number.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Conn, Protocol, find_byte, query_escape, resource_version};
use super::load::{NAMESPACE, collection, create_many};
use super::report::{self, Table, goal, mib, parse_secs, percentile};
use super::server_proc::{Helper, ServerProcess, proc_cpu_seconds};

/// kube-scheduler's `SchedulingBasic` floor at 5,000 nodes (pods/s).
const ANCHOR_PODS_PER_SEC: f64 = 270.0;
/// The project's goal: ten times the anchor.
const GOAL_PODS_PER_SEC: f64 = 2700.0;
/// The issue's bound on 5,000 simulated nodes in one process.
const FAKE_NODES_GOAL_MB: f64 = 500.0;
/// The label every measured pod carries.
const POD_LABEL: &str = "bench=scheduler";

/// What pods the benchmark schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Bare pods with CPU and memory requests.
    Basic,
    /// Pods with required podAntiAffinity on the hostname within their group.
    AntiAffinity,
    /// Pods spread over zones (maxSkew 5, DoNotSchedule).
    TopologySpread,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Basic => "basic",
            Workload::AntiAffinity => "anti-affinity",
            Workload::TopologySpread => "topology-spread",
        }
    }
}

/// Flags of `kox bench scheduler`.
#[derive(Args, Debug)]
pub struct SchedulerBenchArgs {
    /// Simulated nodes (`kox fake-nodes --count`).
    #[arg(long, default_value_t = 5000)]
    pub nodes: usize,
    /// Pods to schedule.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// The pods' shape.
    #[arg(long, value_enum, default_value_t = Workload::Basic)]
    pub workload: Workload,
    /// Concurrent writers creating the pods.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Zones the nodes are spread over (`kox fake-nodes --zones`).
    #[arg(long, default_value_t = 3)]
    pub zones: usize,
    /// Seconds between the nodes' Lease renewals (`kox fake-nodes --heartbeat-seconds`; 10 as
    /// the kubelet: 5,000 nodes renew 500 Leases per second).
    #[arg(long, default_value_t = 10)]
    pub node_heartbeat: u64,
    /// anti-affinity: pods per group (pods of a group go to distinct nodes).
    #[arg(long, default_value_t = 1000)]
    pub group_size: usize,
    /// Seconds the idle nodes' heartbeat load is read for, once every node has its Lease
    /// (0 skips the reading).
    #[arg(long, default_value = "20", value_parser = parse_secs)]
    pub heartbeat_window: Duration,
    /// Seconds to wait for every pod to be bound before reporting what was.
    #[arg(long, default_value = "600", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The i-th measured pod of a workload, as upstream's scheduler_perf templates.
fn pod_body(workload: Workload, i: usize, groups: usize) -> Bytes {
    let name = pod_name(i);
    let container = r#"[{"name":"pause","image":"registry.k8s.io/pause:3.10","ports":[{"containerPort":80}],"resources":{"requests":{"cpu":"100m","memory":"500Mi"},"limits":{"cpu":"100m","memory":"500Mi"}}}]"#;
    let body = match workload {
        Workload::Basic => format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"bench":"scheduler"}}}},"spec":{{"containers":{container}}}}}"#
        ),
        Workload::AntiAffinity => {
            let group = format!("g-{}", i % groups.max(1));
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"bench":"scheduler","group":"{group}"}}}},"spec":{{"containers":{container},"affinity":{{"podAntiAffinity":{{"requiredDuringSchedulingIgnoredDuringExecution":[{{"labelSelector":{{"matchLabels":{{"group":"{group}"}}}},"topologyKey":"kubernetes.io/hostname"}}]}}}}}}}}"#
            )
        }
        Workload::TopologySpread => format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"bench":"scheduler","color":"blue"}}}},"spec":{{"containers":{container},"topologySpreadConstraints":[{{"maxSkew":5,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"DoNotSchedule","labelSelector":{{"matchLabels":{{"color":"blue"}}}}}}]}}}}"#
        ),
    };
    Bytes::from(body)
}

fn pod_name(i: usize) -> String {
    format!("sched-{i:06}")
}

fn pod_index(name: &str) -> Option<usize> {
    name.strip_prefix("sched-")?.parse().ok()
}

/// CPU seconds of the benchmark's processes at one instant.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    scheduler: f64,
    nodes: f64,
    bench: f64,
}

fn read_cpu(server: &ServerProcess, scheduler: &Helper, nodes: &Helper) -> Result<Cpu> {
    Ok(Cpu {
        server: server.cpu_seconds()?,
        scheduler: scheduler.cpu_seconds()?,
        nodes: nodes.cpu_seconds()?,
        bench: proc_cpu_seconds("self")?,
    })
}

/// `apiserver_request_total` summed over codes, by (verb, resource).
type Requests = BTreeMap<(String, String), f64>;

async fn scrape_requests(conn: &Conn) -> Result<Requests> {
    let body = conn.get_ok("/metrics").await?;
    let text = String::from_utf8_lossy(&body);
    let mut out = Requests::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |key: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\""))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let n: f64 = value.trim().parse().unwrap_or(0.0);
        *out.entry((label("verb"), label("resource"))).or_default() += n;
    }
    Ok(out)
}

/// Write requests per second by `VERB resource` between two scrapes.
fn write_rates(before: &Requests, after: &Requests, secs: f64) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|((verb, _), _)| matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .filter_map(|((verb, resource), n)| {
            let d = n - before
                .get(&(verb.clone(), resource.clone()))
                .unwrap_or(&0.0);
            (d > 0.0).then(|| (format!("{verb} {resource}"), d / secs.max(1e-9)))
        })
        .collect()
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct NodeItem {
    status: Option<NodeStatus>,
}

#[derive(Deserialize)]
struct NodeStatus {
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

/// Polls the node list until `want` nodes are Ready.
async fn wait_nodes_ready(conn: &Conn, want: usize, nodes: &mut Helper) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let body = conn.get_ok("/api/v1/nodes").await?;
        let list: Items<NodeItem> = serde_json::from_slice(&body).context("decoding nodes")?;
        let ready = list
            .items
            .iter()
            .filter(|n| {
                n.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        if ready >= want {
            return Ok(());
        }
        nodes.check_alive()?;
        if Instant::now() > deadline {
            bail!("{ready} of {want} nodes Ready after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls the node Leases until `want` exist: every node has been through its first heartbeat.
async fn wait_leases(conn: &Conn, want: usize, nodes: &mut Helper) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let body = conn
            .get_ok("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
            .await?;
        let list: Items<serde::de::IgnoredAny> =
            serde_json::from_slice(&body).context("decoding leases")?;
        if list.items.len() >= want {
            return Ok(());
        }
        nodes.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{} of {want} node Leases after 10 minutes",
                list.items.len()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[derive(Deserialize)]
struct PodItem {
    metadata: PodMeta,
    spec: Option<PodSpec>,
}

#[derive(Deserialize)]
struct PodMeta {
    name: String,
}

#[derive(Deserialize)]
struct PodSpec {
    #[serde(rename = "nodeName")]
    node_name: Option<String>,
}

impl PodItem {
    fn bound(&self) -> bool {
        self.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    }
}

#[derive(Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    type_: String,
    object: Value,
}

/// Creates a pod outside the measurement and waits until it is bound: the scheduler is up and
/// its caches hold every node.
async fn warm_up(conn: &Conn, scheduler: &mut Helper) -> Result<Duration> {
    let started = Instant::now();
    let body = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bench-warm-up","labels":{"bench":"warm-up"}},"spec":{"containers":[{"name":"pause","image":"registry.k8s.io/pause:3.10"}]}}"#;
    let (status, resp) = conn
        .call(
            Method::POST,
            &collection("pods"),
            Some(Bytes::from_static(body.as_bytes())),
        )
        .await?;
    if status != StatusCode::CREATED {
        bail!(
            "creating the warm-up pod: {status}: {}",
            String::from_utf8_lossy(&resp)
        );
    }
    let path = format!("{}/bench-warm-up", collection("pods"));
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let body = conn.get_ok(&path).await?;
        let pod: PodItem = serde_json::from_slice(&body).context("decoding the warm-up pod")?;
        if pod.bound() {
            return Ok(started.elapsed());
        }
        scheduler.check_alive()?;
        if Instant::now() > deadline {
            bail!("the warm-up pod was not bound within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When each measured pod was first seen bound, relative to `t0`.
struct Bindings {
    at: Vec<Option<Duration>>,
    bound: Arc<AtomicUsize>,
}

impl Bindings {
    fn mark(&mut self, name: &str, t0: Instant) {
        if let Some(i) = pod_index(name)
            && let Some(slot) = self.at.get_mut(i)
            && slot.is_none()
        {
            *slot = Some(t0.elapsed());
            self.bound.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Lists the measured pods, marks the bound ones, and returns the list's resourceVersion.
async fn list_bound(conn: &Conn, b: &mut Bindings, t0: Instant) -> Result<u64> {
    let path = format!(
        "{}?labelSelector={}",
        collection("pods"),
        query_escape(POD_LABEL)
    );
    let body = conn.get_ok(&path).await?;
    let rv = resource_version(&body).context("the pod list has no resourceVersion")?;
    let list: Items<PodItem> = serde_json::from_slice(&body).context("decoding pods")?;
    for p in list.items.iter().filter(|p| p.bound()) {
        b.mark(&p.metadata.name, t0);
    }
    Ok(rv)
}

/// Follows the measured pods until all are bound or `deadline`, re-listing when a watch ends.
async fn watch_bindings(
    conn: Conn,
    mut rv: u64,
    mut b: Bindings,
    t0: Instant,
    deadline: Instant,
) -> Result<Bindings> {
    let total = b.at.len();
    'watch: while b.bound.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        let path = format!(
            "{}?watch=true&resourceVersion={rv}&labelSelector={}&timeoutSeconds=3600",
            collection("pods"),
            query_escape(POD_LABEL)
        );
        let resp = conn.send(conn.request(Method::GET, &path, None)).await?;
        if resp.status() != StatusCode::OK {
            rv = list_bound(&conn, &mut b, t0).await?;
            continue;
        }
        let mut body = resp.into_body();
        let mut partial: Vec<u8> = Vec::new();
        while b.bound.load(Ordering::Relaxed) < total {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = match tokio::time::timeout(left, body.frame()).await {
                Err(_) => break 'watch,
                Ok(Some(Ok(f))) => f,
                Ok(_) => {
                    rv = list_bound(&conn, &mut b, t0).await?;
                    continue 'watch;
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            partial.extend_from_slice(&data);
            let mut start = 0;
            while let Some(nl) = find_byte(&partial[start..], b'\n') {
                let line = &partial[start..start + nl];
                start += nl + 1;
                let Ok(ev) = serde_json::from_slice::<WatchLine>(line) else {
                    continue;
                };
                if ev.type_ == "ERROR" {
                    // Typically 410 Gone: start again from a fresh list.
                    rv = list_bound(&conn, &mut b, t0).await?;
                    continue 'watch;
                }
                if let Some(v) = ev.object["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                {
                    rv = v;
                }
                let node = ev.object["spec"]["nodeName"].as_str().unwrap_or("");
                if ev.type_ != "DELETED"
                    && !node.is_empty()
                    && let Some(name) = ev.object["metadata"]["name"].as_str()
                {
                    b.mark(name, t0);
                }
            }
            partial.drain(..start);
        }
    }
    Ok(b)
}

/// Pods bound in each whole second from the first binding to the last (upstream's
/// `SchedulingThroughput` samples).
fn per_second(sorted: &[Duration]) -> Vec<f64> {
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let seconds = (*last - *first).as_secs_f64().floor() as usize;
    let mut bins = vec![0.0; seconds.max(1)];
    for t in sorted {
        let i = (*t - *first).as_secs_f64().floor() as usize;
        if i < bins.len() {
            bins[i] += 1.0;
        }
    }
    bins
}

/// Runs `kox bench scheduler`.
pub async fn run(args: SchedulerBenchArgs) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("kox-bench-scheduler-")
        .tempdir()
        .context("creating a temporary directory")?;
    let data = tmp.path().join("data");
    let server = ServerProcess::start(&data, &tmp.path().join("server.log")).await?;
    let conns = server.connect(Protocol::Http2, 4).await?;
    let control = server.connect(Protocol::Http2, 1).await?.remove(0);

    // The nodes, and their idle heartbeat load.
    eprintln!("registering {} fake nodes…", args.nodes);
    let registering = Instant::now();
    let mut nodes = Helper::fake_nodes_with(
        &server.kubeconfig(),
        args.nodes,
        &[
            "--zones".into(),
            args.zones.to_string(),
            "--heartbeat-seconds".into(),
            args.node_heartbeat.to_string(),
        ],
        &tmp.path().join("fake-nodes.log"),
    )?;
    wait_nodes_ready(&control, args.nodes, &mut nodes).await?;
    let registered_in = registering.elapsed();
    eprintln!(
        "{} nodes Ready in {:.1} s",
        args.nodes,
        registered_in.as_secs_f64()
    );
    let heartbeat = if args.heartbeat_window.is_zero() {
        None
    } else {
        // The first round creates the Leases; the steady state follows it.
        wait_leases(&control, args.nodes, &mut nodes).await?;
        eprintln!(
            "reading the heartbeat load for {:.0} s…",
            args.heartbeat_window.as_secs_f64()
        );
        let before = scrape_requests(&control).await?;
        let cpu_before = (server.cpu_seconds()?, nodes.cpu_seconds()?);
        let t = Instant::now();
        tokio::time::sleep(args.heartbeat_window).await;
        let secs = t.elapsed().as_secs_f64();
        let after = scrape_requests(&control).await?;
        let rates = write_rates(&before, &after, secs);
        let server_cpu = (server.cpu_seconds()? - cpu_before.0) / secs;
        let nodes_cpu = (nodes.cpu_seconds()? - cpu_before.1) / secs;
        Some((rates, server_cpu, nodes_cpu, secs))
    };
    let nodes_idle_kib = nodes.rss_kib()?;

    // The scheduler, warmed up.
    let mut scheduler = Helper::scheduler(&server.kubeconfig(), &tmp.path().join("scheduler.log"))?;
    let warm_up_took = warm_up(&control, &mut scheduler).await?;
    eprintln!(
        "scheduler up (warm-up pod bound after {:.1} s); creating {} {} pods with {} writers…",
        warm_up_took.as_secs_f64(),
        args.pods,
        args.workload.name(),
        args.clients
    );

    // The measurement.
    let t0 = Instant::now();
    let mut bindings = Bindings {
        at: vec![None; args.pods],
        bound: Arc::new(AtomicUsize::new(0)),
    };
    let rv = list_bound(&control, &mut bindings, t0).await?;
    let bound = bindings.bound.clone();
    let metrics_before = scrape_requests(&control).await?;
    let cpu_before = read_cpu(&server, &scheduler, &nodes)?;
    let started = Instant::now();
    let deadline = started + args.timeout;
    let watcher = tokio::spawn(watch_bindings(control.clone(), rv, bindings, t0, deadline));
    let progress = {
        let bound = bound.clone();
        let total = args.pods;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!(
                    "  {:>6.1} s: {} of {total} bound",
                    started.elapsed().as_secs_f64(),
                    bound.load(Ordering::Relaxed)
                );
            }
        })
    };
    let groups = args.pods.div_ceil(args.group_size.max(1));
    let workload = args.workload;
    let created = create_many(
        &conns,
        args.clients,
        &collection("pods"),
        args.pods,
        move |i| pod_body(workload, i, groups),
    )
    .await;
    let create_secs = started.elapsed().as_secs_f64();
    let bindings = watcher.await??;
    let end = started.elapsed();
    progress.abort();
    created?;
    let cpu_after = read_cpu(&server, &scheduler, &nodes)?;
    let metrics_after = scrape_requests(&control).await?;
    let t_start = started - t0;

    let mut times: Vec<Duration> = bindings.at.iter().flatten().copied().collect();
    times.sort_unstable();
    let n_bound = times.len();
    let all_bound = n_bound == args.pods;
    let last_bound = times.last().map_or(end, |t| t.saturating_sub(t_start));
    let overall_secs = if all_bound {
        last_bound.as_secs_f64()
    } else {
        end.as_secs_f64()
    };
    let overall = n_bound as f64 / overall_secs.max(1e-9);
    let sched_secs = match (times.first(), times.last()) {
        (Some(a), Some(b)) => (*b - *a).as_secs_f64(),
        _ => 0.0,
    };
    let mut samples = per_second(&times);
    samples.sort_by(f64::total_cmp);
    let avg = if samples.is_empty() {
        0.0
    } else {
        samples.iter().sum::<f64>() / samples.len() as f64
    };
    let (p50, p90, p99) = (
        percentile(&samples, 50.0),
        percentile(&samples, 90.0),
        percentile(&samples, 99.0),
    );
    let window = end.as_secs_f64();
    let writes = write_rates(&metrics_before, &metrics_after, window);
    let cpu = |f: fn(&Cpu) -> f64| (f(&cpu_after) - f(&cpu_before)) / window.max(1e-9);
    let cpu_pct = json!({
        "server": cpu(|c| c.server) * 100.0,
        "scheduler": cpu(|c| c.scheduler) * 100.0,
        "fake_nodes": cpu(|c| c.nodes) * 100.0,
        "bench": cpu(|c| c.bench) * 100.0,
    });
    let server_peak = server.peak_rss_kib()?;
    let server_rss = server.rss_kib()?;
    let nodes_peak = nodes.peak_rss_kib()?;
    let nodes_rss = nodes.rss_kib()?;
    let scheduler_peak = scheduler.peak_rss_kib()?;
    let loadavg = report::machine()["loadavg"].clone();

    scheduler.stop().await?;
    nodes.stop().await?;
    server.stop().await?;

    let title = format!(
        "scheduler: {} fake nodes, {} {} pods, {} writers",
        args.nodes,
        args.pods,
        args.workload.name(),
        args.clients
    );
    let mut t = Table::new(title, &["phase", "seconds", "pods", "pods/s"]);
    t.row(vec![
        "create (first create → last created)".into(),
        format!("{create_secs:.1}"),
        args.pods.to_string(),
        format!("{:.0}", args.pods as f64 / create_secs.max(1e-9)),
    ]);
    t.row(vec![
        if all_bound {
            "overall (first create → every pod bound)".into()
        } else {
            "overall (first create → timeout, NOT all bound)".into()
        },
        format!("{overall_secs:.1}"),
        n_bound.to_string(),
        format!("{overall:.0}"),
    ]);
    t.row(vec![
        "scheduling (first → last binding)".into(),
        format!("{sched_secs:.1}"),
        n_bound.to_string(),
        format!("{:.0}", n_bound as f64 / sched_secs.max(1e-9)),
    ]);
    t.print();
    let mut s = Table::new(
        "scheduling throughput (pods bound per second, as scheduler_perf's SchedulingThroughput)",
        &["samples", "average", "p50", "p90", "p99"],
    );
    s.row(vec![
        samples.len().to_string(),
        format!("{avg:.0}"),
        format!("{p50:.0}"),
        format!("{p90:.0}"),
        format!("{p99:.0}"),
    ]);
    s.print();
    let mut f = Table::new(
        format!(
            "processes during the measurement ({window:.1} s; load average at the end {})",
            loadavg.as_str().unwrap_or("")
        ),
        &["process", "CPU %", "peak RSS (VmHWM)", "RSS at the end"],
    );
    f.row(vec![
        "kox server".into(),
        format!("{:.0}", cpu(|c| c.server) * 100.0),
        mib(server_peak),
        mib(server_rss),
    ]);
    f.row(vec![
        "kox scheduler".into(),
        format!("{:.0}", cpu(|c| c.scheduler) * 100.0),
        mib(scheduler_peak),
        "-".into(),
    ]);
    f.row(vec![
        format!("kox fake-nodes ({} nodes)", args.nodes),
        format!("{:.0}", cpu(|c| c.nodes) * 100.0),
        mib(nodes_peak),
        mib(nodes_rss),
    ]);
    f.row(vec![
        "kox bench (creates, watch)".into(),
        format!("{:.0}", cpu(|c| c.bench) * 100.0),
        "-".into(),
        "-".into(),
    ]);
    f.print();
    let mut w = Table::new(
        "API writes/s during the measurement",
        &["request (POST pods: creates and bindings)", "per second"],
    );
    for (k, v) in &writes {
        w.row(vec![k.clone(), format!("{v:.0}")]);
    }
    w.row(vec![
        "total".into(),
        format!("{:.0}", writes.values().sum::<f64>()),
    ]);
    w.print();
    if let Some((rates, server_cpu, nodes_cpu, secs)) = &heartbeat {
        let mut h = Table::new(
            format!(
                "idle heartbeat load of {} nodes (Lease every {} s; {secs:.0} s, before any pod): server CPU {:.0} %, fake-nodes CPU {:.0} %, fake-nodes RSS {}",
                args.nodes,
                args.node_heartbeat,
                server_cpu * 100.0,
                nodes_cpu * 100.0,
                mib(nodes_idle_kib)
            ),
            &["request", "per second"],
        );
        for (k, v) in rates {
            h.row(vec![k.clone(), format!("{v:.1}")]);
        }
        h.print();
    }
    let goals = vec![
        goal(
            "pods/s, anchor (kube-scheduler SchedulingBasic floor at 5,000 nodes)",
            format!("{overall:.0}"),
            "≥ 270",
            all_bound && overall >= ANCHOR_PODS_PER_SEC,
        ),
        goal(
            "pods/s, goal",
            format!("{overall:.0}"),
            "≥ 2,700",
            all_bound && overall >= GOAL_PODS_PER_SEC,
        ),
        goal(
            &format!("kox fake-nodes peak RSS with {} nodes", args.nodes),
            mib(nodes_peak),
            "≤ 500 MB (5,000 nodes)",
            nodes_peak as f64 * 1024.0 <= FAKE_NODES_GOAL_MB * 1e6,
        ),
    ];
    report::print_goals(&goals);
    report::finish(
        json!({
            "benchmark": "scheduler",
            "params": {
                "nodes": args.nodes, "pods": args.pods, "workload": args.workload.name(),
                "clients": args.clients, "zones": args.zones, "node_heartbeat_seconds": args.node_heartbeat, "group_size": args.group_size,
                "namespace": NAMESPACE, "timeout_seconds": args.timeout.as_secs_f64(),
            },
            "nodes_ready_seconds": registered_in.as_secs_f64(),
            "warm_up_seconds": warm_up_took.as_secs_f64(),
            "pods_bound": n_bound,
            "all_bound": all_bound,
            "create_seconds": create_secs,
            "overall_seconds": overall_secs,
            "overall_pods_per_sec": overall,
            "scheduling_seconds": sched_secs,
            "scheduling_throughput": { "samples": samples.len(), "average": avg, "p50": p50, "p90": p90, "p99": p99 },
            "cpu_percent": cpu_pct,
            "rss_kib": {
                "server_peak": server_peak, "server_end": server_rss,
                "scheduler_peak": scheduler_peak,
                "fake_nodes_peak": nodes_peak, "fake_nodes_end": nodes_rss, "fake_nodes_idle": nodes_idle_kib,
            },
            "writes_per_sec": writes,
            "heartbeat": heartbeat.as_ref().map(|(rates, server_cpu, nodes_cpu, secs)| json!({
                "seconds": secs, "writes_per_sec": rates,
                "server_cpu_percent": server_cpu * 100.0, "fake_nodes_cpu_percent": nodes_cpu * 100.0,
            })),
            "loadavg_at_end": loadavg,
            "goals": goals,
        }),
        args.json.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_pods_are_valid_json_with_their_constraints() {
        for w in [
            Workload::Basic,
            Workload::AntiAffinity,
            Workload::TopologySpread,
        ] {
            let v: Value = serde_json::from_slice(&pod_body(w, 12, 10)).expect("JSON");
            assert_eq!(v["metadata"]["name"], "sched-000012");
            assert_eq!(v["metadata"]["labels"]["bench"], "scheduler");
            let spec = &v["spec"];
            assert_eq!(
                spec["containers"][0]["resources"]["requests"]["cpu"],
                "100m"
            );
            match w {
                Workload::Basic => assert!(spec.get("affinity").is_none()),
                Workload::AntiAffinity => {
                    assert_eq!(v["metadata"]["labels"]["group"], "g-2");
                    let term = &spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                        [0];
                    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
                    assert_eq!(term["labelSelector"]["matchLabels"]["group"], "g-2");
                }
                Workload::TopologySpread => {
                    let c = &spec["topologySpreadConstraints"][0];
                    assert_eq!(c["topologyKey"], "topology.kubernetes.io/zone");
                    assert_eq!(c["whenUnsatisfiable"], "DoNotSchedule");
                }
            }
        }
        assert_eq!(pod_index(&pod_name(4321)), Some(4321));
        assert_eq!(pod_index("bench-warm-up"), None);
    }

    #[test]
    fn bindings_are_counted_per_whole_second() {
        let ms = Duration::from_millis;
        let times = [ms(1000), ms(1100), ms(1900), ms(2050), ms(3999)];
        // Seconds [1.0, 2.0), [2.0, 3.0): 3 and 1; the partial last second is left out.
        assert_eq!(per_second(&times), vec![3.0, 1.0]);
        assert_eq!(per_second(&[ms(5)]), vec![1.0]);
        assert!(per_second(&[]).is_empty());
    }

    #[test]
    fn request_rates_count_writes_only() {
        let mut before = Requests::new();
        before.insert(("PATCH".into(), "leases".into()), 100.0);
        let mut after = before.clone();
        after.insert(("PATCH".into(), "leases".into()), 600.0);
        after.insert(("GET".into(), "pods".into()), 50.0);
        after.insert(("POST".into(), "pods".into()), 20.0);
        let r = write_rates(&before, &after, 10.0);
        assert_eq!(r.len(), 2);
        assert_eq!(r["PATCH leases"], 50.0);
        assert_eq!(r["POST pods"], 2.0);
    }
}
