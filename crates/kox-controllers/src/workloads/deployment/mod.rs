//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets named
//! `<deployment>-<pod-template-hash>`, RollingUpdate (within maxSurge / maxUnavailable) or
//! Recreate, records revisions on the ReplicaSets, prunes history beyond
//! `revisionHistoryLimit`, honours `paused`, and reports Progressing / Available conditions
//! worded as upstream's (`sync.go`, `rolling.go`, `recreate.go`, `progress.go`).

pub mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kox_api::label_selector::Selector;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::util::*;
use super::claim::{self, Claim};
use super::util::{self as wu, controller_of, controller_ref, template_hash};
use crate::context::Context;
use crate::events::Recorder;
use crate::informer::{Change, Informer, key_of, split_key};
use crate::queue::{Action, WorkQueue};

/// The Deployment controller.
#[derive(Clone)]
pub struct DeploymentController {
    ctx: Context,
    deployments: Informer<Deployment>,
    replicasets: Informer<ReplicaSet>,
    pods: Informer<Pod>,
    queue: WorkQueue,
    recorder: Recorder,
}

fn creation_order(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    let t = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

fn name_of(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or("")
}

fn selector_of(d: &Deployment) -> Option<Selector> {
    let s = d.spec.as_ref().map(|s| &s.selector)?;
    Selector::from_label_selector(Some(s)).ok()
}

/// The ReplicaSets of one Deployment, the new one (matching its template) marked by name.
struct Sets {
    all: Vec<ReplicaSet>,
    new: Option<String>,
}

impl Sets {
    fn new_rs(&self) -> Option<&ReplicaSet> {
        let n = self.new.as_deref()?;
        self.all.iter().find(|r| name_of(r) == n)
    }

    fn olds(&self) -> Vec<&ReplicaSet> {
        let mut v: Vec<&ReplicaSet> = self
            .all
            .iter()
            .filter(|r| Some(name_of(r)) != self.new.as_deref())
            .collect();
        v.sort_by(|a, b| creation_order(a, b));
        v
    }

    fn refs(&self) -> Vec<&ReplicaSet> {
        self.all.iter().collect()
    }

    fn put(&mut self, rs: ReplicaSet) {
        let n = name_of(&rs).to_string();
        self.all.retain(|r| name_of(r) != n);
        self.all.push(rs);
    }
}

impl DeploymentController {
    /// Runs the controller until `stop`.
    pub async fn run(ctx: Context, stop: CancellationToken) {
        let this = DeploymentController {
            deployments: ctx.informers.get::<Deployment>(),
            replicasets: ctx.informers.get::<ReplicaSet>(),
            pods: ctx.informers.get::<Pod>(),
            queue: ctx.queue("deployment"),
            recorder: ctx.recorder("deployment-controller"),
            ctx,
        };
        let q = this.queue.clone();
        this.deployments
            .add_handler(move |c: &Change<'_, Deployment>| q.add_change(c));
        let me = this.clone();
        this.replicasets
            .add_handler(move |c: &Change<'_, ReplicaSet>| me.rs_changed(c));
        let me = this.clone();
        this.pods.add_handler(move |c: &Change<'_, Pod>| {
            // Recreate waits for old pods to go; their deletion is what it waits on.
            if let Change::Deleted(p) = c {
                me.pod_deleted(p);
            }
        });
        this.deployments.synced().await;
        this.replicasets.synced().await;
        this.pods.synced().await;
        let me = this.clone();
        this.queue
            .run_workers(4, stop, move |key| {
                let me = me.clone();
                async move { me.sync(&key).await }
            })
            .await;
    }

    fn rs_changed(&self, c: &Change<'_, ReplicaSet>) {
        let mut keys = Vec::new();
        for rs in [Some(c.object()), c.old()].into_iter().flatten() {
            let ns = rs.metadata.namespace.as_deref().unwrap_or("");
            match controller_of(&rs.metadata) {
                Some(r) if r.kind == "Deployment" => keys.push(format!("{ns}/{}", r.name)),
                Some(_) => {}
                None => {
                    let labels = wu::labels(&rs.metadata);
                    for d in self.deployments.list_namespace(ns) {
                        if selector_of(&d).is_some_and(|s| !s.is_empty() && s.matches(&labels)) {
                            keys.push(key_of(d.as_ref()));
                        }
                    }
                }
            }
        }
        for k in keys {
            self.queue.add(k);
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        let Some(r) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        if let Some(rs) = self.replicasets.get_in(Some(ns), &r.name)
            && let Some(d) = controller_of(&rs.metadata).filter(|r| r.kind == "Deployment")
        {
            self.queue.add(format!("{ns}/{}", d.name));
        }
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    fn d_api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(d) = self.deployments.get(key) else {
            return Ok(Action::await_change());
        };
        let mut d = (*d).clone();
        let (ns, _) = split_key(key);
        let ns = ns.unwrap_or("default").to_string();
        let Some(selector) = selector_of(&d) else {
            return Ok(Action::await_change());
        };
        if selector.is_empty() {
            self.recorder.warning(
                &d,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let mut s = d.status.clone().unwrap_or_default();
            if s.observed_generation != d.metadata.generation {
                s.observed_generation = d.metadata.generation;
                self.update_status(&mut d, s).await?;
            }
            return Ok(Action::await_change());
        }
        let mut sets = Sets {
            all: self.claim(&d, &ns, &selector).await?,
            new: None,
        };

        if d.metadata.deletion_timestamp.is_some() {
            self.find_new(&d, &mut sets);
            return self.sync_status_only(&mut d, &sets).await;
        }
        self.check_paused_conditions(&mut d).await?;
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || self.is_scaling_event(&d, &mut sets) {
            return self.sync_scale(&mut d, &mut sets, paused).await;
        }
        let recreate = d
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        if recreate {
            self.rollout_recreate(&mut d, &mut sets).await
        } else {
            self.rollout_rolling(&mut d, &mut sets).await
        }
    }

    /// The ReplicaSets this Deployment owns, adopting matching orphans and releasing strays.
    async fn claim(
        &self,
        d: &Deployment,
        ns: &str,
        selector: &Selector,
    ) -> anyhow::Result<Vec<ReplicaSet>> {
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let deleting = d.metadata.deletion_timestamp.is_some();
        let api = self.rs_api(ns);
        let mut out = Vec::new();
        for rs in self.replicasets.list_namespace(ns) {
            let matches = selector.matches(&wu::labels(&rs.metadata));
            match claim::decide(&rs.metadata, &uid, matches, deleting) {
                Claim::Keep => out.push((*rs).clone()),
                Claim::Adopt => {
                    let r = controller_ref(&d.metadata, "apps/v1", "Deployment");
                    match claim::adopt(&api, &rs.metadata, r).await {
                        Ok(rs) => out.push(rs),
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Claim::Release => claim::release(&api, &rs.metadata, &uid).await?,
                Claim::Ignore => {}
            }
        }
        Ok(out)
    }

    /// Marks the oldest ReplicaSet whose template equals the Deployment's as the new one.
    fn find_new(&self, d: &Deployment, sets: &mut Sets) {
        let template = d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut cands: Vec<&ReplicaSet> = sets.all.iter().collect();
        cands.sort_by(|a, b| creation_order(a, b));
        sets.new = cands
            .into_iter()
            .find(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &template))
            })
            .map(|rs| name_of(rs).to_string());
    }

    fn is_scaling_event(&self, d: &Deployment, sets: &mut Sets) -> bool {
        self.find_new(d, sets);
        let want = replicas(d);
        sets.all
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .any(|rs| desired_replicas_annotation(rs).is_some_and(|v| v != want))
    }

    /// Upstream's `getNewReplicaSet` (+ the revision sync): finds or, if `create`, creates the
    /// ReplicaSet for the current template, keeps its revision the highest, and mirrors the
    /// revision onto the Deployment.
    async fn get_new(
        &self,
        d: &mut Deployment,
        sets: &mut Sets,
        create: bool,
    ) -> anyhow::Result<()> {
        self.find_new(d, sets);
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let max_old = sets.olds().iter().map(|r| revision(r)).max().unwrap_or(0);
        let new_revision = max_old + 1;
        let now = wu::now();

        if let Some(existing) = sets.new_rs().cloned() {
            let mut ann = existing.metadata.annotations.clone().unwrap_or_default();
            let changed = set_new_rs_annotations(d, &mut ann, new_revision, true);
            let mrs = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let mrs_changed = existing.spec.as_ref().and_then(|s| s.min_ready_seconds) != mrs;
            let mut rs = existing.clone();
            if changed || mrs_changed {
                let patch = json!({
                    "metadata": {"annotations": ann, "resourceVersion": existing.metadata.resource_version},
                    "spec": {"minReadySeconds": mrs},
                });
                rs = self
                    .rs_api(&ns)
                    .patch(
                        name_of(&existing),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                sets.put(rs.clone());
            }
            let rev = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            self.set_deployment_revision(d, &rev).await?;
            let mut s = d.status.clone().unwrap_or_default();
            if progress_deadline(d).is_some() && get_condition(&s, "Progressing").is_none() {
                let msg = format!("Found new replica set {:?}", name_of(&rs));
                set_condition(
                    &mut s,
                    condition("Progressing", "True", FOUND_NEW_RS, &msg, now),
                );
                self.update_status(d, s).await?;
            }
            return Ok(());
        }
        if !create {
            return Ok(());
        }

        let spec = d.spec.clone().unwrap_or_default();
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = spec.template.clone();
        let hash = template_hash(&template, collision);
        template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let dname = d.metadata.name.clone().unwrap_or_default();
        let mut ann = BTreeMap::new();
        set_new_rs_annotations(d, &mut ann, new_revision, false);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{dname}-{hash}")),
                namespace: Some(ns.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(ann),
                owner_references: Some(vec![controller_ref(&d.metadata, "apps/v1", "Deployment")]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all = sets.refs();
        let size = new_rs_new_replicas(d, &all, &rs);
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(size);
        }
        let created = match self.rs_api(&ns).create(&PostParams::default(), &rs).await {
            Ok(c) => c,
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                let existing = self.rs_api(&ns).get(&format!("{dname}-{hash}")).await?;
                let ours = wu::is_controlled_by(
                    &existing.metadata,
                    d.metadata.uid.as_deref().unwrap_or(""),
                );
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &spec.template));
                if ours && same {
                    // Our own creation, not yet in the cache.
                    sets.put(existing);
                    sets.new = Some(format!("{dname}-{hash}"));
                    return Ok(());
                }
                // A hash collision: count it so the next hash differs.
                let mut s = d.status.clone().unwrap_or_default();
                s.collision_count = Some(s.collision_count.unwrap_or(0) + 1);
                self.update_status(d, s).await?;
                anyhow::bail!(
                    "replica set {dname}-{hash} exists with another template; retrying with a new hash"
                );
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set {:?}: {e}",
                    rs.metadata.name.as_deref().unwrap_or("")
                );
                self.recorder.warning(&*d, "ReplicaSetCreateError", &msg);
                if progress_deadline(d).is_some() {
                    let mut s = d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut s,
                        condition("Progressing", "False", "ReplicaSetCreateError", &msg, now),
                    );
                    self.update_status(d, s).await?;
                }
                return Err(e.into());
            }
        };
        rs = created;
        if size > 0 {
            self.recorder.normal(
                &*d,
                "ScalingReplicaSet",
                &format!("Scaled up replica set {} from 0 to {size}", name_of(&rs)),
            );
        }
        let name = name_of(&rs).to_string();
        sets.put(rs);
        sets.new = Some(name.clone());
        self.set_deployment_revision(d, &new_revision.to_string())
            .await?;
        if progress_deadline(d).is_some() {
            let mut s = d.status.clone().unwrap_or_default();
            let msg = format!("Created new replica set {name:?}");
            set_condition(
                &mut s,
                condition("Progressing", "True", NEW_RS_CREATED, &msg, now),
            );
            self.update_status(d, s).await?;
        }
        Ok(())
    }

    async fn set_deployment_revision(&self, d: &mut Deployment, rev: &str) -> anyhow::Result<()> {
        let cur = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        if rev.is_empty() || cur.map(String::as_str) == Some(rev) {
            return Ok(());
        }
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        // A status update pinned to the Deployment as this sync saw it, as upstream writes it:
        // annotations pass through the status strategy without bumping `generation` (a new
        // Deployment stays at 1), and a conflict retries the sync.
        let mut body = d.clone();
        body.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(REVISION.to_string(), rev.to_string());
        body.metadata.managed_fields = None;
        let updated = self
            .d_api(&ns)
            .replace_status(
                d.metadata.name.as_deref().unwrap_or(""),
                &PostParams::default(),
                &body,
            )
            .await?;
        d.metadata = updated.metadata;
        Ok(())
    }

    async fn update_status(&self, d: &mut Deployment, s: DeploymentStatus) -> anyhow::Result<()> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let updated = wu::update_status(&self.d_api(&ns), d, serde_json::to_value(&s)?).await?;
        d.status = updated.status;
        d.metadata.resource_version = updated.metadata.resource_version;
        Ok(())
    }

    /// Sets a ReplicaSet's size (and replica annotations); records the scaling event.
    async fn scale(
        &self,
        d: &Deployment,
        sets: &mut Sets,
        name: &str,
        to: i32,
    ) -> anyhow::Result<bool> {
        let Some(rs) = sets.all.iter().find(|r| name_of(r) == name).cloned() else {
            return Ok(false);
        };
        let from = rs_replicas(&rs);
        let mut ann = rs.metadata.annotations.clone().unwrap_or_default();
        let ann_changed =
            set_replicas_annotations(&mut ann, replicas(d), replicas(d) + max_surge(d));
        if from == to && !ann_changed {
            return Ok(false);
        }
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {"annotations": ann, "resourceVersion": rs.metadata.resource_version},
            "spec": {"replicas": to},
        });
        let updated = self
            .rs_api(&ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        sets.put(updated);
        if from != to {
            let dir = if to > from { "up" } else { "down" };
            self.recorder.normal(
                d,
                "ScalingReplicaSet",
                &format!("Scaled {dir} replica set {name} from {from} to {to}"),
            );
        }
        Ok(from != to)
    }

    /// Paused or resized: scale, prune history when paused, report status.
    async fn sync_scale(
        &self,
        d: &mut Deployment,
        sets: &mut Sets,
        paused: bool,
    ) -> anyhow::Result<Action> {
        self.get_new(d, sets, false).await?;
        self.scale_proportionally(d, sets).await?;
        if paused {
            self.cleanup(d, sets).await?;
        }
        self.sync_status_only(d, sets).await
    }

    /// Upstream's `scale`.
    async fn scale_proportionally(&self, d: &Deployment, sets: &mut Sets) -> anyhow::Result<()> {
        let want = replicas(d);
        let active: Vec<String> = sets
            .all
            .iter()
            .filter(|r| rs_replicas(r) > 0)
            .map(|r| name_of(r).to_string())
            .collect();
        let only = match active.len() {
            0 => sets
                .new
                .clone()
                .or_else(|| sets.olds().last().map(|r| name_of(r).to_string())),
            1 => Some(active[0].clone()),
            _ => None,
        };
        if let Some(target) = only {
            self.scale(d, sets, &target, want).await?;
            return Ok(());
        }
        if is_saturated(d, sets.new_rs()) {
            let olds: Vec<String> = sets.olds().iter().map(|r| name_of(r).to_string()).collect();
            for o in olds {
                self.scale(d, sets, &o, 0).await?;
            }
            return Ok(());
        }
        // Only a RollingUpdate Deployment scales its sets proportionally (Recreate has one
        // active set at a time).
        if !is_rolling(d) {
            return Ok(());
        }
        let allowed = if want > 0 { want + max_surge(d) } else { 0 };
        let mut act: Vec<ReplicaSet> = sets
            .all
            .iter()
            .filter(|r| rs_replicas(r) > 0)
            .cloned()
            .collect();
        let current: i32 = act.iter().map(rs_replicas).sum();
        if current == allowed {
            return Ok(());
        }
        // Largest first; newer first among equals when growing, older when shrinking.
        let grow = allowed > current;
        act.sort_by(|a, b| {
            rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| {
                if grow {
                    creation_order(b, a)
                } else {
                    creation_order(a, b)
                }
            })
        });
        let shares: Vec<Share> = act
            .iter()
            .map(|r| Share {
                replicas: rs_replicas(r),
                max_replicas: max_replicas_annotation(r),
            })
            .collect();
        let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let sizes = proportional_sizes(&shares, want, max_surge(d), status_replicas);
        for (rs, to) in act.iter().zip(sizes) {
            self.scale(d, sets, name_of(rs), to).await?;
        }
        Ok(())
    }

    async fn rollout_rolling(&self, d: &mut Deployment, sets: &mut Sets) -> anyhow::Result<Action> {
        self.get_new(d, sets, true).await?;
        if self.reconcile_new(d, sets).await? {
            return self.sync_rollout_status(d, sets).await;
        }
        if self.reconcile_old(d, sets).await? {
            return self.sync_rollout_status(d, sets).await;
        }
        let st = d.status.clone().unwrap_or_default();
        if is_complete(d, &st) {
            self.cleanup(d, sets).await?;
        }
        self.sync_rollout_status(d, sets).await
    }

    async fn reconcile_new(&self, d: &Deployment, sets: &mut Sets) -> anyhow::Result<bool> {
        let Some(new) = sets.new_rs().cloned() else {
            return Ok(false);
        };
        let want = replicas(d);
        let cur = rs_replicas(&new);
        if cur == want {
            return Ok(false);
        }
        if cur > want {
            return self.scale(d, sets, name_of(&new), want).await;
        }
        let all = sets.refs();
        let to = new_rs_new_replicas(d, &all, &new);
        self.scale(d, sets, name_of(&new), to).await
    }

    /// Upstream's `reconcileOldReplicaSets`: first drop unhealthy old replicas, then scale old
    /// sets down as far as the availability budget allows.
    async fn reconcile_old(&self, d: &Deployment, sets: &mut Sets) -> anyhow::Result<bool> {
        let old_count: i32 = sets.olds().iter().map(|r| rs_replicas(r)).sum();
        if old_count == 0 {
            return Ok(false);
        }
        let all_count: i32 = sets.all.iter().map(rs_replicas).sum();
        let min_available = replicas(d) - max_unavailable(d);
        let new_unavailable = sets
            .new_rs()
            .map(|r| rs_replicas(r) - rs_available(r))
            .unwrap_or(0);
        let mut max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // Unhealthy replicas of old sets go first: they cost no availability.
        let mut cleaned = 0;
        let olds: Vec<ReplicaSet> = sets.olds().into_iter().cloned().collect();
        for rs in &olds {
            if cleaned >= max_scaled_down {
                break;
            }
            let r = rs_replicas(rs);
            if r == 0 {
                continue;
            }
            let unhealthy = r - rs_available(rs);
            if unhealthy <= 0 {
                continue;
            }
            let n = (max_scaled_down - cleaned).min(unhealthy);
            self.scale(d, sets, name_of(rs), r - n).await?;
            cleaned += n;
        }
        max_scaled_down -= cleaned;
        let _ = max_scaled_down;
        // Then healthy ones, as far as availability allows.
        let available: i32 = sets.all.iter().map(rs_available).sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            let olds: Vec<ReplicaSet> = sets.olds().into_iter().cloned().collect();
            for rs in &olds {
                if scaled >= total {
                    break;
                }
                let r = rs_replicas(rs);
                if r == 0 {
                    continue;
                }
                let n = r.min(total - scaled);
                self.scale(d, sets, name_of(rs), r - n).await?;
                scaled += n;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        sets: &mut Sets,
    ) -> anyhow::Result<Action> {
        self.get_new(d, sets, false).await?;
        let mut scaled_down = false;
        let olds: Vec<String> = sets
            .olds()
            .iter()
            .filter(|r| rs_replicas(r) > 0)
            .map(|r| name_of(r).to_string())
            .collect();
        for o in olds {
            scaled_down |= self.scale(d, sets, &o, 0).await?;
        }
        if scaled_down || self.old_pods_running(sets) {
            return self.sync_rollout_status(d, sets).await;
        }
        if sets.new.is_none() {
            self.get_new(d, sets, true).await?;
        }
        if let Some(n) = sets.new.clone() {
            self.scale(d, sets, &n, replicas(d)).await?;
        }
        let st = d.status.clone().unwrap_or_default();
        if is_complete(d, &st) {
            self.cleanup(d, sets).await?;
        }
        self.sync_rollout_status(d, sets).await
    }

    /// Whether any old ReplicaSet still reports replicas or still has a pod not finished.
    fn old_pods_running(&self, sets: &Sets) -> bool {
        let olds = sets.olds();
        if olds
            .iter()
            .any(|r| r.status.as_ref().map(|s| s.replicas).unwrap_or(0) > 0)
        {
            return true;
        }
        let uids: Vec<&str> = olds
            .iter()
            .filter_map(|r| r.metadata.uid.as_deref())
            .collect();
        let ns = olds
            .first()
            .and_then(|r| r.metadata.namespace.clone())
            .unwrap_or_default();
        self.pods.list_namespace(&ns).iter().any(|p| {
            controller_of(&p.metadata).is_some_and(|r| uids.contains(&r.uid.as_str()))
                && !matches!(wu::phase(p), "Succeeded" | "Failed")
        })
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    async fn cleanup(&self, d: &Deployment, sets: &mut Sets) -> anyhow::Result<()> {
        let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut olds: Vec<ReplicaSet> = sets
            .olds()
            .into_iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let diff = olds.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        olds.sort_by(|a, b| {
            revision(a)
                .cmp(&revision(b))
                .then_with(|| creation_order(a, b))
        });
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        for rs in olds.iter().take(diff as usize) {
            let st = rs.status.clone().unwrap_or_default();
            if st.replicas != 0
                || rs_replicas(rs) != 0
                || st.observed_generation.unwrap_or(0) < rs.metadata.generation.unwrap_or(0)
            {
                continue;
            }
            match self
                .rs_api(&ns)
                .delete(name_of(rs), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if matches!(s.code, 404) => {}
                Err(e) => return Err(e.into()),
            }
            let n = name_of(rs).to_string();
            sets.all.retain(|r| name_of(r) != n);
        }
        Ok(())
    }

    /// Paused / resumed bookkeeping on the Progressing condition.
    async fn check_paused_conditions(&self, d: &mut Deployment) -> anyhow::Result<()> {
        if progress_deadline(d).is_none() {
            return Ok(());
        }
        let s = d.status.clone().unwrap_or_default();
        let cur = get_condition(&s, "Progressing");
        if cur.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT)) {
            return Ok(());
        }
        let paused_cond = cur.is_some_and(|c| c.reason.as_deref() == Some(PAUSED));
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let now = wu::now();
        let cond = if paused && !paused_cond {
            condition(
                "Progressing",
                "Unknown",
                PAUSED,
                "Deployment is paused",
                now,
            )
        } else if !paused && paused_cond {
            condition(
                "Progressing",
                "Unknown",
                RESUMED,
                "Deployment is resumed",
                now,
            )
        } else {
            return Ok(());
        };
        let mut s = s;
        set_condition(&mut s, cond);
        self.update_status(d, s).await
    }

    async fn sync_status_only(&self, d: &mut Deployment, sets: &Sets) -> anyhow::Result<Action> {
        let s = calculate_status(d, &sets.refs(), sets.new_rs(), wu::now());
        if !wu::same_status(d.status.as_ref(), &s) {
            self.update_status(d, s).await?;
        }
        Ok(Action::await_change())
    }

    /// Upstream's `syncRolloutStatus`: counts plus the Progressing condition.
    async fn sync_rollout_status(&self, d: &mut Deployment, sets: &Sets) -> anyhow::Result<Action> {
        let now = wu::now();
        let new_rs = sets.new_rs();
        let mut s = calculate_status(d, &sets.refs(), new_rs, now);
        let deadline = progress_deadline(d);
        if deadline.is_none() {
            remove_condition(&mut s, "Progressing");
        }
        let cur = get_condition(&s, "Progressing").cloned();
        let complete = is_complete(d, &s);
        if deadline.is_some() && cur.as_ref().and_then(|c| c.reason.as_deref()) != Some(TIMED_OUT) {
            let rs_name = new_rs.map(name_of);
            if complete {
                if let Some(n) = rs_name {
                    let msg = format!("ReplicaSet {n:?} has successfully progressed.");
                    set_condition(
                        &mut s,
                        condition("Progressing", "True", NEW_RS_AVAILABLE, &msg, now),
                    );
                }
            } else if is_progressing(d, &s) {
                let msg = match rs_name {
                    Some(n) => format!("ReplicaSet {n:?} is progressing."),
                    None => "Deployment is progressing.".to_string(),
                };
                let mut c = condition("Progressing", "True", RS_UPDATED, &msg, now);
                if let Some(cur) = &cur {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut s, "Progressing");
                }
                set_condition(&mut s, c);
            } else if is_timed_out(d, &s, now) {
                let msg = match rs_name {
                    Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                    None => format!(
                        "Deployment {:?} has timed out progressing.",
                        d.metadata.name.as_deref().unwrap_or("")
                    ),
                };
                set_condition(
                    &mut s,
                    condition("Progressing", "False", TIMED_OUT, &msg, now),
                );
            }
        }
        match replica_failure(&sets.refs(), new_rs) {
            Some(c) => set_condition(&mut s, c),
            None => remove_condition(&mut s, REPLICA_FAILURE),
        }
        if wu::same_status(d.status.as_ref(), &s) {
            return Ok(requeue_stuck(d, &s, now));
        }
        self.update_status(d, s.clone()).await?;
        Ok(requeue_stuck(d, &s, now))
    }
}

/// When a rollout that stopped moving passes its deadline, so the timeout is reported.
fn requeue_stuck(
    d: &Deployment,
    s: &DeploymentStatus,
    now: k8s_openapi::jiff::Timestamp,
) -> Action {
    let Some(deadline) = progress_deadline(d) else {
        return Action::await_change();
    };
    let Some(c) = get_condition(s, "Progressing") else {
        return Action::await_change();
    };
    if is_complete(d, s) || c.reason.as_deref() == Some(TIMED_OUT) {
        return Action::await_change();
    }
    let from = c
        .last_update_time
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(now.as_second());
    let after = from + i64::from(deadline) - now.as_second();
    Action::requeue(Duration::from_secs(after.clamp(1, 3600) as u64 + 1))
}
