//! `kox bench footprint`: resident memory of `kox server` idle on a fresh data directory, and
//! with 10,000 pods stored.
//!
//! Without `--nodes` the server runs alone (`--disable-scheduler`) and the pods stay pending.
//! With `--nodes N` it runs as shipped, with its scheduler, and `kox fake-nodes` (a separate
//! process, not measured) simulates N nodes that the pods are bound to and run on; with
//! `--scheduler-process` too, the scheduler runs as `kox scheduler` beside the server, so that
//! the server's figure is the API server's own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use super::client::{Conn, Protocol, query_escape};
use super::load::{collection, create_many, pod};
use super::report::{self, Table, goal, median, mib, parse_secs};
use super::server_proc::{Helper, ServerProcess};

/// Flags of `kox bench footprint`.
#[derive(Args, Debug)]
pub struct FootprintArgs {
    /// Pods stored for the loaded reading.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Seconds to let the server settle before each reading.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub settle: Duration,
    /// Concurrent clients creating the pods.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Simulated nodes (`kox fake-nodes`) the pods are scheduled to; 0 runs the API server alone.
    #[arg(long, default_value_t = 0)]
    pub nodes: usize,
    /// With --nodes: run the scheduler as a process of its own (its RSS is reported apart).
    #[arg(long)]
    pub scheduler_process: bool,
    /// Runs, each on a fresh server; the table reports their medians.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// RSS readings of one run, in KiB.
struct Readings {
    idle: u64,
    pods: u64,
    pods_cached: u64,
    peak: u64,
    /// The separate scheduler process's RSS at the end, with `--scheduler-process`.
    scheduler: Option<u64>,
}

async fn one_run(args: &FootprintArgs) -> Result<Readings> {
    let tmp = tempfile::Builder::new()
        .prefix("kox-bench-footprint-")
        .tempdir()
        .context("creating a temporary directory")?;
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let in_process = args.nodes > 0 && !args.scheduler_process;
    let server = if in_process {
        ServerProcess::start_with_scheduler(&data, &log).await?
    } else {
        ServerProcess::start(&data, &log).await?
    };
    let scheduler = if args.nodes > 0 && args.scheduler_process {
        Some(Helper::scheduler(
            &server.kubeconfig(),
            &tmp.path().join("scheduler.log"),
        )?)
    } else {
        None
    };
    tokio::time::sleep(args.settle).await;
    let idle = server.rss_kib()?;
    let conns = server.connect(Protocol::Http2, 4).await?;
    let nodes = if args.nodes > 0 {
        let nodes = Helper::fake_nodes(
            &server.kubeconfig(),
            args.nodes,
            &tmp.path().join("fake-nodes.log"),
        )?;
        wait_for(&conns[0], "/api/v1/nodes", args.nodes, "registered nodes").await?;
        Some(nodes)
    } else {
        None
    };
    let started = Instant::now();
    create_many(&conns, args.clients, &collection("pods"), args.pods, |i| {
        pod(&format!("pod-{i:06}"), i.is_multiple_of(2))
    })
    .await?;
    if args.nodes > 0 {
        let running = format!(
            "{}?fieldSelector={}",
            collection("pods"),
            query_escape("status.phase=Running")
        );
        wait_for(&conns[0], &running, args.pods, "running pods").await?;
        println!(
            "{} pods created, scheduled and running in {:.1} s",
            args.pods,
            started.elapsed().as_secs_f64()
        );
    }
    tokio::time::sleep(args.settle).await;
    let pods = server.rss_kib()?;
    // Any informer (scheduler, kubelet, kubectl get -w) starts the pods' watch cache, which holds
    // every pod decoded: read the memory with it too.
    conns[0]
        .get_ok(&format!("{}?resourceVersion=0", collection("pods")))
        .await?;
    drop(conns);
    tokio::time::sleep(args.settle).await;
    let pods_cached = server.rss_kib()?;
    let peak = server.peak_rss_kib()?;
    let scheduler_rss = scheduler.as_ref().map(Helper::rss_kib).transpose()?;
    if let Some(nodes) = nodes {
        nodes.stop().await?;
    }
    if let Some(scheduler) = scheduler {
        scheduler.stop().await?;
    }
    server.stop().await?;
    Ok(Readings {
        idle,
        pods,
        pods_cached,
        peak,
        scheduler: scheduler_rss,
    })
}

/// Polls a list until it holds `want` items (10 minutes at most).
async fn wait_for(conn: &Conn, path: &str, want: usize, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let body = conn.get_ok(path).await?;
        let list: Items = serde_json::from_slice(&body).context("decoding a list")?;
        if list.items.len() >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} of {want} {what} after 10 minutes", list.items.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(serde::Deserialize)]
struct Items {
    items: Vec<serde::de::IgnoredAny>,
}

pub async fn run(args: FootprintArgs) -> Result<()> {
    let mut table = Table::new(
        if args.nodes > 0 && args.scheduler_process {
            format!(
                "footprint: kox server --disable-scheduler RSS (VmRSS), idle and with {} nodes and {} running pods (kox scheduler in its own process)",
                args.nodes, args.pods
            )
        } else if args.nodes > 0 {
            format!(
                "footprint: kox server (with its scheduler) RSS (VmRSS), idle and with {} nodes and {} running pods",
                args.nodes, args.pods
            )
        } else {
            format!(
                "footprint: kox server --disable-scheduler RSS (VmRSS), idle and with {} pending pods (no nodes)",
                args.pods
            )
        },
        &[
            "run",
            "idle",
            "pods stored",
            "pods + watch cache",
            "peak (VmHWM)",
            "scheduler process",
        ],
    );
    let mut all = Vec::new();
    for r in 0..args.runs.max(1) {
        let x = one_run(&args).await?;
        table.row(vec![
            (r + 1).to_string(),
            mib(x.idle),
            mib(x.pods),
            mib(x.pods_cached),
            mib(x.peak),
            x.scheduler.map(mib).unwrap_or_else(|| "-".into()),
        ]);
        all.push(x);
    }
    let med =
        |f: fn(&Readings) -> u64| median(&all.iter().map(|x| f(x) as f64).collect::<Vec<_>>());
    let (idle, pods, cached, peak) = (
        med(|x| x.idle),
        med(|x| x.pods),
        med(|x| x.pods_cached),
        med(|x| x.peak),
    );
    if all.len() > 1 {
        table.row(vec![
            "median".into(),
            mib(idle as u64),
            mib(pods as u64),
            mib(cached as u64),
            mib(peak as u64),
            if args.scheduler_process && args.nodes > 0 {
                mib(med(|x| x.scheduler.unwrap_or_default()) as u64)
            } else {
                "-".into()
            },
        ]);
    }
    table.print();
    let loaded = cached.max(pods);
    let goals = vec![
        goal(
            "idle RSS",
            mib(idle as u64),
            "≤ 40 MB",
            idle * 1024.0 <= 40e6,
        ),
        goal(
            &if args.nodes > 0 {
                format!("RSS with {} nodes, {} pods", args.nodes, args.pods)
            } else {
                format!("RSS with {} pods (no nodes)", args.pods)
            },
            mib(loaded as u64),
            "≤ 250 MB (100 nodes, 10k pods)",
            loaded * 1024.0 <= 250e6,
        ),
    ];
    report::print_goals(&goals);
    report::finish(
        json!({
            "benchmark": "footprint",
            "params": { "pods": args.pods, "nodes": args.nodes, "settle_seconds": args.settle.as_secs_f64(), "runs": args.runs },
            "scheduler_in_server": args.nodes > 0 && !args.scheduler_process,
            "scheduler_process": args.nodes > 0 && args.scheduler_process,
            "runs": all.iter().map(|x| json!({
                "idle_kib": x.idle, "pods_kib": x.pods, "pods_watch_cache_kib": x.pods_cached, "peak_kib": x.peak,
                "scheduler_process_kib": x.scheduler,
            })).collect::<Vec<_>>(),
            "median_kib": { "idle": idle, "pods": pods, "pods_watch_cache": cached, "peak": peak },
            "goals": goals,
        }),
        args.json.as_deref(),
    )
}
