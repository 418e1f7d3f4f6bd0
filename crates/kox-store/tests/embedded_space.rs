//! Disk space: with auto-compaction, a store rewriting a fixed key set stops growing, because
//! compaction frees history pages and redb reuses them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kox_store::{Condition, KeyRange, RangeRequest, Store};

const KEYS: usize = 200;
const WRITERS: usize = 32;
const VALUE: usize = 256;

/// Rewrites the key set round-robin from `WRITERS` tasks, `total` writes in all.
async fn churn(store: &Arc<EmbeddedStore>, total: usize, counter: &Arc<AtomicUsize>) {
    let target = counter.load(Ordering::Relaxed) + total;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = Arc::clone(store);
            let counter = Arc::clone(counter);
            tokio::spawn(async move {
                loop {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if n >= target {
                        break;
                    }
                    let key = format!("churn/{:03}", n % KEYS);
                    store
                        .put(key.into(), vec![(n % 251) as u8; VALUE], Condition::None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    counter.store(target, Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_stops_growing_under_steady_churn_with_auto_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        auto_compaction_retention: Some(Duration::ZERO),
        auto_compaction_min_revisions: 1_000,
        auto_compaction_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let store = Arc::new(EmbeddedStore::open(dir.path(), options).unwrap());
    let counter = Arc::new(AtomicUsize::new(0));
    let size = || std::fs::metadata(store.file_path()).unwrap().len();

    churn(&store, 8_000, &counter).await;
    let warm = size();
    let mut sizes = Vec::new();
    for _ in 0..4 {
        churn(&store, 3_000, &counter).await;
        sizes.push(size());
    }
    let status = store.status().await.unwrap();
    eprintln!("file size after warm-up {warm} B, then {sizes:?}; status {status:?}");

    assert_eq!(status.revision, 1 + 20_000);
    // Auto-compaction kept up: only about `min_revisions` of history remain.
    assert!(
        status.revision - status.compact_revision < 10_000,
        "{status:?}"
    );
    // Without reuse, the 12,000 writes after warm-up would add at least their 3 MiB of values.
    // With it, the file only moves between redb's allocation steps (a few hundred KiB).
    let written = 12_000 * VALUE as u64;
    let largest = *sizes.iter().max().unwrap();
    assert!(
        largest <= warm + (1 << 20),
        "the file kept growing: {warm} B after warm-up, up to {largest} B after 12,000 more \
         writes carrying {written} B"
    );
    // The data is intact.
    let all = store
        .range(RangeRequest::new(KeyRange::prefix("churn/")))
        .await
        .unwrap();
    assert_eq!(all.count, KEYS);
    store.close().await;
}
