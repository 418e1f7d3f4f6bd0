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
    Condition, KeyRange, KeyValue, RangeRequest, Revision, Store, WatchEvent, WatchStream,
    WriteOutcome,
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

mod compaction;
mod ranges;
mod revisions;
mod watch;
mod writes;

pub use compaction::*;
pub use ranges::*;
pub use revisions::*;
pub use watch::*;
pub use writes::*;

// ---- helpers shared by the cases --------------------------------------------------------

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
