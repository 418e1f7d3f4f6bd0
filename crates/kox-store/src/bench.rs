//! Benchmark harness for any [`Store`] engine: `store-write`, `store-read`, and the disk's own
//! fdatasync rate as the physical reference of the same run.
//!
//! Benchmarks print numbers; they assert nothing. The reports serialize to JSON for the
//! `kox bench store` command and BENCHMARKS.md.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{Condition, Error, KeyRange, RangeRequest, Result, Store, WriteOutcome};

/// Distinct keys each writer cycles through: the workload is updates of a steady key set.
const KEYS_PER_WRITER: u64 = 1024;

/// Latency distribution in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Summarizes samples in microseconds (sorted in place).
    fn from_micros(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self {
                mean_ms: 0.0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
            };
        }
        samples.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |q: f64| {
            let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
            ms(samples[rank - 1])
        };
        let sum: u64 = samples.iter().sum();
        Self {
            mean_ms: ms(sum) / samples.len() as f64,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: ms(samples[samples.len() - 1]),
        }
    }
}

/// What one `store-write` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    /// Concurrent writers, each with one write in flight.
    pub writers: usize,
    pub value_size: usize,
    /// Acknowledged (durable) writes.
    pub writes: u64,
    pub seconds: f64,
    pub writes_per_sec: f64,
    /// Per-write latency, from the call to the durable acknowledgement.
    pub latency: Latency,
}

/// `store-write`: `writers` concurrent writers, each putting `value_size`-byte values in a loop
/// and waiting for the durable acknowledgement of each, for `duration`.
pub async fn store_write(
    store: Arc<dyn Store>,
    writers: usize,
    duration: Duration,
    value_size: usize,
) -> Result<WriteReport> {
    let writers = writers.max(1);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = Arc::clone(&store);
            let value = vec![b'v'; value_size];
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let key = format!("bench/write/{w:04}/{:05}", n % KEYS_PER_WRITER).into_bytes();
                    let t = Instant::now();
                    match store.put(key, value.clone(), Condition::None).await? {
                        WriteOutcome::Committed { .. } => {}
                        WriteOutcome::Failed { .. } => {
                            return Err(Error::Backend(
                                "an unconditional put failed its condition".into(),
                            ));
                        }
                    }
                    latencies.push(t.elapsed().as_micros() as u64);
                    n += 1;
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        let latencies = task
            .await
            .map_err(|e| Error::Backend(format!("benchmark writer failed: {e}")))??;
        samples.extend(latencies);
    }
    let seconds = started.elapsed().as_secs_f64();
    let writes = samples.len() as u64;
    Ok(WriteReport {
        writers,
        value_size,
        writes,
        seconds,
        writes_per_sec: writes as f64 / seconds,
        latency: Latency::from_micros(&mut samples),
    })
}

/// What one `store-read` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ReadReport {
    /// Keys returned by each range read.
    pub keys: usize,
    pub value_size: usize,
    pub reads: u64,
    pub seconds: f64,
    /// Time per full range read.
    pub latency: Latency,
}

/// `store-read`: loads `keys` keys of `value_size` bytes under one prefix, then reads the whole
/// prefix back, one read at a time, for `duration` (at least 5 reads).
pub async fn store_read(
    store: Arc<dyn Store>,
    keys: usize,
    duration: Duration,
    value_size: usize,
) -> Result<ReadReport> {
    // Load with many writers so group commit keeps the set-up short.
    let loaders = 64.min(keys.max(1));
    let tasks: Vec<_> = (0..loaders)
        .map(|l| {
            let store = Arc::clone(&store);
            let value = vec![b'r'; value_size];
            tokio::spawn(async move {
                for i in (l..keys).step_by(loaders) {
                    store
                        .put(
                            format!("bench/read/{i:08}").into_bytes(),
                            value.clone(),
                            Condition::None,
                        )
                        .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| Error::Backend(format!("benchmark loader failed: {e}")))??;
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration || samples.len() < 5 {
        let t = Instant::now();
        let resp = store
            .range(RangeRequest::new(KeyRange::prefix("bench/read/")))
            .await?;
        samples.push(t.elapsed().as_micros() as u64);
        if resp.kvs.len() != keys {
            return Err(Error::Backend(format!(
                "range returned {} keys, expected {keys}",
                resp.kvs.len()
            )));
        }
    }
    Ok(ReadReport {
        keys,
        value_size,
        reads: samples.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        latency: Latency::from_micros(&mut samples),
    })
}

/// The disk's fdatasync rate: the physical limit of unbatched durable writes.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub block_size: usize,
    pub syncs: u64,
    pub seconds: f64,
    pub syncs_per_sec: f64,
    pub latency: Latency,
}

/// Writes a small block and fdatasyncs it, in a loop, in `dir` for `duration`.
pub fn fdatasync_rate(dir: &Path, duration: Duration) -> std::io::Result<SyncReport> {
    const BLOCK: usize = 512;
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    // Allocate the block first so the loop measures data syncs, not file growth.
    file.write_all(&[0u8; BLOCK])?;
    file.sync_all()?;
    let block = [0x5au8; BLOCK];
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        let t = Instant::now();
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(t.elapsed().as_micros() as u64);
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(SyncReport {
        block_size: BLOCK,
        syncs: samples.len() as u64,
        seconds,
        syncs_per_sec: samples.len() as f64 / seconds,
        latency: Latency::from_micros(&mut samples),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        let latency = Latency::from_micros(&mut samples);
        assert_eq!(
            (latency.p50_ms, latency.p99_ms, latency.max_ms),
            (50.0, 99.0, 100.0)
        );
        assert_eq!(latency.mean_ms, 50.5);
        assert_eq!(Latency::from_micros(&mut []).p99_ms, 0.0);
    }
}
