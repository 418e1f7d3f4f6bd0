//! Compaction: its errors and what stays readable.

use super::{TestStore, delete, kv, put, revision};
use crate::{Error, KeyRange, RangeRequest};

/// Compacting past the current revision fails with `FutureRevision`.
pub async fn compact_above_current_revision_fails(store: TestStore) {
    let r = put(&*store, "k", "1").await;
    let err = store.compact(r + 1).await.unwrap_err();
    assert!(matches!(err, Error::FutureRevision { .. }), "{err:?}");
    assert!(store.status().await.unwrap().compact_revision <= 1);
}

/// Compacting at or below the compaction point changes nothing.
pub async fn compact_at_or_below_compaction_point_is_a_no_op(store: TestStore) {
    for i in 0..5 {
        put(&*store, "k", &i.to_string()).await;
    }
    store.compact(4).await.unwrap();
    store.compact(4).await.unwrap();
    store.compact(3).await.unwrap();
    let status = store.status().await.unwrap();
    assert_eq!((status.compact_revision, status.revision), (4, 6));
    store
        .range(RangeRequest::new(KeyRange::key("k")).at_revision(4))
        .await
        .unwrap();
}

/// Compaction keeps the newest value of every key and keeps deleted keys deleted.
pub async fn compaction_keeps_latest_values_readable(store: TestStore) {
    let a1 = put(&*store, "a", "1").await;
    let a2 = put(&*store, "a", "2").await;
    let b1 = put(&*store, "b", "1").await;
    delete(&*store, "b").await;
    let c1 = put(&*store, "c", "1").await;
    let c2 = put(&*store, "c", "2").await;
    let point = revision(&*store).await;
    let after = put(&*store, "a", "3").await;
    store.compact(point).await.unwrap();
    assert_eq!(store.status().await.unwrap().compact_revision, point);
    let at_point = store
        .range(RangeRequest::new(KeyRange::prefix("")).at_revision(point))
        .await
        .unwrap();
    assert_eq!(
        at_point.kvs,
        vec![kv("a", "2", a1, a2, 2), kv("c", "2", c1, c2, 2)]
    );
    let now = store
        .range(RangeRequest::new(KeyRange::prefix("")))
        .await
        .unwrap();
    assert_eq!(
        now.kvs,
        vec![kv("a", "3", a1, after, 3), kv("c", "2", c1, c2, 2)]
    );
    assert!(b1 < point);
    // Writes continue normally after a compaction.
    assert_eq!(put(&*store, "b", "2").await, after + 1);
}
