//! `kox bench footprint`: resident memory of `kox server` idle on a fresh data directory, and
//! with 10,000 pods stored.
//!
//! Nodes are not served yet, so the "100 simulated nodes" of the goal are left out: the loaded
//! figure is for the pods alone.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use super::client::Protocol;
use super::load::{collection, create_many, pod};
use super::report::{self, Table, goal, median, mib, parse_secs};
use super::server_proc::ServerProcess;

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
}

async fn one_run(args: &FootprintArgs) -> Result<Readings> {
    let tmp = tempfile::Builder::new()
        .prefix("kox-bench-footprint-")
        .tempdir()
        .context("creating a temporary directory")?;
    let server =
        ServerProcess::start(&tmp.path().join("data"), &tmp.path().join("server.log")).await?;
    tokio::time::sleep(args.settle).await;
    let idle = server.rss_kib()?;
    {
        let conns = server.connect(Protocol::Http2, 4).await?;
        create_many(&conns, args.clients, &collection("pods"), args.pods, |i| {
            pod(&format!("pod-{i:06}"), i.is_multiple_of(2))
        })
        .await?;
    }
    tokio::time::sleep(args.settle).await;
    let pods = server.rss_kib()?;
    // Any informer (scheduler, kubelet, kubectl get -w) starts the pods' watch cache, which holds
    // every pod decoded: read the memory with it too.
    {
        let conn = server.connect(Protocol::Http2, 1).await?.remove(0);
        conn.get_ok(&format!("{}?resourceVersion=0", collection("pods")))
            .await?;
    }
    tokio::time::sleep(args.settle).await;
    let pods_cached = server.rss_kib()?;
    let peak = server.peak_rss_kib()?;
    server.stop().await?;
    Ok(Readings {
        idle,
        pods,
        pods_cached,
        peak,
    })
}

pub async fn run(args: FootprintArgs) -> Result<()> {
    let mut table = Table::new(
        format!(
            "footprint: kox server RSS (VmRSS), idle and with {} pods (no nodes: not served yet)",
            args.pods
        ),
        &[
            "run",
            "idle",
            "pods stored",
            "pods + watch cache",
            "peak (VmHWM)",
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
            &format!("RSS with {} pods (no nodes)", args.pods),
            mib(loaded as u64),
            "≤ 250 MB (with 100 nodes)",
            loaded * 1024.0 <= 250e6,
        ),
    ];
    report::print_goals(&goals);
    report::finish(
        json!({
            "benchmark": "footprint",
            "params": { "pods": args.pods, "settle_seconds": args.settle.as_secs_f64(), "runs": args.runs },
            "note": "nodes are not served yet: the loaded figure has the pods only",
            "runs": all.iter().map(|x| json!({
                "idle_kib": x.idle, "pods_kib": x.pods, "pods_watch_cache_kib": x.pods_cached, "peak_kib": x.peak,
            })).collect::<Vec<_>>(),
            "median_kib": { "idle": idle, "pods": pods, "pods_watch_cache": cached, "peak": peak },
            "goals": goals,
        }),
        args.json.as_deref(),
    )
}
