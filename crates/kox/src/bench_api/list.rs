//! `kox bench api-list`: LIST 10,000 pods unpaged, paged, with a label selector, and from the
//! watch cache (`resourceVersion=0`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Conn, Protocol, query_escape};
use super::load::{collection, create_many, pod};
use super::report::{self, Table, goal, ms, percentile};
use super::server_proc::ServerProcess;

/// Flags of `kox bench api-list`.
#[derive(Args, Debug)]
pub struct ApiListArgs {
    /// Pods to create before listing.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Repetitions of each kind of list.
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// Page size of the paged list.
    #[arg(long, default_value_t = 500)]
    pub page_size: usize,
    /// Concurrent clients creating the pods.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Just enough of a list to page and count: the items are skipped, not built.
#[derive(Deserialize)]
struct ListBody {
    metadata: ListMeta,
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ListMeta {
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// The kinds of list measured.
#[derive(Clone, Copy)]
enum Kind {
    Unpaged,
    Paged,
    Selector,
    Cached,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Unpaged, Kind::Paged, Kind::Selector, Kind::Cached];

    fn name(self) -> &'static str {
        match self {
            Kind::Unpaged => "unpaged",
            Kind::Paged => "paged",
            Kind::Selector => "label selector (half)",
            Kind::Cached => "resourceVersion=0 (watch cache)",
        }
    }
}

/// One full list, following `continue` to the end: how long it took, items and bytes received.
async fn full_list(conn: &Conn, kind: Kind, page_size: usize) -> Result<(Duration, usize, usize)> {
    let base = collection("pods");
    let first = match kind {
        Kind::Unpaged => base.clone(),
        Kind::Paged => format!("{base}?limit={page_size}"),
        Kind::Selector => format!("{base}?labelSelector={}", query_escape("half=a")),
        Kind::Cached => format!("{base}?resourceVersion=0"),
    };
    let started = Instant::now();
    let (mut items, mut bytes) = (0, 0);
    let mut path = first;
    loop {
        let body = conn.get_ok(&path).await?;
        bytes += body.len();
        let list: ListBody = serde_json::from_slice(&body).context("decoding a pod list")?;
        items += list.items.len();
        match list.metadata.continue_token.filter(|c| !c.is_empty()) {
            Some(token) => {
                path = format!("{base}?limit={page_size}&continue={}", query_escape(&token))
            }
            None => break,
        }
    }
    Ok((started.elapsed(), items, bytes))
}

pub async fn run(args: ApiListArgs) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("kox-bench-api-list-")
        .tempdir()
        .context("creating a temporary directory")?;
    let server =
        ServerProcess::start(&tmp.path().join("data"), &tmp.path().join("server.log")).await?;
    let conns = server.connect(Protocol::Http2, 8).await?;
    let created = create_many(&conns, args.clients, &collection("pods"), args.pods, |i| {
        pod(&format!("pod-{i:06}"), i.is_multiple_of(2))
    })
    .await?;
    println!(
        "created {} pods in {:.1} s ({:.0}/s)",
        args.pods,
        created.as_secs_f64(),
        args.pods as f64 / created.as_secs_f64()
    );
    let conn = &conns[0];
    // One unmeasured pass of each kind: the first rv=0 list starts the pods' watch cache.
    for kind in Kind::ALL {
        full_list(conn, kind, args.page_size).await?;
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); Kind::ALL.len()];
    let mut sizes = vec![(0, 0); Kind::ALL.len()];
    // Server CPU seconds per kind: unlike wall time, barely moved by other load on the machine.
    let mut cpu = vec![0.0f64; Kind::ALL.len()];
    // Interleaved, so that noise from the shared machine spreads over every kind.
    for _ in 0..args.reps.max(1) {
        for (k, kind) in Kind::ALL.into_iter().enumerate() {
            let cpu_before = server.cpu_seconds()?;
            let (took, items, bytes) = full_list(conn, kind, args.page_size).await?;
            cpu[k] += server.cpu_seconds()? - cpu_before;
            let want = match kind {
                Kind::Selector => args.pods.div_ceil(2),
                _ => args.pods,
            };
            if items != want {
                bail!(
                    "{} list returned {items} pods, expected {want}",
                    kind.name()
                );
            }
            times[k].push(took);
            sizes[k] = (items, bytes);
        }
    }
    server.stop().await?;

    let mut table = Table::new(
        format!(
            "api-list: {} pods, {} repetitions each (ms per full list)",
            args.pods,
            args.reps.max(1)
        ),
        &[
            "list",
            "items",
            "MiB",
            "median",
            "p99",
            "min",
            "server CPU ms",
        ],
    );
    let mut results = Vec::new();
    let mut medians = Vec::new();
    for (k, kind) in Kind::ALL.into_iter().enumerate() {
        let mut t: Vec<f64> = times[k].iter().copied().map(ms).collect();
        t.sort_by(f64::total_cmp);
        let med = report::median(&t);
        let p99 = percentile(&t, 99.0);
        medians.push(med);
        table.row(vec![
            if matches!(kind, Kind::Paged) {
                format!("paged (limit={})", args.page_size)
            } else {
                kind.name().to_string()
            },
            sizes[k].0.to_string(),
            format!("{:.1}", sizes[k].1 as f64 / (1 << 20) as f64),
            format!("{med:.1}"),
            format!("{p99:.1}"),
            format!("{:.1}", t[0]),
            format!("{:.1}", cpu[k] * 1000.0 / t.len() as f64),
        ]);
        results.push(json!({
            "list": kind.name(),
            "items": sizes[k].0,
            "bytes": sizes[k].1,
            "median_ms": med,
            "p99_ms": p99,
            "min_ms": t[0],
            "server_cpu_ms_per_list": cpu[k] * 1000.0 / t.len() as f64,
            "all_ms": t,
        }));
    }
    table.print();
    let full = [0usize, 1, 3];
    let goals: Vec<Value> = full
        .iter()
        .map(|&k| {
            goal(
                &format!("full {}-pod list, {}", args.pods, Kind::ALL[k].name()),
                format!("{:.0} ms", medians[k]),
                "≤ 150 ms",
                medians[k] <= 150.0,
            )
        })
        .collect();
    report::print_goals(&goals);
    report::finish(
        json!({
            "benchmark": "api-list",
            "params": { "pods": args.pods, "reps": args.reps, "page_size": args.page_size },
            "create_seconds": created.as_secs_f64(),
            "lists": results,
            "goals": goals,
        }),
        args.json.as_deref(),
    )
}
