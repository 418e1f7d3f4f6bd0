//! Property test: random operation sequences against the embedded engine and a plain in-memory
//! model, comparing every result and every watch event.
//!
//! Writes run one at a time or in concurrent groups (which the engine commits in shared
//! batches); a group's outcomes are checked against the model in the revision order the engine
//! chose. A watcher started before the first operation must see exactly the model's event log,
//! and watches started later from older revisions must see its suffix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kox_store::{
    Condition, Error, KeyRange, KeyValue, RangeRequest, Revision, Store, WatchEvent, WatchStream,
    WriteOutcome,
};
use proptest::prelude::*;

const KEYS: &[&str] = &["a", "a/1", "a/2", "a/20", "b", "b/1", "c"];

#[derive(Debug, Clone)]
enum CondSpec {
    None,
    Absent,
    /// The key's current `mod_revision` (so the swap succeeds when the key exists).
    ModCurrent,
    /// The current revision minus this (usually stale).
    ModBack(i64),
}

#[derive(Debug, Clone)]
enum Write {
    Put {
        key: usize,
        value: u8,
        cond: CondSpec,
    },
    Delete {
        key: usize,
        cond: CondSpec,
    },
}

#[derive(Debug, Clone)]
enum RangeSpec {
    Key(usize),
    Prefix(&'static str),
    Between(usize, usize),
}

#[derive(Debug, Clone)]
enum Op {
    Write(Write),
    Concurrent(Vec<Write>),
    Range {
        range: RangeSpec,
        offset: i64,
        limit: Option<usize>,
        count_only: bool,
    },
    Compact {
        back: i64,
    },
    Watch {
        back: i64,
    },
}

fn cond() -> impl Strategy<Value = CondSpec> {
    prop_oneof![
        3 => Just(CondSpec::None),
        2 => Just(CondSpec::Absent),
        2 => Just(CondSpec::ModCurrent),
        1 => (0i64..6).prop_map(CondSpec::ModBack),
    ]
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        3 => (0..KEYS.len(), any::<u8>(), cond()).prop_map(|(key, value, cond)| Write::Put { key, value, cond }),
        1 => (0..KEYS.len(), cond()).prop_map(|(key, cond)| Write::Delete { key, cond }),
    ]
}

fn range_spec() -> impl Strategy<Value = RangeSpec> {
    prop_oneof![
        (0..KEYS.len()).prop_map(RangeSpec::Key),
        prop_oneof![Just("a/"), Just("a"), Just("b"), Just(""), Just("z")]
            .prop_map(RangeSpec::Prefix),
        (0..KEYS.len(), 0..KEYS.len()).prop_map(|(a, b)| RangeSpec::Between(a, b)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => write().prop_map(Op::Write),
        2 => prop::collection::vec(write(), 2..7).prop_map(Op::Concurrent),
        4 => (range_spec(), -8i64..2, prop::option::of(1usize..4), prop::bool::weighted(0.15))
            .prop_map(|(range, offset, limit, count_only)| Op::Range { range, offset, limit, count_only }),
        1 => (-1i64..8).prop_map(|back| Op::Compact { back }),
        1 => (0i64..10).prop_map(|back| Op::Watch { back }),
    ]
}

fn key_range(spec: &RangeSpec) -> KeyRange {
    match spec {
        RangeSpec::Key(k) => KeyRange::key(KEYS[*k]),
        RangeSpec::Prefix(p) => KeyRange::prefix(*p),
        RangeSpec::Between(a, b) => KeyRange::between(KEYS[*a], KEYS[*b]),
    }
}

/// The reference: current state plus the full event log.
#[derive(Default)]
struct Model {
    revision: Revision,
    compact: Revision,
    current: BTreeMap<Vec<u8>, KeyValue>,
    events: Vec<WatchEvent>,
}

impl Model {
    fn new() -> Self {
        Self {
            revision: 1,
            compact: 1,
            ..Default::default()
        }
    }

    fn condition(&self, write: &Write) -> Condition {
        let (key, spec) = match write {
            Write::Put { key, cond, .. } | Write::Delete { key, cond } => {
                (KEYS[*key].as_bytes(), cond)
            }
        };
        match spec {
            CondSpec::None => Condition::None,
            CondSpec::Absent => Condition::Absent,
            CondSpec::ModCurrent => {
                Condition::ModRevision(self.current.get(key).map_or(1, |kv| kv.mod_revision))
            }
            CondSpec::ModBack(back) => Condition::ModRevision((self.revision - back).max(1)),
        }
    }

    fn holds(condition: Condition, current: Option<&KeyValue>) -> bool {
        match condition {
            Condition::None => true,
            Condition::Absent => current.is_none(),
            Condition::ModRevision(rev) => current.is_some_and(|kv| kv.mod_revision == rev),
        }
    }

    /// Applies a write the way the store must, returning the expected outcome.
    fn apply(&mut self, write: &Write, condition: Condition) -> WriteOutcome {
        match write {
            Write::Put { key, value, .. } => {
                let key = KEYS[*key].as_bytes().to_vec();
                let prev = self.current.get(&key).cloned();
                if !Self::holds(condition, prev.as_ref()) {
                    return WriteOutcome::Failed { current: prev };
                }
                self.revision += 1;
                let kv = KeyValue {
                    key: key.clone(),
                    value: vec![*value],
                    create_revision: prev.as_ref().map_or(self.revision, |p| p.create_revision),
                    mod_revision: self.revision,
                    version: prev.as_ref().map_or(1, |p| p.version + 1),
                };
                self.current.insert(key, kv.clone());
                self.events.push(WatchEvent::Put {
                    kv,
                    prev: prev.clone(),
                });
                WriteOutcome::Committed {
                    revision: self.revision,
                    prev,
                }
            }
            Write::Delete { key, .. } => {
                let key = KEYS[*key].as_bytes();
                let Some(prev) = self.current.get(key).cloned() else {
                    return WriteOutcome::Failed { current: None };
                };
                if !Self::holds(condition, Some(&prev)) {
                    return WriteOutcome::Failed {
                        current: Some(prev),
                    };
                }
                self.revision += 1;
                self.current.remove(key);
                self.events.push(WatchEvent::Delete {
                    prev: prev.clone(),
                    revision: self.revision,
                });
                WriteOutcome::Committed {
                    revision: self.revision,
                    prev: Some(prev),
                }
            }
        }
    }

    /// The keyspace as of `revision`, rebuilt from the event log.
    fn state_at(&self, revision: Revision) -> BTreeMap<Vec<u8>, KeyValue> {
        let mut state = BTreeMap::new();
        for event in self.events.iter().take_while(|e| e.revision() <= revision) {
            match event {
                WatchEvent::Put { kv, .. } => {
                    state.insert(kv.key.clone(), kv.clone());
                }
                WatchEvent::Delete { prev, .. } => {
                    state.remove(&prev.key);
                }
                WatchEvent::Progress { .. } => {}
            }
        }
        state
    }
}

/// Non-progress events until one at `last`, or the error that ended the watch. Fails the case
/// after an overall deadline (progress events do not extend it).
async fn collect(stream: &mut WatchStream, last: Revision) -> Result<Vec<WatchEvent>, Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.last().is_none_or(|e: &WatchEvent| e.revision() < last) {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("watch stalled")
            .expect("watch ended without an error")?;
        if !matches!(item, WatchEvent::Progress { .. }) {
            out.push(item);
        }
    }
    Ok(out)
}

fn same_error(actual: &Error, expected: &Error) -> bool {
    match (actual, expected) {
        (
            Error::Compacted {
                requested: a,
                compacted: b,
            },
            Error::Compacted {
                requested: c,
                compacted: d,
            },
        ) => a == c && b == d,
        (
            Error::FutureRevision {
                requested: a,
                current: b,
            },
            Error::FutureRevision {
                requested: c,
                current: d,
            },
        ) => a == c && b == d,
        _ => false,
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        auto_compaction_retention: None,
        ..Default::default()
    };
    let store: Arc<EmbeddedStore> = Arc::new(EmbeddedStore::open(dir.path(), options).unwrap());
    let mut model = Model::new();
    let mut from_start = store.watch(KeyRange::prefix(""), 0).await.unwrap();
    let mut later_watches: Vec<(Revision, WatchStream)> = Vec::new();

    for op in ops {
        match op {
            Op::Write(w) => {
                let condition = model.condition(&w);
                let actual = match &w {
                    Write::Put { key, value, .. } => {
                        store.put(KEYS[*key].into(), vec![*value], condition).await
                    }
                    Write::Delete { key, .. } => store.delete(KEYS[*key].into(), condition).await,
                }
                .unwrap();
                let expected = model.apply(&w, condition);
                prop_assert_eq!(actual, expected, "write {:?}", w);
            }
            Op::Concurrent(writes) => {
                let conditions: Vec<Condition> =
                    writes.iter().map(|w| model.condition(w)).collect();
                let before = model.current.clone();
                let tasks: Vec<_> = writes
                    .iter()
                    .zip(&conditions)
                    .map(|(w, c)| {
                        let store = Arc::clone(&store);
                        let (w, c) = (w.clone(), *c);
                        tokio::spawn(async move {
                            match w {
                                Write::Put { key, value, .. } => {
                                    store.put(KEYS[key].into(), vec![value], c).await
                                }
                                Write::Delete { key, .. } => {
                                    store.delete(KEYS[key].into(), c).await
                                }
                            }
                        })
                    })
                    .collect();
                let mut results = Vec::new();
                for (i, task) in tasks.into_iter().enumerate() {
                    results.push((i, task.await.unwrap().unwrap()));
                }
                // Replay the committed writes in the engine's revision order.
                let mut committed: Vec<(Revision, usize)> = results
                    .iter()
                    .filter_map(|(i, o)| match o {
                        WriteOutcome::Committed { revision, .. } => Some((*revision, *i)),
                        WriteOutcome::Failed { .. } => None,
                    })
                    .collect();
                committed.sort();
                // Every state each key had during the group: before it, then after each commit.
                let mut seen_values: BTreeMap<Vec<u8>, Vec<Option<KeyValue>>> = KEYS
                    .iter()
                    .map(|k| {
                        (
                            k.as_bytes().to_vec(),
                            vec![before.get(k.as_bytes()).cloned()],
                        )
                    })
                    .collect();
                for (revision, i) in &committed {
                    let expected = model.apply(&writes[*i], conditions[*i]);
                    prop_assert_eq!(
                        &results[*i].1,
                        &expected,
                        "concurrent write {:?}",
                        writes[*i]
                    );
                    let committed_at = matches!(expected, WriteOutcome::Committed { revision: r, .. } if r == *revision);
                    prop_assert!(committed_at, "model and engine disagree on the revision");
                    let key = match &writes[*i] {
                        Write::Put { key, .. } | Write::Delete { key, .. } => {
                            KEYS[*key].as_bytes().to_vec()
                        }
                    };
                    let after = model.current.get(&key).cloned();
                    seen_values.entry(key).or_default().push(after);
                }
                // A failed write saw some state its key had during the group, and its
                // condition did not hold against it.
                for (i, outcome) in &results {
                    if let WriteOutcome::Failed { current } = outcome {
                        let key = match &writes[*i] {
                            Write::Put { key, .. } | Write::Delete { key, .. } => {
                                KEYS[*key].as_bytes().to_vec()
                            }
                        };
                        let states = seen_values.get(&key).cloned().unwrap_or_default();
                        prop_assert!(
                            states.contains(current),
                            "failed write {:?} saw {:?}, not one of {:?}",
                            writes[*i],
                            current,
                            states
                        );
                        let is_delete_of_absent =
                            matches!(writes[*i], Write::Delete { .. }) && current.is_none();
                        prop_assert!(
                            is_delete_of_absent || !Model::holds(conditions[*i], current.as_ref())
                        );
                    }
                }
            }
            Op::Range {
                range,
                offset,
                limit,
                count_only,
            } => {
                let at = (model.revision + offset).max(1);
                let req = RangeRequest {
                    range: key_range(&range),
                    limit,
                    revision: Some(at),
                    count_only,
                };
                let actual = store.range(req.clone()).await;
                if at > model.revision {
                    let expected = Error::FutureRevision {
                        requested: at,
                        current: model.revision,
                    };
                    prop_assert!(
                        matches!(&actual, Err(e) if same_error(e, &expected)),
                        "{:?}",
                        actual
                    );
                } else if at < model.compact {
                    let expected = Error::Compacted {
                        requested: at,
                        compacted: model.compact,
                    };
                    prop_assert!(
                        matches!(&actual, Err(e) if same_error(e, &expected)),
                        "{:?}",
                        actual
                    );
                } else {
                    let resp = actual.unwrap();
                    let all: Vec<KeyValue> = model
                        .state_at(at)
                        .into_values()
                        .filter(|kv| req.range.contains(&kv.key))
                        .collect();
                    let count = all.len();
                    let kvs: Vec<KeyValue> = if count_only {
                        vec![]
                    } else {
                        all.into_iter().take(limit.unwrap_or(usize::MAX)).collect()
                    };
                    prop_assert_eq!(&resp.kvs, &kvs, "range {:?} at {}", range, at);
                    prop_assert_eq!(resp.count, count);
                    prop_assert_eq!(resp.revision, at);
                    if !count_only {
                        prop_assert_eq!(resp.more, count > kvs.len());
                    }
                }
            }
            Op::Compact { back } => {
                let target = (model.revision - back).max(1);
                let actual = store.compact(target).await;
                if target > model.revision {
                    prop_assert!(
                        matches!(actual, Err(Error::FutureRevision { .. })),
                        "{:?}",
                        actual
                    );
                } else {
                    prop_assert!(actual.is_ok(), "{:?}", actual);
                    model.compact = model.compact.max(target);
                }
                let status = store.status().await.unwrap();
                prop_assert_eq!(
                    (status.revision, status.compact_revision),
                    (model.revision, model.compact)
                );
            }
            Op::Watch { back } => {
                let start = (model.revision - back).max(model.compact);
                later_watches.push((
                    start,
                    store.watch(KeyRange::prefix(""), start).await.unwrap(),
                ));
            }
        }
    }

    let last = model.revision;
    if last > 1 {
        prop_assert_eq!(
            &collect(&mut from_start, last).await.unwrap(),
            &model.events,
            "watch from the start"
        );
    }
    let suffix = |start: Revision| -> Vec<WatchEvent> {
        model
            .events
            .iter()
            .filter(|e| e.revision() >= start)
            .cloned()
            .collect()
    };
    for (start, mut watch) in later_watches {
        // A watch that has nothing to report yet (no write since its start) is not waited on.
        if !suffix(start).is_empty() {
            match collect(&mut watch, last).await {
                Ok(events) => prop_assert_eq!(events, suffix(start), "watch from {}", start),
                // A compaction past its start may overtake a replay that had not read yet.
                Err(Error::Compacted { requested, .. }) => prop_assert!(model.compact > requested),
                Err(other) => prop_assert!(false, "watch from {} failed: {:?}", start, other),
            }
        }
    }
    // A watch opened now, from the compaction point, replays the surviving history.
    let mut replay = store
        .watch(KeyRange::prefix(""), model.compact)
        .await
        .unwrap();
    if !suffix(model.compact).is_empty() {
        prop_assert_eq!(
            collect(&mut replay, last).await.unwrap(),
            suffix(model.compact),
            "replay from the compaction point"
        );
    }
    store.close().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn embedded_engine_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(ops))?;
    }
}
