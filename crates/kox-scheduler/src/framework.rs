//! The plugin framework: what a plugin sees (a pod and one node's state) and what it answers.
//!
//! Extension points, as upstream's:
//! - **filter** — can the pod run on this node? `Success` keeps the node; `Unschedulable` drops
//!   it for a reason preemption might fix (resources, ports); `UnschedulableAndUnresolvable`
//!   drops it for a reason no eviction can fix (taints, affinity, node name); `Error` aborts
//!   the attempt.
//! - **score** — how good is this feasible node, 0..=100 after the plugin's normalization;
//!   the framework multiplies by the plugin's weight and sums.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm, Taint, WeightedPodAffinityTerm};
use kox_api::label_selector::{Operator, Requirement, Selector};

use crate::cycle_state::CycleState;
use crate::resources::{self, Resources};

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// The outcome class of a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The node fits.
    Success,
    /// The node does not fit, but evicting pods might make it fit.
    Unschedulable,
    /// The node does not fit, and evicting pods would not help.
    UnschedulableAndUnresolvable,
    /// The plugin failed; the attempt is retried with backoff.
    Error,
}

/// A filter's answer: a code and the reasons (each counted in the FailedScheduling message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Outcome class.
    pub code: Code,
    /// Upstream-worded reasons (`Insufficient cpu`).
    pub reasons: Vec<String>,
}

impl Status {
    /// The node fits.
    pub fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
        }
    }

    /// The node does not fit for `reasons`; preemption might help.
    pub fn unschedulable(reasons: Vec<String>) -> Self {
        Status {
            code: Code::Unschedulable,
            reasons,
        }
    }

    /// The node does not fit for `reason`; preemption cannot help.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Status {
            code: Code::UnschedulableAndUnresolvable,
            reasons: vec![reason.into()],
        }
    }

    /// Whether the node fits.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }
}

/// A host port a container asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host IP, `0.0.0.0` when unset.
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port number.
    pub port: i32,
}

/// A pod with what the plugins compute from it once per attempt.
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Its requests (`resource.PodRequests`).
    pub requests: Resources,
    /// CPU and memory it counts for when scoring.
    pub non_zero: (i64, i64),
    /// Host ports of its containers.
    pub host_ports: Vec<HostPort>,
    /// Its inter-pod affinity and anti-affinity terms, compiled; `None` when the pod has
    /// neither (upstream's `PodInfo.RequiredAffinityTerms` and friends).
    pub affinity: Option<Arc<PodAffinityTerms>>,
}

/// The label key every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// An inter-pod (anti-)affinity term, compiled (upstream's `framework.AffinityTerm`).
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Namespaces listed by the term (the pod's own when it names none and has no selector).
    pub namespaces: Vec<String>,
    /// `namespaceSelector` (nil matches nothing, `{}` every namespace).
    pub namespace_selector: Selector,
    /// `labelSelector`, with `matchLabelKeys` / `mismatchLabelKeys` merged in.
    pub selector: Selector,
    /// The node label whose value is the topology domain.
    pub topology_key: String,
}

impl AffinityTerm {
    fn new(owner: &Pod, term: &PodAffinityTerm) -> Self {
        let own_ns = owner.metadata.namespace.as_deref().unwrap_or("default");
        let namespaces = match (&term.namespaces, &term.namespace_selector) {
            (Some(ns), _) if !ns.is_empty() => ns.clone(),
            (_, None) => vec![own_ns.to_string()],
            _ => Vec::new(),
        };
        let namespace_selector = Selector::from_label_selector(term.namespace_selector.as_ref())
            .unwrap_or_else(|_| Selector::nothing());
        let mut selector = Selector::from_label_selector(term.label_selector.as_ref())
            .unwrap_or_else(|_| Selector::nothing());
        // What the API server merges into the selector at creation upstream: `matchLabelKeys`
        // pin the owner's values, `mismatchLabelKeys` exclude them.
        if term.label_selector.is_some() {
            let labels = owner.metadata.labels.as_ref();
            let keys = [
                (term.match_label_keys.as_deref(), Operator::In),
                (term.mismatch_label_keys.as_deref(), Operator::NotIn),
            ];
            for (keys, op) in keys {
                for key in keys.unwrap_or(&[]) {
                    if let Some(v) = labels.and_then(|l| l.get(key))
                        && let Ok(r) = Requirement::new(key, op, vec![v.clone()])
                    {
                        selector = selector.with_requirement(r);
                    }
                }
            }
        }
        AffinityTerm {
            namespaces,
            namespace_selector,
            selector,
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether `pod` is selected by the term (upstream's `AffinityTerm.Matches`); the
    /// namespace selector is matched against the labels of the pod's namespace.
    pub fn matches(&self, pod: &Pod, namespaces: &NamespaceLabels) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let in_namespace = self.namespaces.iter().any(|n| n == ns)
            || (!self.namespace_selector.matches_nothing()
                && (self.namespace_selector.is_empty()
                    || namespaces.with(ns, |l| self.namespace_selector.matches(l))));
        in_namespace && self.selector.matches(labels_of(pod))
    }
}

/// The labels of every namespace the scheduler has seen, shared by all attempts (the cache
/// replaces the map when a namespace changes). Written into each attempt's [`CycleState`]
/// under [`NamespaceLabels::KEY`].
#[derive(Clone, Debug, Default)]
pub struct NamespaceLabels(pub Arc<HashMap<String, BTreeMap<String, String>>>);

impl NamespaceLabels {
    /// The cycle-state key.
    pub const KEY: &'static str = "NamespaceLabels";

    /// The snapshot of the attempt (empty when none was written).
    pub fn of(state: &CycleState) -> NamespaceLabels {
        state
            .read::<NamespaceLabels>(Self::KEY)
            .cloned()
            .unwrap_or_default()
    }

    /// Runs `f` with the labels of namespace `ns`; a namespace not seen (yet) has the
    /// `kubernetes.io/metadata.name` label every namespace carries.
    pub fn with<T>(&self, ns: &str, f: impl FnOnce(&BTreeMap<String, String>) -> T) -> T {
        match self.0.get(ns) {
            Some(labels) => f(labels),
            None => f(&BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                ns.to_string(),
            )])),
        }
    }
}

/// The selectors of the Services, ReplicationControllers, ReplicaSets and StatefulSets the
/// scheduler watches, by `namespace/name`, for PodTopologySpread's default constraints
/// (upstream's `helper.DefaultSelector`).
#[derive(Clone, Debug, Default)]
pub struct Workloads {
    /// Services' `spec.selector` (`None`: a Service without selector, which selects nothing).
    pub services: HashMap<String, Option<BTreeMap<String, String>>>,
    /// ReplicationControllers' `spec.selector`.
    pub replication_controllers: HashMap<String, BTreeMap<String, String>>,
    /// ReplicaSets' `spec.selector`, compiled.
    pub replica_sets: HashMap<String, Selector>,
    /// StatefulSets' `spec.selector`, compiled.
    pub stateful_sets: HashMap<String, Selector>,
}

impl Workloads {
    /// The key of an object in the maps.
    pub fn key(ns: &str, name: &str) -> String {
        format!("{ns}/{name}")
    }

    /// Upstream's `DefaultSelector`: the union of the selectors of the Services selecting the
    /// pod and of its controlling ReplicationController, ReplicaSet or StatefulSet; empty
    /// when there are none.
    pub fn default_selector(&self, pod: &Pod) -> Selector {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let labels = labels_of(pod);
        let prefix = format!("{ns}/");
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        for (key, sel) in &self.services {
            if let Some(sel) = sel
                && key.starts_with(&prefix)
                && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
            {
                set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        let Some(owner) = owner else {
            return Selector::from_set(&set);
        };
        let key = Workloads::key(ns, &owner.name);
        let group = owner.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        match (group, owner.kind.as_str()) {
            ("", "ReplicationController") => {
                if let Some(sel) = self.replication_controllers.get(&key) {
                    set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Selector::from_set(&set)
            }
            ("apps", "ReplicaSet") | ("apps", "StatefulSet") => {
                let map = if owner.kind == "ReplicaSet" {
                    &self.replica_sets
                } else {
                    &self.stateful_sets
                };
                let mut selector = Selector::from_set(&set);
                if let Some(other) = map.get(&key).filter(|o| !o.matches_nothing()) {
                    for r in other.requirements() {
                        selector = selector.with_requirement(r.clone());
                    }
                }
                selector
            }
            _ => Selector::from_set(&set),
        }
    }
}

/// The [`Workloads`] snapshot of an attempt, under [`SharedWorkloads::KEY`] in its cycle state.
#[derive(Clone, Debug, Default)]
pub struct SharedWorkloads(pub Arc<Workloads>);

impl SharedWorkloads {
    /// The cycle-state key.
    pub const KEY: &'static str = "Workloads";

    /// The snapshot of the attempt (empty when none was written).
    pub fn of(state: &CycleState) -> SharedWorkloads {
        state
            .read::<SharedWorkloads>(Self::KEY)
            .cloned()
            .unwrap_or_default()
    }
}

/// A pod's labels (empty when it has none).
pub fn labels_of(pod: &Pod) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// A preferred affinity term with its weight.
#[derive(Clone, Debug)]
pub struct WeightedAffinityTerm {
    /// The term.
    pub term: AffinityTerm,
    /// Its weight (1..=100).
    pub weight: i64,
}

/// A pod's compiled inter-pod affinity.
#[derive(Clone, Debug, Default)]
pub struct PodAffinityTerms {
    /// `podAffinity.requiredDuringSchedulingIgnoredDuringExecution`.
    pub required_affinity: Vec<AffinityTerm>,
    /// `podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution`.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// `podAffinity.preferredDuringSchedulingIgnoredDuringExecution`.
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    /// `podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution`.
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
}

impl PodAffinityTerms {
    /// Compiles a pod's terms; `None` without pod affinity or anti-affinity.
    pub fn of(pod: &Pod) -> Option<Arc<Self>> {
        let affinity = pod.spec.as_ref()?.affinity.as_ref()?;
        if affinity.pod_affinity.is_none() && affinity.pod_anti_affinity.is_none() {
            return None;
        }
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(pod, t))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|t| WeightedAffinityTerm {
                    term: AffinityTerm::new(pod, &t.pod_affinity_term),
                    weight: i64::from(t.weight),
                })
                .collect()
        };
        let pa = affinity.pod_affinity.as_ref();
        let paa = affinity.pod_anti_affinity.as_ref();
        Some(Arc::new(PodAffinityTerms {
            required_affinity: required(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
        }))
    }
}

impl PodInfo {
    /// Computes a pod's requests and ports.
    pub fn new(pod: Arc<Pod>) -> Self {
        let requests = resources::pod_requests(&pod);
        let non_zero = resources::pod_non_zero_requests(&pod);
        let host_ports = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".to_string()),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                port: p.host_port.unwrap_or(0),
            })
            .collect();
        let affinity = PodAffinityTerms::of(&pod);
        PodInfo {
            pod,
            requests,
            non_zero,
            host_ports,
            affinity,
        }
    }

    /// The pod's priority (`spec.priority`, 0 when unset).
    pub fn priority(&self) -> i32 {
        pod_priority(&self.pod)
    }

    /// The pod's `namespace/name`.
    pub fn key(&self) -> String {
        pod_key(&self.pod)
    }

    /// Whether the pod has required anti-affinity terms.
    pub fn has_required_anti_affinity(&self) -> bool {
        self.affinity
            .as_ref()
            .is_some_and(|a| !a.required_anti_affinity.is_empty())
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// A pod's priority (`spec.priority`, 0 when unset).
pub fn pod_priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// One node and the pods on it (bound or assumed), aggregated.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node; `None` while pods name a node the watch has not delivered yet.
    pub node: Option<Arc<Node>>,
    /// The node's allocatable resources.
    pub allocatable: Resources,
    /// Sum of the requests of the pods on it.
    pub requested: Resources,
    /// Sum of the scoring (non-zero) CPU and memory of the pods on it.
    pub non_zero_requested: (i64, i64),
    /// The pods on it, by key.
    pub pods: BTreeMap<String, PodInfo>,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// How many of its pods have pod affinity or anti-affinity (upstream's
    /// `PodsWithAffinity`), so InterPodAffinity skips nodes without any.
    pub pods_with_affinity: usize,
    /// How many of its pods have required anti-affinity (`PodsWithRequiredAntiAffinity`).
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    /// A node with no pods.
    pub fn new(node: Option<Arc<Node>>) -> Self {
        let mut info = NodeInfo {
            node: None,
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_requested: (0, 0),
            pods: BTreeMap::new(),
            used_ports: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        };
        if let Some(n) = node {
            info.set_node(n);
        }
        info
    }

    /// Replaces the node object, keeping the pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = Resources::from_list(
            node.status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref())),
        );
        self.node = Some(node);
    }

    /// The node's name ("" without a node).
    pub fn name(&self) -> &str {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref())
            .unwrap_or("")
    }

    /// The node's labels.
    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.as_ref().and_then(|n| n.metadata.labels.as_ref())
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        self.node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.taints.as_deref())
            .unwrap_or(&[])
    }

    /// Counts a pod on this node.
    pub fn add_pod(&mut self, pod: PodInfo) {
        if let Some(old) = self.pods.remove(&pod.key()) {
            self.uncount(&old);
        }
        self.requested.add(&pod.requests);
        self.non_zero_requested.0 += pod.non_zero.0;
        self.non_zero_requested.1 += pod.non_zero.1;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.affinity.is_some() {
            self.pods_with_affinity += 1;
        }
        if pod.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.insert(pod.key(), pod);
    }

    /// Stops counting a pod; returns whether it was there.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        match self.pods.remove(key) {
            Some(old) => {
                self.uncount(&old);
                true
            }
            None => false,
        }
    }

    fn uncount(&mut self, pod: &PodInfo) {
        self.requested.sub(&pod.requests);
        self.non_zero_requested.0 -= pod.non_zero.0;
        self.non_zero_requested.1 -= pod.non_zero.1;
        if pod.affinity.is_some() {
            self.pods_with_affinity -= 1;
        }
        if pod.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity -= 1;
        }
        for p in &pod.host_ports {
            if let Some(i) = self.used_ports.iter().position(|u| u == p) {
                self.used_ports.swap_remove(i);
            }
        }
    }
}

/// What a post-filter plugin (preemption) may look at: the profile's plugins, to re-run
/// pre-filter and filter in its dry run, and every node.
pub struct PostFilterContext<'a> {
    /// The profile's plugins, in order.
    pub plugins: &'a [Weighted],
    /// Every node, in the snapshot's order.
    pub nodes: &'a [&'a NodeInfo],
}

/// A post-filter's answer: the node the pod is nominated to, and the pods to evict there.
#[derive(Clone, Debug, PartialEq)]
pub struct Nomination {
    /// The node the pod waits for (`status.nominatedNodeName`).
    pub node: String,
    /// The lower-priority pods to delete to make room.
    pub victims: Vec<Arc<Pod>>,
}

/// What a post-filter did.
#[derive(Clone, Debug, PartialEq)]
pub enum PostFilterOutcome {
    /// It had nothing to say.
    Skip,
    /// It could not help; the message ends the FailedScheduling text
    /// (`preemption: 0/3 nodes are available: …`).
    Failed(String),
    /// The pod is nominated to a node once the victims are gone.
    Nominated(Nomination),
}

/// A scheduling plugin, at upstream's extension points. Each point has a default that lets
/// every node through with no opinion, so a plugin implements only the points it cares about.
/// One attempt runs: pre-filter (once) → filter (per node) → post-filter (only when no node
/// fits) → pre-score (once) → score and normalize → reserve; binding follows asynchronously
/// (`scheduler.rs`, upstream's DefaultBinder) and a failed binding unreserves.
pub trait Plugin: Send + Sync {
    /// The plugin's upstream name (`NodeResourcesFit`).
    fn name(&self) -> &'static str;

    /// Computes, once per attempt, what the plugin's filter needs from the whole cluster and
    /// keeps it in `state`. A non-success status rejects the pod on every node.
    fn pre_filter(&self, _state: &mut CycleState, _pod: &PodInfo, _nodes: &[&NodeInfo]) -> Status {
        Status::success()
    }

    /// Preemption's dry run is about to count `other` on `node`: update the pre-filter state.
    fn add_pod(&self, _state: &mut CycleState, _pod: &PodInfo, _other: &PodInfo, _node: &NodeInfo) {
    }

    /// Preemption's dry run stops counting `other` on `node`: update the pre-filter state.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _other: &PodInfo,
        _node: &NodeInfo,
    ) {
    }

    /// Whether the pod can run on the node.
    fn filter(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Status {
        Status::success()
    }

    /// Runs when no node fits: may find a node where evicting pods makes room.
    fn post_filter(
        &self,
        _ctx: &PostFilterContext<'_>,
        _state: &CycleState,
        _pod: &PodInfo,
        _statuses: &BTreeMap<String, Status>,
    ) -> PostFilterOutcome {
        PostFilterOutcome::Skip
    }

    /// Computes, once per attempt, what the plugin's score needs; `feasible` are the nodes
    /// that passed the filters, `all` every node.
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _feasible: &[&NodeInfo],
        _all: &[&NodeInfo],
    ) {
    }

    /// Whether this plugin scores nodes.
    fn scores(&self) -> bool {
        false
    }

    /// A raw score of a feasible node; [`Plugin::normalize`] maps raw scores to 0..=100.
    fn score(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> i64 {
        0
    }

    /// Maps the raw scores of all feasible nodes to 0..=100 (default: they already are).
    fn normalize(&self, _state: &CycleState, _scores: &mut [i64]) {}

    /// The pod was placed on `node` (assumed, binding not yet sent).
    fn reserve(&self, _state: &CycleState, _pod: &PodInfo, _node: &str) -> Status {
        Status::success()
    }

    /// Undoes [`Plugin::reserve`] when a later step of the attempt fails.
    fn unreserve(&self, _state: &CycleState, _pod: &PodInfo, _node: &str) {}
}

/// A plugin with its score weight.
pub struct Weighted {
    /// The plugin.
    pub plugin: Box<dyn Plugin>,
    /// What its normalized score is multiplied by.
    pub weight: i64,
}

/// Upstream's `DefaultNormalizeScore`: scales scores so the highest is `MAX_NODE_SCORE`;
/// `reverse` makes the lowest raw score the best.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for the plugins' data-driven tests.

    use super::*;
    use serde_json::{Value, json};

    /// A pod from the JSON of its spec.
    pub fn pod(spec: Value) -> PodInfo {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}),
        )
        .expect("pod");
        PodInfo::new(Arc::new(pod))
    }

    /// A pod with one container requesting `cpu` and `memory`.
    pub fn pod_requesting(name: &str, cpu: &str, memory: &str) -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
        }))
        .expect("pod");
        PodInfo::new(Arc::new(pod))
    }

    /// A node from the JSON of its metadata, spec and allocatable.
    pub fn node(name: &str, labels: Value, spec: Value, allocatable: Value) -> NodeInfo {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
            "status": {"allocatable": allocatable}
        }))
        .expect("node");
        NodeInfo::new(Some(Arc::new(node)))
    }

    /// A node named `name` with 4 CPUs, 8Gi and 110 pods, and nothing else.
    pub fn plain_node(name: &str) -> NodeInfo {
        node(
            name,
            json!({}),
            json!({}),
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
        )
    }
}
