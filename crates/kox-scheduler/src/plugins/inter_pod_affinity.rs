//! InterPodAffinity, as upstream's `interpodaffinity` plugin: the incoming pod's required
//! pod affinity and anti-affinity, and the required anti-affinity of the pods already placed
//! against it, filter nodes by topology domain (pre-filter counts matching pods per topology
//! key and value); preferred terms of both sides, and existing pods' required affinity terms
//! (weighted by `hardPodAffinityWeight`), score nodes.
//!
//! Pods without pod (anti-)affinity cost a scan of the nodes' precomputed counters
//! ([`NodeInfo::pods_with_required_anti_affinity`], [`NodeInfo::pods_with_affinity`]).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::cycle_state::CycleState;
use crate::framework::{
    AffinityTerm, NamespaceLabels, NodeInfo, Plugin, PodAffinityTerms, PodInfo, Status,
};

/// The pod's required affinity is not satisfied on the node.
pub const AFFINITY_NOT_MATCH: &str = "node(s) didn't match pod affinity rules";
/// The pod's required anti-affinity is not satisfied on the node.
pub const ANTI_AFFINITY_NOT_MATCH: &str = "node(s) didn't match pod anti-affinity rules";
/// An existing pod's required anti-affinity forbids the pod on the node.
pub const EXISTING_ANTI_AFFINITY_NOT_MATCH: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

const NAME: &str = "InterPodAffinity";
const PRE_SCORE_KEY: &str = "PreScoreInterPodAffinity";

/// The InterPodAffinity filter and score with its `InterPodAffinityArgs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterPodAffinity {
    /// What an existing pod's required affinity term adds to the score of the nodes in its
    /// domain when the incoming pod matches it (default 1, 0..=100).
    pub hard_pod_affinity_weight: i64,
    /// Skip existing pods' preferred terms when the incoming pod has none of its own.
    pub ignore_preferred_terms_of_existing_pods: bool,
}

impl Default for InterPodAffinity {
    fn default() -> Self {
        InterPodAffinity {
            hard_pod_affinity_weight: 1,
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

impl InterPodAffinity {
    /// From `InterPodAffinityArgs`.
    pub fn from_args(args: Option<&Value>) -> Result<Self> {
        let mut p = InterPodAffinity::default();
        if let Some(v) = args.and_then(|a| a.get("hardPodAffinityWeight")) {
            let Some(w) = v.as_i64().filter(|w| (0..=100).contains(w)) else {
                bail!(
                    "InterPodAffinity: hardPodAffinityWeight: Invalid value: {v}: not in valid range [0, 100]"
                );
            };
            p.hard_pod_affinity_weight = w;
        }
        if let Some(v) = args
            .and_then(|a| a.get("ignorePreferredTermsOfExistingPods"))
            .and_then(Value::as_bool)
        {
            p.ignore_preferred_terms_of_existing_pods = v;
        }
        Ok(p)
    }
}

/// How many matching pods each topology domain holds: by node label key, then value.
#[derive(Clone, Debug, Default)]
struct Counts(HashMap<String, HashMap<String, i64>>);

impl Counts {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|m| m.get(value))
            .copied()
            .unwrap_or(0)
    }

    /// Adds `by` to the domain of `node` for `key` (nothing when the node lacks the key);
    /// domains that drop to 0 are forgotten.
    fn bump(&mut self, node: &NodeInfo, key: &str, by: i64) {
        let Some(value) = node.labels().and_then(|l| l.get(key)) else {
            return;
        };
        if !self.0.contains_key(key) {
            self.0.insert(key.to_string(), HashMap::new());
        }
        let values = self.0.get_mut(key).expect("just inserted");
        let n = match values.get_mut(value.as_str()) {
            Some(n) => n,
            None => values.entry(value.clone()).or_default(),
        };
        *n += by;
        if *n == 0 {
            values.remove(value.as_str());
            if values.is_empty() {
                self.0.remove(key);
            }
        }
    }
}

/// What pre-filter computes (upstream's `preFilterState`).
#[derive(Clone)]
struct PreFilterState {
    /// Domains holding existing pods whose required anti-affinity matches the incoming pod.
    existing_anti_affinity: Counts,
    /// Domains holding pods matching all of the incoming pod's required affinity terms.
    affinity: Counts,
    /// Domains holding pods matching one of its required anti-affinity terms.
    anti_affinity: Counts,
    /// The incoming pod's terms.
    terms: Arc<PodAffinityTerms>,
    /// The incoming pod.
    pod: Arc<Pod>,
    /// Namespace labels, for namespace selectors.
    namespaces: NamespaceLabels,
}

fn matches_all(terms: &[AffinityTerm], pod: &Pod, ns: &NamespaceLabels) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, ns))
}

impl PreFilterState {
    /// Counts (by `by` = ±1) a pod on `node`: upstream's `updateWithPod`.
    fn update(&mut self, other: &PodInfo, node: &NodeInfo, by: i64) {
        if let Some(o) = &other.affinity {
            for t in &o.required_anti_affinity {
                if t.matches(&self.pod, &self.namespaces) {
                    self.existing_anti_affinity.bump(node, &t.topology_key, by);
                }
            }
        }
        if matches_all(&self.terms.required_affinity, &other.pod, &self.namespaces) {
            for t in &self.terms.required_affinity {
                self.affinity.bump(node, &t.topology_key, by);
            }
        }
        for t in &self.terms.required_anti_affinity {
            if t.matches(&other.pod, &self.namespaces) {
                self.anti_affinity.bump(node, &t.topology_key, by);
            }
        }
    }

    fn satisfies_affinity(&self, node: &NodeInfo) -> bool {
        let mut pods_exist = true;
        for t in &self.terms.required_affinity {
            match node.labels().and_then(|l| l.get(&t.topology_key)) {
                Some(v) => {
                    if self.affinity.get(&t.topology_key, v) <= 0 {
                        pods_exist = false;
                    }
                }
                // Every topology key must be on the node.
                None => return false,
            }
        }
        // The first pod of a group with affinity to itself: no pod anywhere matches, but the
        // pod matches its own terms, so it may go to any node with the topology labels.
        pods_exist
            || (self.affinity.is_empty()
                && matches_all(&self.terms.required_affinity, &self.pod, &self.namespaces))
    }

    fn satisfies_anti_affinity(&self, node: &NodeInfo) -> bool {
        if self.anti_affinity.is_empty() {
            return true;
        }
        !self.terms.required_anti_affinity.iter().any(|t| {
            node.labels()
                .and_then(|l| l.get(&t.topology_key))
                .is_some_and(|v| self.anti_affinity.get(&t.topology_key, v) > 0)
        })
    }

    fn satisfies_existing_anti_affinity(&self, node: &NodeInfo) -> bool {
        if self.existing_anti_affinity.is_empty() {
            return true;
        }
        !node
            .labels()
            .into_iter()
            .flatten()
            .any(|(k, v)| self.existing_anti_affinity.get(k, v) > 0)
    }
}

/// Scores by topology key, then value (upstream's `scoreMap`).
#[derive(Clone, Default)]
struct PreScoreState {
    topology_score: HashMap<String, HashMap<String, i64>>,
}

impl PreScoreState {
    fn add(
        &mut self,
        term: &AffinityTerm,
        weight: i64,
        pod: &Pod,
        node: &NodeInfo,
        ns: &NamespaceLabels,
    ) {
        if term.matches(pod, ns)
            && let Some(v) = node.labels().and_then(|l| l.get(&term.topology_key))
        {
            *self
                .topology_score
                .entry(term.topology_key.clone())
                .or_default()
                .entry(v.clone())
                .or_default() += weight;
        }
    }
}

/// Upstream's queueing hint for a pod newly placed on a node: it may let an unschedulable
/// pod fit only if it matches one of that pod's required affinity terms.
pub fn placed_pod_may_help(waiting: &Pod, placed: &Pod, namespaces: &NamespaceLabels) -> bool {
    PodAffinityTerms::of(waiting).is_some_and(|t| {
        t.required_affinity
            .iter()
            .any(|term| term.matches(placed, namespaces))
    })
}

static NO_TERMS: std::sync::LazyLock<Arc<PodAffinityTerms>> =
    std::sync::LazyLock::new(|| Arc::new(PodAffinityTerms::default()));

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[&NodeInfo]) -> Status {
        let terms = pod.affinity.clone().unwrap_or_else(|| NO_TERMS.clone());
        let mut s = PreFilterState {
            existing_anti_affinity: Counts::default(),
            affinity: Counts::default(),
            anti_affinity: Counts::default(),
            terms,
            pod: pod.pod.clone(),
            namespaces: NamespaceLabels::of(state),
        };
        let incoming =
            !s.terms.required_affinity.is_empty() || !s.terms.required_anti_affinity.is_empty();
        for node in nodes {
            if node.pods_with_required_anti_affinity > 0 {
                for other in node.pods.values() {
                    let Some(o) = &other.affinity else { continue };
                    for t in &o.required_anti_affinity {
                        if t.matches(&pod.pod, &s.namespaces) {
                            s.existing_anti_affinity.bump(node, &t.topology_key, 1);
                        }
                    }
                }
            }
            if incoming {
                for other in node.pods.values() {
                    if matches_all(&s.terms.required_affinity, &other.pod, &s.namespaces) {
                        for t in &s.terms.required_affinity {
                            s.affinity.bump(node, &t.topology_key, 1);
                        }
                    }
                    for t in &s.terms.required_anti_affinity {
                        if t.matches(&other.pod, &s.namespaces) {
                            s.anti_affinity.bump(node, &t.topology_key, 1);
                        }
                    }
                }
            }
        }
        // Upstream's Skip: nothing for the filter to check.
        if s.existing_anti_affinity.is_empty() && !incoming {
            return Status::success();
        }
        state.write(NAME, s);
        Status::success()
    }

    fn add_pod(&self, state: &mut CycleState, _pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.read_mut::<PreFilterState>(NAME) {
            s.update(other, node, 1);
        }
    }

    fn remove_pod(&self, state: &mut CycleState, _pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.read_mut::<PreFilterState>(NAME) {
            s.update(other, node, -1);
        }
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(NAME) else {
            return Status::success();
        };
        if !s.satisfies_affinity(node) {
            return Status::unresolvable(AFFINITY_NOT_MATCH);
        }
        if !s.satisfies_anti_affinity(node) {
            return Status::unschedulable(vec![ANTI_AFFINITY_NOT_MATCH.into()]);
        }
        if !s.satisfies_existing_anti_affinity(node) {
            return Status::unschedulable(vec![EXISTING_ANTI_AFFINITY_NOT_MATCH.into()]);
        }
        Status::success()
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        feasible: &[&NodeInfo],
        all: &[&NodeInfo],
    ) {
        if feasible.is_empty() {
            return;
        }
        let terms = pod.affinity.clone().unwrap_or_else(|| NO_TERMS.clone());
        let has_constraints =
            !terms.preferred_affinity.is_empty() || !terms.preferred_anti_affinity.is_empty();
        if self.ignore_preferred_terms_of_existing_pods && !has_constraints {
            return;
        }
        let ns = NamespaceLabels::of(state);
        let mut s = PreScoreState::default();
        for node in all {
            // Unless the pod has preferred terms, only pods with affinity matter.
            if !has_constraints && node.pods_with_affinity == 0 {
                continue;
            }
            if node.labels().is_none_or(|l| l.is_empty()) {
                continue;
            }
            for other in node.pods.values() {
                if !has_constraints && other.affinity.is_none() {
                    continue;
                }
                for w in &terms.preferred_affinity {
                    s.add(&w.term, w.weight, &other.pod, node, &ns);
                }
                for w in &terms.preferred_anti_affinity {
                    s.add(&w.term, -w.weight, &other.pod, node, &ns);
                }
                let Some(o) = &other.affinity else { continue };
                if self.hard_pod_affinity_weight > 0 {
                    for t in &o.required_affinity {
                        s.add(t, self.hard_pod_affinity_weight, &pod.pod, node, &ns);
                    }
                }
                for w in &o.preferred_affinity {
                    s.add(&w.term, w.weight, &pod.pod, node, &ns);
                }
                for w in &o.preferred_anti_affinity {
                    s.add(&w.term, -w.weight, &pod.pod, node, &ns);
                }
            }
        }
        if !s.topology_score.is_empty() {
            state.write(PRE_SCORE_KEY, s);
        }
    }

    fn scores(&self) -> bool {
        true
    }

    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return 0;
        };
        let Some(labels) = node.labels() else {
            return 0;
        };
        s.topology_score
            .iter()
            .filter_map(|(k, values)| labels.get(k).and_then(|v| values.get(v)))
            .sum()
    }

    fn normalize(&self, state: &CycleState, scores: &mut [i64]) {
        if state.read::<PreScoreState>(PRE_SCORE_KEY).is_none() {
            return;
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                (100.0 * ((*s - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::framework::testing::node;
    use serde_json::json;

    fn pod_with(name: &str, ns: &str, labels: Value, affinity: Value) -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [], "affinity": affinity}
        }))
        .expect("pod");
        PodInfo::new(Arc::new(pod))
    }

    fn zone_node(name: &str, zone: &str) -> NodeInfo {
        node(
            name,
            json!({"kubernetes.io/hostname": name, "zone": zone}),
            json!({}),
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
        )
    }

    fn term(labels: Value, key: &str) -> Value {
        json!({"labelSelector": {"matchLabels": labels}, "topologyKey": key})
    }

    /// Runs pre-filter and filter on every node: `name -> status`.
    fn filter_all(p: &InterPodAffinity, pod: &PodInfo, nodes: &[NodeInfo]) -> Vec<Status> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::default();
        assert!(p.pre_filter(&mut state, pod, &refs).is_success());
        nodes.iter().map(|n| p.filter(&state, pod, n)).collect()
    }

    fn feasible(pod: &PodInfo, nodes: &[NodeInfo]) -> Vec<String> {
        filter_all(&InterPodAffinity::default(), pod, nodes)
            .iter()
            .zip(nodes)
            .filter(|(s, _)| s.is_success())
            .map(|(_, n)| n.name().to_string())
            .collect()
    }

    /// Nodes a, b in zone 1, c in zone 2, d without labels; `placed` puts pods on them.
    fn cluster(placed: &[(&str, PodInfo)]) -> Vec<NodeInfo> {
        let mut nodes = vec![
            zone_node("a", "z1"),
            zone_node("b", "z1"),
            zone_node("c", "z2"),
            node("d", json!({}), json!({}), json!({"cpu": "4"})),
        ];
        for (at, pod) in placed {
            nodes
                .iter_mut()
                .find(|n| n.name() == *at)
                .expect("node")
                .add_pod(pod.clone());
        }
        nodes
    }

    #[test]
    fn required_affinity_and_anti_affinity_filter_by_domain() {
        let db = pod_with("db", "default", json!({"app": "db"}), json!(null));
        let other_ns_db = pod_with("db", "other", json!({"app": "db"}), json!(null));
        let affinity = |key: &str| json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "db"}), key)]}});
        let anti = |key: &str| json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "db"}), key)]}});
        let web = |aff: Value| pod_with("web", "default", json!({"app": "web"}), aff);
        for (placed, aff, want) in [
            // Affinity to db by zone: every node of db's zone; none without the key.
            (vec![("a", db.clone())], affinity("zone"), vec!["a", "b"]),
            (
                vec![("a", db.clone())],
                affinity("kubernetes.io/hostname"),
                vec!["a"],
            ),
            // No db anywhere and web does not match its own term: nowhere.
            (vec![], affinity("zone"), vec![]),
            // db in another namespace does not count.
            (vec![("c", other_ns_db.clone())], affinity("zone"), vec![]),
            // Anti-affinity: not in db's domain; nodes without the key are fine.
            (vec![("a", db.clone())], anti("zone"), vec!["c", "d"]),
            (
                vec![("a", db.clone())],
                anti("kubernetes.io/hostname"),
                vec!["b", "c", "d"],
            ),
            (vec![], anti("zone"), vec!["a", "b", "c", "d"]),
        ] {
            let got = feasible(&web(aff.clone()), &cluster(&placed));
            assert_eq!(got, want, "{aff}");
        }
    }

    #[test]
    fn the_first_pod_of_a_self_affine_group_goes_anywhere_with_the_topology_key() {
        let aff = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "web"}), "zone")]}});
        let first = pod_with("w0", "default", json!({"app": "web"}), aff.clone());
        assert_eq!(feasible(&first, &cluster(&[])), ["a", "b", "c"]);
        // Once one is placed, the rest follow it into its zone.
        let second = pod_with("w1", "default", json!({"app": "web"}), aff);
        assert_eq!(feasible(&second, &cluster(&[("c", first)])), ["c"]);
    }

    #[test]
    fn existing_pods_anti_affinity_keeps_matching_pods_out() {
        let lonely = pod_with(
            "lonely",
            "default",
            json!({"app": "lonely"}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "web"}), "zone")]}}),
        );
        let web = pod_with("web", "default", json!({"app": "web"}), json!(null));
        let statuses = filter_all(
            &InterPodAffinity::default(),
            &web,
            &cluster(&[("b", lonely.clone())]),
        );
        let reasons: Vec<_> = statuses
            .iter()
            .map(|s| (s.code, s.reasons.join("")))
            .collect();
        let existing = (
            Code::Unschedulable,
            EXISTING_ANTI_AFFINITY_NOT_MATCH.to_string(),
        );
        assert_eq!(
            reasons,
            [
                existing.clone(),
                existing,
                (Code::Success, String::new()),
                (Code::Success, String::new())
            ]
        );
        // A pod it does not select is not affected.
        let api = pod_with("api", "default", json!({"app": "api"}), json!(null));
        assert_eq!(
            feasible(&api, &cluster(&[("b", lonely)])),
            ["a", "b", "c", "d"]
        );
    }

    #[test]
    fn reasons_and_codes_are_upstreams() {
        let db = pod_with("db", "default", json!({"app": "db"}), json!(null));
        let web = pod_with(
            "web",
            "default",
            json!({"app": "web"}),
            json!({
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "db"}), "zone")]},
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "db"}), "kubernetes.io/hostname")]}
            }),
        );
        let st = filter_all(&InterPodAffinity::default(), &web, &cluster(&[("a", db)]));
        assert_eq!(
            st[0],
            Status::unschedulable(vec![ANTI_AFFINITY_NOT_MATCH.into()])
        );
        assert!(st[1].is_success());
        assert_eq!(st[2], Status::unresolvable(AFFINITY_NOT_MATCH));
        assert_eq!(st[3], Status::unresolvable(AFFINITY_NOT_MATCH));
    }

    #[test]
    fn namespaces_namespace_selectors_and_match_label_keys() {
        let db_other = pod_with("db", "other", json!({"app": "db", "v": "1"}), json!(null));
        let anti = |t: Value| {
            pod_with(
                "web",
                "default",
                json!({"app": "web", "v": "2"}),
                json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}),
            )
        };
        let sel = json!({"matchLabels": {"app": "db"}});
        for (t, want) in [
            // Own namespace only by default.
            (
                json!({"labelSelector": sel, "topologyKey": "zone"}),
                vec!["a", "b", "c", "d"],
            ),
            (
                json!({"labelSelector": sel, "topologyKey": "zone", "namespaces": ["other"]}),
                vec!["c", "d"],
            ),
            // `{}` selects every namespace; by name label too.
            (
                json!({"labelSelector": sel, "topologyKey": "zone", "namespaceSelector": {}}),
                vec!["c", "d"],
            ),
            (
                json!({"labelSelector": sel, "topologyKey": "zone",
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}),
                vec!["c", "d"],
            ),
            (
                json!({"labelSelector": sel, "topologyKey": "zone",
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}}}),
                vec!["a", "b", "c", "d"],
            ),
            // matchLabelKeys pins web's own v=2, which db (v=1) lacks; mismatch excludes it.
            (
                json!({"labelSelector": sel, "topologyKey": "zone", "namespaceSelector": {},
                    "matchLabelKeys": ["v"]}),
                vec!["a", "b", "c", "d"],
            ),
            (
                json!({"labelSelector": sel, "topologyKey": "zone", "namespaceSelector": {},
                    "mismatchLabelKeys": ["v"]}),
                vec!["c", "d"],
            ),
            // A nil label selector selects nothing.
            (
                json!({"topologyKey": "zone", "namespaceSelector": {}}),
                vec!["a", "b", "c", "d"],
            ),
        ] {
            assert_eq!(
                feasible(&anti(t.clone()), &cluster(&[("a", db_other.clone())])),
                want,
                "{t}"
            );
        }
    }

    #[test]
    fn namespace_selectors_see_the_namespaces_labels() {
        let db_other = pod_with("db", "other", json!({"app": "db"}), json!(null));
        let web = pod_with(
            "web",
            "default",
            json!({"app": "web"}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone",
                 "namespaceSelector": {"matchLabels": {"team": "data"}}}]}}),
        );
        let nodes = cluster(&[("a", db_other)]);
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let p = InterPodAffinity::default();
        let run = |team: &str| {
            let mut state = CycleState::default();
            let labels = HashMap::from([(
                "other".to_string(),
                std::collections::BTreeMap::from([("team".to_string(), team.to_string())]),
            )]);
            state.write(NamespaceLabels::KEY, NamespaceLabels(Arc::new(labels)));
            assert!(p.pre_filter(&mut state, &web, &refs).is_success());
            nodes
                .iter()
                .filter(|n| p.filter(&state, &web, n).is_success())
                .map(|n| n.name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(run("data"), ["c", "d"]);
        assert_eq!(run("web"), ["a", "b", "c", "d"]);
    }

    #[test]
    fn preemption_dry_run_updates_the_counts() {
        // The victim on a has anti-affinity against web; removing it frees a's zone.
        let victim = pod_with(
            "victim",
            "default",
            json!({"app": "v"}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "web"}), "zone")]}}),
        );
        let db = pod_with("db", "default", json!({"app": "db"}), json!(null));
        let web = pod_with(
            "web",
            "default",
            json!({"app": "web"}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "db"}), "zone")]}}),
        );
        let p = InterPodAffinity::default();
        let nodes = cluster(&[("a", victim.clone()), ("c", db.clone())]);
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::default();
        assert!(p.pre_filter(&mut state, &web, &refs).is_success());
        assert_eq!(
            p.filter(&state, &web, &nodes[1]),
            Status::unschedulable(vec![EXISTING_ANTI_AFFINITY_NOT_MATCH.into()])
        );
        let mut dry = state.clone();
        p.remove_pod(&mut dry, &web, &victim, &nodes[0]);
        assert!(p.filter(&dry, &web, &nodes[1]).is_success());
        // The original state is untouched.
        assert!(!p.filter(&state, &web, &nodes[1]).is_success());
        // Removing db from zone 2 lets web there; adding it back forbids it again.
        assert_eq!(
            p.filter(&dry, &web, &nodes[2]),
            Status::unschedulable(vec![ANTI_AFFINITY_NOT_MATCH.into()])
        );
        p.remove_pod(&mut dry, &web, &db, &nodes[2]);
        assert!(p.filter(&dry, &web, &nodes[2]).is_success());
        p.add_pod(&mut dry, &web, &db, &nodes[2]);
        assert!(!p.filter(&dry, &web, &nodes[2]).is_success());
    }

    #[test]
    fn only_a_placed_pod_matching_required_affinity_wakes_a_waiting_pod() {
        let waiting = pod_with(
            "web",
            "default",
            json!({"app": "web"}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "db"}), "zone")]},
                   "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "x"}), "zone")]}}),
        );
        let ns = NamespaceLabels::default();
        let placed = |labels: Value, ns_name: &str| pod_with("p", ns_name, labels, json!(null)).pod;
        assert!(placed_pod_may_help(
            &waiting.pod,
            &placed(json!({"app": "db"}), "default"),
            &ns
        ));
        assert!(!placed_pod_may_help(
            &waiting.pod,
            &placed(json!({"app": "db"}), "other"),
            &ns
        ));
        assert!(!placed_pod_may_help(
            &waiting.pod,
            &placed(json!({"app": "x"}), "default"),
            &ns
        ));
        let plain = pod_with("q", "default", json!({}), json!(null));
        assert!(!placed_pod_may_help(
            &plain.pod,
            &placed(json!({"app": "db"}), "default"),
            &ns
        ));
    }

    #[test]
    fn pods_without_affinity_keep_no_state() {
        let web = pod_with("web", "default", json!({"app": "web"}), json!(null));
        let nodes = cluster(&[("a", web.clone())]);
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::default();
        assert!(
            InterPodAffinity::default()
                .pre_filter(&mut state, &web, &refs)
                .is_success()
        );
        assert!(state.read::<PreFilterState>(NAME).is_none());
    }

    fn scores(p: &InterPodAffinity, pod: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::default();
        p.pre_score(&mut state, pod, &refs, &refs);
        let mut s: Vec<i64> = nodes.iter().map(|n| p.score(&state, pod, n)).collect();
        p.normalize(&state, &mut s);
        s
    }

    #[test]
    fn preferred_terms_of_both_sides_and_hard_affinity_score() {
        let db = pod_with("db", "default", json!({"app": "db"}), json!(null));
        let cache = pod_with("cache", "default", json!({"app": "cache"}), json!(null));
        let pref = |kind: &str, labels: Value, w: i64, key: &str| {
            json!({kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": w, "podAffinityTerm": term(labels, key)}]}})
        };
        // Prefer db's zone (z1: a, b); raw 5 / 5 / 0 / 0.
        let web = pod_with(
            "web",
            "default",
            json!({"app": "web"}),
            pref("podAffinity", json!({"app": "db"}), 5, "zone"),
        );
        let p = InterPodAffinity::default();
        assert_eq!(
            scores(&p, &web, &cluster(&[("a", db.clone())])),
            [100, 100, 0, 0]
        );
        // Avoid cache's host (c): min-max puts c at 0, the rest at 100.
        let web = pod_with(
            "web",
            "default",
            json!({"app": "web"}),
            pref(
                "podAntiAffinity",
                json!({"app": "cache"}),
                10,
                "kubernetes.io/hostname",
            ),
        );
        assert_eq!(
            scores(&p, &web, &cluster(&[("c", cache.clone())])),
            [100, 100, 0, 100]
        );
        // An existing pod that prefers web in its zone attracts it; one whose required
        // affinity web matches adds hardPodAffinityWeight.
        let fan = pod_with(
            "fan",
            "default",
            json!({"app": "fan"}),
            pref("podAffinity", json!({"app": "web"}), 4, "zone"),
        );
        let needy = pod_with(
            "needy",
            "default",
            json!({"app": "needy"}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "web"}), "kubernetes.io/hostname")]}}),
        );
        let plain = pod_with("web", "default", json!({"app": "web"}), json!(null));
        let nodes = cluster(&[("a", fan), ("c", needy)]);
        // Raw: a 4, b 4, c 1 (hard weight 1), d 0 → 100, 100, 25, 0.
        assert_eq!(scores(&p, &plain, &nodes), [100, 100, 25, 0]);
        let heavy =
            InterPodAffinity::from_args(Some(&json!({"hardPodAffinityWeight": 8}))).expect("args");
        // Raw: 4, 4, 8, 0.
        assert_eq!(scores(&heavy, &plain, &nodes), [50, 50, 100, 0]);
        let ignoring =
            InterPodAffinity::from_args(Some(&json!({"ignorePreferredTermsOfExistingPods": true})))
                .expect("args");
        assert_eq!(scores(&ignoring, &plain, &nodes), [0, 0, 0, 0]);
        assert_eq!(
            InterPodAffinity::from_args(Some(&json!({"hardPodAffinityWeight": 101})))
                .expect_err("out of range")
                .to_string(),
            "InterPodAffinity: hardPodAffinityWeight: Invalid value: 101: not in valid range [0, 100]"
        );
    }
}
