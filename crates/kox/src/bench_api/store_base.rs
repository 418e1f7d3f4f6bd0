//! The anchor of `api-write`: the embedded store's own durable write rate (`store-write` of
//! `kox_store::bench`), measured in the same run on a temporary directory of the same disk.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use kox_store::Store;
use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
use serde_json::Value;

/// What one `store-write` run measured.
pub struct StoreWriteResult {
    pub writes_per_sec: f64,
    pub p99_ms: f64,
    pub json: Value,
}

/// `store-write` with `writers` concurrent writers and `value_size`-byte values for `duration`.
pub async fn store_write(
    writers: usize,
    value_size: usize,
    duration: Duration,
) -> Result<StoreWriteResult> {
    // The system's temporary directory: the same disk as the server's data directory.
    let dir = tempfile::Builder::new()
        .prefix("kox-bench-store-")
        .tempdir()
        .context("creating a temporary directory")?;
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
            .context("opening the embedded store")?,
    );
    let report = kox_store::bench::store_write(store, writers, duration, value_size).await?;
    Ok(StoreWriteResult {
        writes_per_sec: report.writes_per_sec,
        p99_ms: report.latency.p99_ms,
        json: serde_json::to_value(&report)?,
    })
}
