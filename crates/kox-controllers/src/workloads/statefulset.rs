//! The StatefulSet controller: pods with stable names `<set>-<ordinal>`, created in order
//! (OrderedReady waits for each to be Running and Ready; Parallel does not) and removed from
//! the highest ordinal down; PersistentVolumeClaims `<claim>-<set>-<ordinal>` from
//! `volumeClaimTemplates`, deleted with their pod on scale-down or with the set when
//! `persistentVolumeClaimRetentionPolicy` says `Delete`; templates recorded as
//! ControllerRevisions; RollingUpdate (highest ordinal first, down to `partition`) or OnDelete;
//! status as upstream's.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kox_api::label_selector::Selector;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tokio_util::sync::CancellationToken;

use super::claim::{self, Claim};
use super::history;
use super::util::{self, controller_ref, is_pod_available, is_pod_ready, seconds_until_available};
use crate::context::Context;
use crate::events::Recorder;
use crate::informer::{Change, Informer, split_key};
use crate::queue::{Action, WorkQueue};

/// The label naming the revision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label carrying a pod's own name (for per-pod services).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The ordinal of a pod of `set`, from its name.
pub fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// The name of the claim from template `claim` for the pod of `set` at `ord`.
pub fn claim_name(claim: &str, set: &str, ord: i32) -> String {
    format!("{claim}-{set}-{ord}")
}

/// The pod for ordinal `ord` built from `template` at `revision` (upstream's
/// `newVersionedStatefulSetPod`): identity labels, hostname and subdomain, claims mounted.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ord: i32) -> Pod {
    let name = set.metadata.name.clone().unwrap_or_default();
    let ns = set.metadata.namespace.clone().unwrap_or_default();
    let pod_name = format!("{name}-{ord}");
    let mut pod = util::pod_from_template(
        template,
        &ns,
        controller_ref(&set.metadata, "apps/v1", "StatefulSet"),
        None,
        Some(pod_name.clone()),
    );
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), pod_name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
    labels.insert(REVISION_LABEL.into(), revision.to_string());
    let spec = set.spec.clone().unwrap_or_default();
    if let Some(ps) = pod.spec.as_mut() {
        ps.hostname = Some(pod_name.clone());
        if let Some(svc) = spec.service_name.filter(|s| !s.is_empty()) {
            ps.subdomain = Some(svc);
        }
        let claims = spec.volume_claim_templates.unwrap_or_default();
        if !claims.is_empty() {
            let vols = ps.volumes.get_or_insert_with(Vec::new);
            for c in &claims {
                let cname = c.metadata.name.clone().unwrap_or_default();
                vols.retain(|v| v.name != cname);
                vols.push(Volume {
                    name: cname.clone(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim_name(&cname, &name, ord),
                        read_only: None,
                    }),
                    ..Volume::default()
                });
            }
        }
    }
    pod
}

/// What the set's template looks like at a revision (from the revision's stored patch).
fn template_at(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0["spec"]["template"].clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

fn revision_of(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map(String::as_str)
        .unwrap_or("")
}

fn is_healthy(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    util::phase(pod) == "Running"
        && pod.metadata.deletion_timestamp.is_none()
        && is_pod_available(pod, min_ready, now)
}

/// The StatefulSet controller.
#[derive(Clone)]
pub struct StatefulSetController {
    ctx: Context,
    sets: Informer<StatefulSet>,
    pods: Informer<Pod>,
    revisions: Informer<ControllerRevision>,
    claims: Informer<PersistentVolumeClaim>,
    queue: WorkQueue,
    recorder: Recorder,
}

impl StatefulSetController {
    /// Runs the controller until `stop`.
    pub async fn run(ctx: Context, stop: CancellationToken) {
        let this = StatefulSetController {
            sets: ctx.informers.get::<StatefulSet>(),
            pods: ctx.informers.get::<Pod>(),
            revisions: ctx.informers.get::<ControllerRevision>(),
            claims: ctx.informers.get::<PersistentVolumeClaim>(),
            queue: ctx.queue("statefulset"),
            recorder: ctx.recorder("statefulset-controller"),
            ctx,
        };
        let q = this.queue.clone();
        this.sets
            .add_handler(move |c: &Change<'_, StatefulSet>| q.add_change(c));
        this.pods
            .add_handler(util::enqueue_controller(this.queue.clone(), "StatefulSet"));
        this.sets.synced().await;
        this.pods.synced().await;
        this.revisions.synced().await;
        this.claims.synced().await;
        let me = this.clone();
        this.queue
            .run_workers(2, stop, move |key| {
                let me = me.clone();
                async move { me.sync(&key).await }
            })
            .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(set) = self.sets.get(key) else {
            return Ok(Action::await_change());
        };
        let set = (*set).clone();
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or("default").to_string();
        let name = name.to_string();
        let spec = set.spec.clone().unwrap_or_default();
        let Ok(selector) = Selector::from_label_selector(Some(&spec.selector)) else {
            return Ok(Action::await_change());
        };
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let deleting = set.metadata.deletion_timestamp.is_some();
        let pods_api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);

        // Claim pods: ours by owner, orphans whose name and labels fit.
        let mut mine: Vec<Pod> = Vec::new();
        for pod in self.pods.list_namespace(&ns) {
            let pname = pod.metadata.name.as_deref().unwrap_or("");
            let matches =
                selector.matches(&util::labels(&pod.metadata)) && ordinal(&name, pname).is_some();
            match claim::decide(&pod.metadata, &uid, matches, deleting) {
                Claim::Keep => mine.push((*pod).clone()),
                Claim::Adopt => {
                    let r = controller_ref(&set.metadata, "apps/v1", "StatefulSet");
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
        if deleting {
            return Ok(Action::await_change());
        }

        // Revisions: the current one (what the pods were made from) and the update one.
        let rev_api: Api<ControllerRevision> = Api::namespaced(self.ctx.client.clone(), &ns);
        let hist = history::owned(&self.revisions.list_namespace(&ns), &uid);
        let collision = set.status.as_ref().and_then(|s| s.collision_count);
        let (update_rev, hist) = history::ensure(
            &rev_api,
            controller_ref(&set.metadata, "apps/v1", "StatefulSet"),
            &name,
            &spec.selector.match_labels.clone().unwrap_or_default(),
            &spec.template,
            collision,
            hist,
        )
        .await?;
        let update_name = update_rev.metadata.name.clone().unwrap_or_default();
        let status = set.status.clone().unwrap_or_default();
        let current_rev = status
            .current_revision
            .as_ref()
            .and_then(|n| hist.iter().find(|r| r.metadata.name.as_ref() == Some(n)))
            .cloned()
            .unwrap_or_else(|| update_rev.clone());
        let current_name = current_rev.metadata.name.clone().unwrap_or_default();
        let current_template = template_at(&current_rev).unwrap_or_else(|| spec.template.clone());

        let now = util::now();
        let outcome = self
            .update(
                &set,
                &name,
                &ns,
                &mine,
                (&current_name, &current_template),
                &update_name,
                now,
            )
            .await;

        // Status from the pods as they are now (the cache may lag the writes just made; the
        // watch events they cause bring another sync).
        let mine: Vec<Pod> = self
            .pods
            .list_namespace(&ns)
            .iter()
            .filter(|p| util::is_controlled_by(&p.metadata, &uid))
            .map(|p| (**p).clone())
            .collect();
        let mut st = compute_status(&set, &mine, &current_name, &update_name, now);
        // A finished rollout makes the update revision the current one.
        let want = spec.replicas.unwrap_or(1);
        if st.updated_replicas.unwrap_or(0) == want
            && st.replicas == want
            && st.ready_replicas.unwrap_or(0) == want
        {
            st.current_replicas = st.updated_replicas;
            st.current_revision = st.update_revision.clone();
        }
        if !util::same_status(set.status.as_ref(), &st) {
            let api: Api<StatefulSet> = Api::namespaced(self.ctx.client.clone(), &ns);
            util::update_status(&api, &set, serde_json::to_value(&st)?).await?;
        }
        let mut live = vec![current_name.clone(), update_name.clone()];
        live.extend(mine.iter().map(|p| revision_of(p).to_string()));
        history::truncate(
            &rev_api,
            &hist,
            &live,
            spec.revision_history_limit.unwrap_or(10),
        )
        .await?;
        outcome?;
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let wait = mine
            .iter()
            .filter_map(|p| seconds_until_available(p, min_ready, now))
            .min();
        Ok(match wait {
            Some(s) => Action::requeue(Duration::from_secs(s + 1)),
            None => Action::await_change(),
        })
    }

    /// One pass of upstream's `updateStatefulSet`: create missing ordinals, remove condemned
    /// ones from the top, then roll pods not at the update revision.
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        set: &StatefulSet,
        name: &str,
        ns: &str,
        mine: &[Pod],
        current: (&str, &PodTemplateSpec),
        update_name: &str,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let spec = set.spec.clone().unwrap_or_default();
        let want = spec.replicas.unwrap_or(1).max(0);
        let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
        let monotonic = spec
            .pod_management_policy
            .as_deref()
            .unwrap_or("OrderedReady")
            == "OrderedReady";
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
        let partition = strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);

        let mut slots: Vec<Option<Pod>> = vec![None; want as usize];
        let mut condemned: Vec<Pod> = Vec::new();
        for p in mine {
            let Some(o) = ordinal(name, p.metadata.name.as_deref().unwrap_or("")) else {
                continue;
            };
            if o >= start && o < start + want {
                slots[(o - start) as usize] = Some(p.clone());
            } else {
                condemned.push(p.clone());
            }
        }
        condemned.sort_by_key(|p| {
            std::cmp::Reverse(ordinal(name, p.metadata.name.as_deref().unwrap_or("")))
        });

        for (i, slot) in slots.iter().enumerate() {
            let ord = start + i as i32;
            match slot {
                Some(p)
                    if matches!(util::phase(p), "Failed" | "Succeeded")
                        && p.metadata.deletion_timestamp.is_none() =>
                {
                    // A finished pod is replaced (upstream recreates failed pods).
                    let pname = p.metadata.name.clone().unwrap_or_default();
                    self.delete_pod(set, &api, &pname).await?;
                    if monotonic {
                        return Ok(());
                    }
                }
                Some(p) => {
                    if monotonic
                        && (p.metadata.deletion_timestamp.is_some()
                            || !is_healthy(p, min_ready, now))
                    {
                        return Ok(());
                    }
                }
                None => {
                    // Ordinals below the partition stay at the current revision.
                    let (rev, template) = if rolling && ord < partition {
                        (current.0, current.1.clone())
                    } else {
                        (update_name, spec.template.clone())
                    };
                    let pod = new_pod(set, &template, rev, ord);
                    self.create_claims(set, ns, ord).await?;
                    let pname = pod.metadata.name.clone().unwrap_or_default();
                    match api.create(&PostParams::default(), &pod).await {
                        Ok(_) => self.recorder.normal(
                            set,
                            "SuccessfulCreate",
                            &format!("create Pod {pname} in StatefulSet {name} successful"),
                        ),
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => {
                            self.recorder.warning(
                                set,
                                "FailedCreate",
                                &format!(
                                    "create Pod {pname} in StatefulSet {name} failed error: {e}"
                                ),
                            );
                            return Err(e.into());
                        }
                    }
                    if monotonic {
                        return Ok(());
                    }
                }
            }
        }

        for p in &condemned {
            if p.metadata.deletion_timestamp.is_some() {
                if monotonic {
                    return Ok(());
                }
                continue;
            }
            let pname = p.metadata.name.clone().unwrap_or_default();
            self.release_claims_with(set, ns, p).await?;
            self.delete_pod(set, &api, &pname).await?;
            if monotonic {
                return Ok(());
            }
        }
        // Condemned pods still terminating hold back a monotonic rollout.
        if monotonic && !condemned.is_empty() {
            return Ok(());
        }

        if rolling {
            let floor = (partition - start).max(0) as usize;
            for i in (floor..slots.len()).rev() {
                let Some(p) = &slots[i] else { continue };
                if revision_of(p) != update_name && p.metadata.deletion_timestamp.is_none() {
                    let pname = p.metadata.name.clone().unwrap_or_default();
                    self.delete_pod(set, &api, &pname).await?;
                    return Ok(());
                }
                if !is_healthy(p, min_ready, now) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn delete_pod(
        &self,
        set: &StatefulSet,
        api: &Api<Pod>,
        pname: &str,
    ) -> anyhow::Result<()> {
        let name = set.metadata.name.as_deref().unwrap_or("");
        match api.delete(pname, &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder.normal(
                    set,
                    "SuccessfulDelete",
                    &format!("delete Pod {pname} in StatefulSet {name} successful"),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => {
                self.recorder.warning(
                    set,
                    "FailedDelete",
                    &format!("delete Pod {pname} in StatefulSet {name} failed error: {e}"),
                );
                Err(e.into())
            }
        }
    }

    /// With `persistentVolumeClaimRetentionPolicy.whenScaled: Delete`, makes a condemned pod
    /// the owner of its claims, so they go with it (upstream's scale-down claim cleanup).
    async fn release_claims_with(
        &self,
        set: &StatefulSet,
        ns: &str,
        pod: &Pod,
    ) -> anyhow::Result<()> {
        let spec = set.spec.clone().unwrap_or_default();
        let delete = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_scaled.as_deref())
            == Some("Delete");
        if !delete {
            return Ok(());
        }
        let name = set.metadata.name.clone().unwrap_or_default();
        let Some(ord) = ordinal(&name, pod.metadata.name.as_deref().unwrap_or("")) else {
            return Ok(());
        };
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), ns);
        let mut owner = controller_ref(&pod.metadata, "v1", "Pod");
        owner.controller = None;
        for t in spec.volume_claim_templates.iter().flatten() {
            let cname = claim_name(t.metadata.name.as_deref().unwrap_or(""), &name, ord);
            let Some(claim) = self.claims.get_in(Some(ns), &cname) else {
                continue;
            };
            let mut refs = claim.metadata.owner_references.clone().unwrap_or_default();
            if refs.iter().any(|r| r.uid == owner.uid) {
                continue;
            }
            refs.push(owner.clone());
            // An update pinned to the claim as cached (the role grants `update`, not
            // `patch`, on claims): a conflict retries the sync.
            let mut body = (*claim).clone();
            body.metadata.owner_references = Some(refs);
            body.metadata.managed_fields = None;
            match api.replace(&cname, &PostParams::default(), &body).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Creates the pod's claims that do not exist yet.
    async fn create_claims(&self, set: &StatefulSet, ns: &str, ord: i32) -> anyhow::Result<()> {
        let spec = set.spec.clone().unwrap_or_default();
        let name = set.metadata.name.clone().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), ns);
        let delete_with_set = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_deleted.as_deref())
            == Some("Delete");
        for t in spec.volume_claim_templates.iter().flatten() {
            let cname = claim_name(t.metadata.name.as_deref().unwrap_or(""), &name, ord);
            if self.claims.get_in(Some(ns), &cname).is_some() {
                continue;
            }
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
            let pvc = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(cname.clone()),
                    namespace: Some(ns.to_string()),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    owner_references: delete_with_set.then(|| {
                        let mut r = controller_ref(&set.metadata, "apps/v1", "StatefulSet");
                        r.controller = None;
                        vec![r]
                    }),
                    ..ObjectMeta::default()
                },
                spec: t.spec.clone(),
                status: None,
            };
            match api.create(&PostParams::default(), &pvc).await {
                Ok(_) => self.recorder.normal(
                    set,
                    "SuccessfulCreate",
                    &format!("create Claim {cname} Pod {name}-{ord} in StatefulSet {name} success"),
                ),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    self.recorder.warning(
                        set,
                        "FailedCreate",
                        &format!("create Claim {cname} for Pod {name}-{ord} in StatefulSet {name} failed error: {e}"),
                    );
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }
}

/// Upstream's status computation over the pods a set owns.
pub fn compute_status(
    set: &StatefulSet,
    pods: &[Pod],
    current: &str,
    update: &str,
    now: Timestamp,
) -> StatefulSetStatus {
    let min_ready = set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let old = set.status.clone().unwrap_or_default();
    let mut st = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        collision_count: old.collision_count,
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        conditions: old.conditions,
        replicas: 0,
        ready_replicas: Some(0),
        available_replicas: Some(0),
        current_replicas: Some(0),
        updated_replicas: Some(0),
    };
    let inc = |v: &mut Option<i32>| *v = Some(v.unwrap_or(0) + 1);
    for p in pods {
        // Finished pods are replaced; terminating ones are on their way out.
        if p.metadata.deletion_timestamp.is_some()
            || matches!(util::phase(p), "Failed" | "Succeeded")
        {
            continue;
        }
        st.replicas += 1;
        if util::phase(p) == "Running" && is_pod_ready(p) {
            inc(&mut st.ready_replicas);
            if is_pod_available(p, min_ready, now) {
                inc(&mut st.available_replicas);
            }
        }
        let rev = revision_of(p);
        if rev == current {
            inc(&mut st.current_replicas);
        }
        if rev == update {
            inc(&mut st.updated_replicas);
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set() -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 3},
            "spec": {"replicas": 2, "serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}
        }))
        .expect("statefulset")
    }

    #[test]
    fn ordinals_parse_from_names() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web", "webby-1"), None);
        assert_eq!(ordinal("web", "web-db-1"), None);
    }

    #[test]
    fn pods_get_identity_and_their_claims() {
        let s = set();
        let t = s.spec.as_ref().expect("spec").template.clone();
        let p = new_pod(&s, &t, "web-abc", 1);
        assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
        let l = p.metadata.labels.clone().expect("labels");
        assert_eq!(l[POD_NAME_LABEL], "web-1");
        assert_eq!(l[POD_INDEX_LABEL], "1");
        assert_eq!(l[REVISION_LABEL], "web-abc");
        let ps = p.spec.expect("spec");
        assert_eq!(ps.hostname.as_deref(), Some("web-1"));
        assert_eq!(ps.subdomain.as_deref(), Some("nginx"));
        let v = &ps.volumes.expect("volumes")[0];
        assert_eq!(
            v.persistent_volume_claim.as_ref().expect("pvc").claim_name,
            "data-web-1"
        );
    }

    #[test]
    fn status_counts_revisions_and_readiness() {
        let s = set();
        let mk = |name: &str, rev: &str, ready: bool| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {REVISION_LABEL: rev}},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
            }))
            .expect("pod")
        };
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("now");
        let st = compute_status(
            &s,
            &[mk("web-0", "a", true), mk("web-1", "b", false)],
            "a",
            "b",
            now,
        );
        assert_eq!(st.replicas, 2);
        assert_eq!(st.ready_replicas, Some(1));
        assert_eq!(st.current_replicas, Some(1));
        assert_eq!(st.updated_replicas, Some(1));
        assert_eq!(st.observed_generation, Some(3));
        assert_eq!(st.update_revision.as_deref(), Some("b"));
    }
}
