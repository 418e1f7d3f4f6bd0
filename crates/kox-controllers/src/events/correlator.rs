//! Upstream's `EventCorrelator` (client-go `tools/record/events_cache.go`), which decides what
//! each recorded event becomes before anything is written, so a component stuck in a loop
//! cannot flood the cluster with Events:
//!
//! 1. aggregation: past 10 different messages with the same source, object, type and reason
//!    within 10 minutes, they are written as one Event whose message reads
//!    `(combined from similar events): <latest message>`;
//! 2. deduplication: an event equal to one written before bumps that Event's `count` (and
//!    `lastTimestamp`, `message`) instead of creating another;
//! 3. spam filtering: a source may write 25 times about one object, then once every 5
//!    minutes; what is filtered is dropped (its occurrences still counted, so the next
//!    write's `count` includes them).
//!
//! The correlator is pure: the caller passes the time and writes what it is told to.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::rate::TokenBucket;

/// Distinct messages of one kind of event before they are combined into one Event.
const AGGREGATE_MAX_EVENTS: usize = 10;
/// How long since the last similar event before a new one starts afresh.
const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// Events a source may write about one object at once.
const SPAM_BURST: u32 = 25;
/// Events a source may write about one object a second once the burst is spent (1 per 5 min).
const SPAM_QPS: f64 = 1.0 / 300.0;
/// Entries each cache keeps, the least recently used dropped first.
const CACHE_SIZE: usize = 4096;
/// The message prefix of an aggregate event, upstream's.
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// What an event says, and who says it about what: everything the correlator compares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Occurrence {
    /// The recording component (`source.component`).
    pub component: String,
    /// The involved object's kind, namespace, name, uid and apiVersion.
    pub object: [String; 5],
    /// `involvedObject.fieldPath`.
    pub field_path: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    /// The reason.
    pub reason: String,
    /// The message.
    pub message: String,
}

/// What to write for an occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing: the source has said too much about the object lately.
    Skip,
    /// A new Event named `name`, with `message` and a count of 1.
    Create {
        /// The Event's name.
        name: String,
        /// Its message (the occurrence's, or the combined one).
        message: String,
    },
    /// The existing Event `name`, bumped to `count` with `message` now its last.
    Bump {
        /// The Event's name.
        name: String,
        /// Its new count.
        count: i32,
        /// Its message (the occurrence's, or the combined one).
        message: String,
    },
}

/// The correlator's state: three bounded caches, as upstream's LRUs.
#[derive(Debug, Default)]
pub struct Correlator {
    similar: Lru<String, Similar>,
    written: Lru<String, Written>,
    spam: Lru<String, TokenBucket>,
}

#[derive(Debug)]
struct Similar {
    messages: HashSet<String>,
    last: Instant,
}

#[derive(Debug)]
struct Written {
    name: String,
    count: i32,
}

impl Correlator {
    /// Decides what `o`, occurring at `now`, is written as; `new_name` names the Event should
    /// one be created (upstream's `<object>.<nanoseconds>`).
    pub fn correlate(&mut self, o: &Occurrence, new_name: String, now: Instant) -> Verdict {
        let (key, message) = self.aggregate(o, now);
        let (name, count) = match self.written.get_mut(&key) {
            Some(w) => {
                w.count = w.count.saturating_add(1);
                (w.name.clone(), w.count)
            }
            None => {
                let w = Written {
                    name: new_name,
                    count: 1,
                };
                let out = (w.name.clone(), 1);
                self.written.insert(key, w);
                out
            }
        };
        if !self.allow(o, now) {
            return Verdict::Skip;
        }
        if count == 1 {
            Verdict::Create { name, message }
        } else {
            Verdict::Bump {
                name,
                count,
                message,
            }
        }
    }

    /// Upstream's `EventAggregate`: the key the occurrence is counted under and the message to
    /// write — its own, or the combined one once similar messages are too many.
    fn aggregate(&mut self, o: &Occurrence, now: Instant) -> (String, String) {
        let similar_key = join(&[&o.component, &o.object.join("\u{0}"), &o.type_, &o.reason]);
        let fresh = || Similar {
            messages: HashSet::new(),
            last: now,
        };
        let s = self.similar.get_or_insert_with(similar_key.clone(), fresh);
        if now.saturating_duration_since(s.last) > AGGREGATE_INTERVAL {
            *s = fresh();
        }
        s.messages.insert(o.message.clone());
        s.last = now;
        if s.messages.len() < AGGREGATE_MAX_EVENTS {
            let key = join(&[&similar_key, &o.field_path, &o.message]);
            return (key, o.message.clone());
        }
        // Keep the set below the threshold, so every new message keeps aggregating.
        if let Some(any) = s.messages.iter().next().cloned() {
            s.messages.remove(&any);
        }
        (similar_key, format!("{COMBINED_PREFIX}{}", o.message))
    }

    /// Upstream's `EventSourceObjectSpamFilter`: one token bucket per source and object.
    fn allow(&mut self, o: &Occurrence, now: Instant) -> bool {
        let key = join(&[&o.component, &o.object.join("\u{0}")]);
        self.spam
            .get_or_insert_with(key, || TokenBucket::new(SPAM_QPS, SPAM_BURST, now))
            .try_take(now)
    }
}

fn join(parts: &[&str]) -> String {
    parts.join("\u{0}")
}

/// A map of at most [`CACHE_SIZE`] entries that forgets the least recently used first.
#[derive(Debug)]
struct Lru<K, V> {
    entries: HashMap<K, (V, u64)>,
    tick: u64,
}

impl<K, V> Default for Lru<K, V> {
    fn default() -> Self {
        Lru {
            entries: HashMap::new(),
            tick: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(k).map(|(v, used)| {
            *used = tick;
            v
        })
    }

    fn insert(&mut self, k: K, v: V) {
        if self.entries.len() >= CACHE_SIZE && !self.entries.contains_key(&k) {
            // A scan, but only once the cache is full, and over a few thousand entries.
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(o) = oldest {
                self.entries.remove(&o);
            }
        }
        self.tick += 1;
        self.entries.insert(k, (v, self.tick));
    }

    fn get_or_insert_with(&mut self, k: K, v: impl FnOnce() -> V) -> &mut V {
        if self.get_mut(&k).is_none() {
            self.insert(k.clone(), v());
        }
        &mut self.entries.get_mut(&k).expect("just inserted").0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(object: &str, reason: &str, message: &str) -> Occurrence {
        Occurrence {
            component: "replicaset-controller".into(),
            object: [
                "ReplicaSet".into(),
                "ns".into(),
                object.into(),
                format!("uid-{object}"),
                "apps/v1".into(),
            ],
            type_: "Warning".into(),
            reason: reason.into(),
            message: message.into(),
            ..Occurrence::default()
        }
    }

    /// Correlates `o` at `at`, naming a new Event after `at`.
    fn check(c: &mut Correlator, o: &Occurrence, t0: Instant, at: Duration) -> Verdict {
        c.correlate(o, format!("{}.{}", o.object[2], at.as_millis()), t0 + at)
    }

    fn created(name: &str, message: &str) -> Verdict {
        Verdict::Create {
            name: name.into(),
            message: message.into(),
        }
    }

    fn bumped(name: &str, count: i32, message: &str) -> Verdict {
        Verdict::Bump {
            name: name.into(),
            count,
            message: message.into(),
        }
    }

    #[test]
    fn identical_events_bump_the_count_of_the_first() {
        let (mut c, t0) = (Correlator::default(), Instant::now());
        let o = occ("web", "FailedCreate", "quota");
        let s = Duration::from_secs;
        assert_eq!(check(&mut c, &o, t0, s(0)), created("web.0", "quota"));
        assert_eq!(check(&mut c, &o, t0, s(1)), bumped("web.0", 2, "quota"));
        assert_eq!(check(&mut c, &o, t0, s(2)), bumped("web.0", 3, "quota"));
        let other = occ("db", "FailedCreate", "quota");
        assert_eq!(check(&mut c, &other, t0, s(3)), created("db.3000", "quota"));
    }

    #[test]
    fn similar_events_are_combined_past_ten_messages() {
        let (mut c, t0) = (Correlator::default(), Instant::now());
        let ms = Duration::from_millis;
        let msg = |i: u64| format!("pods \"web-{i}\" is forbidden");
        for i in 0..9 {
            let v = check(&mut c, &occ("web", "FailedCreate", &msg(i)), t0, ms(i));
            assert_eq!(v, created(&format!("web.{i}"), &msg(i)));
        }
        let combined = |i: u64| format!("(combined from similar events): {}", msg(i));
        let v = check(&mut c, &occ("web", "FailedCreate", &msg(9)), t0, ms(9));
        assert_eq!(v, created("web.9", &combined(9)));
        let v = check(&mut c, &occ("web", "FailedCreate", &msg(10)), t0, ms(10));
        assert_eq!(v, bumped("web.9", 2, &combined(10)));
        // Another reason is not similar.
        let v = check(&mut c, &occ("web", "FailedDelete", &msg(11)), t0, ms(11));
        assert_eq!(v, created("web.11", &msg(11)));
        // Ten minutes of quiet start the count of messages afresh.
        let later = Duration::from_secs(601) + ms(10);
        let v = check(&mut c, &occ("web", "FailedCreate", &msg(12)), t0, later);
        assert_eq!(v, created(&format!("web.{}", later.as_millis()), &msg(12)));
    }

    #[test]
    fn a_source_is_limited_to_25_events_about_an_object_then_one_per_5_minutes() {
        let (mut c, t0) = (Correlator::default(), Instant::now());
        let o = occ("web", "FailedCreate", "quota");
        let ms = Duration::from_millis;
        let written = |c: &mut Correlator, from: u64, n: u64| {
            (from..from + n)
                .filter(|i| check(c, &o, t0, ms(*i)) != Verdict::Skip)
                .count()
        };
        assert_eq!(written(&mut c, 0, 1000), 25);
        // Other objects have budgets of their own.
        let v = check(&mut c, &occ("db", "FailedCreate", "quota"), t0, ms(1000));
        assert_eq!(v, created("db.1000", "quota"));
        // Five minutes later one more write, carrying every occurrence in its count.
        let v = check(&mut c, &o, t0, Duration::from_secs(300) + ms(1000));
        assert_eq!(v, bumped("web.0", 1001, "quota"));
        assert_eq!(
            check(&mut c, &o, t0, Duration::from_secs(302)),
            Verdict::Skip
        );
    }

    #[test]
    fn caches_forget_the_least_recently_used_entry_when_full() {
        let mut l: Lru<u32, u32> = Lru::default();
        for i in 0..CACHE_SIZE as u32 {
            l.insert(i, i);
        }
        assert!(l.get_mut(&0).is_some());
        l.insert(9999, 1);
        assert_eq!(l.entries.len(), CACHE_SIZE);
        assert!(l.get_mut(&0).is_some(), "recently used");
        assert!(l.get_mut(&1).is_none(), "least recently used");
    }
}
