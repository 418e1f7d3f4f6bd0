//! Revision bookkeeping: the global revision, `create_revision`, `mod_revision`, `version`.

use super::{TestStore, delete, failed, get, kv, put, revision};
use crate::{Condition, KeyRange, RangeRequest};

/// A new store reports revision 1 and an empty keyspace, readable at revision 1.
pub async fn empty_store_is_at_revision_one(store: TestStore) {
    let status = store.status().await.unwrap();
    assert_eq!(status.revision, 1);
    assert!(status.compact_revision <= 1);
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix("")).at_revision(1))
        .await
        .unwrap();
    assert_eq!((resp.kvs.len(), resp.count, resp.revision), (0, 0, 1));
}

/// The first write is revision 2; every successful write adds one, failed ones add nothing.
pub async fn every_successful_write_increments_the_revision_by_one(store: TestStore) {
    assert_eq!(put(&*store, "a", "1").await, 2);
    assert_eq!(put(&*store, "b", "1").await, 3);
    failed(
        store
            .put("a".into(), "x".into(), Condition::Absent)
            .await
            .unwrap(),
    );
    failed(
        store
            .delete("missing".into(), Condition::None)
            .await
            .unwrap(),
    );
    assert_eq!(revision(&*store).await, 3);
    assert_eq!(delete(&*store, "a").await, 4);
    assert_eq!(put(&*store, "a", "2").await, 5);
    assert_eq!(revision(&*store).await, 5);
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix("")))
        .await
        .unwrap();
    assert_eq!(resp.revision, 5);
}

/// `create_revision` stays, `mod_revision` follows each write, `version` counts writes.
pub async fn create_mod_revision_and_version_are_tracked_per_key(store: TestStore) {
    let r1 = put(&*store, "k", "v1").await;
    let other = put(&*store, "other", "x").await;
    let r2 = put(&*store, "k", "v2").await;
    let r3 = put(&*store, "k", "v3").await;
    assert_eq!(get(&*store, "k").await, Some(kv("k", "v3", r1, r3, 3)));
    assert_eq!(
        get(&*store, "other").await,
        Some(kv("other", "x", other, other, 1))
    );
    assert!(r2 < r3);
}

/// After a delete, the key starts over: version 1, create revision of the new write.
pub async fn recreated_key_restarts_version_and_create_revision(store: TestStore) {
    put(&*store, "k", "v1").await;
    put(&*store, "k", "v2").await;
    delete(&*store, "k").await;
    assert_eq!(get(&*store, "k").await, None);
    let again = put(&*store, "k", "v3").await;
    assert_eq!(
        get(&*store, "k").await,
        Some(kv("k", "v3", again, again, 1))
    );
}
