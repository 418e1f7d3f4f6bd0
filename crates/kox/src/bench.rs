//! `kox bench store`: prints a human table and, with `--json FILE`, writes the results as JSON.
//! It measures; it never fails on a number.
//!
//! It runs the store harness of `kox_store::bench` against the embedded engine:
//! store-write with 1, 8 and 64 concurrent writers, store-read of 10,000 keys, and the disk's
//! fdatasync rate in the same directory as the physical reference.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use kox_store::Store;
use kox_store::bench::{self, ReadReport, SyncReport, WriteReport};
use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
use serde_json::json;

/// Arguments of `kox bench store`.
#[derive(Args)]
pub struct StoreBenchArgs {
    /// Directory on the disk to measure; a subdirectory is created in it and removed afterwards.
    /// Default: the system's temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds of each write and read measurement.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

const WRITERS: [usize; 3] = [1, 8, 64];
const VALUE_SIZE: usize = 256;
const READ_KEYS: usize = 10_000;
/// performance.md: p99 of a durable write at 64 writers.
const P99_GOAL_MS: f64 = 10.0;

/// Runs `kox bench store`.
pub async fn store(args: StoreBenchArgs) -> Result<()> {
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = base.join(format!("kox-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&work)
        .with_context(|| format!("cannot create {}; pass --dir DIR", work.display()))?;
    let result = measure(&work, Duration::from_secs(args.duration_secs.max(1))).await;
    let _ = std::fs::remove_dir_all(&work);
    let (sync_before, writes, read, sync_after) = result?;

    print_table(
        &work,
        args.duration_secs,
        &sync_before,
        &sync_after,
        &writes,
        &read,
    );
    if let Some(path) = &args.json {
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let doc = json!({
            "benchmark": "store",
            "engine": "embedded",
            "unix_time": unix_time,
            "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) },
            "dir": base,
            "duration_secs": args.duration_secs,
            "fdatasync": { "before": sync_before, "after": sync_after },
            "store_write": writes,
            "store_read": read,
            "goal": { "p99_ms_at_64_writers": P99_GOAL_MS },
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

async fn measure(
    work: &Path,
    duration: Duration,
) -> Result<(SyncReport, Vec<WriteReport>, ReadReport, SyncReport)> {
    let sync_before = fdatasync(work).await?;
    let mut writes = Vec::new();
    for writers in WRITERS {
        let dir = work.join(format!("write-{writers}"));
        let (store, handle) = open(&dir)?;
        eprintln!(
            "store-write: {writers} writers for {} s…",
            duration.as_secs()
        );
        let report = bench::store_write(store, writers, duration, VALUE_SIZE).await?;
        handle.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        writes.push(report);
    }
    let dir = work.join("read");
    let (store, handle) = open(&dir)?;
    eprintln!(
        "store-read: loading {READ_KEYS} keys, then reading for {} s…",
        duration.as_secs()
    );
    let read = bench::store_read(store, READ_KEYS, duration, VALUE_SIZE).await?;
    handle.close().await;
    let sync_after = fdatasync(work).await?;
    Ok((sync_before, writes, read, sync_after))
}

fn open(dir: &Path) -> Result<(Arc<dyn Store>, Arc<EmbeddedStore>)> {
    let store = Arc::new(
        EmbeddedStore::open(dir, EmbeddedOptions::default())
            .with_context(|| format!("cannot open the embedded store in {}", dir.display()))?,
    );
    Ok((store.clone(), store))
}

async fn fdatasync(dir: &Path) -> Result<SyncReport> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || bench::fdatasync_rate(&dir, Duration::from_secs(1)))
        .await?
        .context("measuring the fdatasync rate")
}

fn print_table(
    work: &Path,
    duration_secs: u64,
    before: &SyncReport,
    after: &SyncReport,
    writes: &[WriteReport],
    read: &ReadReport,
) {
    let syncs = (before.syncs_per_sec + after.syncs_per_sec) / 2.0;
    println!(
        "kox bench store — embedded engine, {duration_secs} s per measurement, in {}",
        work.display()
    );
    println!(
        "disk fdatasync ({} B block): {:.0}/s before, {:.0}/s after (p50 {:.3} ms)",
        before.block_size, before.syncs_per_sec, after.syncs_per_sec, before.latency.p50_ms
    );
    println!();
    println!("store-write ({VALUE_SIZE} B values, durable acknowledgements)");
    println!(
        "{:>8} {:>11} {:>9} {:>9} {:>9} {:>13}",
        "writers", "writes/s", "p50 ms", "p99 ms", "max ms", "× fdatasync/s"
    );
    for w in writes {
        println!(
            "{:>8} {:>11.0} {:>9.2} {:>9.2} {:>9.2} {:>13.2}",
            w.writers,
            w.writes_per_sec,
            w.latency.p50_ms,
            w.latency.p99_ms,
            w.latency.max_ms,
            w.writes_per_sec / syncs
        );
    }
    if let Some(w) = writes.iter().find(|w| w.writers == 64) {
        let verdict = if w.latency.p99_ms <= P99_GOAL_MS {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "goal p99 ≤ {P99_GOAL_MS} ms at 64 writers: {verdict} ({:.2} ms)",
            w.latency.p99_ms
        );
    }
    println!();
    println!(
        "store-read (range of {} keys, {} B values)",
        read.keys, read.value_size
    );
    println!(
        "{:>8} {:>11} {:>9} {:>9} {:>9}",
        "reads", "mean ms", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "{:>8} {:>11.2} {:>9.2} {:>9.2} {:>9.2}",
        read.reads,
        read.latency.mean_ms,
        read.latency.p50_ms,
        read.latency.p99_ms,
        read.latency.max_ms
    );
}
