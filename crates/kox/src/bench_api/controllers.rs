//! `kox bench controllers`: a Deployment scaled from 0 to 10,000 replicas on 1,000 simulated
//! nodes, timed until every replica is available and Running, with the controller manager's CPU
//! and memory meanwhile.
//!
//! Three processes besides the benchmark: `kox server --disable-controller-manager` (API server
//! and scheduler), `kox controller-manager` (the measured process) and `kox fake-nodes`. The
//! anchor is upstream's kubemark figure: kube-controller-manager at 1,000 nodes ≈ 1.3 GB.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{Conn, Protocol, query_escape};
use super::load::NAMESPACE;
use super::report::{self, Table, goal, mib, parse_secs};
use super::server_proc::{Helper, ServerProcess};

/// Flags of `kox bench controllers`.
#[derive(Args, Debug)]
pub struct ControllersArgs {
    /// Simulated nodes (`kox fake-nodes`).
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Replicas the Deployment is scaled to.
    #[arg(long, default_value_t = 10_000)]
    pub replicas: usize,
    /// Seconds to let the cluster settle after the nodes registered, before scaling.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub settle: Duration,
    /// Seconds after which the benchmark stops waiting and reports how far it got.
    #[arg(long, default_value = "1800", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

const DEPLOYMENT: &str = "bench-cm";

fn deployments() -> String {
    format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments")
}

/// The benchmark's Deployment: one pause container, no resource requests, 0 replicas.
fn deployment() -> Bytes {
    Bytes::from(
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": DEPLOYMENT },
            "spec": {
                "replicas": 0,
                "selector": { "matchLabels": { "app": DEPLOYMENT } },
                "template": {
                    "metadata": { "labels": { "app": DEPLOYMENT } },
                    "spec": { "containers": [
                        { "name": "c", "image": "registry.k8s.io/pause:3.10" }
                    ] }
                }
            }
        })
        .to_string(),
    )
}

/// The Deployment's status counters at one moment.
#[derive(Clone, Copy, Default, Debug)]
struct Progress {
    replicas: u64,
    updated: u64,
    ready: u64,
    available: u64,
    observed_generation: i64,
}

impl Progress {
    fn of(d: &Value) -> Self {
        let n = |f: &str| d["status"][f].as_u64().unwrap_or(0);
        Self {
            replicas: n("replicas"),
            updated: n("updatedReplicas"),
            ready: n("readyReplicas"),
            available: n("availableReplicas"),
            observed_generation: d["status"]["observedGeneration"].as_i64().unwrap_or(0),
        }
    }
}

/// CPU seconds and RSS (KiB) of a process at one moment.
#[derive(Clone, Copy, Default)]
struct Usage {
    cpu: f64,
    rss: u64,
}

async fn get_json(conn: &Conn, path: &str) -> Result<Value> {
    let body = conn.get_ok(path).await?;
    serde_json::from_slice(&body).with_context(|| format!("decoding GET {path}"))
}

/// How many items a list has, without decoding them.
async fn count(conn: &Conn, path: &str) -> Result<usize> {
    #[derive(serde::Deserialize)]
    struct Items {
        items: Vec<serde::de::IgnoredAny>,
    }
    let body = conn.get_ok(path).await?;
    let list: Items = serde_json::from_slice(&body).context("decoding a list")?;
    Ok(list.items.len())
}

/// Sets the Deployment's `spec.replicas` (read, modify, replace; retried on a conflict) and
/// returns the generation the change has.
async fn scale(conn: &Conn, replicas: usize) -> Result<i64> {
    let path = format!("{}/{DEPLOYMENT}", deployments());
    loop {
        let mut d = get_json(conn, &path).await?;
        d["spec"]["replicas"] = json!(replicas);
        let (status, body) = conn
            .call(Method::PUT, &path, Some(Bytes::from(d.to_string())))
            .await?;
        match status {
            StatusCode::OK => {
                let d: Value = serde_json::from_slice(&body)?;
                return Ok(d["metadata"]["generation"].as_i64().unwrap_or(0));
            }
            StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => bail!(
                "PUT {path}: {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            ),
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one run measured.
struct Outcome {
    completed: bool,
    /// From the scale request to the Deployment reporting every replica available.
    available_after: Option<Duration>,
    /// From the scale request to every pod listed Running.
    running_after: Option<Duration>,
    last: Progress,
    running: usize,
    cm_idle_rss: u64,
    cm_cpu: f64,
    cm_peak_rss: u64,
    server_cpu: f64,
    server_peak_rss: u64,
    nodes_cpu: f64,
    elapsed: Duration,
    timeline: Vec<Value>,
    loadavg_start: String,
    loadavg_end: String,
    /// How often the controller manager lost its lease meanwhile (its log says so).
    lease_losses: usize,
}

async fn one_run(args: &ControllersArgs) -> Result<Outcome> {
    let tmp = tempfile::Builder::new()
        .prefix("kox-bench-controllers-")
        .tempdir()
        .context("creating a temporary directory")?;
    let data = tmp.path().join("data");
    let server = ServerProcess::start_with_scheduler_and_flags(
        &data,
        &tmp.path().join("server.log"),
        &["--disable-controller-manager".to_string()],
    )
    .await?;
    let kubeconfig = server.kubeconfig();
    let mut cm = Helper::controller_manager(&kubeconfig, &tmp.path().join("cm.log"))?;
    let mut nodes = Helper::fake_nodes(&kubeconfig, args.nodes, &tmp.path().join("nodes.log"))?;
    let conn = server
        .connect(Protocol::Http2, 1)
        .await?
        .pop()
        .context("no connection")?;

    eprintln!("controllers: waiting for {} nodes to register…", args.nodes);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        cm.check_alive()?;
        nodes.check_alive()?;
        if count(&conn, "/api/v1/nodes").await? >= args.nodes {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the {} simulated nodes did not register within 10 minutes",
                args.nodes
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = conn
        .call(Method::POST, &deployments(), Some(deployment()))
        .await?;
    if status != StatusCode::CREATED {
        bail!(
            "creating the Deployment: {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
    }
    tokio::time::sleep(args.settle).await;
    let cm_idle_rss = cm.rss_kib()?;
    let cm_cpu0 = cm.cpu_seconds()?;
    let server_cpu0 = server.cpu_seconds()?;
    let nodes_cpu0 = nodes.cpu_seconds()?;
    let loadavg_start = loadavg();

    eprintln!("controllers: scaling the Deployment to {}…", args.replicas);
    let started = Instant::now();
    let generation = scale(&conn, args.replicas).await?;
    let want = args.replicas as u64;
    let path = format!("{}/{DEPLOYMENT}", deployments());
    let running_pods = format!(
        "{}?labelSelector={}&fieldSelector={}",
        super::load::collection("pods"),
        query_escape(&format!("app={DEPLOYMENT}")),
        query_escape("status.phase=Running")
    );
    let mut timeline = Vec::new();
    let mut last = Progress::default();
    let mut available_after = None;
    let mut running_after = None;
    let mut running = 0;
    let mut last_print = Instant::now();
    let mut last_sample = Duration::ZERO;
    let usage = |cpu0: f64, cpu: f64, rss: u64| Usage {
        cpu: cpu - cpu0,
        rss,
    };
    while started.elapsed() < args.timeout {
        cm.check_alive()?;
        nodes.check_alive()?;
        let d = get_json(&conn, &path).await?;
        last = Progress::of(&d);
        let t = started.elapsed();
        if available_after.is_none()
            && last.observed_generation >= generation
            && last.available >= want
        {
            available_after = Some(t);
        }
        if available_after.is_some() {
            running = count(&conn, &running_pods).await?;
            if running >= args.replicas {
                running_after = Some(started.elapsed());
            }
        }
        if t >= last_sample + Duration::from_secs(5) || running_after.is_some() {
            last_sample = t;
            let c = usage(cm_cpu0, cm.cpu_seconds()?, cm.rss_kib()?);
            let s = usage(server_cpu0, server.cpu_seconds()?, server.rss_kib()?);
            timeline.push(json!({
                "t_s": t.as_secs_f64(),
                "replicas": last.replicas, "updated": last.updated,
                "ready": last.ready, "available": last.available,
                "cm_cpu_s": c.cpu, "cm_rss_kib": c.rss,
                "server_cpu_s": s.cpu, "server_rss_kib": s.rss,
            }));
        }
        if last_print.elapsed() >= Duration::from_secs(10) || running_after.is_some() {
            last_print = Instant::now();
            eprintln!(
                "controllers: {:>6.1} s  created {} ready {} available {} of {want}{}; controller-manager {:.1} CPU s, {}",
                t.as_secs_f64(),
                last.replicas,
                last.ready,
                last.available,
                if available_after.is_some() {
                    format!(", {running} Running")
                } else {
                    String::new()
                },
                cm.cpu_seconds()? - cm_cpu0,
                mib(cm.rss_kib()?),
            );
        }
        if running_after.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed = started.elapsed();
    let outcome = Outcome {
        completed: running_after.is_some(),
        available_after,
        running_after,
        last,
        running,
        cm_idle_rss,
        cm_cpu: cm.cpu_seconds()? - cm_cpu0,
        cm_peak_rss: cm.peak_rss_kib()?,
        server_cpu: server.cpu_seconds()? - server_cpu0,
        server_peak_rss: server.peak_rss_kib()?,
        nodes_cpu: nodes.cpu_seconds()? - nodes_cpu0,
        elapsed,
        timeline,
        loadavg_start,
        loadavg_end: loadavg(),
        lease_losses: std::fs::read_to_string(tmp.path().join("cm.log"))
            .unwrap_or_default()
            .matches("lost the lease")
            .count(),
    };
    nodes.stop().await?;
    cm.stop().await?;
    server.stop().await?;
    Ok(outcome)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// 1.3 GB: kube-controller-manager's memory at 1,000 nodes (upstream kubemark measurements).
const ANCHOR_BYTES: f64 = 1.3e9;

pub async fn run(args: ControllersArgs) -> Result<()> {
    let x = one_run(&args).await?;
    let mut table = Table::new(
        format!(
            "controllers: Deployment scaled 0 → {} replicas on {} simulated nodes (kox controller-manager in its own process; load average {} at the start)",
            args.replicas, args.nodes, x.loadavg_start
        ),
        &[
            "all available",
            "all Running",
            "pods/s",
            "CM CPU s",
            "CM CPU ms/pod",
            "CM idle RSS",
            "CM peak RSS",
            "server CPU s",
            "server peak RSS",
            "fake-nodes CPU s",
        ],
    );
    let done = x.running_after.unwrap_or(x.elapsed).as_secs_f64();
    let pods = x.last.available.max(x.running as u64) as f64;
    table.row(vec![
        secs(x.available_after),
        secs(x.running_after),
        format!("{:.0}", pods / done.max(1e-9)),
        format!("{:.1}", x.cm_cpu),
        format!("{:.2}", x.cm_cpu * 1000.0 / pods.max(1.0)),
        mib(x.cm_idle_rss),
        mib(x.cm_peak_rss),
        format!("{:.1}", x.server_cpu),
        mib(x.server_peak_rss),
        format!("{:.1}", x.nodes_cpu),
    ]);
    table.print();
    if x.lease_losses > 0 {
        println!(
            "\nthe controller manager lost its lease {} time(s): a renewal took longer than the renew deadline",
            x.lease_losses
        );
    }
    if !x.completed {
        println!(
            "\nnot finished after {:.0} s: {} created, {} ready, {} available, {} Running",
            x.elapsed.as_secs_f64(),
            x.last.replicas,
            x.last.ready,
            x.last.available,
            x.running
        );
    }
    let peak = x.cm_peak_rss as f64 * 1024.0;
    let goals = vec![
        goal(
            &format!("{} replicas available and Running", args.replicas),
            secs(x.running_after),
            &format!("within {:.0} s", args.timeout.as_secs_f64()),
            x.completed,
        ),
        goal(
            &format!("controller-manager peak RSS at {} nodes", args.nodes),
            mib(x.cm_peak_rss),
            "≤ 1.3 GB (kube-controller-manager at 1,000 nodes)",
            peak <= ANCHOR_BYTES,
        ),
    ];
    report::print_goals(&goals);
    report::finish(
        json!({
            "benchmark": "controllers",
            "params": {
                "nodes": args.nodes, "replicas": args.replicas,
                "settle_seconds": args.settle.as_secs_f64(),
                "timeout_seconds": args.timeout.as_secs_f64(),
            },
            "completed": x.completed,
            "available_seconds": x.available_after.map(|d| d.as_secs_f64()),
            "running_seconds": x.running_after.map(|d| d.as_secs_f64()),
            "final": {
                "replicas": x.last.replicas, "updated": x.last.updated, "ready": x.last.ready,
                "available": x.last.available, "running": x.running,
            },
            "controller_manager": {
                "cpu_seconds": x.cm_cpu, "idle_rss_kib": x.cm_idle_rss, "peak_rss_kib": x.cm_peak_rss,
            },
            "server": { "cpu_seconds": x.server_cpu, "peak_rss_kib": x.server_peak_rss },
            "fake_nodes": { "cpu_seconds": x.nodes_cpu },
            "lease_losses": x.lease_losses,
            "loadavg_start": x.loadavg_start,
            "loadavg_end": x.loadavg_end,
            "timeline": x.timeline,
            "anchor": { "kube_controller_manager_bytes_at_1000_nodes": ANCHOR_BYTES },
            "goals": goals,
        }),
        args.json.as_deref(),
    )
}
