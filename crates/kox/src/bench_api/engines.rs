//! `kox bench engines`: the same `store-write` harness and the same `api-write` load against
//! the embedded engine, a 1-member etcd and a 3-member etcd, side by side in one run.
//!
//! The etcd members are Debian's `etcd` binary, started by the benchmark on loopback with their
//! data on the same disk as the embedded engine's (the system's temporary directory), so both
//! pay the same fsync.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use kox_store::Store;
use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kox_store::etcd::local::{LocalEtcdCluster, LocalEtcdOptions, etcd_available};
use kox_store::etcd::{EtcdOptions, EtcdStore};
use serde_json::json;

use super::report::{self, Table, goal, median, parse_secs};
use super::write::{ApiWriteArgs, api_run};

/// Flags of `kox bench engines`.
#[derive(Args, Debug)]
pub struct EnginesArgs {
    /// Concurrent writers of store-write and concurrent clients of api-write.
    #[arg(long, default_value_t = 64)]
    pub writers: usize,
    /// Seconds of each measurement.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    pub duration: Duration,
    /// Value size of store-write, in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Rounds; each measures every engine once, in turn, so load drifts hit all of them.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq)]
enum Engine {
    Embedded,
    Etcd(usize),
}

impl Engine {
    const ALL: [Engine; 3] = [Engine::Embedded, Engine::Etcd(1), Engine::Etcd(3)];

    fn name(self) -> String {
        match self {
            Engine::Embedded => "embedded".into(),
            Engine::Etcd(n) => format!("etcd ({n} member{})", if n > 1 { "s" } else { "" }),
        }
    }
}

/// What one engine measured in one round.
#[derive(Default, Clone)]
struct Figures {
    store_rate: f64,
    store_p99: f64,
    api_rate: f64,
    api_p99: f64,
}

/// A running engine for one measurement: its store handle (for store-write) and the flags that
/// point a server at it (for api-write). Dropping it stops the etcd members.
struct Running {
    store: Arc<dyn Store>,
    server_flags: Vec<String>,
    _etcd: Option<LocalEtcdCluster>,
    _dir: tempfile::TempDir,
}

async fn start(engine: Engine) -> Result<Running> {
    // The system's temporary directory: the disk the server's data directories are on too.
    let dir = tempfile::Builder::new()
        .prefix("kox-bench-engines-")
        .tempdir()
        .context("creating a temporary directory")?;
    match engine {
        Engine::Embedded => {
            let store: Arc<dyn Store> = Arc::new(
                EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
                    .context("opening the embedded store")?,
            );
            Ok(Running {
                store,
                server_flags: Vec::new(),
                _etcd: None,
                _dir: dir,
            })
        }
        Engine::Etcd(members) => {
            let options = LocalEtcdOptions {
                parent_dir: Some(dir.path().to_path_buf()),
                ..LocalEtcdOptions::default()
            };
            let etcd =
                tokio::task::spawn_blocking(move || LocalEtcdCluster::start(members, options))
                    .await?
                    .context("starting etcd")?;
            let endpoints = etcd.endpoints();
            let store: Arc<dyn Store> = Arc::new(
                EtcdStore::connect(EtcdOptions {
                    endpoints: endpoints.clone(),
                    ..EtcdOptions::default()
                })
                .await
                .context("connecting to the benchmark's etcd")?,
            );
            Ok(Running {
                store,
                server_flags: vec!["--datastore-endpoint".into(), endpoints.join(",")],
                _etcd: Some(etcd),
                _dir: dir,
            })
        }
    }
}

/// store-write on a fresh engine, then api-write on another fresh one.
async fn measure(engine: Engine, args: &EnginesArgs) -> Result<Figures> {
    let running = start(engine).await?;
    let report = kox_store::bench::store_write(
        running.store.clone(),
        args.writers,
        args.duration,
        args.value_size,
    )
    .await?;
    drop(running);
    let running = start(engine).await?;
    let api_args = ApiWriteArgs {
        clients: args.writers,
        connections: None,
        http1: false,
        duration: args.duration,
        warmup: Duration::from_secs(1),
        store_duration: None,
        store_writers: args.writers,
        store_value_size: args.value_size,
        runs: 1,
        json: None,
    };
    let api = api_run(&api_args, &running.server_flags).await?;
    Ok(Figures {
        store_rate: report.writes_per_sec,
        store_p99: report.latency.p99_ms,
        api_rate: api.creates_per_sec,
        api_p99: api.p99_ms,
    })
}

pub async fn run(args: EnginesArgs) -> Result<()> {
    anyhow::ensure!(
        etcd_available(),
        "kox bench engines needs /usr/bin/etcd (Debian: apt-get install etcd-server)"
    );
    let mut per_engine: Vec<Vec<Figures>> = vec![Vec::new(); Engine::ALL.len()];
    for round in 0..args.runs.max(1) {
        for (i, engine) in Engine::ALL.into_iter().enumerate() {
            let f = measure(engine, &args).await?;
            eprintln!(
                "round {}: {}: store-write {:.0}/s, api-write {:.0}/s",
                round + 1,
                engine.name(),
                f.store_rate,
                f.api_rate
            );
            per_engine[i].push(f);
        }
    }
    let med =
        |i: usize, f: fn(&Figures) -> f64| median(&per_engine[i].iter().map(f).collect::<Vec<_>>());
    let mut table = Table::new(
        format!(
            "engines: store-write ({} writers, {} B) and api-write ({} clients, POST pods, HTTP/2), {:?} each, medians of {} round(s)",
            args.writers,
            args.value_size,
            args.writers,
            args.duration,
            args.runs.max(1)
        ),
        &[
            "engine",
            "store-write/s",
            "store p99 ms",
            "api-write/s",
            "api p99 ms",
            "embedded ÷ this (store)",
        ],
    );
    let embedded_store = med(0, |f| f.store_rate);
    let mut rows = Vec::new();
    for (i, engine) in Engine::ALL.into_iter().enumerate() {
        let store_rate = med(i, |f| f.store_rate);
        table.row(vec![
            engine.name(),
            format!("{store_rate:.0}"),
            format!("{:.2}", med(i, |f| f.store_p99)),
            format!("{:.0}", med(i, |f| f.api_rate)),
            format!("{:.2}", med(i, |f| f.api_p99)),
            format!("{:.2}×", embedded_store / store_rate.max(f64::MIN_POSITIVE)),
        ]);
        rows.push(json!({
            "engine": engine.name(),
            "store_writes_per_sec": store_rate,
            "store_p99_ms": med(i, |f| f.store_p99),
            "api_creates_per_sec": med(i, |f| f.api_rate),
            "api_p99_ms": med(i, |f| f.api_p99),
            "rounds": per_engine[i].iter().map(|f| json!({
                "store_writes_per_sec": f.store_rate,
                "store_p99_ms": f.store_p99,
                "api_creates_per_sec": f.api_rate,
                "api_p99_ms": f.api_p99,
            })).collect::<Vec<_>>(),
        }));
    }
    table.print();
    let etcd1 = med(1, |f| f.store_rate);
    let ratio = embedded_store / etcd1.max(f64::MIN_POSITIVE);
    let goals = vec![goal(
        "embedded store-write ≥ 3× a 1-member etcd (same run)",
        format!("{ratio:.2}×"),
        "≥ 3×",
        ratio >= 3.0,
    )];
    report::print_goals(&goals);
    report::finish(
        json!({
            "benchmark": "engines",
            "params": {
                "writers": args.writers,
                "value_bytes": args.value_size,
                "seconds": args.duration.as_secs_f64(),
                "rounds": args.runs.max(1),
            },
            "engines": rows,
            "goals": goals,
        }),
        args.json.as_deref(),
    )
}
