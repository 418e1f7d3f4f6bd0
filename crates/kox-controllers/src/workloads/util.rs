//! Helpers every workload controller shares: owner references, pod readiness and
//! availability, pods built from templates, template hashes, int-or-percent values, and the
//! expectations that keep a controller from acting twice on a stale cache.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// The annotation that lowers a pod's cost of deletion when a ReplicaSet scales down.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The current time as API servers write it (whole seconds).
pub fn now() -> Timestamp {
    Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or_else(|_| Timestamp::now())
}

/// `now()` as a `metav1.Time`.
pub fn now_time() -> Time {
    Time(now())
}

/// Writes `status` as `obj`'s status with an update (PUT) of its `status` subresource: the
/// verb upstream's controllers use and the only one their roles grant on `*/status`. The
/// write is pinned to `obj`'s resourceVersion, as upstream's: a status computed from a stale
/// cache is refused (409, and the sync retried) instead of overwriting a newer one.
pub async fn update_status<K>(
    api: &kube::Api<K>,
    obj: &K,
    status: serde_json::Value,
) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut body = serde_json::to_value(obj)?;
    body["status"] = status;
    if let Some(meta) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
    }
    let body: K = serde_json::from_value(body)?;
    let name = obj.meta().name.as_deref().unwrap_or("");
    Ok(api
        .replace_status(name, &kube::api::PostParams::default(), &body)
        .await?)
}

/// Whether a computed status equals the stored one as the API server writes it: zero numbers,
/// `false` and `""` are left out there (upstream's `omitempty`), so `Some(0)` equals `None`
/// and a controller does not rewrite an unchanged status.
pub fn same_status<T: serde::Serialize>(stored: Option<&T>, computed: &T) -> bool {
    fn without_zeros(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(_, v)| {
                        !matches!(v, Value::Bool(false) | Value::Null)
                            && v.as_f64() != Some(0.0)
                            && v.as_str() != Some("")
                    })
                    .map(|(k, v)| (k, without_zeros(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(without_zeros).collect()),
            v => v,
        }
    }
    let norm = |v: Option<serde_json::Value>| v.map(without_zeros);
    stored.is_some_and(|s| {
        norm(serde_json::to_value(s).ok()) == norm(serde_json::to_value(computed).ok())
    })
}

/// The owner reference a controller puts on what it creates.
pub fn controller_ref(owner: &ObjectMeta, api_version: &str, kind: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// An informer handler for owned objects: queues `namespace/name` of the controller of kind
/// `kind` that owns the object, before and after the change (an object may change owner).
pub fn enqueue_controller<K>(
    queue: crate::queue::WorkQueue,
    kind: &'static str,
) -> impl Fn(&crate::informer::Change<'_, K>) + Send + Sync + 'static
where
    K: k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    move |c| {
        for o in [Some(c.object()), c.old()].into_iter().flatten() {
            let meta = o.metadata();
            if let Some(r) = controller_of(meta).filter(|r| r.kind == kind) {
                let ns = meta.namespace.as_deref().unwrap_or("");
                queue.add(format!("{ns}/{}", r.name));
            }
        }
    }
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// A pod's labels (empty when it has none).
pub fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// The phase of a pod, `Pending` when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Upstream's `IsPodActive`: not finished and not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When the pod became ready (its `Ready` condition's transition time), if it is ready.
/// A ready condition without a time counts as ready since the epoch.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if c.status != "True" {
        return None;
    }
    Some(
        c.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

/// Upstream's `IsPodAvailable`: ready for at least `min_ready_seconds` at `now`.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => since.as_second() + i64::from(min_ready_seconds) <= now.as_second(),
    }
}

/// Seconds until a ready pod becomes available, if it is ready but not yet available.
pub fn seconds_until_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<u64> {
    let since = ready_since(pod)?;
    let at = since.as_second() + i64::from(min_ready_seconds);
    (min_ready_seconds > 0 && at > now.as_second()).then(|| (at - now.as_second()) as u64)
}

/// Total container restarts of a pod.
pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// The name prefix of pods a controller creates: `<name>-`.
pub fn pods_prefix(controller: &str) -> String {
    // A prefix that would make every generated name invalid falls back to the bare name, as
    // upstream's getPodsPrefix does.
    let prefix = format!("{controller}-");
    if prefix.len() > 253 - 5 {
        controller.to_string()
    } else {
        prefix
    }
}

/// A pod built from `template` as upstream's `GetPodFromTemplate` does: the template's labels,
/// annotations, finalizers and spec, owned by `owner`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner: OwnerReference,
    generate_name: Option<String>,
    name: Option<String>,
) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: Some(namespace.to_string()),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// FNV-1a, 32 bits (what upstream hashes templates with).
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Upstream's `rand.SafeEncodeString`: maps every byte onto consonants and digits that cannot
/// spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The `pod-template-hash` of a template (and a collision count), as a short safe string.
/// The hash covers the template's canonical JSON, so equal templates hash equal.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut data = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        data.extend_from_slice(&c.to_le_bytes());
    }
    safe_encode(&fnv32a(&data).to_string())
}

/// Resolves an int-or-percent against `total`, rounding a percentage up or down.
pub fn scaled_value(v: Option<&IntOrString>, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        None => Ok(0),
        Some(IntOrString::Int(i)) => Ok(*i),
        Some(IntOrString::String(s)) => {
            let Some(p) = s.strip_suffix('%') else {
                return Err(format!(
                    "invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"
                ));
            };
            let p: i64 = p
                .parse()
                .map_err(|_| format!("invalid value {s:?}: not a percentage"))?;
            let prod = p * i64::from(total);
            let v = if round_up {
                (prod + 99).div_euclid(100)
            } else {
                prod.div_euclid(100)
            };
            Ok(v as i32)
        }
    }
}

/// What a controller has asked the API server for and not yet seen in its cache.
///
/// Level-triggered controllers read a cache that lags their own writes; acting again before
/// the cache shows them would create or delete twice. A key is satisfied when every created
/// name was observed (an informer event, or the cache holding it) and every deleted uid is gone
/// or terminating, or when the entry expired: upstream's `ExpectationsTimeout`, 5 minutes after
/// the last request, which only matters if the watch lost an event.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    created: HashSet<String>,
    deleted: HashSet<(String, String)>,
    since: Instant,
}

/// How long an unmet expectation holds a controller back (upstream's `ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry<'a>(map: &'a mut HashMap<String, Pending>, key: &str) -> &'a mut Pending {
        map.entry(key.to_string()).or_insert_with(|| Pending {
            created: HashSet::new(),
            deleted: HashSet::new(),
            since: Instant::now(),
        })
    }

    /// Records that an object named `name` was created for `key`.
    pub fn created(&self, key: &str, name: &str) {
        let mut m = self.lock();
        let e = Self::entry(&mut m, key);
        e.created.insert(name.to_string());
        e.since = Instant::now();
    }

    /// Records that the object `name` with `uid` was deleted for `key`.
    pub fn deleted(&self, key: &str, name: &str, uid: &str) {
        let mut m = self.lock();
        let e = Self::entry(&mut m, key);
        e.deleted.insert((name.to_string(), uid.to_string()));
        e.since = Instant::now();
    }

    /// Whether the cache, described by `seen_name` (is a name cached?) and `live` (is the
    /// object `name` with `uid` cached and not terminating?), shows everything asked for `key`.
    pub fn satisfied(
        &self,
        key: &str,
        seen_name: impl Fn(&str) -> bool,
        live: impl Fn(&str, &str) -> bool,
    ) -> bool {
        let mut m = self.lock();
        let Some(e) = m.get_mut(key) else {
            return true;
        };
        e.created.retain(|n| !seen_name(n));
        e.deleted.retain(|(n, u)| live(n, u));
        if (e.created.is_empty() && e.deleted.is_empty())
            || e.since.elapsed() > EXPECTATIONS_TIMEOUT
        {
            m.remove(key);
            return true;
        }
        false
    }

    /// Records what an informer event about an object of `key` shows, as upstream's
    /// `CreationObserved` / `DeletionObserved`: the object exists (a creation arrived), or it is
    /// gone or terminating (a deletion arrived; also a creation, should the object have been
    /// deleted before the cache ever held it).
    pub fn observed(&self, key: &str, meta: &ObjectMeta, gone: bool) {
        let mut m = self.lock();
        let Some(e) = m.get_mut(key) else {
            return;
        };
        let name = meta.name.as_deref().unwrap_or("");
        e.created.remove(name);
        if gone || meta.deletion_timestamp.is_some() {
            let uid = meta.uid.clone().unwrap_or_default();
            e.deleted.remove(&(name.to_string(), uid));
        }
    }

    /// An informer handler for owned objects: records what each event shows for the
    /// expectations of the controller of kind `kind` that owns the object (see [`observed`]).
    ///
    /// [`observed`]: Expectations::observed
    pub fn observer<K>(
        self: &std::sync::Arc<Self>,
        kind: &'static str,
    ) -> impl Fn(&crate::informer::Change<'_, K>) + Send + Sync + 'static
    where
        K: k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        let me = self.clone();
        move |c| {
            let meta = c.object().metadata();
            if let Some(r) = controller_of(meta).filter(|r| r.kind == kind) {
                let ns = meta.namespace.as_deref().unwrap_or("");
                let gone = matches!(c, crate::informer::Change::Deleted(_));
                me.observed(&format!("{ns}/{}", r.name), meta, gone);
            }
        }
    }

    /// Forgets `key` (its owner is gone).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// Sets a condition in a list the way upstream's `Set*Condition` helpers do: unchanged when
/// the status and reason are equal; the transition time kept when only the reason changes.
pub fn set_condition<C: Clone>(
    conds: &mut Vec<C>,
    cond: C,
    type_of: impl Fn(&C) -> &str,
    status_reason: impl Fn(&C) -> (&str, Option<&str>),
    mut keep_transition: impl FnMut(&mut C, &C),
) -> bool {
    let t = type_of(&cond).to_string();
    if let Some(cur) = conds.iter().find(|c| type_of(c) == t) {
        if status_reason(cur) == status_reason(&cond) {
            return false;
        }
        let mut cond = cond;
        if status_reason(cur).0 == status_reason(&cond).0 {
            keep_transition(&mut cond, cur);
        }
        conds.retain(|c| type_of(c) != t);
        conds.push(cond);
    } else {
        conds.push(cond);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_differing_only_in_omitted_zeros_is_the_same() {
        use k8s_openapi::api::apps::v1::DaemonSetStatus;
        let stored = DaemonSetStatus {
            desired_number_scheduled: 2,
            ..Default::default()
        };
        let computed = DaemonSetStatus {
            number_unavailable: Some(0),
            ..stored.clone()
        };
        assert!(same_status(Some(&stored), &computed));
        let changed = DaemonSetStatus {
            number_unavailable: Some(1),
            ..stored.clone()
        };
        assert!(!same_status(Some(&stored), &changed));
        assert!(!same_status(None, &computed));
    }

    #[test]
    fn percentages_round_as_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(Some(&pct("25%")), 3, true), Ok(1));
        assert_eq!(scaled_value(Some(&pct("25%")), 3, false), Ok(0));
        assert_eq!(scaled_value(Some(&pct("50%")), 5, true), Ok(3));
        assert_eq!(scaled_value(Some(&pct("100%")), 4, false), Ok(4));
        assert_eq!(scaled_value(Some(&IntOrString::Int(2)), 10, false), Ok(2));
        assert!(scaled_value(Some(&pct("x")), 10, false).is_err());
        assert_eq!(scaled_value(None, 10, false), Ok(0));
    }

    #[test]
    fn hashes_are_safe_stable_and_change_with_the_template() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .expect("template");
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t, None));
        assert_ne!(h, template_hash(&t, Some(1)));
        assert!(
            h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
        let mut t2 = t.clone();
        t2.spec.as_mut().expect("spec").containers[0].image = Some("nginx:2".into());
        assert_ne!(h, template_hash(&t2, None));
    }

    #[test]
    fn expectations_wait_for_the_cache() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/a", |_| false, |_, _| true));
        e.created("ns/a", "a-x");
        e.deleted("ns/a", "a-y", "u1");
        assert!(!e.satisfied("ns/a", |_| false, |_, _| true));
        assert!(!e.satisfied("ns/a", |n| n == "a-x", |_, _| true));
        assert!(e.satisfied("ns/a", |_| false, |_, _| false));
    }

    fn meta(name: &str, uid: &str, terminating: bool) -> ObjectMeta {
        serde_json::from_value(serde_json::json!({
            "name": name, "namespace": "ns", "uid": uid,
            "deletionTimestamp": terminating.then_some("2026-01-01T00:00:00Z"),
        }))
        .expect("meta")
    }

    #[test]
    fn expectations_are_met_by_events_even_if_the_cache_missed_the_object() {
        let e = Expectations::default();
        e.created("ns/a", "a-x");
        e.created("ns/a", "a-z");
        e.deleted("ns/a", "a-y", "u1");
        // Events about other objects change nothing.
        e.observed("ns/a", &meta("a-other", "u9", true), true);
        e.observed("ns/b", &meta("a-x", "u2", false), false);
        assert!(!e.satisfied("ns/a", |_| false, |_, _| true));
        // a-x was created and deleted before the cache held it: its deletion event counts.
        e.observed("ns/a", &meta("a-x", "u2", false), true);
        e.observed("ns/a", &meta("a-z", "u3", false), false);
        assert!(!e.satisfied("ns/a", |_| false, |_, _| true));
        // A pod seen terminating counts as deleted, as upstream's updatePod.
        e.observed("ns/a", &meta("a-y", "u1", true), false);
        assert!(e.satisfied("ns/a", |_| false, |_, _| true));
    }

    #[test]
    fn unmet_expectations_expire_after_five_minutes_as_upstream() {
        assert_eq!(EXPECTATIONS_TIMEOUT, Duration::from_secs(300));
        let e = Expectations::default();
        e.created("ns/a", "a-x");
        assert!(!e.satisfied("ns/a", |_| false, |_, _| true));
        // Age the entry as if the last request were just over / just under the timeout ago.
        let age = |d: Duration| {
            e.lock().get_mut("ns/a").expect("entry").since = Instant::now() - d;
        };
        age(EXPECTATIONS_TIMEOUT - Duration::from_secs(5));
        assert!(!e.satisfied("ns/a", |_| false, |_, _| true));
        age(EXPECTATIONS_TIMEOUT + Duration::from_secs(1));
        assert!(e.satisfied("ns/a", |_| false, |_, _| true));
        // Expired entries are dropped: nothing is pending any more.
        assert!(e.satisfied("ns/a", |_| false, |_, _| true));
    }

    #[test]
    fn availability_counts_min_ready_seconds() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("pod");
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        assert!(is_pod_available(&pod, 0, t0));
        assert!(!is_pod_available(&pod, 10, t0));
        assert_eq!(seconds_until_available(&pod, 10, t0), Some(10));
        let t1: Timestamp = "2026-01-01T00:00:10Z".parse().expect("time");
        assert!(is_pod_available(&pod, 10, t1));
    }
}
