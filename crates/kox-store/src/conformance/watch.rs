//! Watches: replay, live events, ranges, races with writers, progress, compacted starts.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{
    EVENT_WAIT, TestStore, changes_until, delete, kv, next_change, put, put_event, revision,
};
use crate::{Condition, Error, KeyRange, Revision, WatchEvent};

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
