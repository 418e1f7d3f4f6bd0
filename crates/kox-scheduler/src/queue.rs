//! The scheduling queue: pending pods wait in one of three places.
//!
//! - **active** — ready to be tried, highest priority first, then oldest.
//! - **backoff** — tried and failed recently; wait 1 s doubling up to 10 s per attempt.
//! - **unschedulable** — no node fitted; they wait for a cluster event that might change that
//!   (a node added or updated, a pod deleted) or at most [`UNSCHEDULABLE_TIMEOUT`].

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

/// The longest an unschedulable pod waits without a relevant event (upstream's 5 minutes).
pub const UNSCHEDULABLE_TIMEOUT: Duration = Duration::from_secs(300);
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled.
    InFlight,
}

/// A pending pod and its history in the queue.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    /// The latest version of the pod.
    pub pod: Arc<Pod>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The move-request counter when the pod was popped.
    cycle: u64,
    place: Place,
    since: Instant,
    backoff_until: Instant,
    seq: u64,
}

/// Ordering key of the active queue: priority descending, then arrival.
type ActiveKey = (Reverse<i32>, u64);

/// The three queues, keyed by `namespace/name`.
#[derive(Default)]
pub struct SchedulingQueue {
    pods: HashMap<String, QueuedPod>,
    active: BTreeSet<(ActiveKey, String)>,
    backoff: BTreeSet<(Instant, String)>,
    seq: u64,
    /// Bumped by every cluster event that moves unschedulable pods; a pod that fails after an
    /// event arrived during its attempt goes to backoff, not unschedulable.
    move_cycle: u64,
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn backoff_for(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(8);
    (INITIAL_BACKOFF * (1 << shift)).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    /// Adds a new pending pod, or refreshes one already queued. A queued pod that changed
    /// gets another try now (its change may make it fit).
    pub fn add(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = crate::framework::pod_key(&pod);
        if let Some(q) = self.pods.get_mut(&key) {
            let changed = q.pod.spec != pod.spec || q.pod.metadata.labels != pod.metadata.labels;
            q.pod = pod;
            if changed && q.place == Place::Unschedulable {
                self.move_one(&key, now);
            }
            return;
        }
        self.seq += 1;
        let q = QueuedPod {
            pod,
            attempts: 0,
            cycle: 0,
            place: Place::Active,
            since: now,
            backoff_until: now,
            seq: self.seq,
        };
        self.active
            .insert(((Reverse(priority(&q.pod)), q.seq), key.clone()));
        self.pods.insert(key, q);
    }

    /// Forgets a pod (deleted, bound, or no longer pending).
    pub fn delete(&mut self, key: &str) {
        if let Some(q) = self.pods.remove(key) {
            self.unlink(key, &q);
        }
    }

    fn unlink(&mut self, key: &str, q: &QueuedPod) {
        match q.place {
            Place::Active => {
                self.active
                    .remove(&((Reverse(priority(&q.pod)), q.seq), key.to_string()));
            }
            Place::Backoff => {
                self.backoff.remove(&(q.backoff_until, key.to_string()));
            }
            Place::Unschedulable | Place::InFlight => {}
        }
    }

    /// Takes the next pod to schedule, if any is active.
    pub fn pop(&mut self) -> Option<QueuedPod> {
        let (_, key) = self.active.pop_first()?;
        let q = self.pods.get_mut(&key)?;
        q.place = Place::InFlight;
        q.cycle = self.move_cycle;
        Some(q.clone())
    }

    /// Whether a pod is queued anywhere (or in flight).
    pub fn contains(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// Puts back a popped pod that no node fitted.
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        let move_cycle = self.move_cycle;
        let Some(q) = self.pods.get_mut(key) else {
            return;
        };
        q.attempts += 1;
        q.backoff_until = now + backoff_for(q.attempts);
        if q.cycle < move_cycle {
            q.place = Place::Backoff;
            self.backoff.insert((q.backoff_until, key.to_string()));
        } else {
            q.place = Place::Unschedulable;
            q.since = now;
        }
    }

    /// Puts back a popped pod whose attempt failed for another reason (an API error).
    pub fn retry_later(&mut self, key: &str, now: Instant) {
        let Some(q) = self.pods.get_mut(key) else {
            return;
        };
        q.attempts += 1;
        q.backoff_until = now + backoff_for(q.attempts);
        q.place = Place::Backoff;
        self.backoff.insert((q.backoff_until, key.to_string()));
    }

    /// Queues a pod whose binding failed: it is tried again after its backoff.
    pub fn add_after_error(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = crate::framework::pod_key(&pod);
        if self.pods.contains_key(&key) {
            return;
        }
        self.add(pod, now);
        if let Some(q) = self.pods.get(&key).cloned() {
            self.unlink(&key, &q);
        }
        self.retry_later(&key, now);
    }

    /// Finishes a popped pod that was placed: it leaves the queue.
    pub fn done(&mut self, key: &str) {
        if self
            .pods
            .get(key)
            .is_some_and(|q| q.place == Place::InFlight)
        {
            self.pods.remove(key);
        }
    }

    fn move_one(&mut self, key: &str, now: Instant) {
        let Some(q) = self.pods.get_mut(key) else {
            return;
        };
        if q.backoff_until > now {
            q.place = Place::Backoff;
            self.backoff.insert((q.backoff_until, key.to_string()));
        } else {
            q.place = Place::Active;
            self.active
                .insert(((Reverse(priority(&q.pod)), q.seq), key.to_string()));
        }
    }

    /// A cluster event that may let only some unschedulable pods fit (upstream's queueing
    /// hints): those `may_help` picks get another try (after their backoff); an attempt in
    /// flight for such a pod that fails goes to backoff rather than waiting. Returns whether
    /// any pod moved.
    pub fn move_unschedulable_where(
        &mut self,
        now: Instant,
        may_help: impl Fn(&Pod) -> bool,
    ) -> bool {
        let mut in_flight = false;
        let keys: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| matches!(q.place, Place::Unschedulable | Place::InFlight))
            .filter(|(_, q)| may_help(&q.pod))
            .filter_map(|(k, q)| {
                if q.place == Place::InFlight {
                    in_flight = true;
                    None
                } else {
                    Some(k.clone())
                }
            })
            .collect();
        if in_flight || !keys.is_empty() {
            self.move_cycle += 1;
        }
        for k in &keys {
            self.move_one(k, now);
        }
        !keys.is_empty()
    }

    /// A cluster event that may let unschedulable pods fit: every one of them gets another
    /// try (after its backoff).
    pub fn move_all_unschedulable(&mut self, now: Instant) {
        self.move_cycle += 1;
        let keys: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| q.place == Place::Unschedulable)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.move_one(&k, now);
        }
    }

    /// Moves pods whose backoff ended to active, and unschedulable pods that waited
    /// [`UNSCHEDULABLE_TIMEOUT`] back into line. Returns when this should next run.
    pub fn flush(&mut self, now: Instant) -> Option<Instant> {
        while let Some((until, key)) = self.backoff.first().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop_first();
            if let Some(q) = self.pods.get_mut(&key) {
                q.place = Place::Active;
                self.active
                    .insert(((Reverse(priority(&q.pod)), q.seq), key));
            }
        }
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| {
                q.place == Place::Unschedulable
                    && now.duration_since(q.since) >= UNSCHEDULABLE_TIMEOUT
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.move_one(&k, now);
        }
        let next_backoff = self.backoff.first().map(|(t, _)| *t);
        let next_stale = self
            .pods
            .values()
            .filter(|q| q.place == Place::Unschedulable)
            .map(|q| q.since + UNSCHEDULABLE_TIMEOUT)
            .min();
        [next_backoff, next_stale].into_iter().flatten().min()
    }

    /// How many pods wait in each queue: (active, backoff, unschedulable).
    pub fn lengths(&self) -> (usize, usize, usize) {
        let unschedulable = self
            .pods
            .values()
            .filter(|q| q.place == Place::Unschedulable)
            .count();
        (self.active.len(), self.backoff.len(), unschedulable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"},
                "spec": {"containers": [], "priority": priority}}))
            .expect("pod"),
        )
    }

    #[test]
    fn hinted_moves_take_only_the_pods_an_event_may_help() {
        let mut q = SchedulingQueue::default();
        let now = Instant::now();
        for name in ["a", "b"] {
            q.add(
                Arc::new(
                    serde_json::from_value(serde_json::json!({
                        "metadata": {"name": name, "namespace": "ns"}, "spec": {"containers": []}}))
                    .expect("pod"),
                ),
                now,
            );
        }
        while let Some(p) = q.pop() {
            q.unschedulable(&crate::framework::pod_key(&p.pod), now);
        }
        assert_eq!(q.lengths(), (0, 0, 2));
        let is_a = |p: &Pod| p.metadata.name.as_deref() == Some("a");
        assert!(q.move_unschedulable_where(now, is_a));
        assert_eq!(q.lengths().2, 1);
        assert!(!q.move_unschedulable_where(now, is_a));
    }

    #[test]
    fn higher_priority_pops_first_then_oldest() {
        let mut q = SchedulingQueue::default();
        let now = Instant::now();
        q.add(pod("a", 0), now);
        q.add(pod("b", 10), now);
        q.add(pod("c", 0), now);
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.pod.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(order, ["b", "a", "c"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_then_their_backoff() {
        let mut q = SchedulingQueue::default();
        let t0 = Instant::now();
        q.add(pod("a", 0), t0);
        q.pop().expect("popped");
        q.unschedulable("ns/a", t0);
        assert_eq!(q.lengths(), (0, 0, 1));
        assert!(q.pop().is_none());
        // An event during backoff parks it in backoff; the flush after 1 s makes it active.
        q.move_all_unschedulable(t0);
        assert_eq!(q.lengths(), (0, 1, 0));
        q.flush(t0 + Duration::from_secs(1));
        assert_eq!(q.lengths(), (1, 0, 0));
        assert_eq!(q.pop().expect("again").attempts, 1);
    }

    #[test]
    fn an_event_during_the_attempt_sends_the_pod_to_backoff() {
        let mut q = SchedulingQueue::default();
        let t0 = Instant::now();
        q.add(pod("a", 0), t0);
        q.pop().expect("popped");
        q.move_all_unschedulable(t0);
        q.unschedulable("ns/a", t0);
        assert_eq!(q.lengths(), (0, 1, 0));
    }

    #[test]
    fn unschedulable_pods_are_retried_after_five_minutes() {
        let mut q = SchedulingQueue::default();
        let t0 = Instant::now();
        q.add(pod("a", 0), t0);
        q.pop().expect("popped");
        q.unschedulable("ns/a", t0);
        assert_eq!(
            q.flush(t0 + Duration::from_secs(60)),
            Some(t0 + UNSCHEDULABLE_TIMEOUT)
        );
        assert_eq!(q.lengths(), (0, 0, 1));
        q.flush(t0 + UNSCHEDULABLE_TIMEOUT);
        assert_eq!(q.lengths(), (1, 0, 0));
    }

    #[test]
    fn deleted_pods_leave_every_queue() {
        let mut q = SchedulingQueue::default();
        let t0 = Instant::now();
        q.add(pod("a", 0), t0);
        q.add(pod("b", 0), t0);
        q.delete("ns/a");
        q.pop().expect("b");
        q.retry_later("ns/b", t0);
        q.delete("ns/b");
        assert_eq!(q.lengths(), (0, 0, 0));
        assert!(q.flush(t0 + MAX_BACKOFF).is_none());
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let got: Vec<u64> = (1..=6).map(|a| backoff_for(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
    }
}
