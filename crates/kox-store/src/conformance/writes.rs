//! Conditional writes, their outcomes, and the value size limit.

use std::sync::Arc;

use super::{TestStore, committed, delete, failed, get, kv, put, revision};
use crate::{Condition, Error, MAX_VALUE_SIZE, WriteOutcome};

/// A create on an existing key writes nothing and returns the existing value.
pub async fn create_if_absent_fails_on_existing_key_and_returns_current(store: TestStore) {
    let r = put(&*store, "k", "v1").await;
    let current = failed(
        store
            .put("k".into(), "v2".into(), Condition::Absent)
            .await
            .unwrap(),
    );
    assert_eq!(current, Some(kv("k", "v1", r, r, 1)));
    assert_eq!(get(&*store, "k").await.unwrap().value, b"v1");
}

/// A create succeeds on a key that was deleted.
pub async fn create_if_absent_succeeds_after_delete(store: TestStore) {
    put(&*store, "k", "v1").await;
    delete(&*store, "k").await;
    let (rev, prev) = committed(
        store
            .put("k".into(), "v2".into(), Condition::Absent)
            .await
            .unwrap(),
    );
    assert_eq!(prev, None);
    assert_eq!(get(&*store, "k").await, Some(kv("k", "v2", rev, rev, 1)));
}

/// A compare-and-swap with a stale `mod_revision` fails and returns the current value.
pub async fn compare_and_swap_with_stale_mod_revision_fails_and_returns_current(store: TestStore) {
    let r1 = put(&*store, "k", "v1").await;
    let r2 = put(&*store, "k", "v2").await;
    let current = failed(
        store
            .put("k".into(), "v3".into(), Condition::ModRevision(r1))
            .await
            .unwrap(),
    );
    assert_eq!(current, Some(kv("k", "v2", r1, r2, 2)));
    let current = failed(
        store
            .delete("k".into(), Condition::ModRevision(r1))
            .await
            .unwrap(),
    );
    assert_eq!(current.map(|kv| kv.mod_revision), Some(r2));
    assert_eq!(revision(&*store).await, r2);
}

/// A compare-and-swap with the current `mod_revision` writes.
pub async fn compare_and_swap_with_current_mod_revision_succeeds(store: TestStore) {
    let r1 = put(&*store, "k", "v1").await;
    let (r2, prev) = committed(
        store
            .put("k".into(), "v2".into(), Condition::ModRevision(r1))
            .await
            .unwrap(),
    );
    assert_eq!(prev, Some(kv("k", "v1", r1, r1, 1)));
    assert_eq!(get(&*store, "k").await, Some(kv("k", "v2", r1, r2, 2)));
}

/// A compare-and-swap on a missing key fails with no current value.
pub async fn compare_and_swap_on_absent_key_fails(store: TestStore) {
    let r = put(&*store, "other", "x").await;
    assert_eq!(
        failed(
            store
                .put("k".into(), "v".into(), Condition::ModRevision(r))
                .await
                .unwrap()
        ),
        None
    );
    assert_eq!(get(&*store, "k").await, None);
}

/// Of many concurrent writers swapping from the same revision, exactly one wins.
pub async fn concurrent_compare_and_swap_lets_exactly_one_writer_win(store: TestStore) {
    let base = put(&*store, "counter", "0").await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .put(
                        "counter".into(),
                        format!("{i}").into(),
                        Condition::ModRevision(base),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            WriteOutcome::Committed { revision, .. } => {
                winners += 1;
                assert_eq!(revision, base + 1);
            }
            WriteOutcome::Failed { current } => assert_eq!(current.unwrap().mod_revision, base + 1),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(revision(&*store).await, base + 1);
}

/// Deleting a missing key fails with no current value and does not add a revision.
pub async fn delete_of_absent_key_fails_without_new_revision(store: TestStore) {
    let r = put(&*store, "other", "x").await;
    for condition in [
        Condition::None,
        Condition::Absent,
        Condition::ModRevision(r),
    ] {
        assert_eq!(
            failed(store.delete("k".into(), condition).await.unwrap()),
            None
        );
    }
    assert_eq!(revision(&*store).await, r);
}

/// A delete with a stale `mod_revision` keeps the key.
pub async fn conditional_delete_with_stale_mod_revision_fails(store: TestStore) {
    let r1 = put(&*store, "k", "v1").await;
    let r2 = put(&*store, "k", "v2").await;
    failed(
        store
            .delete("k".into(), Condition::ModRevision(r1))
            .await
            .unwrap(),
    );
    assert!(get(&*store, "k").await.is_some());
    let (r3, prev) = committed(
        store
            .delete("k".into(), Condition::ModRevision(r2))
            .await
            .unwrap(),
    );
    assert_eq!(prev, Some(kv("k", "v2", r1, r2, 2)));
    assert_eq!(r3, r2 + 1);
    assert_eq!(get(&*store, "k").await, None);
}

/// A committed put or delete returns the value it replaced.
pub async fn committed_write_returns_previous_value(store: TestStore) {
    let (r1, prev) = committed(
        store
            .put("k".into(), "v1".into(), Condition::None)
            .await
            .unwrap(),
    );
    assert_eq!(prev, None);
    let (r2, prev) = committed(
        store
            .put("k".into(), "v2".into(), Condition::None)
            .await
            .unwrap(),
    );
    assert_eq!(prev, Some(kv("k", "v1", r1, r1, 1)));
    let (_, prev) = committed(store.delete("k".into(), Condition::None).await.unwrap());
    assert_eq!(prev, Some(kv("k", "v2", r1, r2, 2)));
}

/// A value of exactly the maximum size is stored and read back whole.
pub async fn value_of_max_size_is_accepted(store: TestStore) {
    let value: Vec<u8> = (0..MAX_VALUE_SIZE).map(|i| (i % 251) as u8).collect();
    committed(
        store
            .put(b"big".to_vec(), value.clone(), Condition::None)
            .await
            .unwrap(),
    );
    assert_eq!(get(&*store, "big").await.unwrap().value, value);
}

/// A value one byte over the maximum is refused and nothing is written.
pub async fn value_over_max_size_is_refused_and_nothing_written(store: TestStore) {
    let before = revision(&*store).await;
    let err = store
        .put(
            b"big".to_vec(),
            vec![7; MAX_VALUE_SIZE + 1],
            Condition::None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { size, limit } if size == MAX_VALUE_SIZE + 1 && limit == MAX_VALUE_SIZE)
    );
    assert_eq!(revision(&*store).await, before);
    assert_eq!(get(&*store, "big").await, None);
}
