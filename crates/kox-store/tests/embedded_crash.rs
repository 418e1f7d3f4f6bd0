//! Crash test: a child process writes from many tasks and prints every acknowledged write; the
//! parent kills it with SIGKILL at a random moment, reopens the store and checks that nothing
//! acknowledged is missing and that the revision sequence has no gap and no reuse.
//!
//! The child is this test binary run again with `--ignored --exact crash_child` and the store
//! directory in an environment variable.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kox_store::{Condition, KeyRange, RangeRequest, Revision, Store, WatchEvent, WriteOutcome};
use rand::Rng;

const DIR_ENV: &str = "KOX_STORE_CRASH_DIR";
const ROUND_ENV: &str = "KOX_STORE_CRASH_ROUND";
const ROUNDS: usize = 20;
const WRITERS: usize = 16;

fn options() -> EmbeddedOptions {
    // No compaction: the parent checks every revision ever written.
    EmbeddedOptions {
        auto_compaction_retention: None,
        ..Default::default()
    }
}

/// One acknowledged write, as printed by the child: `PUT key value revision` or `DEL key revision`.
#[derive(Debug, Clone, PartialEq)]
enum Ack {
    Put {
        key: String,
        value: String,
        revision: Revision,
    },
    Del {
        key: String,
        revision: Revision,
    },
}

impl Ack {
    fn parse(line: &str) -> Option<Ack> {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["PUT", key, value, rev] => Some(Ack::Put {
                key: key.to_string(),
                value: value.to_string(),
                revision: rev.parse().ok()?,
            }),
            ["DEL", key, rev] => Some(Ack::Del {
                key: key.to_string(),
                revision: rev.parse().ok()?,
            }),
            _ => None,
        }
    }

    fn revision(&self) -> Revision {
        match self {
            Ack::Put { revision, .. } | Ack::Del { revision, .. } => *revision,
        }
    }
}

/// The child: writes until killed. Each task puts unique keys and deletes every fourth one.
#[test]
#[ignore = "child process of acknowledged_writes_survive_kill_9"]
fn crash_child() {
    let dir = std::env::var(DIR_ENV).expect("run by acknowledged_writes_survive_kill_9");
    let round = std::env::var(ROUND_ENV).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(EmbeddedStore::open(&dir, options()).expect("child opens the store"));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|t| {
                let store = Arc::clone(&store);
                let round = round.clone();
                tokio::spawn(async move {
                    for n in 0u64.. {
                        let key = format!("r{round}/t{t}/{n}");
                        let value = format!("v{round}-{t}-{n}");
                        let outcome = store
                            .put(key.clone().into(), value.clone().into(), Condition::Absent)
                            .await;
                        let Ok(WriteOutcome::Committed { revision, .. }) = outcome else {
                            panic!("{outcome:?}")
                        };
                        emit(&format!("PUT {key} {value} {revision}"));
                        if n % 4 == 3 {
                            let outcome = store
                                .delete(key.clone().into(), Condition::ModRevision(revision))
                                .await;
                            let Ok(WriteOutcome::Committed { revision, .. }) = outcome else {
                                panic!("{outcome:?}")
                            };
                            emit(&format!("DEL {key} {revision}"));
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Runs one child for `run_for`, kills it with SIGKILL, and returns the complete lines it printed.
fn run_child(dir: &Path, round: usize, run_for: Duration) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut acks = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill has no newline and was never acknowledged as printed.
                Ok(_) if line.last() == Some(&b'\n') => {
                    if let Some(ack) = Ack::parse(String::from_utf8_lossy(&line).trim_end()) {
                        acks.push(ack);
                    }
                }
                Ok(_) => break,
            }
        }
        acks
    });
    std::thread::sleep(run_for);
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Checks an acknowledged write against the reopened store.
async fn check_ack(store: &dyn Store, ack: &Ack) {
    let read = |key: &str, rev: Revision| {
        store.range(RangeRequest::new(KeyRange::key(key)).at_revision(rev))
    };
    match ack {
        Ack::Put {
            key,
            value,
            revision,
        } => {
            let kvs = read(key, *revision).await.unwrap().kvs;
            assert_eq!(
                kvs.len(),
                1,
                "acknowledged put of {key} at {revision} is missing"
            );
            assert_eq!(
                kvs[0].value,
                value.as_bytes(),
                "acknowledged value of {key}"
            );
            assert_eq!(kvs[0].mod_revision, *revision, "revision of {key}");
        }
        Ack::Del { key, revision } => {
            assert!(
                read(key, *revision).await.unwrap().kvs.is_empty(),
                "acknowledged delete of {key} undone"
            );
            assert_eq!(
                read(key, revision - 1).await.unwrap().kvs.len(),
                1,
                "{key} before its delete"
            );
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::rng();
    let mut all_acks = Vec::new();
    let mut verified_up_to: Revision = 1;
    for round in 0..ROUNDS {
        let run_for = Duration::from_millis(rng.random_range(50..=400));
        let acks = run_child(dir.path(), round, run_for);
        runtime.block_on(async {
            let store =
                EmbeddedStore::open(dir.path(), options()).expect("the store opens after SIGKILL");
            let current = store.status().await.unwrap().revision;
            let max_acked = acks.iter().map(Ack::revision).max().unwrap_or(0);
            assert!(
                current >= max_acked,
                "round {round}: revision {current} is behind an acknowledged {max_acked}"
            );
            for ack in &acks {
                check_ack(&store, ack).await;
            }
            // Every revision since the last round is in the log exactly once, in order.
            if current > verified_up_to {
                let mut watch = store
                    .watch(KeyRange::prefix(""), verified_up_to + 1)
                    .await
                    .unwrap();
                let mut expected = verified_up_to + 1;
                while expected <= current {
                    let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
                        .await
                        .expect("replay stalled")
                        .expect("replay ended")
                        .expect("replay failed");
                    if matches!(event, WatchEvent::Progress { .. }) {
                        continue;
                    }
                    assert_eq!(
                        event.revision(),
                        expected,
                        "round {round}: gap or duplicate in the revision log"
                    );
                    expected += 1;
                }
            }
            // The next write continues the sequence.
            let outcome = store
                .put(
                    format!("parent/{round}").into(),
                    b"x".to_vec(),
                    Condition::None,
                )
                .await
                .unwrap();
            assert_eq!(
                outcome,
                WriteOutcome::Committed {
                    revision: current + 1,
                    prev: None
                }
            );
            verified_up_to = current + 1;
            store.close().await;
        });
        all_acks.extend(acks);
    }
    // A last look at everything acknowledged over all rounds.
    runtime.block_on(async {
        let store = EmbeddedStore::open(dir.path(), options()).unwrap();
        for ack in &all_acks {
            check_ack(&store, ack).await;
        }
        store.close().await;
    });
    assert!(
        all_acks.len() >= 100,
        "only {} writes were acknowledged: the test proved little",
        all_acks.len()
    );
    eprintln!(
        "{} acknowledged writes survived {ROUNDS} kills",
        all_acks.len()
    );
}
