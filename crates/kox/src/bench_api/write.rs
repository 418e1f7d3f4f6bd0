//! `kox bench api-write`: concurrent pod creates over HTTPS against one `kox server`, compared
//! with the embedded store's own write rate measured in the same run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::Protocol;
use super::load::{NAMESPACE, collection, pod};
use super::report::{self, Table, goal, latency_summary, median, parse_secs, percentile};
use super::server_proc::ServerProcess;
use super::store_base::store_write;

/// Flags of `kox bench api-write`.
#[derive(Args, Debug)]
pub struct ApiWriteArgs {
    /// Concurrent clients, each creating pods one after another.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// TLS connections the clients share [default: one per client].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Use HTTP/1.1 keep-alive connections instead of HTTP/2.
    #[arg(long)]
    pub http1: bool,
    /// Seconds of measured creates per run.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// Seconds of unmeasured creates before each measurement.
    #[arg(long, default_value = "1", value_parser = parse_secs)]
    pub warmup: Duration,
    /// Seconds of the store-write anchor per run [default: --duration].
    #[arg(long, value_parser = parse_secs)]
    pub store_duration: Option<Duration>,
    /// Concurrent writers of the store-write anchor.
    #[arg(long, default_value_t = 64)]
    pub store_writers: usize,
    /// Value size of the store-write anchor, in bytes.
    #[arg(long, default_value_t = 256)]
    pub store_value_size: usize,
    /// Runs (each: store-write, then a fresh server); the table reports their medians.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub(super) struct ApiRun {
    pub creates_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu_us_per_create: f64,
    pub json: Value,
}

pub async fn run(args: ApiWriteArgs) -> Result<()> {
    let mut runs = Vec::new();
    let mut table = Table::new(
        format!(
            "api-write: {} clients, {} over {} {} connection(s), {:?} per run",
            args.clients,
            "POST pods",
            args.connections.unwrap_or(args.clients),
            if args.http1 { "HTTP/1.1" } else { "HTTP/2" },
            args.duration
        ),
        &[
            "run",
            "creates/s",
            "p50 ms",
            "p99 ms",
            "store-write/s",
            "store p99 ms",
            "api/store",
            "server CPU µs/create",
        ],
    );
    let (mut rates, mut p50s, mut p99s, mut store_rates, mut store_p99s, mut ratios) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut cpu = vec![];
    for r in 0..args.runs.max(1) {
        let store = store_write(
            args.store_writers,
            args.store_value_size,
            args.store_duration.unwrap_or(args.duration),
        )
        .await?;
        let api = api_run(&args, &[]).await?;
        let ratio = api.creates_per_sec / store.writes_per_sec;
        table.row(vec![
            (r + 1).to_string(),
            format!("{:.0}", api.creates_per_sec),
            format!("{:.2}", api.p50_ms),
            format!("{:.2}", api.p99_ms),
            format!("{:.0}", store.writes_per_sec),
            format!("{:.2}", store.p99_ms),
            format!("{:.0}%", ratio * 100.0),
            format!("{:.0}", api.cpu_us_per_create),
        ]);
        cpu.push(api.cpu_us_per_create);
        rates.push(api.creates_per_sec);
        p50s.push(api.p50_ms);
        p99s.push(api.p99_ms);
        store_rates.push(store.writes_per_sec);
        store_p99s.push(store.p99_ms);
        ratios.push(ratio);
        runs.push(json!({ "api": api.json, "store_write": store.json, "ratio": ratio }));
    }
    let med = json!({
        "creates_per_sec": median(&rates),
        "p50_ms": median(&p50s),
        "p99_ms": median(&p99s),
        "store_writes_per_sec": median(&store_rates),
        "store_p99_ms": median(&store_p99s),
        "ratio": median(&ratios),
        "server_cpu_us_per_create": median(&cpu),
    });
    if runs.len() > 1 {
        table.row(vec![
            "median".into(),
            format!("{:.0}", median(&rates)),
            format!("{:.2}", median(&p50s)),
            format!("{:.2}", median(&p99s)),
            format!("{:.0}", median(&store_rates)),
            format!("{:.2}", median(&store_p99s)),
            format!("{:.0}%", median(&ratios) * 100.0),
            format!("{:.0}", median(&cpu)),
        ]);
    }
    table.print();
    let goals = vec![
        goal(
            "creates/s ≥ 50% of store-write (same run)",
            format!("{:.0}%", median(&ratios) * 100.0),
            "≥ 50%",
            median(&ratios) >= 0.5,
        ),
        goal(
            "create p99",
            format!("{:.1} ms", median(&p99s)),
            "≤ 50 ms",
            median(&p99s) <= 50.0,
        ),
    ];
    report::print_goals(&goals);
    report::finish(
        json!({
            "benchmark": "api-write",
            "params": {
                "clients": args.clients,
                "connections": args.connections.unwrap_or(args.clients),
                "protocol": if args.http1 { "http/1.1" } else { "h2" },
                "seconds": args.duration.as_secs_f64(),
                "warmup_seconds": args.warmup.as_secs_f64(),
                "store_writers": args.store_writers,
                "store_value_bytes": args.store_value_size,
            },
            "runs": runs,
            "median": med,
            "goals": goals,
        }),
        args.json.as_deref(),
    )
}

/// One fresh server (started with `server_flags`), warmed up, then `duration` of creates from
/// every client.
pub(super) async fn api_run(args: &ApiWriteArgs, server_flags: &[String]) -> Result<ApiRun> {
    let tmp = tempfile::Builder::new()
        .prefix("kox-bench-api-write-")
        .tempdir()
        .context("creating a temporary directory")?;
    let server = ServerProcess::start_with_flags(
        &tmp.path().join("data"),
        &tmp.path().join("server.log"),
        server_flags,
    )
    .await?;
    let protocol = if args.http1 {
        Protocol::Http1
    } else {
        Protocol::Http2
    };
    let clients = args.clients.max(1);
    let conns = server
        .connect(protocol, args.connections.unwrap_or(clients))
        .await?;
    let path = collection("pods");
    let started = Instant::now();
    let measure_from = started + args.warmup;
    let deadline = measure_from + args.duration;
    let mut tasks = Vec::new();
    for w in 0..clients {
        let conn = conns[w % conns.len()].clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut n = 0u64;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let body = pod(&format!("w{w:03}-{n:08}"), n.is_multiple_of(2));
                n += 1;
                let (status, _) = conn.call(Method::POST, &path, Some(body)).await?;
                let done = Instant::now();
                // Completions inside the window count, whenever they were sent.
                if done >= measure_from && done <= deadline {
                    let took = done - now;
                    if status == StatusCode::CREATED {
                        lat.push(took.as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            anyhow::Ok((lat, errors))
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_from = server.cpu_seconds()?;
    tokio::time::sleep_until(deadline.into()).await;
    let cpu_server = server.cpu_seconds()? - cpu_from;
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        lat.extend(l);
        errors += e;
    }
    let rss = server.rss_kib().ok();
    server.stop().await?;
    let creates = lat.len();
    let creates_per_sec = creates as f64 / args.duration.as_secs_f64();
    lat.sort_unstable();
    let p50_ms = percentile(&lat, 50.0) as f64 / 1000.0;
    let p99_ms = percentile(&lat, 99.0) as f64 / 1000.0;
    let cpu_us_per_create = cpu_server * 1e6 / creates.max(1) as f64;
    Ok(ApiRun {
        creates_per_sec,
        p50_ms,
        p99_ms,
        cpu_us_per_create,
        json: json!({
            "namespace": NAMESPACE,
            "creates": creates,
            "errors": errors,
            "creates_per_sec": creates_per_sec,
            "latency": latency_summary(lat),
            "server_rss_kib_after": rss,
            "server_cpu_seconds": cpu_server,
            "server_cpu_cores": cpu_server / args.duration.as_secs_f64(),
            "server_cpu_us_per_create": cpu_us_per_create,
        }),
    })
}
