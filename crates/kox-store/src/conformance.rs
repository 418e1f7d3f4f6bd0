//! The conformance suite every [`crate::Store`] engine must pass.
//!
//! Each case is a public async function taking a fresh, empty store. An engine's test file runs
//! them all with one macro call, given an expression that evaluates to a future of
//! `(Arc<dyn Store>, guard)` — the guard (a temporary directory, a child process…) is kept alive
//! for the length of the case:
//!
//! ```ignore
//! kox_store::conformance_tests!(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = EmbeddedStore::open(dir.path(), options()).unwrap();
//!     (Arc::new(store) as Arc<dyn Store>, dir)
//! });
//! ```
//!
//! The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dependency.
//! One case, [`quiet_watch_receives_progress`], waits for a progress notification: the engine
//! under test should be configured to send them within a few seconds.
//!
//! The module is compiled into the library (not `#[cfg(test)]`) so that other crates' tests can
//! run it; it uses nothing beyond `tokio` and `futures`, which the crate needs anyway.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::{
    Condition, Error, KeyRange, KeyValue, MAX_VALUE_SIZE, RangeRequest, Revision, Store,
    WatchEvent, WatchStream, WriteOutcome,
};

/// A store under test.
pub type TestStore = Arc<dyn Store>;

/// Longest wait for a watch event before a case fails instead of hanging.
const EVENT_WAIT: Duration = Duration::from_secs(15);

/// Expands to one `#[tokio::test]` per conformance case, each with a fresh store from `$factory`
/// (an expression evaluating to a future of `(Arc<dyn Store>, guard)`).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_cases!($factory;
            empty_store_is_at_revision_one,
            every_successful_write_increments_the_revision_by_one,
            create_mod_revision_and_version_are_tracked_per_key,
            recreated_key_restarts_version_and_create_revision,
            range_of_single_key_returns_only_that_key,
            range_of_prefix_returns_matching_keys_in_order,
            range_between_is_half_open,
            range_of_all_ff_prefix_is_unbounded_above,
            range_with_limit_reports_more_and_total_count,
            range_count_only_returns_count_without_values,
            range_at_old_revision_sees_values_of_that_revision,
            range_at_old_revision_honours_limit_and_count,
            range_at_future_revision_fails,
            range_below_compaction_point_fails_and_at_it_succeeds,
            create_if_absent_fails_on_existing_key_and_returns_current,
            create_if_absent_succeeds_after_delete,
            compare_and_swap_with_stale_mod_revision_fails_and_returns_current,
            compare_and_swap_with_current_mod_revision_succeeds,
            compare_and_swap_on_absent_key_fails,
            concurrent_compare_and_swap_lets_exactly_one_writer_win,
            delete_of_absent_key_fails_without_new_revision,
            conditional_delete_with_stale_mod_revision_fails,
            committed_write_returns_previous_value,
            watch_replays_history_from_old_revision,
            watch_from_zero_sees_only_later_writes,
            watch_delivers_live_events_in_order,
            watch_events_carry_previous_values,
            watch_reports_deletes_with_last_value,
            watch_sees_only_keys_in_its_range,
            watches_started_during_writes_see_every_revision_exactly_once,
            watch_from_future_revision_starts_at_that_revision,
            quiet_watch_receives_progress,
            watch_from_compacted_revision_fails,
            watch_from_compaction_point_replays_it,
            compact_above_current_revision_fails,
            compact_at_or_below_compaction_point_is_a_no_op,
            compaction_keeps_latest_values_readable,
            value_of_max_size_is_accepted,
            value_over_max_size_is_refused_and_nothing_written,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $factory.await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

// ---- helpers ------------------------------------------------------------------------------

fn committed(outcome: WriteOutcome) -> (Revision, Option<KeyValue>) {
    match outcome {
        WriteOutcome::Committed { revision, prev } => (revision, prev),
        WriteOutcome::Failed { current } => {
            panic!("write unexpectedly failed its condition; current: {current:?}")
        }
    }
}

fn failed(outcome: WriteOutcome) -> Option<KeyValue> {
    match outcome {
        WriteOutcome::Failed { current } => current,
        WriteOutcome::Committed { revision, .. } => {
            panic!("write unexpectedly committed at {revision}")
        }
    }
}

async fn put(store: &dyn Store, key: &str, value: &str) -> Revision {
    committed(
        store
            .put(key.into(), value.into(), Condition::None)
            .await
            .expect("put"),
    )
    .0
}

async fn delete(store: &dyn Store, key: &str) -> Revision {
    committed(
        store
            .delete(key.into(), Condition::None)
            .await
            .expect("delete"),
    )
    .0
}

async fn revision(store: &dyn Store) -> Revision {
    store.status().await.expect("status").revision
}

async fn get(store: &dyn Store, key: &str) -> Option<KeyValue> {
    let resp = store
        .range(RangeRequest::new(KeyRange::key(key)))
        .await
        .expect("range");
    assert!(
        resp.kvs.len() <= 1,
        "a single-key range returned {} keys",
        resp.kvs.len()
    );
    resp.kvs.into_iter().next()
}

async fn keys_of(store: &dyn Store, req: RangeRequest) -> Vec<String> {
    let resp = store.range(req).await.expect("range");
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn kv(key: &str, value: &str, create: Revision, modified: Revision, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modified,
        version,
    }
}

/// The next non-progress event, failing the case after [`EVENT_WAIT`] (progress events do not
/// extend the wait).
async fn next_change(stream: &mut WatchStream) -> WatchEvent {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("timed out waiting for a watch event")
            .expect("watch stream ended")
            .expect("watch stream failed");
        if !matches!(item, WatchEvent::Progress { .. }) {
            return item;
        }
    }
}

/// Non-progress events until one at `last` or later.
async fn changes_until(stream: &mut WatchStream, last: Revision) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    loop {
        let event = next_change(stream).await;
        let rev = event.revision();
        events.push(event);
        if rev >= last {
            return events;
        }
    }
}

fn put_event(kv: KeyValue, prev: Option<KeyValue>) -> WatchEvent {
    WatchEvent::Put { kv, prev }
}

// ---- revisions ----------------------------------------------------------------------------

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

// ---- ranges -------------------------------------------------------------------------------

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

// ---- conditional writes -------------------------------------------------------------------

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

// ---- watch --------------------------------------------------------------------------------

/// A watch from an old revision replays every change since, then continues live.
pub async fn watch_replays_history_from_old_revision(store: TestStore) {
    let r1 = put(&*store, "k/a", "1").await;
    let r2 = put(&*store, "k/b", "1").await;
    let r3 = put(&*store, "k/a", "2").await;
    let mut watch = store.watch(KeyRange::prefix("k/"), r2).await.unwrap();
    let r4 = put(&*store, "k/c", "1").await;
    let events = changes_until(&mut watch, r4).await;
    assert_eq!(
        events,
        vec![
            put_event(kv("k/b", "1", r2, r2, 1), None),
            put_event(kv("k/a", "2", r1, r3, 2), Some(kv("k/a", "1", r1, r1, 1))),
            put_event(kv("k/c", "1", r4, r4, 1), None),
        ]
    );
}

/// A watch from revision 0 starts with the next write.
pub async fn watch_from_zero_sees_only_later_writes(store: TestStore) {
    put(&*store, "k/old", "1").await;
    let mut watch = store.watch(KeyRange::prefix("k/"), 0).await.unwrap();
    let r = put(&*store, "k/new", "1").await;
    assert_eq!(
        next_change(&mut watch).await,
        put_event(kv("k/new", "1", r, r, 1), None)
    );
}

/// Live events arrive in revision order.
pub async fn watch_delivers_live_events_in_order(store: TestStore) {
    let mut watch = store.watch(KeyRange::prefix("k/"), 0).await.unwrap();
    let mut revisions = Vec::new();
    for i in 0..20 {
        revisions.push(put(&*store, &format!("k/{}", i % 3), &i.to_string()).await);
    }
    let seen: Vec<_> = changes_until(&mut watch, *revisions.last().unwrap())
        .await
        .iter()
        .map(WatchEvent::revision)
        .collect();
    assert_eq!(seen, revisions);
}

/// Put events carry the value they replaced, live and replayed alike.
pub async fn watch_events_carry_previous_values(store: TestStore) {
    let start = revision(&*store).await + 1;
    let mut live = store.watch(KeyRange::key("k"), 0).await.unwrap();
    let r1 = put(&*store, "k", "1").await;
    let r2 = put(&*store, "k", "2").await;
    let expected = vec![
        put_event(kv("k", "1", r1, r1, 1), None),
        put_event(kv("k", "2", r1, r2, 2), Some(kv("k", "1", r1, r1, 1))),
    ];
    assert_eq!(changes_until(&mut live, r2).await, expected);
    let mut replayed = store.watch(KeyRange::key("k"), start).await.unwrap();
    assert_eq!(changes_until(&mut replayed, r2).await, expected);
}

/// Deletes arrive with the last value of the key and the revision of the delete.
pub async fn watch_reports_deletes_with_last_value(store: TestStore) {
    let r1 = put(&*store, "k", "1").await;
    let mut live = store.watch(KeyRange::key("k"), 0).await.unwrap();
    let r2 = delete(&*store, "k").await;
    let expected = WatchEvent::Delete {
        prev: kv("k", "1", r1, r1, 1),
        revision: r2,
    };
    assert_eq!(next_change(&mut live).await, expected);
    let mut replayed = store.watch(KeyRange::key("k"), r2).await.unwrap();
    assert_eq!(next_change(&mut replayed).await, expected);
}

/// Watches on a key, a prefix and a `[start, end)` range see only their keys.
pub async fn watch_sees_only_keys_in_its_range(store: TestStore) {
    let mut single = store.watch(KeyRange::key("a/1"), 0).await.unwrap();
    let mut prefix = store.watch(KeyRange::prefix("a/"), 0).await.unwrap();
    let mut between = store.watch(KeyRange::between("a/2", "b"), 0).await.unwrap();
    for key in ["a/1", "a/10", "a/2", "b", "a/3", "c", "a/1"] {
        put(&*store, key, "v").await;
    }
    let last = delete(&*store, "a/1").await;
    let end = put(&*store, "a/9", "v").await;
    let keys = |events: Vec<WatchEvent>| -> Vec<String> {
        events
            .into_iter()
            .map(|e| match e {
                WatchEvent::Put { kv, .. } => String::from_utf8_lossy(&kv.key).into_owned(),
                WatchEvent::Delete { prev, .. } => {
                    format!("-{}", String::from_utf8_lossy(&prev.key))
                }
                WatchEvent::Progress { .. } => unreachable!(),
            })
            .collect()
    };
    assert_eq!(
        keys(changes_until(&mut single, last).await),
        ["a/1", "a/1", "-a/1"]
    );
    assert_eq!(
        keys(changes_until(&mut prefix, end).await),
        ["a/1", "a/10", "a/2", "a/3", "a/1", "-a/1", "a/9"]
    );
    assert_eq!(
        keys(changes_until(&mut between, end).await),
        ["a/2", "a/3", "a/9"]
    );
}

/// Watches started while writers are busy, from old, current and next revisions, each see every
/// revision from their start exactly once.
pub async fn watches_started_during_writes_see_every_revision_exactly_once(store: TestStore) {
    let base = put(&*store, "race/seed", "0").await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..80 {
                    let key = format!("race/{w}/{}", i % 7);
                    if i % 5 == 4 {
                        let _ = store.delete(key.into(), Condition::None).await.unwrap();
                    } else {
                        store
                            .put(key.into(), i.to_string().into(), Condition::None)
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    let mut watches = Vec::new();
    for i in 0..30 {
        let now = revision(&*store).await;
        let start = match i % 3 {
            0 => base,
            1 => now,
            _ => 0,
        };
        let watch = store.watch(KeyRange::prefix("race/"), start).await.unwrap();
        // For "from the next write", the first revision may be at most one past what was current
        // once the watch was established.
        let first_allowed = if start == 0 {
            revision(&*store).await + 1
        } else {
            start
        };
        watches.push((start, first_allowed, watch));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let last = put(&*store, "race/done", "1").await;
    for (start, first_allowed, mut watch) in watches {
        let seen: Vec<Revision> = changes_until(&mut watch, last)
            .await
            .iter()
            .map(WatchEvent::revision)
            .collect();
        let first = seen[0];
        if start > 0 {
            assert_eq!(first, start, "watch from {start} began at {first}");
        } else {
            assert!(
                first <= first_allowed,
                "watch from 0 began at {first}, after {first_allowed}: a gap"
            );
        }
        let expected: Vec<Revision> = (first..=last).collect();
        assert_eq!(seen, expected, "watch from {start}: gap or duplicate");
    }
}

/// A watch from a revision not yet written starts exactly there.
pub async fn watch_from_future_revision_starts_at_that_revision(store: TestStore) {
    let now = put(&*store, "k", "0").await;
    let mut watch = store.watch(KeyRange::key("k"), now + 3).await.unwrap();
    let mut last = now;
    for i in 1..=5 {
        last = put(&*store, "k", &i.to_string()).await;
    }
    let seen: Vec<_> = changes_until(&mut watch, last)
        .await
        .iter()
        .map(WatchEvent::revision)
        .collect();
    assert_eq!(seen, (now + 3..=last).collect::<Vec<_>>());
}

/// A watch whose range sees no writes receives progress notifications that cover later writes
/// elsewhere.
pub async fn quiet_watch_receives_progress(store: TestStore) {
    let mut watch = store.watch(KeyRange::prefix("quiet/"), 0).await.unwrap();
    let noisy = put(&*store, "noisy", "1").await;
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let item = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("no progress notification arrived")
            .expect("watch ended")
            .expect("watch failed");
        match item {
            WatchEvent::Progress { revision } if revision >= noisy => return,
            WatchEvent::Progress { .. } => {}
            other => panic!("quiet watch received a change: {other:?}"),
        }
    }
}

/// A watch from below the compaction point fails with `Compacted`.
pub async fn watch_from_compacted_revision_fails(store: TestStore) {
    put(&*store, "k", "1").await;
    let r = put(&*store, "k", "2").await;
    store.compact(r).await.unwrap();
    let err = match store.watch(KeyRange::key("k"), r - 1).await {
        Err(err) => err,
        Ok(mut stream) => tokio::time::timeout(EVENT_WAIT, stream.next())
            .await
            .expect("watch from a compacted revision neither failed nor ended")
            .expect("stream ended without an error")
            .expect_err("watch from a compacted revision delivered an event"),
    };
    assert!(matches!(err, Error::Compacted { .. }), "{err:?}");
}

/// A watch from exactly the compaction point replays the write at that revision.
pub async fn watch_from_compaction_point_replays_it(store: TestStore) {
    let r1 = put(&*store, "k", "1").await;
    let r2 = put(&*store, "k", "2").await;
    let r3 = delete(&*store, "k").await;
    store.compact(r2).await.unwrap();
    let mut watch = store.watch(KeyRange::key("k"), r2).await.unwrap();
    let events = changes_until(&mut watch, r3).await;
    assert_eq!(
        events,
        vec![
            put_event(kv("k", "2", r1, r2, 2), Some(kv("k", "1", r1, r1, 1))),
            WatchEvent::Delete {
                prev: kv("k", "2", r1, r2, 2),
                revision: r3
            },
        ]
    );
}

// ---- compaction ---------------------------------------------------------------------------

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

// ---- limits -------------------------------------------------------------------------------

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
