//! `kox bench pod-startup`: pods on one real node, from create to Running seen on a watch, as
//! upstream's pod startup SLI (the Kubernetes SLO: p99 ≤ 5 s); then the node agent's idle
//! footprint with 30 pods running, containerd's beside it (anchor: a k3s agent ≈ 275 MB).
//!
//! It starts `kox server --disable-agent` and `kox agent` as two processes (the agent's own
//! RSS and CPU are what is measured), gives the node a busybox image built from the machine's
//! static busybox, and creates the pods (`sleep`, pinned tag: no pull) with 10 writers. Needs
//! root and Debian's containerd, runc, containernetworking-plugins and busybox-static. It
//! measures; it never fails on a number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use super::report::{self, Table, percentile};
use super::server_proc::{Helper, ServerProcess, proc_cpu_seconds, proc_status_kib};

/// The Kubernetes pod startup SLO: p99 ≤ 5 s.
const ANCHOR_P99_SECS: f64 = 5.0;
/// The project's goal at 30 pods.
const GOAL_P99_SECS: f64 = 2.0;
/// The project's goal for the agent's idle RSS with 30 pods.
const GOAL_AGENT_MB: f64 = 30.0;
/// A k3s agent's RSS, the anchor.
const ANCHOR_AGENT_MB: f64 = 275.0;
pub(super) const NAMESPACE: &str = "bench";
pub(super) const NODE: &str = "bench-node";
pub(super) const IMAGE: &str = "busybox:1.35";

/// Flags of `kox bench pod-startup`.
#[derive(Args, Debug)]
pub struct PodStartupArgs {
    /// Batches of pods, created one batch after the other (the pods of a batch at once).
    #[arg(long, value_delimiter = ',', default_value = "30,100")]
    pub pods: Vec<usize>,
    /// Pods running while the agent's idle footprint is read.
    #[arg(long, default_value_t = 30)]
    pub idle_pods: usize,
    /// Seconds over which the idle agent's CPU is measured.
    #[arg(long, default_value_t = 30)]
    pub idle_seconds: u64,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One batch's figures.
struct Batch {
    pods: usize,
    p50: f64,
    p99: f64,
    max: f64,
    pods_per_sec: f64,
}

pub async fn run(args: PodStartupArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let server = ServerProcess::start_with_scheduler(
        &dir.path().join("server"),
        &dir.path().join("server.log"),
    )
    .await?;
    let agent_dir = dir.path().join("node");
    let agent = start_agent(
        &dir.path().join("server"),
        &agent_dir,
        &dir.path().join("agent.log"),
    )
    .await?;
    let client = crate::kubeconfig_client::following(&server.kubeconfig(), "kox-bench").await?;
    let result = measure(&client, &args, &agent, &agent_dir).await;
    let _ = cleanup(&client).await;
    agent.stop().await?;
    server.stop().await?;
    let _ = crate::agent_cmd::killall(crate::agent_cmd::KillallArgs {
        data_dir: Some(agent_dir.clone()),
    })
    .await;
    let (batches, idle) = result.map_err(|e| {
        e.context(format!(
            "agent log: {}",
            dir.path().join("agent.log").display()
        ))
    })?;
    print(&batches, &idle);
    if let Some(path) = &args.json {
        write_json(path, &batches, &idle)?;
    }
    Ok(())
}

pub(super) async fn start_agent(server_dir: &Path, agent_dir: &Path, log: &Path) -> Result<Helper> {
    std::fs::create_dir_all(agent_dir.join("agent/images"))?;
    let kubeconfig = agent_dir.join("kubelet.kubeconfig");
    let exe = std::env::current_exe()?;
    let status = std::process::Command::new(&exe)
        .args(["kubeconfig", "--node", NODE, "--data-dir"])
        .arg(server_dir)
        .arg("-o")
        .arg(&kubeconfig)
        .status()?;
    if !status.success() {
        bail!("kox kubeconfig --node {NODE} failed");
    }
    let archive = kox_kubelet::images::busybox_archive(
        &kox_kubelet::images::normalize(IMAGE),
        Path::new("/bin/busybox"),
    )?;
    std::fs::write(agent_dir.join("agent/images/busybox.tar"), archive)?;
    Helper::agent(&kubeconfig, agent_dir, NODE, log)
}

pub(super) async fn wait_node_ready(client: &kube::Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(n)) = nodes.get_opt(NODE).await {
            let status = n.status.unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let image = status.images.iter().flatten().any(|i| {
                i.names
                    .iter()
                    .flatten()
                    .any(|n| n.ends_with("busybox:1.35"))
            });
            if ready && image {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("node {NODE} was not Ready with the busybox image within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn prepare_namespace(client: &kube::Client) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(30);
    while accounts.get_opt("default").await?.is_none() {
        if Instant::now() > deadline {
            bail!("no default ServiceAccount in {NAMESPACE}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "pod-startup"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "100000"]}],
        },
    }))?)
}

async fn measure(
    client: &kube::Client,
    args: &PodStartupArgs,
    agent: &Helper,
    agent_dir: &Path,
) -> Result<(Vec<Batch>, Idle)> {
    wait_node_ready(client).await?;
    prepare_namespace(client).await?;
    let mut batches = Vec::new();
    for (i, &n) in args.pods.iter().enumerate() {
        batches.push(batch(client, i, n).await?);
        cleanup_pods(client).await?;
    }
    let idle = idle_footprint(client, args, agent, agent_dir).await?;
    Ok((batches, idle))
}

/// Creates `n` pods at once and times each from its create to Running on a watch.
async fn batch(client: &kube::Client, index: usize, n: usize) -> Result<Batch> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let mut watch = watcher::watcher(
        pods.clone(),
        watcher::Config::default().labels("bench=pod-startup"),
    )
    .boxed();
    // The watch is established once its initial (empty) listing is done.
    while let Some(e) = watch.try_next().await? {
        if matches!(e, watcher::Event::InitDone) {
            break;
        }
    }
    let names: Vec<String> = (0..n).map(|i| format!("p{index}-{i}")).collect();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let started = Instant::now();
    let results: Vec<Result<(String, Instant)>> = futures::stream::iter(names.clone())
        .map(|name| {
            let pods = pods.clone();
            async move {
                let at = Instant::now();
                pods.create(&PostParams::default(), &pod(&name)?).await?;
                Ok((name, at))
            }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    for r in results {
        let (name, at) = r?;
        created.insert(name, at);
    }
    let mut running: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120 + n as u64);
    while running.len() < n {
        let event = tokio::time::timeout_at(deadline.into(), watch.try_next())
            .await
            .context("pods did not all run in time")??;
        let Some(watcher::Event::Apply(p)) = event else {
            continue;
        };
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        let name = p.metadata.name.clone().unwrap_or_default();
        if phase == Some("Running") {
            running.entry(name).or_insert_with(Instant::now);
        }
    }
    let last = running.values().max().copied().unwrap_or(started);
    let mut latencies: Vec<f64> = running
        .iter()
        .map(|(name, at)| at.duration_since(created[name]).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    Ok(Batch {
        pods: n,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or(0.0),
        pods_per_sec: n as f64 / last.duration_since(started).as_secs_f64().max(1e-9),
    })
}

/// The idle agent with pods running.
struct Idle {
    pods: usize,
    agent_rss_mib: f64,
    agent_cpu_percent: f64,
    containerd_rss_mib: f64,
}

async fn idle_footprint(
    client: &kube::Client,
    args: &PodStartupArgs,
    agent: &Helper,
    agent_dir: &Path,
) -> Result<Idle> {
    batch(client, 99, args.idle_pods).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = agent.pid().to_string();
    let cpu_before = proc_cpu_seconds(&pid)?;
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let cpu = proc_cpu_seconds(&pid)? - cpu_before;
    let containerd: u32 =
        std::fs::read_to_string(agent_dir.join("agent/containerd/containerd.pid"))?
            .trim()
            .parse()
            .context("containerd's pid file")?;
    Ok(Idle {
        pods: args.idle_pods,
        agent_rss_mib: agent.rss_kib()? as f64 / 1024.0,
        agent_cpu_percent: cpu / args.idle_seconds as f64 * 100.0,
        containerd_rss_mib: proc_status_kib(containerd, "VmRSS")? as f64 / 1024.0,
    })
}

async fn cleanup_pods(client: &kube::Client) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    pods.delete_collection(&params, &ListParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pods.list(&ListParams::default()).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("the benchmark's pods were not removed within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

async fn cleanup(client: &kube::Client) -> Result<()> {
    cleanup_pods(client).await
}

fn print(batches: &[Batch], idle: &Idle) {
    let mut t = Table::new(
        "pod startup on one node (create → Running on a watch)",
        &[
            "pods",
            "p50 s",
            "p99 s",
            "max s",
            "pods/s",
            "p99 anchor ≤5 s",
            "goal p99 ≤2 s (30)",
        ],
    );
    for b in batches {
        t.row(vec![
            b.pods.to_string(),
            format!("{:.2}", b.p50),
            format!("{:.2}", b.p99),
            format!("{:.2}", b.max),
            format!("{:.1}", b.pods_per_sec),
            met(b.p99 <= ANCHOR_P99_SECS).into(),
            if b.pods == 30 {
                met(b.p99 <= GOAL_P99_SECS).into()
            } else {
                "-".into()
            },
        ]);
    }
    t.print();
    println!(
        "idle with {} pods: kox agent RSS {:.1} MiB (goal ≤ {GOAL_AGENT_MB} MB: {}; k3s agent ≈ {ANCHOR_AGENT_MB} MB), CPU {:.2}%; containerd RSS {:.1} MiB",
        idle.pods,
        idle.agent_rss_mib,
        met(idle.agent_rss_mib * 1.048_576 <= GOAL_AGENT_MB),
        idle.agent_cpu_percent,
        idle.containerd_rss_mib,
    );
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn write_json(path: &Path, batches: &[Batch], idle: &Idle) -> Result<()> {
    let value = json!({
        "benchmark": "pod-startup",
        "machine": report::machine(),
        "batches": batches.iter().map(|b| json!({
            "pods": b.pods, "p50_seconds": b.p50, "p99_seconds": b.p99, "max_seconds": b.max,
            "pods_per_second": b.pods_per_sec,
        })).collect::<Vec<_>>(),
        "idle": {
            "pods": idle.pods, "agent_rss_mib": idle.agent_rss_mib,
            "agent_cpu_percent": idle.agent_cpu_percent, "containerd_rss_mib": idle.containerd_rss_mib,
        },
    });
    std::fs::write(path, serde_json::to_string_pretty(&value)?)?;
    Ok(())
}
