//! The DaemonSet controller: one pod per eligible node (nodeSelector, required node affinity,
//! taints against the template's tolerations plus the tolerations every daemon pod gets),
//! pinned to its node by node affinity on `metadata.name` as upstream does; templates
//! recorded as ControllerRevisions; RollingUpdate within `maxUnavailable`, or OnDelete;
//! status numbers as upstream's.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use kox_api::label_selector::Selector;
use kox_api::taints::tolerates;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tokio_util::sync::CancellationToken;

use super::claim::{self, Claim};
use super::history::{self, HASH_LABEL};
use super::util::{self, controller_ref, is_pod_available, is_pod_ready, scaled_value};
use crate::context::Context;
use crate::events::Recorder;
use crate::informer::{Change, Informer, key_of, split_key};
use crate::queue::{Action, WorkQueue};

/// The label naming the template revision (its hash) a daemon pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The deprecated label carrying the DaemonSet's generation at the pod's creation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// Tolerations every daemon pod gets (upstream's `AddOrUpdateDaemonPodTolerations`).
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    };
    let mut v = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    v
}

fn add_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network.unwrap_or(false);
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    for t in daemon_tolerations(host_network) {
        if !tols.iter().any(|x| x.key == t.key && x.effect == t.effect) {
            tols.push(t);
        }
    }
}

/// Whether a daemon pod belongs on `node`, and whether one already there may stay
/// (upstream's `NodeShouldRunDaemonPod`): (should run, should continue running).
pub fn should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or("");
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if !kox_api::node_selector::pod_fits(spec, &labels, name) {
        return (false, false);
    }
    let mut with_defaults = spec.clone();
    add_tolerations(&mut with_defaults);
    let tols = with_defaults.tolerations.unwrap_or_default();
    let untolerated = |effect: &str| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| t.effect == effect)
            .any(|t| !tols.iter().any(|tol| tolerates(tol, t)))
    };
    let no_execute = untolerated("NoExecute");
    let no_schedule = untolerated("NoSchedule");
    (!no_execute && !no_schedule, !no_execute)
}

/// Pins a pod to `node` with required node affinity on `metadata.name` (upstream's
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`).
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        match_expressions: None,
    };
    let mut a = affinity.unwrap_or_default();
    let na = a.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    a
}

/// The node a daemon pod is bound or pinned to.
fn pod_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields
            .iter()
            .flatten()
            .find(|r| r.key == "metadata.name" && r.operator == "In")
            .and_then(|r| r.values.as_ref()?.first().cloned())
    })
}

fn pod_hash(p: &Pod) -> &str {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map(String::as_str)
        .unwrap_or("")
}

/// The DaemonSet controller.
#[derive(Clone)]
pub struct DaemonSetController {
    ctx: Context,
    sets: Informer<DaemonSet>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    revisions: Informer<ControllerRevision>,
    queue: WorkQueue,
    recorder: Recorder,
    expectations: std::sync::Arc<util::Expectations>,
}

impl DaemonSetController {
    /// Runs the controller until `stop`.
    pub async fn run(ctx: Context, stop: CancellationToken) {
        let this = DaemonSetController {
            sets: ctx.informers.get::<DaemonSet>(),
            pods: ctx.informers.get::<Pod>(),
            nodes: ctx.informers.get::<Node>(),
            revisions: ctx.informers.get::<ControllerRevision>(),
            queue: ctx.queue("daemonset"),
            recorder: ctx.recorder("daemonset-controller"),
            expectations: Default::default(),
            ctx,
        };
        let q = this.queue.clone();
        this.sets
            .add_handler(move |c: &Change<'_, DaemonSet>| q.add_change(c));
        this.pods
            .add_handler(this.expectations.observer::<Pod>("DaemonSet"));
        this.pods
            .add_handler(util::enqueue_controller(this.queue.clone(), "DaemonSet"));
        let (q, sets) = (this.queue.clone(), this.sets.clone());
        this.nodes.add_handler(move |c: &Change<'_, Node>| {
            // Only what decides placement matters: labels, taints, existence.
            let relevant = match c.old() {
                Some(old) => {
                    let new = c.object();
                    old.metadata.labels != new.metadata.labels
                        || old.spec.as_ref().and_then(|s| s.taints.clone())
                            != new.spec.as_ref().and_then(|s| s.taints.clone())
                }
                None => true,
            };
            if relevant {
                for s in sets.list() {
                    q.add(key_of(s.as_ref()));
                }
            }
        });
        this.sets.synced().await;
        this.pods.synced().await;
        this.nodes.synced().await;
        this.revisions.synced().await;
        let me = this.clone();
        this.queue
            .run_workers(2, stop, move |key| {
                let me = me.clone();
                async move { me.sync(&key).await }
            })
            .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(ds) = self.sets.get(key) else {
            self.expectations.forget(key);
            return Ok(Action::await_change());
        };
        let ds = (*ds).clone();
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or("default").to_string();
        let name = name.to_string();
        let spec = ds.spec.clone().unwrap_or_default();
        let Ok(selector) = Selector::from_label_selector(Some(&spec.selector)) else {
            return Ok(Action::await_change());
        };
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let deleting = ds.metadata.deletion_timestamp.is_some();
        let pods_api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        let mut mine: Vec<Pod> = Vec::new();
        for pod in self.pods.list_namespace(&ns) {
            let matches = selector.matches(&util::labels(&pod.metadata));
            match claim::decide(&pod.metadata, &uid, matches, deleting) {
                Claim::Keep => mine.push((*pod).clone()),
                Claim::Adopt => {
                    let r = controller_ref(&ds.metadata, "apps/v1", "DaemonSet");
                    if let Ok(p) = claim::adopt(&pods_api, &pod.metadata, r).await {
                        mine.push(p);
                    }
                }
                Claim::Release => claim::release(&pods_api, &pod.metadata, &uid).await?,
                Claim::Ignore => {}
            }
        }
        if deleting {
            return Ok(Action::await_change());
        }

        let rev_api: Api<ControllerRevision> = Api::namespaced(self.ctx.client.clone(), &ns);
        let hist = history::owned(&self.revisions.list_namespace(&ns), &uid);
        let (cur, hist) = history::ensure(
            &rev_api,
            controller_ref(&ds.metadata, "apps/v1", "DaemonSet"),
            &name,
            &spec.selector.match_labels.clone().unwrap_or_default(),
            &spec.template,
            ds.status.as_ref().and_then(|s| s.collision_count),
            hist,
        )
        .await?;
        let hash = cur
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .cloned()
            .unwrap_or_default();

        let now = util::now();
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let nodes = self.nodes.list();
        let mut by_node: HashMap<String, Vec<Pod>> = HashMap::new();
        for p in &mine {
            if let Some(n) = pod_node(p) {
                by_node.entry(n).or_default().push(p.clone());
            }
        }
        let pods = self.pods.clone();
        let nsr = ns.clone();
        let satisfied = self.expectations.satisfied(
            key,
            |n| pods.get_in(Some(&nsr), n).is_some(),
            |n, u| {
                pods.get_in(Some(&nsr), n).is_some_and(|p| {
                    p.metadata.uid.as_deref() == Some(u) && p.metadata.deletion_timestamp.is_none()
                })
            },
        );

        let template_spec = spec.template.spec.clone().unwrap_or_default();
        let mut create_on: Vec<String> = Vec::new();
        let mut delete: Vec<Pod> = Vec::new();
        let mut st = DaemonSetStatus {
            observed_generation: ds.metadata.generation,
            collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
            conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
            ..DaemonSetStatus::default()
        };
        let (mut available, mut updated, mut ready) = (0, 0, 0);
        // Nodes whose daemon pod is old, with whether it is available.
        let mut outdated: Vec<(Pod, bool)> = Vec::new();
        let mut unavailable_now = 0;
        let strategy = spec.update_strategy.as_ref();
        let rolling = strategy
            .and_then(|s| s.type_.as_deref())
            .unwrap_or("RollingUpdate")
            == "RollingUpdate";
        let rolling_update = strategy.and_then(|s| s.rolling_update.as_ref());
        // A surge rollout (maxSurge > 0) keeps up to two pods on a node, an old and a new one.
        let surge_spec = rolling_update
            .and_then(|r| r.max_surge.as_ref())
            .filter(|_| rolling);
        let surging = surge_spec.is_some_and(|v| scaled_value(Some(v), 1, true).unwrap_or(0) > 0);
        let mut surge_nodes: Vec<SurgeNode> = Vec::new();
        for node in &nodes {
            let nname = node.metadata.name.clone().unwrap_or_default();
            let (run, keep) = should_run(&template_spec, node);
            let mut here: Vec<Pod> = by_node.remove(&nname).unwrap_or_default();
            // Failed pods are replaced.
            for p in here
                .iter()
                .filter(|p| util::phase(p) == "Failed" && p.metadata.deletion_timestamp.is_none())
            {
                delete.push(p.clone());
            }
            here.retain(|p| util::phase(p) != "Failed");
            let live: Vec<&Pod> = here
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            if run {
                st.desired_number_scheduled += 1;
            }
            if run || (keep && !live.is_empty()) {
                if !live.is_empty() {
                    st.current_number_scheduled += i32::from(run);
                } else if here.is_empty() {
                    create_on.push(nname.clone());
                }
                // More than one: keep the oldest; when surging, the oldest new and the oldest
                // old one (upstream's podsShouldBeOnNode).
                let mut sorted = live.clone();
                sorted.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
                if surging {
                    let avail = |p: &Pod| is_pod_ready(p) && is_pod_available(p, min_ready, now);
                    let new = sorted.iter().find(|p| pod_hash(p) == hash);
                    let old = sorted.iter().find(|p| pod_hash(p) != hash);
                    let mut excess = false;
                    for p in &sorted {
                        let keep = new.is_some_and(|n| std::ptr::eq(*n, *p))
                            || old.is_some_and(|o| std::ptr::eq(*o, *p));
                        if !keep {
                            delete.push((*p).clone());
                            excess = true;
                        }
                    }
                    surge_nodes.push(SurgeNode {
                        name: nname.clone(),
                        run,
                        excess,
                        new: new.map(|p| ((*p).clone(), avail(p))),
                        old: old.map(|p| ((*p).clone(), avail(p))),
                    });
                } else {
                    for extra in sorted.iter().skip(1) {
                        delete.push((*extra).clone());
                    }
                }
                if let Some(p) = sorted.first() {
                    let is_avail = is_pod_ready(p) && is_pod_available(p, min_ready, now);
                    if is_pod_ready(p) {
                        ready += 1;
                    }
                    if is_avail {
                        available += 1;
                    } else {
                        unavailable_now += 1;
                    }
                    if pod_hash(p) == hash {
                        updated += 1;
                    } else {
                        outdated.push(((*p).clone(), is_avail));
                    }
                } else {
                    unavailable_now += 1;
                }
            } else {
                if !live.is_empty() {
                    st.number_misscheduled += 1;
                }
                delete.extend(live.into_iter().cloned());
            }
        }
        // Pods on nodes that are gone.
        for (_, ps) in by_node {
            delete.extend(
                ps.into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none()),
            );
        }

        // Rolling update with maxSurge: new pods beside available old ones, up to the surge.
        if surging {
            let max_surge =
                scaled_value(surge_spec, st.desired_number_scheduled, true).unwrap_or(0);
            let plan = surge_plan(&surge_nodes, max_surge, st.desired_number_scheduled);
            create_on.extend(plan.create_on);
            delete.extend(plan.delete);
        }
        // Rolling update: old unavailable pods go freely; available ones within the budget.
        if rolling && !surging {
            let max_unavailable = scaled_value(
                rolling_update
                    .and_then(|r| r.max_unavailable.as_ref())
                    .or(Some(
                        &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1),
                    )),
                st.desired_number_scheduled,
                true,
            )
            .unwrap_or(1)
            .max(1);
            let mut budget = max_unavailable - unavailable_now;
            for (p, avail) in &outdated {
                if !avail {
                    delete.push(p.clone());
                } else if budget > 0 {
                    delete.push(p.clone());
                    budget -= 1;
                }
            }
        }

        if satisfied {
            for n in &create_on {
                self.create_pod(&ds, &pods_api, key, n, &hash).await?;
            }
            for p in &delete {
                let pname = p.metadata.name.clone().unwrap_or_default();
                match pods_api.delete(&pname, &DeleteParams::default()).await {
                    Ok(_) => {
                        self.expectations.deleted(
                            key,
                            &pname,
                            p.metadata.uid.as_deref().unwrap_or(""),
                        );
                        self.recorder.normal(
                            &ds,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {pname}"),
                        );
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }

        st.number_ready = ready;
        st.number_available = Some(available);
        st.number_unavailable = Some((st.desired_number_scheduled - available).max(0));
        st.updated_number_scheduled = Some(updated);
        if !util::same_status(ds.status.as_ref(), &st) {
            let api: Api<DaemonSet> = Api::namespaced(self.ctx.client.clone(), &ns);
            util::update_status(&api, &ds, serde_json::to_value(&st)?).await?;
        }
        let live: Vec<String> = vec![cur.metadata.name.clone().unwrap_or_default()];
        let mut in_use = live.clone();
        for r in &hist {
            let h = r.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL));
            if mine
                .iter()
                .any(|p| Some(pod_hash(p)) == h.map(String::as_str))
            {
                in_use.push(r.metadata.name.clone().unwrap_or_default());
            }
        }
        history::truncate(
            &rev_api,
            &hist,
            &in_use,
            spec.revision_history_limit.unwrap_or(10),
        )
        .await?;
        if !satisfied {
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        let wait = mine
            .iter()
            .filter_map(|p| util::seconds_until_available(p, min_ready, now))
            .min();
        Ok(match wait {
            Some(s) => Action::requeue(Duration::from_secs(s + 1)),
            None => Action::await_change(),
        })
    }

    async fn create_pod(
        &self,
        ds: &DaemonSet,
        api: &Api<Pod>,
        key: &str,
        node: &str,
        hash: &str,
    ) -> anyhow::Result<()> {
        let spec = ds.spec.clone().unwrap_or_default();
        let name = ds.metadata.name.clone().unwrap_or_default();
        let mut pod = util::pod_from_template(
            &spec.template,
            ds.metadata.namespace.as_deref().unwrap_or(""),
            controller_ref(&ds.metadata, "apps/v1", "DaemonSet"),
            Some(util::pods_prefix(&name)),
            None,
        );
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(REVISION_LABEL.into(), hash.to_string());
        labels.insert(
            TEMPLATE_GENERATION_LABEL.into(),
            ds.metadata.generation.unwrap_or(0).to_string(),
        );
        if let Some(ps) = pod.spec.as_mut() {
            add_tolerations(ps);
            ps.affinity = Some(pin_to_node(ps.affinity.take(), node));
        }
        match api.create(&PostParams::default(), &pod).await {
            Ok(p) => {
                let pname = p.metadata.name.unwrap_or_default();
                self.expectations.created(key, &pname);
                self.recorder
                    .normal(ds, "SuccessfulCreate", &format!("Created pod: {pname}"));
                Ok(())
            }
            Err(e) => {
                let msg = match &e {
                    kube::Error::Api(s) => s.message.clone(),
                    e => e.to_string(),
                };
                self.recorder
                    .warning(ds, "FailedCreate", &format!("Error creating: {msg}"));
                Err(e.into())
            }
        }
    }
}

/// A node's daemon pods as a surge rollout sees them: the oldest new pod and the oldest old
/// one, each with whether it is available.
struct SurgeNode {
    name: String,
    /// Whether the DaemonSet should run on the node (else an old pod there only continues).
    run: bool,
    /// More pods than one new and one old: the extras are being deleted.
    excess: bool,
    new: Option<(Pod, bool)>,
    old: Option<(Pod, bool)>,
}

/// What a surge rollout does next.
#[derive(Default)]
struct SurgePlan {
    create_on: Vec<String>,
    delete: Vec<Pod>,
}

/// Upstream's rollingUpdate with maxSurge (daemon/update.go): a node whose old pod is
/// unavailable gets its new pod at once; nodes with an available old pod get one while fewer
/// than `max_surge` new pods are on their way; an old pod goes once the new pod beside it is
/// available. An old pod on a node the DaemonSet no longer targets goes only while more pods
/// are available than desired (100% availability is what surging promises).
fn surge_plan(nodes: &[SurgeNode], max_surge: i32, desired: i32) -> SurgePlan {
    let mut plan = SurgePlan::default();
    let mut num_surge = 0;
    let mut num_available = 0;
    let mut allowed_new: Vec<String> = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    let mut should_not_run: Vec<Pod> = Vec::new();
    for n in nodes {
        if n.excess {
            // The extras go first; the node counts as surging meanwhile.
            num_surge += 1;
            continue;
        }
        match (&n.old, &n.new) {
            (Some((_, true)), _) | (None, Some((_, true))) => num_available += 1,
            _ => {}
        }
        match (&n.new, &n.old) {
            (_, None) => {}
            (None, Some((old, false))) => {
                if n.run {
                    allowed_new.push(n.name.clone());
                } else {
                    plan.delete.push(old.clone());
                }
            }
            (None, Some((old, true))) => {
                if !n.run {
                    should_not_run.push(old.clone());
                } else if num_surge < max_surge {
                    candidates.push(n.name.clone());
                }
            }
            (Some((_, false)), Some(_)) => num_surge += 1,
            (Some((_, true)), Some((old, _))) => plan.delete.push(old.clone()),
        }
    }
    let deletable = (num_available - desired).max(0) as usize;
    plan.delete
        .extend(should_not_run.into_iter().take(deletable));
    let remaining = ((max_surge - num_surge).max(0) as usize).min(candidates.len());
    plan.create_on = allowed_new;
    plan.create_on
        .extend(candidates.into_iter().take(remaining));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).expect("node")
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn selectors_affinity_and_taints_decide_placement() {
        let plain = node(json!({"metadata": {"name": "n1", "labels": {"disk": "ssd"}}}));
        let tainted = node(json!({"metadata": {"name": "n2"},
            "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}));
        let not_ready = node(json!({"metadata": {"name": "n3"},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}}));
        let s = spec(json!({"containers": []}));
        assert_eq!(should_run(&s, &plain), (true, true));
        assert_eq!(should_run(&s, &tainted), (false, true));
        // The automatic tolerations cover a not-ready node.
        assert_eq!(should_run(&s, &not_ready), (true, true));
        let tol = spec(
            json!({"containers": [], "tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        );
        assert_eq!(should_run(&tol, &tainted), (true, true));
        let sel = spec(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}));
        assert_eq!(should_run(&sel, &plain), (true, true));
        assert_eq!(should_run(&sel, &tainted), (false, false));
        let aff = spec(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]}}}}),
        );
        assert_eq!(should_run(&aff, &plain), (false, false));
        assert_eq!(should_run(&aff, &not_ready), (true, true));
    }

    #[test]
    fn pods_are_pinned_by_name_affinity() {
        let a = pin_to_node(None, "n1");
        let t = &a
            .node_affinity
            .expect("na")
            .required_during_scheduling_ignored_during_execution
            .expect("req")
            .node_selector_terms[0];
        let f = &t.match_fields.as_ref().expect("fields")[0];
        assert_eq!(
            (f.key.as_str(), f.operator.as_str()),
            ("metadata.name", "In")
        );
        assert_eq!(f.values.as_deref(), Some(&["n1".to_string()][..]));
        let p: Pod = serde_json::from_value(json!({"spec": {"containers": [],
            "affinity": serde_json::to_value(pin_to_node(None, "n7")).expect("json")}}))
        .expect("pod");
        assert_eq!(pod_node(&p).as_deref(), Some("n7"));
    }

    #[test]
    fn daemon_tolerations_include_network_for_host_network() {
        assert_eq!(daemon_tolerations(false).len(), 6);
        assert!(
            daemon_tolerations(true)
                .iter()
                .any(|t| t.key.as_deref() == Some("node.kubernetes.io/network-unavailable"))
        );
    }

    fn surge_node(name: &str, run: bool, new: Option<bool>, old: Option<bool>) -> SurgeNode {
        let pod = |kind: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": format!("{name}-{kind}")}}))
                .expect("pod")
        };
        SurgeNode {
            name: name.into(),
            run,
            excess: false,
            new: new.map(|a| (pod("new"), a)),
            old: old.map(|a| (pod("old"), a)),
        }
    }

    fn names(plan: &SurgePlan) -> (Vec<String>, Vec<String>) {
        let mut create = plan.create_on.clone();
        create.sort();
        let mut delete: Vec<String> = plan
            .delete
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        delete.sort();
        (create, delete)
    }

    #[test]
    fn surge_creates_new_pods_beside_available_old_ones_up_to_max_surge() {
        let nodes = [
            surge_node("a", true, None, Some(true)),
            surge_node("b", true, None, Some(true)),
            surge_node("c", true, None, Some(true)),
        ];
        let (create, delete) = names(&surge_plan(&nodes, 1, 3));
        assert_eq!((create.len(), delete.len()), (1, 0));
        let (create, delete) = names(&surge_plan(&nodes, 2, 3));
        assert_eq!((create.len(), delete.len()), (2, 0));
    }

    #[test]
    fn surge_waits_for_the_new_pod_then_deletes_the_old_one() {
        // a's new pod is not available yet: the surge is used up, nothing else happens.
        let nodes = [
            surge_node("a", true, Some(false), Some(true)),
            surge_node("b", true, None, Some(true)),
        ];
        assert_eq!(
            names(&surge_plan(&nodes, 1, 2)),
            (vec![], vec![]),
            "waiting on a"
        );
        // a's new pod is available: its old pod goes, and b gets its new pod.
        let nodes = [
            surge_node("a", true, Some(true), Some(true)),
            surge_node("b", true, None, Some(true)),
        ];
        assert_eq!(
            names(&surge_plan(&nodes, 1, 2)),
            (vec!["b".to_string()], vec!["a-old".to_string()])
        );
        // Done: only new pods.
        let nodes = [
            surge_node("a", true, Some(true), None),
            surge_node("b", true, Some(true), None),
        ];
        assert_eq!(names(&surge_plan(&nodes, 1, 2)), (vec![], vec![]));
    }

    #[test]
    fn surge_replaces_unavailable_old_pods_at_once_and_keeps_availability() {
        // An unavailable old pod is replaced whatever the surge in progress.
        let nodes = [
            surge_node("a", true, Some(false), Some(true)),
            surge_node("b", true, None, Some(false)),
        ];
        assert_eq!(
            names(&surge_plan(&nodes, 1, 2)),
            (vec!["b".to_string()], vec![])
        );
        // On a node no longer targeted: an unavailable old pod goes at once; an available one
        // only while more pods are available than desired.
        let nodes = [
            surge_node("a", true, Some(true), None),
            surge_node("x", false, None, Some(false)),
        ];
        assert_eq!(
            names(&surge_plan(&nodes, 1, 1)),
            (vec![], vec!["x-old".to_string()])
        );
        let nodes = [
            surge_node("a", true, Some(false), None),
            surge_node("x", false, None, Some(true)),
        ];
        assert_eq!(names(&surge_plan(&nodes, 1, 1)), (vec![], vec![]));
        let nodes = [
            surge_node("a", true, Some(true), None),
            surge_node("x", false, None, Some(true)),
        ];
        assert_eq!(
            names(&surge_plan(&nodes, 1, 1)),
            (vec![], vec!["x-old".to_string()])
        );
    }
}
