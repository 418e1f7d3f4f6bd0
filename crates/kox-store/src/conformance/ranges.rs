//! Range reads: keys, prefixes, `[start, end)`, limits and counts, old revisions.

use std::sync::Arc;

use super::{TestStore, committed, delete, keys_of, kv, put, revision};
use crate::{Condition, Error, KeyRange, RangeRequest, Revision};

/// A single-key range does not match keys that merely start with it.
pub async fn range_of_single_key_returns_only_that_key(store: TestStore) {
    for key in ["a", "a/b", "ab", "b"] {
        put(&*store, key, key).await;
    }
    assert_eq!(
        keys_of(&*store, RangeRequest::new(KeyRange::key("a"))).await,
        ["a"]
    );
    assert_eq!(
        keys_of(&*store, RangeRequest::new(KeyRange::key("zz"))).await,
        Vec::<String>::new()
    );
    let resp = store
        .range(RangeRequest::new(KeyRange::key("zz")))
        .await
        .unwrap();
    assert_eq!((resp.count, resp.more, resp.revision), (0, false, 5));
}

/// A prefix range returns exactly the keys with that prefix, in key order.
pub async fn range_of_prefix_returns_matching_keys_in_order(store: TestStore) {
    for key in ["pods/b", "pods/a", "pods0", "pod", "pods/c/x", "services/a"] {
        put(&*store, key, "v").await;
    }
    let keys = keys_of(&*store, RangeRequest::new(KeyRange::prefix("pods/"))).await;
    assert_eq!(keys, ["pods/a", "pods/b", "pods/c/x"]);
}

/// `[start, end)`: the start key is included, the end key is not.
pub async fn range_between_is_half_open(store: TestStore) {
    for key in ["a", "b", "c", "c/x", "d", "e"] {
        put(&*store, key, "v").await;
    }
    assert_eq!(
        keys_of(&*store, RangeRequest::new(KeyRange::between("b", "d"))).await,
        ["b", "c", "c/x"]
    );
    assert_eq!(
        keys_of(&*store, RangeRequest::new(KeyRange::between("d", "b"))).await,
        Vec::<String>::new()
    );
}

/// The prefix of all-0xff bytes has no upper bound.
pub async fn range_of_all_ff_prefix_is_unbounded_above(store: TestStore) {
    for key in [
        vec![0xfe],
        vec![0xff],
        vec![0xff, 0x01],
        vec![0xff, 0xff, 0xff],
    ] {
        committed(
            store
                .put(key, b"v".to_vec(), Condition::None)
                .await
                .unwrap(),
        );
    }
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix(vec![0xff])))
        .await
        .unwrap();
    let keys: Vec<Vec<u8>> = resp.kvs.into_iter().map(|kv| kv.key).collect();
    assert_eq!(
        keys,
        vec![vec![0xff], vec![0xff, 0x01], vec![0xff, 0xff, 0xff]]
    );
}

/// A limit returns the first keys, says whether more exist and counts them all.
pub async fn range_with_limit_reports_more_and_total_count(store: TestStore) {
    for i in 0..5 {
        put(&*store, &format!("k/{i}"), "v").await;
    }
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix("k/")).limit(2))
        .await
        .unwrap();
    let keys: Vec<_> = resp.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![b"k/0".to_vec(), b"k/1".to_vec()]);
    assert_eq!((resp.more, resp.count), (true, 5));
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix("k/")).limit(5))
        .await
        .unwrap();
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (5, false, 5));
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix("k/")).limit(50))
        .await
        .unwrap();
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (5, false, 5));
}

/// `count_only` counts without returning values.
pub async fn range_count_only_returns_count_without_values(store: TestStore) {
    for i in 0..4 {
        put(&*store, &format!("k/{i}"), "v").await;
    }
    put(&*store, "other", "v").await;
    let mut req = RangeRequest::new(KeyRange::prefix("k/"));
    req.count_only = true;
    let resp = store.range(req).await.unwrap();
    assert!(resp.kvs.is_empty());
    assert_eq!((resp.count, resp.revision), (4, 6));
}

/// A read at an old revision sees the values, metadata and existence of that revision.
pub async fn range_at_old_revision_sees_values_of_that_revision(store: TestStore) {
    let a1 = put(&*store, "a", "1").await;
    let b1 = put(&*store, "b", "1").await;
    let a2 = put(&*store, "a", "2").await;
    let b_gone = delete(&*store, "b").await;
    let c1 = put(&*store, "c", "1").await;
    let at = |rev: Revision| {
        let store = Arc::clone(&store);
        async move {
            store
                .range(RangeRequest::new(KeyRange::prefix("")).at_revision(rev))
                .await
                .unwrap()
        }
    };
    assert_eq!(at(a1).await.kvs, vec![kv("a", "1", a1, a1, 1)]);
    assert_eq!(
        at(b1).await.kvs,
        vec![kv("a", "1", a1, a1, 1), kv("b", "1", b1, b1, 1)]
    );
    assert_eq!(
        at(a2).await.kvs,
        vec![kv("a", "2", a1, a2, 2), kv("b", "1", b1, b1, 1)]
    );
    assert_eq!(at(b_gone).await.kvs, vec![kv("a", "2", a1, a2, 2)]);
    let now = at(c1).await;
    assert_eq!(
        now.kvs,
        vec![kv("a", "2", a1, a2, 2), kv("c", "1", c1, c1, 1)]
    );
    assert_eq!(at(b1).await.revision, b1);
    let single = store
        .range(RangeRequest::new(KeyRange::key("b")).at_revision(a2))
        .await
        .unwrap();
    assert_eq!(single.kvs, vec![kv("b", "1", b1, b1, 1)]);
}

/// Limit, `more` and `count` at an old revision describe that revision.
pub async fn range_at_old_revision_honours_limit_and_count(store: TestStore) {
    for i in 0..4 {
        put(&*store, &format!("k/{i}"), "v").await;
    }
    let then = revision(&*store).await;
    put(&*store, "k/4", "v").await;
    delete(&*store, "k/0").await;
    let resp = store
        .range(
            RangeRequest::new(KeyRange::prefix("k/"))
                .limit(3)
                .at_revision(then),
        )
        .await
        .unwrap();
    let keys: Vec<_> = resp
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    assert_eq!(keys, ["k/0", "k/1", "k/2"]);
    assert_eq!((resp.more, resp.count, resp.revision), (true, 4, then));
}

/// Reading past the current revision fails with `FutureRevision`.
pub async fn range_at_future_revision_fails(store: TestStore) {
    put(&*store, "a", "1").await;
    let err = store
        .range(RangeRequest::new(KeyRange::key("a")).at_revision(3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::FutureRevision {
                requested: 3,
                current: 2
            }
        ),
        "{err:?}"
    );
}

/// After compaction at `c`, reads below `c` fail with `Compacted`; reads at `c` work.
pub async fn range_below_compaction_point_fails_and_at_it_succeeds(store: TestStore) {
    put(&*store, "a", "1").await;
    let a2 = put(&*store, "a", "2").await;
    put(&*store, "a", "3").await;
    store.compact(a2).await.unwrap();
    let err = store
        .range(RangeRequest::new(KeyRange::key("a")).at_revision(a2 - 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Compacted { requested, compacted } if requested == a2 - 1 && compacted == a2),
        "{err:?}"
    );
    let resp = store
        .range(RangeRequest::new(KeyRange::key("a")).at_revision(a2))
        .await
        .unwrap();
    assert_eq!(resp.kvs[0].value, b"2");
}
