//! `kox bench watch-fanout`: thousands of concurrent pod watchers multiplexed over HTTP/2, then
//! pod writes: does every watcher get every event, how late, and what does an idle watcher cost
//! the server in memory.
//!
//! The client side is kept cheap because it shares the machine with the server: a watcher reads
//! only the `resourceVersion` out of each event line and records it with the arrival time of its
//! frame; everything else is computed after the run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::client::{Conn, Protocol, find_byte, resource_version};
use super::load::{collection, pod};
use super::report::{self, Table, goal, latency_summary, mib, parse_secs, percentile};
use super::server_proc::{ServerProcess, proc_cpu_seconds};

/// Flags of `kox bench watch-fanout`.
#[derive(Args, Debug)]
pub struct WatchFanoutArgs {
    /// Concurrent watchers of pods.
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    /// Pods created once every watcher is established.
    #[arg(long, default_value_t = 1_000)]
    pub writes: usize,
    /// Pod creates per second; 0 sends them as fast as --write-clients allow.
    #[arg(long, default_value_t = 100.0)]
    pub write_rate: f64,
    /// Concurrent writers when --write-rate is 0.
    #[arg(long, default_value_t = 16)]
    pub write_clients: usize,
    /// Watch streams per HTTP/2 connection (the server allows 200).
    #[arg(long, default_value_t = 100)]
    pub streams_per_connection: usize,
    /// Seconds to let the server settle before each memory reading.
    #[arg(long, default_value = "3", value_parser = parse_secs)]
    pub settle: Duration,
    /// Seconds to wait, after the last write, for every watcher to receive every event.
    #[arg(long, default_value = "120", value_parser = parse_secs)]
    pub drain_timeout: Duration,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What one watcher saw: `(resourceVersion, µs since the start)` per event, in arrival order.
struct Seen {
    events: Vec<(u32, u32)>,
    error: Option<String>,
}

fn micros_since(t0: Instant) -> u32 {
    t0.elapsed().as_micros().min(u32::MAX as u128) as u32
}

/// Records the events of the complete lines of `chunk`; returns the incomplete tail.
fn consume<'a>(chunk: &'a [u8], now: u32, seen: &mut Seen) -> &'a [u8] {
    let mut rest = chunk;
    while let Some(nl) = find_byte(rest, b'\n') {
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        if line.starts_with(br#"{"type":"ERROR""#) {
            seen.error = Some(String::from_utf8_lossy(line).into_owned());
        } else if let Some(rv) = resource_version(line) {
            seen.events.push((rv as u32, now));
        }
    }
    rest
}

async fn watcher(
    conn: Conn,
    path: Arc<str>,
    expect: usize,
    t0: Instant,
    established: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> Seen {
    let mut seen = Seen {
        events: Vec::new(),
        error: None,
    };
    let resp = match conn.send(conn.request(Method::GET, &path, None)).await {
        Ok(r) if r.status() == StatusCode::OK => r,
        Ok(r) => {
            seen.error = Some(format!("watch answered {}", r.status()));
            failed.fetch_add(1, Ordering::Relaxed);
            return seen;
        }
        Err(e) => {
            seen.error = Some(format!("watch failed: {e:#}"));
            failed.fetch_add(1, Ordering::Relaxed);
            return seen;
        }
    };
    established.fetch_add(1, Ordering::Relaxed);
    seen.events.reserve_exact(expect);
    let mut body = resp.into_body();
    let mut partial: Vec<u8> = Vec::new();
    while seen.events.len() < expect {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = stop.cancelled() => break,
        };
        let data = match frame {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Some(Err(e)) => {
                seen.error = Some(format!("watch stream failed: {e}"));
                break;
            }
            None => {
                seen.error = Some("the server ended the watch".into());
                break;
            }
        };
        let now = micros_since(t0);
        if partial.is_empty() {
            let rest = consume(&data, now, &mut seen);
            partial.extend_from_slice(rest);
        } else {
            partial.extend_from_slice(&data);
            let kept = consume(&partial, now, &mut seen).len();
            partial.drain(..partial.len() - kept);
        }
    }
    seen
}

/// One acknowledged write: its resourceVersion, when it was sent and acknowledged (µs).
#[derive(Clone, Copy)]
struct Ack {
    rv: u32,
    sent: u32,
    acked: u32,
}

async fn write_one(conn: &Conn, i: usize, t0: Instant) -> Result<Ack> {
    let sent = micros_since(t0);
    let (status, body) = conn
        .call(
            Method::POST,
            &collection("pods"),
            Some(pod(&format!("fanout-{i:06}"), i.is_multiple_of(2))),
        )
        .await?;
    let acked = micros_since(t0);
    if status != StatusCode::CREATED {
        bail!(
            "POST pod: {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    let rv = resource_version(&body).context("the created pod has no resourceVersion")?;
    Ok(Ack {
        rv: rv as u32,
        sent,
        acked,
    })
}

async fn write_all(args: &WatchFanoutArgs, conn: &Conn, t0: Instant) -> Result<Vec<Ack>> {
    if args.write_rate > 0.0 {
        let mut tasks = Vec::new();
        let start = tokio::time::Instant::now();
        for i in 0..args.writes {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / args.write_rate))
                .await;
            let conn = conn.clone();
            tasks.push(tokio::spawn(async move { write_one(&conn, i, t0).await }));
        }
        let mut acks = Vec::new();
        for t in tasks {
            acks.push(t.await??);
        }
        return Ok(acks);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let writes = args.writes;
    let mut tasks = Vec::new();
    for _ in 0..args.write_clients.max(1) {
        let conn = conn.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= writes {
                    return anyhow::Ok(acks);
                }
                acks.push(write_one(&conn, i, t0).await?);
            }
        }));
    }
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await??);
    }
    Ok(acks)
}

pub async fn run(args: WatchFanoutArgs) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("kox-bench-watch-")
        .tempdir()
        .context("creating a temporary directory")?;
    let server =
        ServerProcess::start(&tmp.path().join("data"), &tmp.path().join("server.log")).await?;
    let writer = server.connect(Protocol::Http2, 1).await?.remove(0);

    // A resourceVersion=0 list starts the pods' watch cache (so that it is in the baseline) and
    // gives the cache's revision, which watches can resume from.
    let listed = writer.get_ok("/api/v1/pods?resourceVersion=0").await?;
    let rv = resource_version(&listed).context("the pod list has no resourceVersion")?;
    tokio::time::sleep(args.settle).await;
    let rss_before = server.rss_kib()?;

    let n_conns = args
        .watchers
        .div_ceil(args.streams_per_connection.max(1))
        .max(1);
    let conns = server.connect(Protocol::Http2, n_conns).await?;
    let t0 = Instant::now();
    let established = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let path: Arc<str> = format!("/api/v1/pods?watch=true&resourceVersion={rv}").into();
    let mut watchers = Vec::with_capacity(args.watchers);
    for i in 0..args.watchers {
        watchers.push(tokio::spawn(watcher(
            conns[i / args.streams_per_connection.max(1)].clone(),
            path.clone(),
            args.writes,
            t0,
            established.clone(),
            failed.clone(),
            stop.clone(),
        )));
    }
    let connect_deadline = Instant::now() + Duration::from_secs(300);
    while established.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < args.watchers {
        if Instant::now() > connect_deadline {
            bail!(
                "only {} of {} watches were established within 300 s",
                established.load(Ordering::Relaxed),
                args.watchers
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_time = t0.elapsed();
    let n_established = established.load(Ordering::Relaxed);
    println!(
        "{n_established} of {} watches established over {n_conns} connections in {:.1} s",
        args.watchers,
        connect_time.as_secs_f64()
    );
    tokio::time::sleep(args.settle).await;
    let rss_idle = server.rss_kib()?;

    let cpu_before = (server.cpu_seconds()?, proc_cpu_seconds("self")?);
    let writes_started = micros_since(t0);
    let acks = write_all(&args, &writer, t0).await?;
    let writes_done = micros_since(t0);
    // Each watcher ends once it has received every event; stragglers are stopped at the drain
    // timeout.
    let canceller = {
        let stop = stop.clone();
        let timeout = args.drain_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            stop.cancel();
        })
    };
    let mut seen = Vec::with_capacity(watchers.len());
    for w in watchers {
        seen.push(w.await?);
    }
    canceller.abort();
    let timed_out = stop.is_cancelled();
    let cpu_server = server.cpu_seconds()? - cpu_before.0;
    let cpu_client = proc_cpu_seconds("self")? - cpu_before.1;
    let rss_after = server.rss_kib()?;
    let rss_peak = server.peak_rss_kib()?;
    drop(conns);
    server.stop().await?;

    // Every watcher must have received exactly the acknowledged writes, in revision order.
    let mut expected: Vec<u32> = acks.iter().map(|a| a.rv).collect();
    expected.sort_unstable();
    let by_rv: HashMap<u32, Ack> = acks.iter().map(|a| (a.rv, *a)).collect();
    let mut complete = 0usize;
    let mut delivered = 0usize;
    let mut errors: HashMap<String, usize> = HashMap::new();
    let mut from_ack = Vec::with_capacity(args.watchers * args.writes);
    let mut from_send = Vec::with_capacity(args.watchers * args.writes);
    let mut before_ack = 0usize;
    let mut last_receive = 0u32;
    for s in &seen {
        let rvs: Vec<u32> = s.events.iter().map(|e| e.0).collect();
        if rvs == expected {
            complete += 1;
        }
        if let Some(e) = &s.error {
            *errors.entry(e.chars().take(120).collect()).or_default() += 1;
        }
        for &(rv, at) in &s.events {
            let Some(ack) = by_rv.get(&rv) else { continue };
            delivered += 1;
            last_receive = last_receive.max(at);
            if at < ack.acked {
                before_ack += 1;
            }
            from_ack.push(at.saturating_sub(ack.acked));
            from_send.push(at.saturating_sub(ack.sent));
        }
    }
    let expected_deliveries = args.watchers * acks.len();
    let delivery_span = Duration::from_micros(last_receive.saturating_sub(writes_started) as u64);
    let deliveries_per_sec = delivered as f64 / delivery_span.as_secs_f64().max(1e-9);
    let per_watcher_kib = (rss_idle as f64 - rss_before as f64) / (n_established.max(1) as f64);
    from_ack.sort_unstable();
    let p50 = percentile(&from_ack, 50.0) as f64 / 1000.0;
    let p99 = percentile(&from_ack, 99.0) as f64 / 1000.0;

    let mut table = Table::new(
        format!(
            "watch-fanout: {} watchers over {n_conns} HTTP/2 connections, {} pod creates at {}",
            args.watchers,
            args.writes,
            if args.write_rate > 0.0 {
                format!("{}/s", args.write_rate)
            } else {
                format!("full speed ({} writers)", args.write_clients)
            }
        ),
        &["measure", "value"],
    );
    let rows: Vec<(&str, String)> = vec![
        (
            "watchers that got every event, in order",
            format!("{complete} / {}", args.watchers),
        ),
        (
            "events delivered",
            format!("{delivered} / {expected_deliveries}"),
        ),
        (
            "delivery latency from write ack p50 / p99",
            format!("{p50:.1} / {p99:.1} ms"),
        ),
        (
            "delivery latency from write ack max",
            format!(
                "{:.1} ms",
                from_ack.last().copied().unwrap_or(0) as f64 / 1000.0
            ),
        ),
        (
            "events received before their write's ack",
            format!("{before_ack}"),
        ),
        (
            "writes sent over",
            format!(
                "{:.2} s",
                (writes_done - writes_started) as f64 / 1_000_000.0
            ),
        ),
        (
            "first write to last delivery",
            format!(
                "{:.2} s ({:.0} deliveries/s)",
                delivery_span.as_secs_f64(),
                deliveries_per_sec
            ),
        ),
        (
            "CPU from first write to last delivery",
            format!(
                "server {cpu_server:.1} s ({:.1} µs per delivery), benchmark client {cpu_client:.1} s",
                cpu_server * 1e6 / delivered.max(1) as f64
            ),
        ),
        (
            "drain timeout hit",
            if timed_out { "yes" } else { "no" }.to_string(),
        ),
        ("server RSS before watchers", mib(rss_before)),
        ("server RSS, watchers idle", mib(rss_idle)),
        (
            "server RSS per idle watcher",
            format!("{per_watcher_kib:.2} KiB"),
        ),
        ("server RSS after the writes", mib(rss_after)),
        ("server peak RSS (VmHWM)", mib(rss_peak)),
    ];
    for (k, v) in rows {
        table.row(vec![k.to_string(), v]);
    }
    table.print();
    for (e, n) in &errors {
        println!("  {n} watcher(s): {e}");
    }
    let goals = vec![
        goal(
            "every watcher gets every event",
            format!("{complete} / {}", args.watchers),
            "all",
            complete == args.watchers && acks.len() == args.writes,
        ),
        goal(
            "delivery p99 (from write ack)",
            format!("{p99:.0} ms"),
            "≤ 200 ms",
            p99 <= 200.0,
        ),
        goal(
            "RSS per idle watcher",
            format!("{per_watcher_kib:.1} KiB"),
            "≤ 10 KiB",
            per_watcher_kib <= 10.0,
        ),
    ];
    report::print_goals(&goals);
    report::finish(
        json!({
            "benchmark": "watch-fanout",
            "params": {
                "watchers": args.watchers,
                "writes": args.writes,
                "write_rate": args.write_rate,
                "write_clients": args.write_clients,
                "streams_per_connection": args.streams_per_connection,
                "connections": n_conns,
            },
            "watchers_established": n_established,
            "watch_connect_seconds": connect_time.as_secs_f64(),
            "watchers_complete": complete,
            "events_delivered": delivered,
            "events_expected": expected_deliveries,
            "watcher_errors": errors,
            "latency_from_ack": latency_summary(from_ack),
            "latency_from_send": latency_summary(from_send),
            "events_before_ack": before_ack,
            "drain_timed_out": timed_out,
            "cpu_seconds": { "server": cpu_server, "client": cpu_client },
            "server_cpu_us_per_delivery": cpu_server * 1e6 / delivered.max(1) as f64,
            "write_seconds": (writes_done - writes_started) as f64 / 1e6,
            "delivery_seconds": delivery_span.as_secs_f64(),
            "deliveries_per_sec": deliveries_per_sec,
            "rss_kib": {
                "before_watchers": rss_before,
                "watchers_idle": rss_idle,
                "after_writes": rss_after,
                "peak": rss_peak,
            },
            "rss_per_idle_watcher_kib": per_watcher_kib,
            "goals": goals,
        }),
        args.json.as_deref(),
    )
}
