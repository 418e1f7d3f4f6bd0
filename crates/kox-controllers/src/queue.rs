//! A rate-limited work queue of keys (upstream's `workqueue.RateLimitingInterface`): a key
//! is queued at most once however often it is added, is never handed to two workers at once
//! (added while processing, it is queued again when done), and failures back off
//! exponentially per key.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What a reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action(Option<Duration>);

impl Action {
    /// Nothing more until an event adds the key again.
    pub fn await_change() -> Self {
        Action(None)
    }

    /// Process the key again after `d` (even if nothing changes).
    pub fn requeue(d: Duration) -> Self {
        Action(Some(d))
    }

    /// The requeue delay, if any.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.0
    }
}

/// The per-key exponential backoff of failed keys.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The first retry's delay (default 5 ms, as upstream).
    pub base: Duration,
    /// The longest delay (default 300 s; upstream's is 1000 s).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay before retry number `failures + 1`.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
    shut_down: bool,
}

/// Counters of a queue, served at `/metrics` with upstream's `workqueue_*` names.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    /// Keys added (`workqueue_adds_total`).
    pub adds: AtomicU64,
    /// Rate-limited re-adds (`workqueue_retries_total`).
    pub retries: AtomicU64,
}

struct Inner {
    name: String,
    state: Mutex<State>,
    ready: Notify,
    backoff: Backoff,
    metrics: Arc<QueueMetrics>,
}

/// A deduplicating, rate-limited queue of keys. Cloning is cheap; clones share the queue.
#[derive(Clone)]
pub struct WorkQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("name", &self.inner.name)
            .field("len", &self.len())
            .finish()
    }
}

impl WorkQueue {
    /// An empty queue with the default backoff.
    pub fn new(name: &str) -> Self {
        Self::with_backoff(name, Backoff::default())
    }

    /// An empty queue with its own backoff.
    pub fn with_backoff(name: &str, backoff: Backoff) -> Self {
        WorkQueue {
            inner: Arc::new(Inner {
                name: name.to_string(),
                state: Mutex::new(State::default()),
                ready: Notify::new(),
                backoff,
                metrics: Arc::default(),
            }),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The queue's counters.
    pub fn metrics(&self) -> Arc<QueueMetrics> {
        self.inner.metrics.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut st = self.lock();
        if st.shut_down || st.dirty.contains(&key) {
            return;
        }
        self.inner.metrics.adds.fetch_add(1, Ordering::Relaxed);
        st.dirty.insert(key.clone());
        if !st.processing.contains(&key) {
            st.queue.push_back(key);
            drop(st);
            self.inner.ready.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Queues `key` after its backoff, which doubles with each call until [`WorkQueue::forget`].
    pub fn add_rate_limited(&self, key: impl Into<String>) {
        let key = key.into();
        let delay = {
            let mut st = self.lock();
            let n = st.failures.entry(key.clone()).or_insert(0);
            let d = self.inner.backoff.delay(*n);
            *n += 1;
            d
        };
        self.inner.metrics.retries.fetch_add(1, Ordering::Relaxed);
        self.add_after(key, delay);
    }

    /// Resets `key`'s backoff.
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// How often `key` has been re-added with backoff since it was last forgotten.
    pub fn num_requeues(&self, key: &str) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Keys waiting.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next key, marked as processing until [`WorkQueue::done`]; `None` once shut down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.inner.ready.notified();
            {
                let mut st = self.lock();
                if st.shut_down {
                    return None;
                }
                if let Some(key) = st.queue.pop_front() {
                    st.dirty.remove(&key);
                    st.processing.insert(key.clone());
                    let more = !st.queue.is_empty();
                    drop(st);
                    if more {
                        self.inner.ready.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// Marks `key` processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &str) {
        let mut st = self.lock();
        st.processing.remove(key);
        if st.dirty.contains(key) {
            st.queue.push_back(key.to_string());
            drop(st);
            self.inner.ready.notify_one();
        }
    }

    /// Stops handing out keys; waiting workers get `None`.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.inner.ready.notify_waiters();
    }

    /// Runs `workers` concurrent workers until `stop`, each taking a key and calling
    /// `reconcile`: an error re-adds the key with backoff (and is logged), success forgets its
    /// backoff and honours the returned [`Action`].
    pub async fn run_workers<F, Fut>(&self, workers: usize, stop: CancellationToken, reconcile: F)
    where
        F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Action>> + Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let q = self.clone();
            let f = reconcile.clone();
            tasks.spawn(async move {
                while let Some(key) = q.get().await {
                    match f(key.clone()).await {
                        Ok(action) => {
                            q.forget(&key);
                            if let Some(d) = action.requeue_after() {
                                q.add_after(key.clone(), d);
                            }
                        }
                        Err(e) => {
                            let conflict = e.downcast_ref::<kube::Error>().is_some_and(
                                |e| matches!(e, kube::Error::Api(s) if s.code == 409),
                            );
                            if conflict {
                                tracing::debug!(queue = q.name(), %key, "retrying after a conflict: {e:#}");
                            } else {
                                tracing::warn!(queue = q.name(), %key, "sync failed, retrying: {e:#}");
                            }
                            q.add_rate_limited(key.clone());
                        }
                    }
                    q.done(&key);
                }
            });
        }
        stop.cancelled().await;
        self.shut_down();
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn duplicate_adds_are_queued_once() {
        let q = WorkQueue::new("t");
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await.as_deref(), Some("a"));
        assert_eq!(q.get().await.as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn key_added_while_processing_is_requeued_on_done_not_before() {
        let q = WorkQueue::new("t");
        q.add("a");
        let k = q.get().await.unwrap();
        q.add("a");
        assert!(
            q.is_empty(),
            "a key being processed must not be handed out twice"
        );
        q.done(&k);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await.as_deref(), Some("a"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(0), Duration::from_millis(5));
        assert_eq!(b.delay(3), Duration::from_millis(40));
        assert_eq!(b.delay(40), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn failures_back_off_and_forget_resets() {
        let q = WorkQueue::new("t");
        q.add_rate_limited("a");
        q.add_rate_limited("a");
        assert_eq!(q.num_requeues("a"), 2);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), q.get())
                .await
                .unwrap()
                .as_deref(),
            Some("a")
        );
        q.forget("a");
        assert_eq!(q.num_requeues("a"), 0);
    }

    #[tokio::test]
    async fn workers_retry_failures_until_success() {
        let q = WorkQueue::new("t");
        let calls = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let c = calls.clone();
        let s = stop.clone();
        q.add("k");
        let run = q.run_workers(2, stop.clone(), move |_key| {
            let c = c.clone();
            let s = s.clone();
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    anyhow::bail!("not yet");
                }
                s.cancel();
                Ok(Action::await_change())
            }
        });
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("workers stop");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
