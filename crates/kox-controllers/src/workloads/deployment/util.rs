//! The arithmetic of a rollout, as upstream's `deployment/util`: surge and unavailability
//! budgets, revisions and their annotations, the new ReplicaSet's size, status and conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::workloads::util::scaled_value;

/// The revision of a ReplicaSet (and of its Deployment).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet served (set when a rollback reuses it).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `replicas` when the ReplicaSet was last scaled for it.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that tells ReplicaSets of one Deployment apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// kubectl's `last-applied-configuration`, never copied onto ReplicaSets.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Progressing condition reasons.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// Progressing: an existing ReplicaSet matches the template.
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// Progressing: a ReplicaSet was scaled.
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing: the rollout completed.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing: no progress within `progressDeadlineSeconds`.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Progressing: paused.
pub const PAUSED: &str = "DeploymentPaused";
/// Progressing: resumed.
pub const RESUMED: &str = "DeploymentResumed";
/// Available: enough pods are available.
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available: not enough pods are available.
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
/// The condition a ReplicaSet whose creates or deletes fail carries, copied onto its
/// Deployment.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

fn skip_copy(k: &str) -> bool {
    matches!(
        k,
        LAST_APPLIED
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | "deployment.kubernetes.io/error-selector-overlapping-with"
            | "deployment.kubernetes.io/selector-updated-at"
    )
}

/// `spec.replicas` of a Deployment (default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet (default 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// Upstream's `ResolveFenceposts`: (surge, unavailable) for `desired` replicas; both zero
/// becomes one unavailable so a rollout can move.
pub fn fenceposts(d: &Deployment, desired: i32) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let default = k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("25%".into());
    let surge = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&default);
    let unavailable = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&default);
    let surge = scaled_value(Some(surge), desired, true).unwrap_or(0);
    let unavailable = scaled_value(Some(unavailable), desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Upstream's `MaxSurge`.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d, replicas(d)).0
}

/// Upstream's `MaxUnavailable`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let r = replicas(d);
    if !is_rolling(d) || r == 0 {
        return 0;
    }
    fenceposts(d, r).1.min(r)
}

/// A ReplicaSet's revision (0 when unset or unreadable).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The template without the `pod-template-hash` label, to compare a ReplicaSet's template
/// with its Deployment's (upstream's `EqualIgnoreHash`).
pub fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(m) = t.metadata.as_mut()
        && let Some(l) = m.labels.as_mut()
    {
        l.remove(POD_TEMPLATE_HASH);
        if l.is_empty() {
            m.labels = None;
        }
    }
    t
}

/// Whether two templates are equal but for `pod-template-hash`.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    serde_json::to_value(without_hash(a)).ok() == serde_json::to_value(without_hash(b)).ok()
}

/// Copies the Deployment's annotations onto the ReplicaSet, sets its revision (keeping the
/// old one in the history when a rollback reuses it) and, for a new one, the replica
/// annotations; returns whether anything changed (upstream's `SetNewReplicaSetAnnotations`).
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs_annotations: &mut BTreeMap<String, String>,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || rs_annotations.get(k) == Some(v) {
            continue;
        }
        rs_annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = rs_annotations.get(REVISION).cloned();
    let old_n: i64 = old.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    if old.is_none() || old_n < new_revision {
        rs_annotations.insert(REVISION.into(), new_revision.to_string());
        if let Some(o) = old.filter(|o| !o.is_empty()) {
            let hist = rs_annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            let hist = if hist.is_empty() {
                o
            } else {
                format!("{hist},{o}")
            };
            rs_annotations.insert(REVISION_HISTORY.into(), hist);
        }
        changed = true;
    }
    if !exists {
        changed |=
            set_replicas_annotations(rs_annotations, replicas(d), replicas(d) + max_surge(d));
    }
    changed
}

/// Sets the desired/max replica annotations; returns whether they changed.
pub fn set_replicas_annotations(a: &mut BTreeMap<String, String>, desired: i32, max: i32) -> bool {
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

/// The Deployment size a ReplicaSet was last scaled for (its desired-replicas annotation).
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESIRED_REPLICAS))
        .and_then(|v| v.parse().ok())
}

/// Upstream's `NewRSNewReplicas`: how big the new ReplicaSet may be now.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let want = replicas(d);
    let cur_new = rs_replicas(new_rs);
    if !is_rolling(d) {
        return want;
    }
    let current: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let max_total = want + max_surge(d);
    if current >= max_total {
        return cur_new;
    }
    let up = (max_total - current).min(want - cur_new).max(0);
    cur_new + up
}

/// Whether the new ReplicaSet is fully scaled and available (upstream's `IsSaturated`).
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let desired = desired_replicas_annotation(rs);
    rs_replicas(rs) == replicas(d)
        && desired == Some(replicas(d))
        && rs_available(rs) == replicas(d)
}

/// Upstream's `calculateStatus`: counts summed over ReplicaSets, conditions kept, Available
/// recomputed.
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let available: i32 = all.iter().map(|r| rs_available(r)).sum();
    let total: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|r| st(r).replicas).sum()),
        updated_replicas: Some(new_rs.map(|r| st(r).replicas).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|r| st(r).ready_replicas.unwrap_or(0)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
    };
    let cond = if available >= replicas(d) - max_unavailable(d) {
        condition(
            "Available",
            "True",
            MIN_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    } else {
        condition(
            "Available",
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    };
    set_condition(&mut status, cond);
    status
}

/// A new condition stamped `now`.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`.
pub fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.iter().flatten().find(|c| c.type_ == type_)
}

/// Upstream's `SetDeploymentCondition`: no change when status and reason are equal; the
/// transition time kept when only the reason changes.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let conds = s.conditions.get_or_insert_with(Vec::new);
    if let Some(cur) = conds.iter().find(|x| x.type_ == c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

/// Upstream's `getReplicaFailures`: the `ReplicaFailure` condition of the new ReplicaSet, else
/// of any other, as a Deployment condition (its update time the transition's), so the
/// Deployment explains why its pods are missing.
pub fn replica_failure(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<DeploymentCondition> {
    new_rs
        .into_iter()
        .chain(all.iter().copied())
        .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
        .find(|c| c.type_ == REPLICA_FAILURE)
        .map(|c| DeploymentCondition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_update_time: c.last_transition_time.clone(),
            last_transition_time: c.last_transition_time.clone(),
        })
}

/// Removes the condition of `type_`.
pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = s.conditions.as_mut() {
        c.retain(|x| x.type_ != type_);
    }
}

/// `progressDeadlineSeconds`, unless it is the "never" value.
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .map(|s| s.progress_deadline_seconds.unwrap_or(600))
        .filter(|s| *s != i32::MAX)
}

/// Upstream's `DeploymentComplete`.
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    s.updated_replicas.unwrap_or(0) == r
        && s.replicas.unwrap_or(0) == r
        && s.available_replicas.unwrap_or(0) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream's `DeploymentProgressing`: did anything move since the last status?
pub fn is_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// Upstream's `DeploymentTimedOut`.
pub fn is_timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(s, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    from.0.as_second() + i64::from(deadline) < now.as_second()
}

/// The Deployment's maximum size a ReplicaSet was last scaled for (its max-replicas annotation).
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MAX_REPLICAS))
        .and_then(|v| v.parse().ok())
}

/// An active ReplicaSet as proportional scaling sees it.
#[derive(Clone, Copy, Debug)]
pub struct Share {
    /// `spec.replicas`.
    pub replicas: i32,
    /// The max-replicas annotation, the Deployment's `replicas + maxSurge` when the set was last
    /// scaled.
    pub max_replicas: Option<i32>,
}

/// Upstream's `getReplicaSetFraction`: how many replicas a set gains (or loses, negative) when
/// the Deployment is resized to `replicas` (with `max_surge`) — its share of the new maximum,
/// in the proportion it held of the maximum it was last scaled for (the max-replicas
/// annotation, else the Deployment's `status.replicas`).
fn fraction(set: Share, replicas: i32, max_surge: i32, status_replicas: i32) -> i32 {
    if replicas == 0 {
        return -set.replicas;
    }
    let max_now = replicas + max_surge;
    let before = match set.max_replicas.filter(|m| *m != 0) {
        Some(m) => m,
        // Annotation missing (edited by hand): fall back to the Deployment's current size.
        None if status_replicas != 0 => status_replicas,
        None => return 0,
    };
    let size = f64::from(set.replicas) / f64::from(before) * f64::from(max_now);
    // Go's math.Round: halves away from zero, as f64::round.
    size.round() as i32 - set.replicas
}

/// Upstream's `GetReplicaSetProportion`: the set's fraction, bounded by what is left to add
/// (or remove).
fn proportion(
    set: Share,
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
    to_add: i32,
    added: i32,
) -> i32 {
    if set.replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let f = fraction(set, replicas, max_surge, status_replicas);
    let allowed = to_add - added;
    if to_add > 0 {
        f.min(allowed)
    } else {
        f.max(allowed)
    }
}

/// Proportional scaling during a rollout (upstream's `scale` for a RollingUpdate Deployment
/// with several active ReplicaSets): the new size of each of `sets`, which are sorted as
/// upstream sorts them (largest first; among equals newer first when growing, older first when
/// shrinking). The Deployment is resized to `replicas` with `max_surge`; `status_replicas` is
/// its `status.replicas`. What rounding leaves over goes to the first (largest) set.
pub fn proportional_sizes(
    sets: &[Share],
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
) -> Vec<i32> {
    let allowed = if replicas > 0 {
        replicas + max_surge
    } else {
        0
    };
    let current: i32 = sets.iter().map(|s| s.replicas).sum();
    let to_add = allowed - current;
    let mut added = 0;
    let mut sizes: Vec<i32> = sets
        .iter()
        .map(|s| {
            let p = proportion(*s, replicas, max_surge, status_replicas, to_add, added);
            added += p;
            s.replicas + p
        })
        .collect();
    if let Some(first) = sizes.first_mut()
        && to_add != 0
    {
        *first = (*first + to_add - added).max(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).expect("deployment")
    }

    fn rs(name: &str, replicas: i32, available: i32, rev: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {REVISION: rev}},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available},
        }))
        .expect("rs")
    }

    #[test]
    fn budgets_round_surge_up_and_unavailable_down() {
        let d = deploy(json!({"spec": {"replicas": 3, "selector": {}, "template": {}}}));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
        let d = deploy(
            json!({"spec": {"replicas": 10, "selector": {}, "template": {},
            "strategy": {"rollingUpdate": {"maxSurge": "30%", "maxUnavailable": "30%"}}}}),
        );
        assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 3));
        let d = deploy(
            json!({"spec": {"replicas": 3, "selector": {}, "template": {},
            "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}}),
        );
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 1));
        let d = deploy(
            json!({"spec": {"replicas": 3, "selector": {}, "template": {},
            "strategy": {"type": "Recreate"}}}),
        );
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 0));
    }

    #[test]
    fn new_replica_set_grows_within_the_surge() {
        let d = deploy(
            json!({"spec": {"replicas": 3, "selector": {}, "template": {},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}),
        );
        let old = rs("old", 3, 3, "1");
        let new = rs("new", 0, 0, "2");
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 1);
        let old = rs("old", 2, 2, "1");
        let new = rs("new", 2, 1, "2");
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 2);
        let old = rs("old", 1, 1, "1");
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 3);
    }

    #[test]
    fn rollback_keeps_the_revision_history() {
        let d = deploy(
            json!({"metadata": {"annotations": {"kubernetes.io/change-cause": "undo", REVISION: "3"}},
            "spec": {"replicas": 2, "selector": {}, "template": {}}}),
        );
        let mut a: BTreeMap<String, String> = [(REVISION.to_string(), "1".to_string())].into();
        assert!(set_new_rs_annotations(&d, &mut a, 4, true));
        assert_eq!(a[REVISION], "4");
        assert_eq!(a[REVISION_HISTORY], "1");
        assert_eq!(a["kubernetes.io/change-cause"], "undo");
        assert!(!set_new_rs_annotations(&d, &mut a, 4, true));
        let mut fresh = BTreeMap::new();
        set_new_rs_annotations(&d, &mut fresh, 1, false);
        assert_eq!(fresh[DESIRED_REPLICAS], "2");
        assert_eq!(fresh[MAX_REPLICAS], "3");
        assert!(!fresh.contains_key(REVISION_HISTORY));
    }

    #[test]
    fn status_sums_replica_sets_and_judges_availability() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("now");
        let d = deploy(
            json!({"metadata": {"generation": 2}, "spec": {"replicas": 4, "selector": {}, "template": {}}}),
        );
        let old = rs("old", 2, 2, "1");
        let new = rs("new", 2, 1, "2");
        let s = calculate_status(&d, &[&old, &new], Some(&new), now);
        assert_eq!(s.replicas, Some(4));
        assert_eq!(s.updated_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(2));
        let a = get_condition(&s, "Available").expect("available");
        assert_eq!(
            (a.status.as_str(), a.reason.as_deref()),
            ("True", Some(MIN_AVAILABLE))
        );
        assert!(!is_complete(&d, &s));
    }

    #[test]
    fn the_new_replica_sets_failure_is_copied_first() {
        let failing = |name: &str, msg: &str| {
            let mut r = rs(name, 3, 0, "1");
            r.status.get_or_insert_with(Default::default).conditions = Some(vec![
                serde_json::from_value(json!({
                    "type": REPLICA_FAILURE, "status": "True", "reason": "FailedCreate",
                    "message": msg, "lastTransitionTime": "2026-01-01T00:00:00Z",
                }))
                .expect("condition"),
            ]);
            r
        };
        let (old, new) = (failing("old", "old quota"), failing("new", "new quota"));
        let c = replica_failure(&[&old, &new], Some(&new)).expect("a failure");
        assert_eq!(c.message.as_deref(), Some("new quota"));
        assert_eq!(c.reason.as_deref(), Some("FailedCreate"));
        assert_eq!(c.last_update_time, c.last_transition_time);
        let healthy = rs("new", 3, 3, "2");
        let c = replica_failure(&[&old, &healthy], Some(&healthy)).expect("the old one's");
        assert_eq!(c.message.as_deref(), Some("old quota"));
        assert!(replica_failure(&[&healthy], Some(&healthy)).is_none());
    }

    #[test]
    fn deadline_passes_only_without_progress() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().expect("now");
        let d = deploy(
            json!({"spec": {"replicas": 1, "selector": {}, "template": {}, "progressDeadlineSeconds": 60},
            "status": {"conditions": [{"type": "Progressing", "status": "True", "reason": RS_UPDATED,
                "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        );
        let s = d.status.clone().expect("status");
        assert!(is_timed_out(&d, &s, now));
        let early: Timestamp = "2026-01-01T00:00:30Z".parse().expect("now");
        assert!(!is_timed_out(&d, &s, early));
    }

    fn shares(v: &[(i32, Option<i32>)]) -> Vec<Share> {
        v.iter()
            .map(|&(replicas, max_replicas)| Share {
                replicas,
                max_replicas,
            })
            .collect()
    }

    /// Upstream's TestScale cases (deployment/sync_test.go) and its getProportion examples.
    #[test]
    fn proportional_scaling_follows_the_max_replicas_annotation() {
        // 10 → 20 mid-rollout, maxSurge 0: sets of 6 (new) and 4 (old), annotated max 10.
        let s = shares(&[(6, Some(10)), (4, Some(10))]);
        assert_eq!(proportional_sizes(&s, 20, 0, 10), vec![12, 8]);
        // Scaling down 10 → 5: halves.
        assert_eq!(proportional_sizes(&s, 5, 0, 10), vec![3, 2]);
        // To zero: every set goes.
        assert_eq!(proportional_sizes(&s, 0, 0, 10), vec![0, 0]);
        // maxSurge counts in both maxima: 10+3 → 20+5 for sets of 7 and 6.
        let s = shares(&[(7, Some(13)), (6, Some(13))]);
        assert_eq!(proportional_sizes(&s, 20, 5, 13), vec![13, 12]);
        // Rounding leftovers go to the first (largest) set: 3 sets of 1 of max 3 → 4.
        let s = shares(&[(1, Some(3)), (1, Some(3)), (1, Some(3))]);
        let v = proportional_sizes(&s, 4, 0, 3);
        assert_eq!(v.iter().sum::<i32>(), 4);
        assert_eq!(v, vec![2, 1, 1]);
        // Growing never adds more than allowed, shrinking never removes more.
        let s = shares(&[(5, Some(10)), (5, Some(10))]);
        assert_eq!(proportional_sizes(&s, 11, 0, 10), vec![6, 5]);
        assert_eq!(proportional_sizes(&s, 9, 0, 10), vec![4, 5]);
    }

    #[test]
    fn proportional_scaling_without_the_annotation_uses_the_status_size() {
        // A set whose annotation was removed: status.replicas (10) stands in for it.
        let s = shares(&[(6, Some(10)), (4, None)]);
        assert_eq!(proportional_sizes(&s, 20, 0, 10), vec![12, 8]);
        // Neither annotation nor status: that set keeps its size; leftovers go to the first.
        let s = shares(&[(6, None), (4, None)]);
        assert_eq!(proportional_sizes(&s, 20, 0, 0), vec![16, 4]);
    }
}
