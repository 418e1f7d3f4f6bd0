//! The ReplicaSet and ReplicationController controllers: keep `replicas` pods matching the
//! selector, created from the template; adopt matching orphans, release pods that stop
//! matching; report counts in status. One implementation serves both kinds through
//! [`Replicated`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::jiff::Timestamp;
use kox_api::label_selector::Selector;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::claim::{self, Claim};
use super::ranking::sort_for_deletion;
use super::util::{
    self, Expectations, controller_of, controller_ref, is_pod_active, is_pod_available,
    is_pod_ready, pods_prefix, seconds_until_available,
};
use crate::context::Context;
use crate::events::Recorder;
use crate::informer::{Change, Informer, key_of, split_key};
use crate::queue::{Action, WorkQueue};

/// Pods created or deleted in one sync at most (upstream's `burstReplicas`).
const BURST: usize = 500;

/// What the controller needs from a ReplicaSet or a ReplicationController.
#[derive(Clone, Debug)]
pub struct View {
    /// Desired pods.
    pub replicas: i32,
    /// Seconds a pod must be ready to count as available.
    pub min_ready_seconds: i32,
    /// Which pods are its.
    pub selector: Selector,
    /// What new pods look like.
    pub template: PodTemplateSpec,
}

/// A kind managed like a ReplicaSet.
pub trait Replicated:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// `apps/v1` or `v1`.
    const API_VERSION: &'static str;
    /// `ReplicaSet` or `ReplicationController`.
    const KIND: &'static str;
    /// The queue's and the `--controllers` name.
    const NAME: &'static str;
    /// The events' source component.
    const COMPONENT: &'static str;

    /// The spec as the controller needs it; an error for a selector that cannot be parsed.
    fn view(&self) -> Result<View, String>;
    /// The status as last written, as JSON.
    fn status_json(&self) -> Value;
}

impl Replicated for ReplicaSet {
    const API_VERSION: &'static str = "apps/v1";
    const KIND: &'static str = "ReplicaSet";
    const NAME: &'static str = "replicaset";
    const COMPONENT: &'static str = "replicaset-controller";

    fn view(&self) -> Result<View, String> {
        let spec = self.spec.as_ref().ok_or("no spec")?;
        Ok(View {
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector: Selector::from_label_selector(Some(&spec.selector)).map_err(|e| e.0)?,
            template: spec.template.clone().unwrap_or_default(),
        })
    }

    fn status_json(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

impl Replicated for ReplicationController {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "ReplicationController";
    const NAME: &'static str = "replicationcontroller";
    const COMPONENT: &'static str = "replication-controller";

    fn view(&self) -> Result<View, String> {
        let spec = self.spec.as_ref().ok_or("no spec")?;
        let template = spec.template.clone().unwrap_or_default();
        // An RC without a selector selects its template's labels.
        let set = spec
            .selector
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| template.metadata.as_ref().and_then(|m| m.labels.clone()))
            .unwrap_or_default();
        Ok(View {
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector: if set.is_empty() {
                Selector::nothing()
            } else {
                Selector::from_set(&set)
            },
            template,
        })
    }

    fn status_json(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

/// The counts a ReplicaSet reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Active pods it owns.
    pub replicas: i32,
    /// Of those, pods carrying every label of the template.
    pub fully_labeled: i32,
    /// Of those, ready pods.
    pub ready: i32,
    /// Of those, pods ready for `minReadySeconds`.
    pub available: i32,
}

/// Counts `pods` (the active pods a ReplicaSet owns) as upstream's `calculateStatus` does.
pub fn count(view: &View, pods: &[Pod], now: Timestamp) -> Counts {
    let template_labels: BTreeMap<String, String> = view
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut c = Counts {
        replicas: pods.len() as i32,
        ..Counts::default()
    };
    for p in pods {
        let labels = util::labels(&p.metadata);
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            c.fully_labeled += 1;
        }
        if is_pod_ready(p) {
            c.ready += 1;
            if is_pod_available(p, view.min_ready_seconds, now) {
                c.available += 1;
            }
        }
    }
    c
}

/// The status object for `counts`, keeping conditions other than `ReplicaFailure` and setting
/// that one from `failure` (reason, message) as upstream's `calculateStatus` does: added by the
/// first failure, kept as it is while failures go on (each message names another generated
/// pod, and rewriting it would write the status on every retry), removed by a success.
pub fn status_value(
    old: &Value,
    counts: Counts,
    generation: Option<i64>,
    failure: Option<(&str, &str)>,
    now: Timestamp,
) -> Value {
    let mut conds: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    let existing = conds.iter().position(|c| c["type"] == "ReplicaFailure");
    match (failure, existing) {
        (Some(_), Some(_)) | (None, None) => {}
        (Some((reason, msg)), None) => conds.push(json!({
            "type": "ReplicaFailure", "status": "True", "reason": reason, "message": msg,
            "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
        })),
        (None, Some(i)) => {
            conds.remove(i);
        }
    }
    let mut s = json!({
        "replicas": counts.replicas,
        "fullyLabeledReplicas": counts.fully_labeled,
        "readyReplicas": counts.ready,
        "availableReplicas": counts.available,
        "observedGeneration": generation,
    });
    if !conds.is_empty() {
        s["conditions"] = json!(conds);
    } else if old["conditions"].as_array().is_some_and(|c| !c.is_empty()) {
        // A merge patch removes a field only when told to.
        s["conditions"] = Value::Null;
    }
    s
}

/// Whether the status written differs from `new` (zero counts are omitted on the wire).
fn status_differs(old: &Value, new: &Value) -> bool {
    let n = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
    [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ]
    .iter()
    .any(|k| n(old, k) != n(new, k))
        || old["conditions"].as_array().map(Vec::len).unwrap_or(0)
            != new["conditions"].as_array().map(Vec::len).unwrap_or(0)
        || old["conditions"] != new["conditions"] && !new["conditions"].is_null()
}

/// Sizes of successive create batches: 1, 2, 4, … (upstream's slow start), so a template that
/// cannot be created fails once rather than `diff` times.
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut left, mut size) = (n, 1);
    while left > 0 {
        let b = size.min(left);
        out.push(b);
        left -= b;
        size *= 2;
    }
    out
}

/// The ReplicaSet (or ReplicationController) controller.
pub struct ReplicaController<K: Replicated> {
    ctx: Context,
    owners: Informer<K>,
    pods: Informer<Pod>,
    queue: WorkQueue,
    recorder: Recorder,
    expectations: Arc<Expectations>,
}

impl<K: Replicated> Clone for ReplicaController<K> {
    fn clone(&self) -> Self {
        ReplicaController {
            ctx: self.ctx.clone(),
            owners: self.owners.clone(),
            pods: self.pods.clone(),
            queue: self.queue.clone(),
            recorder: self.recorder.clone(),
            expectations: self.expectations.clone(),
        }
    }
}

fn owner_key_of(pod: &Pod, kind: &str) -> Option<String> {
    let r = controller_of(&pod.metadata)?;
    (r.kind == kind).then(|| {
        format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            r.name
        )
    })
}

impl<K: Replicated> ReplicaController<K> {
    /// Runs the controller until `stop`.
    pub async fn run(ctx: Context, stop: CancellationToken) {
        let this = ReplicaController::<K> {
            owners: ctx.informers.get::<K>(),
            pods: ctx.informers.get::<Pod>(),
            queue: ctx.queue(K::NAME),
            recorder: ctx.recorder(K::COMPONENT),
            expectations: Arc::default(),
            ctx,
        };
        let q = this.queue.clone();
        this.owners
            .add_handler(move |c: &Change<'_, K>| q.add_change(c));
        this.pods
            .add_handler(this.expectations.observer::<Pod>(K::KIND));
        let me = this.clone();
        this.pods
            .add_handler(move |c: &Change<'_, Pod>| me.pod_changed(c));
        this.owners.synced().await;
        this.pods.synced().await;
        let me = this.clone();
        this.queue
            .run_workers(4, stop, move |key| {
                let me = me.clone();
                async move { me.sync(&key).await }
            })
            .await;
    }

    /// Enqueues the owners a pod change concerns: its controller (old and new), or for an
    /// orphan every owner in its namespace whose selector matches.
    fn pod_changed(&self, c: &Change<'_, Pod>) {
        let pod = c.object();
        let mut keys: Vec<String> = Vec::new();
        keys.extend(owner_key_of(pod, K::KIND));
        if let Some(old) = c.old() {
            keys.extend(owner_key_of(old, K::KIND));
            if old.metadata.labels != pod.metadata.labels && controller_of(&pod.metadata).is_none()
            {
                keys.extend(self.matching_owners(old));
            }
            // A pod that just became ready turns available after minReadySeconds.
            if !is_pod_ready(old)
                && is_pod_ready(pod)
                && let Some(k) = owner_key_of(pod, K::KIND)
                && let Some(o) = self.owners.get(&k)
            {
                let mrs = o.view().map(|v| v.min_ready_seconds).unwrap_or(0);
                if mrs > 0 {
                    self.queue.add_after(k, Duration::from_secs(mrs as u64 + 1));
                }
            }
        }
        if controller_of(&pod.metadata).is_none() && !matches!(c, Change::Deleted(_)) {
            keys.extend(self.matching_owners(pod));
        }
        for k in keys {
            self.queue.add(k);
        }
    }

    fn matching_owners(&self, pod: &Pod) -> Vec<String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let labels = util::labels(&pod.metadata);
        self.owners
            .list_namespace(ns)
            .iter()
            .filter(|o| {
                o.view()
                    .is_ok_and(|v| !v.selector.is_empty() && v.selector.matches(&labels))
            })
            .map(|o| key_of(o.as_ref()))
            .collect()
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(owner) = self.owners.get(key) else {
            self.expectations.forget(key);
            return Ok(Action::await_change());
        };
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or("default");
        let view = match owner.view() {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(%key, "{} with an invalid selector: {e}", K::KIND);
                return Ok(Action::await_change());
            }
        };
        let meta = owner.meta();
        let uid = meta.uid.clone().unwrap_or_default();
        let deleting = meta.deletion_timestamp.is_some();
        let pods_api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);

        // Claim: the active pods it owns and matches, adopting orphans, releasing strays.
        let mut mine: Vec<Pod> = Vec::new();
        for pod in self.pods.list_namespace(ns) {
            if !is_pod_active(&pod) {
                continue;
            }
            let matches = view.selector.matches(&util::labels(&pod.metadata));
            match claim::decide(&pod.metadata, &uid, matches, deleting) {
                Claim::Keep => mine.push((*pod).clone()),
                Claim::Adopt => {
                    let r = controller_ref(meta, K::API_VERSION, K::KIND);
                    match claim::adopt(&pods_api, &pod.metadata, r).await {
                        Ok(p) => mine.push(p),
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Claim::Release => claim::release(&pods_api, &pod.metadata, &uid).await?,
                Claim::Ignore => {}
            }
        }

        let pods = self.pods.clone();
        let satisfied = self.expectations.satisfied(
            key,
            |n| pods.get_in(Some(ns), n).is_some(),
            |n, u| {
                pods.get_in(Some(ns), n).is_some_and(|p| {
                    p.metadata.uid.as_deref() == Some(u) && p.metadata.deletion_timestamp.is_none()
                })
            },
        );
        let mut failure: Option<(String, String)> = None;
        if satisfied
            && !deleting
            && let Err((reason, msg)) = self.manage(&owner, &view, ns, name, key, &mut mine).await
        {
            failure = Some((reason, msg));
        }

        let now = util::now();
        let counts = count(&view, &mine, now);
        let old = owner.status_json();
        let new = status_value(
            &old,
            counts,
            meta.generation,
            failure.as_ref().map(|(r, m)| (r.as_str(), m.as_str())),
            now,
        );
        if status_differs(&old, &new) {
            let api: Api<K> = Api::namespaced(self.ctx.client.clone(), ns);
            util::update_status(&api, &owner, new).await?;
        }
        if let Some((_, msg)) = failure {
            anyhow::bail!("{msg}");
        }
        if !satisfied {
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        // Requeue when a ready pod turns available.
        let wait = mine
            .iter()
            .filter_map(|p| seconds_until_available(p, view.min_ready_seconds, now))
            .min();
        Ok(match wait {
            Some(s) => Action::requeue(Duration::from_secs(s + 1)),
            None => Action::await_change(),
        })
    }

    /// Creates or deletes pods to reach `replicas`; on failure returns the ReplicaFailure
    /// reason and message.
    async fn manage(
        &self,
        owner: &K,
        view: &View,
        ns: &str,
        name: &str,
        key: &str,
        mine: &mut Vec<Pod>,
    ) -> Result<(), (String, String)> {
        let diff = mine.len() as i64 - i64::from(view.replicas);
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        if diff < 0 {
            let want = ((-diff) as usize).min(BURST);
            let owner_ref = controller_ref(owner.meta(), K::API_VERSION, K::KIND);
            for batch in slow_start_batches(want) {
                let mut tasks = Vec::new();
                for _ in 0..batch {
                    let pod = util::pod_from_template(
                        &view.template,
                        ns,
                        owner_ref.clone(),
                        Some(pods_prefix(name)),
                        None,
                    );
                    let api = api.clone();
                    tasks.push(tokio::spawn(async move {
                        api.create(&PostParams::default(), &pod).await
                    }));
                }
                let mut failed = None;
                for t in tasks {
                    match t.await {
                        Ok(Ok(p)) => {
                            let pname = p.metadata.name.clone().unwrap_or_default();
                            self.expectations.created(key, &pname);
                            self.recorder.normal(
                                owner,
                                "SuccessfulCreate",
                                &format!("Created pod: {pname}"),
                            );
                        }
                        Ok(Err(e)) => {
                            let msg = match &e {
                                kube::Error::Api(s) => s.message.clone(),
                                e => e.to_string(),
                            };
                            self.recorder.warning(
                                owner,
                                "FailedCreate",
                                &format!("Error creating: {msg}"),
                            );
                            failed = Some(msg);
                        }
                        Err(e) => failed = Some(e.to_string()),
                    }
                }
                if let Some(msg) = failed {
                    return Err(("FailedCreate".into(), msg));
                }
            }
        } else if diff > 0 {
            let n = (diff as usize).min(BURST);
            let related = mine.clone();
            sort_for_deletion(mine, &related, util::now());
            let victims: Vec<Pod> = mine.drain(..n).collect();
            let mut failed = None;
            for p in victims {
                let pname = p.metadata.name.clone().unwrap_or_default();
                let puid = p.metadata.uid.clone().unwrap_or_default();
                match api.delete(&pname, &DeleteParams::default()).await {
                    Ok(_) => {
                        self.expectations.deleted(key, &pname, &puid);
                        self.recorder.normal(
                            owner,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {pname}"),
                        );
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        let msg = e.to_string();
                        self.recorder.warning(
                            owner,
                            "FailedDelete",
                            &format!("Error deleting: {msg}"),
                        );
                        failed = Some(msg);
                    }
                }
            }
            if let Some(msg) = failed {
                return Err(("FailedDelete".into(), msg));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(v: Value) -> ReplicaSet {
        serde_json::from_value(v).expect("replicaset")
    }

    fn pod(name: &str, labels: Value, ready_at: Option<&str>) -> Pod {
        let conds = match ready_at {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"phase": "Running", "conditions": conds},
        }))
        .expect("pod")
    }

    #[test]
    fn status_counts_labels_readiness_and_availability() {
        let r = rs(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "minReadySeconds": 10, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}}}
        }));
        let v = r.view().expect("view");
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().expect("now");
        let pods = [
            pod(
                "a",
                json!({"app": "web", "tier": "fe"}),
                Some("2026-01-01T00:00:00Z"),
            ),
            pod("b", json!({"app": "web"}), Some("2026-01-01T00:00:55Z")),
            pod("c", json!({"app": "web", "tier": "fe"}), None),
        ];
        assert_eq!(
            count(&v, &pods, now),
            Counts {
                replicas: 3,
                fully_labeled: 2,
                ready: 2,
                available: 1
            }
        );
    }

    #[test]
    fn replica_failure_condition_comes_and_goes() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("now");
        let c = Counts::default();
        let s = status_value(
            &Value::Null,
            c,
            Some(2),
            Some(("FailedCreate", "quota")),
            now,
        );
        assert_eq!(s["conditions"][0]["reason"], "FailedCreate");
        assert_eq!(s["observedGeneration"], 2);
        let later: Timestamp = "2026-01-01T00:01:00Z".parse().expect("later");
        let again = status_value(&s, c, Some(2), Some(("FailedCreate", "quota 2")), later);
        assert!(
            !status_differs(&s, &again),
            "a failure that goes on leaves the condition as it is: {again}"
        );
        let s2 = status_value(&s, c, Some(2), None, now);
        assert!(s2["conditions"].is_null());
        assert!(status_differs(&s, &s2));
        assert!(!status_differs(&s2, &s2));
    }

    #[test]
    fn creates_start_slow() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    }

    #[test]
    fn rc_without_selector_selects_its_template_labels() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "spec": {"template": {"metadata": {"labels": {"app": "db"}}}}
        }))
        .expect("rc");
        let v = rc.view().expect("view");
        assert_eq!(v.replicas, 1);
        let l: BTreeMap<String, String> = [("app".to_string(), "db".to_string())].into();
        assert!(v.selector.matches(&l));
        assert!(!v.selector.matches(&BTreeMap::new()));
    }
}
