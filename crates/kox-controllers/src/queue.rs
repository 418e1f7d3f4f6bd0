//! A rate-limited work queue of keys (upstream's `workqueue.RateLimitingInterface`): a key
//! is queued at most once however often it is added, is never handed to two workers at once
//! (added while processing, it is queued again when done), and failures are retried after
//! upstream's `DefaultControllerRateLimiter` delay: the longer of the key's exponential
//! backoff and the queue's overall retry bucket.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Resource;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::informer::{Change, key_of};
use crate::rate::TokenBucket;

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

/// The per-key exponential backoff of failed keys (upstream's
/// `ItemExponentialFailureRateLimiter`).
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The first retry's delay (default 5 ms, as upstream).
    pub base: Duration,
    /// The longest delay (default 1000 s, as upstream).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
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

/// How a queue spaces retries (upstream's `DefaultControllerRateLimiter`): each waits the
/// longer of its key's [`Backoff`] and the next token of a bucket shared by all keys, so many
/// failing keys cannot retry faster than `qps` together.
#[derive(Clone, Copy, Debug)]
pub struct RateLimits {
    /// The per-key backoff.
    pub backoff: Backoff,
    /// Retries a second over all keys once the burst is spent (default 10).
    pub qps: f64,
    /// Retries at once before `qps` applies (default 100).
    pub burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            backoff: Backoff::default(),
            qps: 10.0,
            burst: 100,
        }
    }
}

struct State {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
    retry_bucket: TokenBucket,
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
    limits: RateLimits,
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
    /// An empty queue with upstream's default rate limits.
    pub fn new(name: &str) -> Self {
        Self::with_limits(name, RateLimits::default())
    }

    /// An empty queue with its own rate limits.
    pub fn with_limits(name: &str, limits: RateLimits) -> Self {
        let state = State {
            queue: VecDeque::new(),
            dirty: HashSet::new(),
            processing: HashSet::new(),
            failures: HashMap::new(),
            retry_bucket: TokenBucket::new(limits.qps, limits.burst, Instant::now()),
            shut_down: false,
        };
        WorkQueue {
            inner: Arc::new(Inner {
                name: name.to_string(),
                state: Mutex::new(state),
                ready: Notify::new(),
                limits,
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

    /// Queues `key` after its next retry delay (see [`WorkQueue::next_retry_delay`]).
    pub fn add_rate_limited(&self, key: impl Into<String>) {
        let key = key.into();
        let delay = self.next_retry_delay(&key);
        self.inner.metrics.retries.fetch_add(1, Ordering::Relaxed);
        self.add_after(key, delay);
    }

    /// Counts a failure of `key` and says how long its retry waits (upstream's `When`): its
    /// backoff, which doubles with each failure until [`WorkQueue::forget`], or longer while
    /// the queue's retry bucket is spent.
    pub fn next_retry_delay(&self, key: &str) -> Duration {
        let mut st = self.lock();
        let n = st.failures.entry(key.to_string()).or_insert(0);
        let backoff = self.inner.limits.backoff.delay(*n);
        *n = n.saturating_add(1);
        backoff.max(st.retry_bucket.reserve(Instant::now()))
    }

    /// Resets `key`'s backoff.
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// How often `key` has been re-added with backoff since it was last forgotten.
    pub fn num_requeues(&self, key: &str) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Queues the object of an informer change by its key: the handler for the kind a
    /// controller reconciles. A key backing off after a failed sync is not queued early by an
    /// update that changed nothing but the status: that is, as a rule, the failing sync's own
    /// status write coming back, and queuing it would cut every backoff short (a stuck
    /// controller would retry as fast as it can write). Any other change is queued at once.
    pub fn add_change<K: Resource + Serialize>(&self, change: &Change<'_, K>) {
        let key = key_of(change.object().as_ref());
        if let Change::Updated { old, new } = change
            && self.num_requeues(&key) > 0
            && only_status_changed(old.as_ref(), new.as_ref())
        {
            return;
        }
        self.add(key);
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

/// Whether two states of an object differ only in `status` (and the resourceVersion and
/// managed fields every write changes).
fn only_status_changed<K: Serialize>(old: &K, new: &K) -> bool {
    let rest = |o: &K| {
        let mut v = serde_json::to_value(o).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
        }
        if let Some(m) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    rest(old) == rest(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;

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

    #[test]
    fn retry_delays_double_per_key_up_to_upstreams_cap() {
        let q = WorkQueue::new("t");
        let ms = Duration::from_millis;
        let a: Vec<Duration> = (0..4).map(|_| q.next_retry_delay("a")).collect();
        assert_eq!(a, [ms(5), ms(10), ms(20), ms(40)]);
        assert_eq!(q.next_retry_delay("b"), ms(5), "each key backs off alone");
        q.forget("a");
        assert_eq!(q.next_retry_delay("a"), ms(5), "success starts over");
        assert_eq!(Backoff::default().delay(40), Duration::from_secs(1000));
    }

    #[test]
    fn the_retry_bucket_spaces_the_retries_of_many_keys() {
        let q = WorkQueue::with_limits(
            "t",
            RateLimits {
                backoff: Backoff {
                    base: Duration::from_millis(1),
                    max: Duration::from_secs(1),
                },
                qps: 10.0,
                burst: 2,
            },
        );
        let d: Vec<Duration> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| q.next_retry_delay(k))
            .collect();
        assert_eq!(d[..2], [Duration::from_millis(1); 2]);
        // Past the burst each retry waits for its token, 100 ms apart (less the time the
        // test took between calls).
        assert!(d[2] > Duration::from_millis(90) && d[2] <= Duration::from_millis(100));
        assert!(d[3] > Duration::from_millis(190) && d[3] <= Duration::from_millis(200));
    }

    fn rs(replicas: i32, failure: &str) -> Arc<ReplicaSet> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "namespace": "ns", "resourceVersion": failure},
                "spec": {"replicas": replicas, "selector": {}},
                "status": {"replicas": 1, "conditions": [{"type": "ReplicaFailure",
                    "status": "True", "reason": "FailedCreate", "message": failure}]},
            }))
            .expect("replicaset"),
        )
    }

    #[tokio::test]
    async fn a_failing_keys_status_echo_waits_for_its_retry_but_other_changes_do_not() {
        let q = WorkQueue::new("t");
        let (old, echo, scaled) = (rs(3, "1"), rs(3, "2"), rs(1, "2"));
        let status_write = Change::Updated {
            old: &old,
            new: &echo,
        };
        q.add_change(&status_write);
        assert_eq!(
            q.len(),
            1,
            "a key that is not failing is queued on any change"
        );
        let k = q.get().await.expect("key");
        q.done(&k);
        q.next_retry_delay(&k);
        q.add_change(&status_write);
        assert!(
            q.is_empty(),
            "the failing key's status echo waits for its retry"
        );
        q.add_change(&Change::Updated {
            old: &old,
            new: &scaled,
        });
        assert_eq!(q.len(), 1, "a spec change is queued at once");
    }

    #[tokio::test]
    async fn a_sync_failing_after_a_status_write_still_backs_off() {
        // Each failing sync writes a new status, whose echo the informer hands back: the
        // retries must still come at 5, 10, 20, … ms rather than as fast as the writes.
        let q = WorkQueue::new("t");
        let calls = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        q.add("ns/web");
        let (c, echo_to) = (calls.clone(), q.clone());
        let run = q.run_workers(2, stop.clone(), move |_key| {
            let (c, q) = (c.clone(), echo_to.clone());
            async move {
                tokio::task::yield_now().await;
                let n = c.fetch_add(1, Ordering::SeqCst);
                let (old, new) = (rs(3, &n.to_string()), rs(3, &(n + 1).to_string()));
                q.add_change(&Change::Updated {
                    old: &old,
                    new: &new,
                });
                anyhow::bail!("exceeded quota")
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(1), run).await;
        stop.cancel();
        // Retries at 0, 5, 15, 35, 75, 155, 315, 635 ms: 8 in the first second.
        let n = calls.load(Ordering::SeqCst);
        assert!((5..=10).contains(&n), "{n} syncs in a second");
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
