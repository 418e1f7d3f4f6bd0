//! `kox bench startup`: from spawning `kox server` to the first `/readyz` that answers 200, on an
//! empty store and on a store holding 100,000 objects.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::json;

use super::client::Protocol;
use super::load::{collection, configmap, create_many};
use super::report::{self, Table, goal, median, ms};
use super::server_proc::ServerProcess;

/// Flags of `kox bench startup`.
#[derive(Args, Debug)]
pub struct StartupArgs {
    /// ConfigMaps stored for the loaded starts.
    #[arg(long, default_value_t = 100_000)]
    pub objects: usize,
    /// Starts measured in each case.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Concurrent clients creating the objects.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Deserialize)]
struct CountMeta {
    #[serde(rename = "remainingItemCount")]
    remaining: Option<u64>,
}

#[derive(Deserialize)]
struct CountList {
    metadata: CountMeta,
    items: Vec<serde::de::IgnoredAny>,
}

pub async fn run(args: StartupArgs) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("kox-bench-startup-")
        .tempdir()
        .context("creating a temporary directory")?;
    let log = tmp.path().join("server.log");
    let runs = args.runs.max(1);

    // First boot: a fresh data directory (the cluster CA and certificates are generated).
    let mut fresh = Vec::new();
    for r in 0..runs {
        let s = ServerProcess::start(&tmp.path().join(format!("fresh-{r}")), &log).await?;
        fresh.push(s.ready_after);
        s.stop().await?;
    }
    // Restarts on an empty store (the certificates exist).
    let empty_dir = tmp.path().join("fresh-0");
    let mut empty = Vec::new();
    for _ in 0..runs {
        let s = ServerProcess::start(&empty_dir, &log).await?;
        empty.push(s.ready_after);
        s.stop().await?;
    }
    // Restarts with `objects` ConfigMaps stored.
    let loaded_dir = tmp.path().join("loaded");
    let fill = {
        let s = ServerProcess::start(&loaded_dir, &log).await?;
        let conns = s.connect(Protocol::Http2, 8).await?;
        let took = create_many(
            &conns,
            args.clients,
            &collection("configmaps"),
            args.objects,
            |i| configmap(&format!("cm-{i:07}")),
        )
        .await?;
        drop(conns);
        s.stop().await?;
        took
    };
    println!(
        "stored {} ConfigMaps in {:.1} s ({:.0}/s)",
        args.objects,
        fill.as_secs_f64(),
        args.objects as f64 / fill.as_secs_f64()
    );
    let mut loaded = Vec::new();
    for r in 0..runs {
        let s = ServerProcess::start(&loaded_dir, &log).await?;
        loaded.push(s.ready_after);
        if r == 0 {
            // The objects survived the restarts.
            let conn = s.connect(Protocol::Http2, 1).await?.remove(0);
            let body = conn
                .get_ok(&format!("{}?limit=1", collection("configmaps")))
                .await?;
            let list: CountList = serde_json::from_slice(&body)?;
            let count = list.items.len() as u64 + list.metadata.remaining.unwrap_or(0);
            if count < args.objects as u64 {
                bail!(
                    "after a restart the store holds {count} ConfigMaps, expected {}",
                    args.objects
                );
            }
        }
        s.stop().await?;
    }
    let db_bytes = dir_size(&loaded_dir.join("db"));

    let fmt = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let med = |v: &[Duration]| median(&v.iter().map(|d| ms(*d)).collect::<Vec<_>>());
    let mut table = Table::new(
        "startup: process spawn → /readyz 200 (ms)",
        &["case", "median", "each run"],
    );
    table.row(vec![
        "first boot, fresh data dir (generates PKI)".into(),
        format!("{:.0}", med(&fresh)),
        fmt(&fresh),
    ]);
    table.row(vec![
        "restart, empty store".into(),
        format!("{:.0}", med(&empty)),
        fmt(&empty),
    ]);
    table.row(vec![
        format!(
            "restart, {} ConfigMaps ({:.0} MiB db)",
            args.objects,
            db_bytes as f64 / (1 << 20) as f64
        ),
        format!("{:.0}", med(&loaded)),
        fmt(&loaded),
    ]);
    table.print();
    let empty_worst = med(&fresh).max(med(&empty));
    let goals = vec![
        goal(
            "startup, empty store (first boot and restart)",
            format!("{empty_worst:.0} ms"),
            "≤ 300 ms",
            empty_worst <= 300.0,
        ),
        goal(
            &format!("startup, {} objects", args.objects),
            format!("{:.0} ms", med(&loaded)),
            "≤ 3000 ms",
            med(&loaded) <= 3000.0,
        ),
    ];
    report::print_goals(&goals);
    let list = |v: &[Duration]| v.iter().map(|d| ms(*d)).collect::<Vec<_>>();
    report::finish(
        json!({
            "benchmark": "startup",
            "params": { "objects": args.objects, "runs": runs },
            "fill_seconds": fill.as_secs_f64(),
            "db_bytes": db_bytes,
            "first_boot_ms": { "median": med(&fresh), "all": list(&fresh) },
            "restart_empty_ms": { "median": med(&empty), "all": list(&empty) },
            "restart_loaded_ms": { "median": med(&loaded), "all": list(&loaded) },
            "goals": goals,
        }),
        args.json.as_deref(),
    )
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map_or(0, |m| m.len());
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}
