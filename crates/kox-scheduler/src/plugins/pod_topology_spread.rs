//! PodTopologySpread, as upstream's `podtopologyspread` plugin: a pod's
//! `topologySpreadConstraints` with `whenUnsatisfiable: DoNotSchedule` filter nodes (the
//! matching pods of a domain plus this one may exceed the emptiest eligible domain by at most
//! `maxSkew`; fewer domains than `minDomains` count the minimum as 0), those with
//! `ScheduleAnyway` score nodes (fewer matching pods in the node's domains score higher).
//! `nodeAffinityPolicy` / `nodeTaintsPolicy` decide which nodes' domains count, and
//! `matchLabelKeys` narrow the selector to the pod's own label values.
//!
//! Pods without constraints of their own get the profile's default constraints (upstream's
//! `defaultingType: System`: hostname maxSkew 3 and zone maxSkew 5, both `ScheduleAnyway`),
//! selecting the pods the same Services and controlling ReplicationController, ReplicaSet or
//! StatefulSet select (upstream's `DefaultSelector`, from the cache's [`crate::framework::Workloads`]); pods that
//! nothing selects get none.
//! Pods without constraints cost nothing here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};

use kox_api::label_selector::{Operator, Requirement, Selector};
use serde_json::Value;

use crate::cycle_state::CycleState;
use crate::framework::{
    MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, SharedWorkloads, Status, labels_of,
};
use crate::plugins::node_affinity::required_matches;
use kox_api::taints::tolerates;

/// A node's domain would be too full.
pub const CONSTRAINTS_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
/// A node lacks a constraint's topology key.
pub const NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const NAME: &str = "PodTopologySpread";
const PRE_SCORE_KEY: &str = "PreScorePodTopologySpread";
const HOSTNAME: &str = "kubernetes.io/hostname";

/// The PodTopologySpread filter and score with its `PodTopologySpreadArgs`.
#[derive(Clone, Debug, PartialEq)]
pub struct PodTopologySpread {
    /// Constraints for pods without their own (`defaultConstraints`, or the system ones).
    pub defaults: Vec<TopologySpreadConstraint>,
    /// Whether the defaults are upstream's system defaults (`defaultingType: System`): then
    /// nodes missing a zone label still score by hostname spreading.
    pub system_defaulted: bool,
}

/// Upstream's `systemDefaultConstraints`.
fn system_defaults() -> Vec<TopologySpreadConstraint> {
    [(HOSTNAME, 3), ("topology.kubernetes.io/zone", 5)]
        .into_iter()
        .map(|(key, skew)| TopologySpreadConstraint {
            max_skew: skew,
            topology_key: key.to_string(),
            when_unsatisfiable: "ScheduleAnyway".to_string(),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}

impl Default for PodTopologySpread {
    fn default() -> Self {
        PodTopologySpread {
            defaults: system_defaults(),
            system_defaulted: true,
        }
    }
}

impl PodTopologySpread {
    /// From `PodTopologySpreadArgs`: `defaultingType` `System` (the default) or `List` with
    /// `defaultConstraints` (which may not have a label selector).
    pub fn from_args(args: Option<&Value>) -> Result<Self> {
        let defaulting = args
            .and_then(|a| a.get("defaultingType"))
            .and_then(Value::as_str)
            .unwrap_or("System");
        let defaults: Vec<TopologySpreadConstraint> = match args
            .and_then(|a| a.get("defaultConstraints"))
            .filter(|v| !v.is_null())
        {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| anyhow::anyhow!("PodTopologySpread: defaultConstraints: {e}"))?,
            None => Vec::new(),
        };
        for (i, c) in defaults.iter().enumerate() {
            if c.label_selector.is_some() {
                bail!(
                    "PodTopologySpread: defaultConstraints[{i}].labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"
                );
            }
            if c.max_skew <= 0 {
                bail!(
                    "PodTopologySpread: defaultConstraints[{i}].maxSkew: Invalid value: {}: must be greater than zero",
                    c.max_skew
                );
            }
        }
        match defaulting {
            "List" => Ok(PodTopologySpread {
                defaults,
                system_defaulted: false,
            }),
            "System" if !defaults.is_empty() => bail!(
                "PodTopologySpread: defaultConstraints: Invalid value: \"...\": should be empty for \"System\" defaulting type"
            ),
            "System" => Ok(PodTopologySpread::default()),
            other => bail!(
                "PodTopologySpread: defaultingType: Unsupported value: \"{other}\": supported values: \"List\", \"System\""
            ),
        }
    }

    /// The constraints with `whenUnsatisfiable: action` that apply to the pod: its own, or
    /// the defaults with the selector its Services and controller give it (none when that
    /// selector is empty).
    fn constraints_for(&self, pod: &Pod, action: &str, state: &CycleState) -> Vec<Constraint> {
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or(&[]);
        if !own.is_empty() {
            return compile(own, pod, action);
        }
        if !self.defaults.iter().any(|c| c.when_unsatisfiable == action) {
            return Vec::new();
        }
        let workloads = SharedWorkloads::of(state);
        let selector = workloads.0.default_selector(pod);
        if selector.is_empty() {
            return Vec::new();
        }
        let mut cs = compile(&self.defaults, pod, action);
        for c in &mut cs {
            c.selector = selector.clone();
        }
        cs
    }

    /// Whether scoring ignores nodes missing a topology key (always, except for the system
    /// defaults, so nodes without zones still spread by hostname).
    fn require_all_topologies(&self, pod: &Pod) -> bool {
        !self.system_defaulted
            || pod
                .spec
                .as_ref()
                .and_then(|s| s.topology_spread_constraints.as_ref())
                .is_some_and(|c| !c.is_empty())
    }
}

/// One constraint, compiled (upstream's `topologySpreadConstraint`).
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: Selector,
    min_domains: i64,
    honor_node_affinity: bool,
    honor_node_taints: bool,
}

impl Constraint {
    /// Whether the node's domain counts for this constraint (upstream's
    /// `matchNodeInclusionPolicies`): by default nodes the pod's node affinity excludes do
    /// not, tainted nodes do.
    fn includes(&self, pod: &Pod, node: &NodeInfo) -> bool {
        if self.honor_node_affinity && !required_matches(pod, node) {
            return false;
        }
        if self.honor_node_taints {
            let tols = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or(&[]);
            let untolerated = node.taints().iter().any(|taint| {
                (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
                    && !tols.iter().any(|t| tolerates(t, taint))
            });
            if untolerated {
                return false;
            }
        }
        true
    }
}

/// Upstream's queueing hint for a pod newly placed on a node: it may let an unschedulable
/// pod fit only if it is in that pod's namespace and one of its `DoNotSchedule` constraints
/// selects it (a domain's count rises, and with it perhaps the minimum).
pub fn placed_pod_may_help(waiting: &Pod, placed: &Pod) -> bool {
    let Some(own) = waiting
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .filter(|c| !c.is_empty())
    else {
        return false;
    };
    waiting.metadata.namespace == placed.metadata.namespace
        && compile(own, waiting, "DoNotSchedule")
            .iter()
            .any(|c| c.selector.matches(labels_of(placed)))
}

/// Compiles the constraints with `whenUnsatisfiable: action`; `matchLabelKeys` take the
/// pod's own values.
fn compile(list: &[TopologySpreadConstraint], pod: &Pod, action: &str) -> Vec<Constraint> {
    let labels = labels_of(pod);
    list.iter()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c: &TopologySpreadConstraint| {
            let mut selector = Selector::from_label_selector(c.label_selector.as_ref())
                .unwrap_or_else(|_| Selector::nothing());
            for key in c.match_label_keys.iter().flatten() {
                if let Some(v) = labels.get(key)
                    && let Ok(r) = Requirement::new(key, Operator::In, vec![v.clone()])
                {
                    selector = selector.with_requirement(r);
                }
            }
            Constraint {
                max_skew: i64::from(c.max_skew),
                topology_key: c.topology_key.clone(),
                selector,
                min_domains: i64::from(c.min_domains.unwrap_or(1)),
                honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    let Some(labels) = node.labels() else {
        return constraints.is_empty();
    };
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// Pods on the node in `ns` the selector matches, terminating ones aside (upstream's
/// `countPodsMatchSelector`; an empty selector counts nothing).
fn count_matching(node: &NodeInfo, selector: &Selector, ns: &str) -> i64 {
    if selector.is_empty() {
        return 0;
    }
    node.pods
        .values()
        .filter(|p| {
            p.pod.metadata.deletion_timestamp.is_none()
                && p.namespace() == ns
                && selector.matches(labels_of(&p.pod))
        })
        .count() as i64
}

/// The two emptiest domains of a constraint (upstream's `criticalPaths`).
#[derive(Clone, Debug)]
struct CriticalPaths([(String, i64); 2]);

impl CriticalPaths {
    fn new() -> Self {
        CriticalPaths([
            (String::new(), i64::from(i32::MAX)),
            (String::new(), i64::from(i32::MAX)),
        ])
    }

    fn update(&mut self, value: &str, num: i64) {
        let p = &mut self.0;
        let i = if p[0].0 == value {
            Some(0)
        } else if p[1].0 == value {
            Some(1)
        } else {
            None
        };
        match i {
            Some(i) => {
                p[i].1 = num;
                if p[0].1 > p[1].1 {
                    p.swap(0, 1);
                }
            }
            None if num < p[0].1 => {
                p[1] = p[0].clone();
                p[0] = (value.to_string(), num);
            }
            None if num < p[1].1 => p[1] = (value.to_string(), num),
            None => {}
        }
    }
}

/// What pre-filter computes (upstream's `preFilterState`).
#[derive(Clone)]
struct PreFilterState {
    constraints: Arc<Vec<Constraint>>,
    /// Per constraint: matching pods per domain (every eligible domain, even with 0).
    counts: Vec<HashMap<String, i64>>,
    critical: Vec<CriticalPaths>,
    pod: Arc<Pod>,
}

impl PreFilterState {
    fn update(&mut self, other: &PodInfo, node: &NodeInfo, by: i64) {
        if other.namespace() != self.pod.metadata.namespace.as_deref().unwrap_or("default")
            || node.node.is_none()
            || !has_all_keys(node, &self.constraints)
        {
            return;
        }
        let labels = labels_of(&other.pod);
        for (i, c) in self.constraints.iter().enumerate() {
            if !c.selector.matches(labels) || !c.includes(&self.pod, node) {
                continue;
            }
            let Some(v) = node.labels().and_then(|l| l.get(&c.topology_key)) else {
                continue;
            };
            let n = self.counts[i].entry(v.clone()).or_default();
            *n += by;
            let n = *n;
            self.critical[i].update(v, n);
        }
    }

    fn min_match(&self, i: usize) -> i64 {
        if (self.counts[i].len() as i64) < self.constraints[i].min_domains {
            0
        } else {
            self.critical[i].0[0].1
        }
    }
}

/// What pre-score computes (upstream's `preScoreState`).
#[derive(Clone)]
struct PreScoreState {
    constraints: Vec<Constraint>,
    /// Feasible nodes missing a topology key; they score 0.
    ignored: HashSet<String>,
    /// Per constraint (hostname ones aside): matching pods per domain of a feasible node.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: `ln(domains + 2)`, so small domains are not drowned by big ones.
    weights: Vec<f64>,
    namespace: String,
}

/// Marks an ignored node's raw score for [`PodTopologySpread::normalize`].
const IGNORED: i64 = -1;

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[&NodeInfo]) -> Status {
        let cs = self.constraints_for(&pod.pod, "DoNotSchedule", state);
        if cs.is_empty() {
            return Status::success();
        }
        let ns = pod.namespace();
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); cs.len()];
        for node in nodes {
            if !has_all_keys(node, &cs) {
                continue;
            }
            let Some(labels) = node.labels() else {
                continue;
            };
            for (i, c) in cs.iter().enumerate() {
                if !c.includes(&pod.pod, node) {
                    continue;
                }
                let Some(value) = labels.get(&c.topology_key) else {
                    continue;
                };
                let n = count_matching(node, &c.selector, ns);
                match counts[i].get_mut(value.as_str()) {
                    Some(sum) => *sum += n,
                    None => {
                        counts[i].insert(value.clone(), n);
                    }
                }
            }
        }
        let critical = counts
            .iter()
            .map(|m| {
                let mut p = CriticalPaths::new();
                for (v, n) in m {
                    p.update(v, *n);
                }
                p
            })
            .collect();
        state.write(
            NAME,
            PreFilterState {
                constraints: Arc::new(cs),
                counts,
                critical,
                pod: pod.pod.clone(),
            },
        );
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

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(NAME) else {
            return Status::success();
        };
        let own = labels_of(&pod.pod);
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels().and_then(|l| l.get(&c.topology_key)) else {
                return Status::unresolvable(NODE_LABEL_NOT_MATCH);
            };
            let self_match = i64::from(c.selector.matches(own));
            let matched = s.counts[i].get(value).copied().unwrap_or(0);
            if matched + self_match - s.min_match(i) > c.max_skew {
                return Status::unschedulable(vec![CONSTRAINTS_NOT_MATCH.into()]);
            }
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
        if feasible.is_empty() || all.is_empty() {
            return;
        }
        let cs = self.constraints_for(&pod.pod, "ScheduleAnyway", state);
        let require_all = self.require_all_topologies(&pod.pod);
        if cs.is_empty() {
            return;
        }
        let mut ignored = HashSet::new();
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); cs.len()];
        for node in feasible {
            if require_all && !has_all_keys(node, &cs) {
                ignored.insert(node.name().to_string());
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                if c.topology_key == HOSTNAME {
                    continue;
                }
                let v = node
                    .labels()
                    .and_then(|l| l.get(&c.topology_key))
                    .cloned()
                    .unwrap_or_default();
                counts[i].entry(v).or_insert(0);
            }
        }
        let weights = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == HOSTNAME {
                    feasible.len() - ignored.len()
                } else {
                    counts[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        let ns = pod.namespace();
        for node in all {
            if require_all && !has_all_keys(node, &cs) {
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                if !c.includes(&pod.pod, node) {
                    continue;
                }
                let v = node
                    .labels()
                    .and_then(|l| l.get(&c.topology_key))
                    .map(String::as_str)
                    .unwrap_or("");
                if let Some(n) = counts[i].get_mut(v) {
                    *n += count_matching(node, &c.selector, ns);
                }
            }
        }
        state.write(
            PRE_SCORE_KEY,
            PreScoreState {
                constraints: cs,
                ignored,
                counts,
                weights,
                namespace: ns.to_string(),
            },
        );
    }

    fn scores(&self) -> bool {
        true
    }

    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return 0;
        };
        if s.ignored.contains(node.name()) {
            return IGNORED;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(v) = node.labels().and_then(|l| l.get(&c.topology_key)) else {
                continue;
            };
            let count = if c.topology_key == HOSTNAME {
                count_matching(node, &c.selector, &s.namespace)
            } else {
                s.counts[i].get(v).copied().unwrap_or(0)
            };
            score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    fn normalize(&self, state: &CycleState, scores: &mut [i64]) {
        if state.read::<PreScoreState>(PRE_SCORE_KEY).is_none() {
            return;
        }
        let counted = || scores.iter().copied().filter(|s| *s != IGNORED);
        let min = counted().min().unwrap_or(i64::MAX);
        let max = counted().max().unwrap_or(0).max(0);
        for s in scores.iter_mut() {
            *s = if *s == IGNORED {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::node;
    use crate::framework::{Code, Workloads};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn pod_with(name: &str, labels: Value, spec: Value) -> PodInfo {
        let mut spec = spec;
        spec["containers"] = json!([]);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": spec
        }))
        .expect("pod");
        PodInfo::new(Arc::new(pod))
    }

    fn web(n: usize) -> PodInfo {
        pod_with(&format!("web-{n}"), json!({"app": "web"}), json!({}))
    }

    fn spread(key: &str, skew: i32, when: &str, extra: Value) -> Value {
        let mut c = json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            c[k] = v.clone();
        }
        json!({"topologySpreadConstraints": [c]})
    }

    fn zone_node(name: &str, zone: Option<&str>, spec: Value) -> NodeInfo {
        let mut labels = json!({"kubernetes.io/hostname": name});
        if let Some(z) = zone {
            labels["zone"] = json!(z);
        }
        node(name, labels, spec, json!({"cpu": "4", "pods": "110"}))
    }

    /// Nodes a1, a2 (zone a), b1 (zone b), c1 (zone c), with `placed[i]` web pods on each,
    /// and x (no zone).
    fn cluster(placed: [usize; 4]) -> Vec<NodeInfo> {
        let mut nodes = vec![
            zone_node("a1", Some("a"), json!({})),
            zone_node("a2", Some("a"), json!({})),
            zone_node("b1", Some("b"), json!({})),
            zone_node("c1", Some("c"), json!({})),
            zone_node("x", None, json!({})),
        ];
        let mut k = 0;
        for (i, n) in placed.iter().enumerate() {
            for _ in 0..*n {
                nodes[i].add_pod(web(100 + k));
                k += 1;
            }
        }
        nodes
    }

    fn filter_all(pod: &PodInfo, nodes: &[NodeInfo]) -> (CycleState, Vec<Status>) {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::default();
        assert!(
            PodTopologySpread::default()
                .pre_filter(&mut state, pod, &refs)
                .is_success()
        );
        let st = nodes
            .iter()
            .map(|n| PodTopologySpread::default().filter(&state, pod, n))
            .collect();
        (state, st)
    }

    fn feasible(pod: &PodInfo, nodes: &[NodeInfo]) -> Vec<String> {
        let (_, st) = filter_all(pod, nodes);
        nodes
            .iter()
            .zip(st)
            .filter(|(_, s)| s.is_success())
            .map(|(n, _)| n.name().to_string())
            .collect()
    }

    #[test]
    fn do_not_schedule_keeps_the_skew_within_max_skew() {
        let p = |skew, extra| {
            pod_with(
                "new",
                json!({"app": "web"}),
                spread("zone", skew, "DoNotSchedule", extra),
            )
        };
        for (placed, skew, extra, want) in [
            // Zones a=1, b=0, c=0: only b and c keep the skew at 1.
            ([1, 0, 0, 0], 1, json!({}), vec!["b1", "c1"]),
            ([1, 0, 0, 0], 2, json!({}), vec!["a1", "a2", "b1", "c1"]),
            // a=2 (over two nodes), b=1, c=1.
            ([1, 1, 1, 1], 1, json!({}), vec!["b1", "c1"]),
            ([0, 0, 0, 0], 1, json!({}), vec!["a1", "a2", "b1", "c1"]),
            // minDomains above the 3 domains: the minimum counts as 0, so a domain with one
            // pod is already full at maxSkew 1.
            (
                [0, 0, 1, 0],
                1,
                json!({"minDomains": 4}),
                vec!["a1", "a2", "c1"],
            ),
            (
                [0, 0, 1, 0],
                1,
                json!({"minDomains": 3}),
                vec!["a1", "a2", "c1"],
            ),
            (
                [1, 0, 1, 1],
                1,
                json!({"minDomains": 3}),
                vec!["a1", "a2", "b1", "c1"],
            ),
            ([1, 0, 1, 1], 1, json!({"minDomains": 4}), vec![]),
        ] {
            let pod = p(skew, extra.clone());
            assert_eq!(
                feasible(&pod, &cluster(placed)),
                want,
                "{placed:?} {skew} {extra}"
            );
        }
    }

    #[test]
    fn reasons_and_codes_are_upstreams() {
        let pod = pod_with(
            "new",
            json!({"app": "web"}),
            spread("zone", 1, "DoNotSchedule", json!({})),
        );
        let (_, st) = filter_all(&pod, &cluster([1, 0, 0, 0]));
        assert_eq!(
            st[0],
            Status::unschedulable(vec![CONSTRAINTS_NOT_MATCH.into()])
        );
        assert_eq!(st[4], Status::unresolvable(NODE_LABEL_NOT_MATCH));
        assert_eq!(st[4].code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            NODE_LABEL_NOT_MATCH,
            "node(s) didn't match pod topology spread constraints (missing required label)"
        );
    }

    #[test]
    fn pods_that_do_not_match_their_own_selector_and_other_namespaces() {
        // A pod outside the selector adds nothing to the domain it lands in.
        let other = pod_with(
            "new",
            json!({"app": "api"}),
            spread("zone", 1, "DoNotSchedule", json!({})),
        );
        assert_eq!(feasible(&other, &cluster([2, 0, 0, 1])), ["b1", "c1"]);
        assert_eq!(
            feasible(&other, &cluster([1, 0, 1, 1])),
            ["a1", "a2", "b1", "c1"]
        );
        // Pods of another namespace are not counted.
        let mut nodes = cluster([0, 0, 0, 0]);
        let foreign: Pod =
            serde_json::from_value(json!({"metadata": {"name": "f", "namespace": "other",
            "labels": {"app": "web"}}, "spec": {"containers": []}}))
            .expect("pod");
        nodes[0].add_pod(PodInfo::new(Arc::new(foreign)));
        let pod = pod_with(
            "new",
            json!({"app": "web"}),
            spread("zone", 1, "DoNotSchedule", json!({})),
        );
        assert_eq!(feasible(&pod, &nodes), ["a1", "a2", "b1", "c1"]);
    }

    #[test]
    fn node_inclusion_policies_decide_which_domains_count() {
        // Zone c's only node is tainted; zone b is outside the pod's node affinity.
        let mut nodes = cluster([1, 0, 0, 0]);
        nodes[3] = zone_node(
            "c1",
            Some("c"),
            json!({"taints": [{"key": "k", "effect": "NoSchedule"}]}),
        );
        let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}]}}});
        let with = |extra: Value| {
            let mut spec = spread("zone", 1, "DoNotSchedule", extra);
            spec["affinity"] = affinity.clone();
            pod_with("new", json!({"app": "web"}), spec)
        };
        // Default (affinity Honor, taints Ignore): domains a=1, c=0 count; b is left out, and
        // this plugin alone would let the pod onto c1 and b1 (other plugins filter those).
        assert_eq!(feasible(&with(json!({})), &nodes), ["b1", "c1"]);
        // Taints Honor: c no longer counts, so a=1 is the minimum and every zone fits.
        assert_eq!(
            feasible(&with(json!({"nodeTaintsPolicy": "Honor"})), &nodes),
            ["a1", "a2", "b1", "c1"]
        );
        // Affinity Ignore: b (0 pods) counts again.
        assert_eq!(
            feasible(
                &with(json!({"nodeAffinityPolicy": "Ignore", "nodeTaintsPolicy": "Honor"})),
                &nodes
            ),
            ["b1", "c1"]
        );
    }

    #[test]
    fn match_label_keys_narrow_the_selector_to_the_pods_own_values() {
        let mut nodes = cluster([0, 0, 0, 0]);
        let old: Pod =
            serde_json::from_value(json!({"metadata": {"name": "old", "namespace": "default",
            "labels": {"app": "web", "rev": "1"}}, "spec": {"containers": []}}))
            .expect("pod");
        nodes[2].add_pod(PodInfo::new(Arc::new(old)));
        let pod = |extra| {
            pod_with(
                "new",
                json!({"app": "web", "rev": "2"}),
                spread("zone", 1, "DoNotSchedule", extra),
            )
        };
        assert_eq!(feasible(&pod(json!({})), &nodes), ["a1", "a2", "c1"]);
        assert_eq!(
            feasible(&pod(json!({"matchLabelKeys": ["rev"]})), &nodes),
            ["a1", "a2", "b1", "c1"]
        );
    }

    #[test]
    fn preemption_dry_run_updates_the_counts() {
        let pod = pod_with(
            "new",
            json!({"app": "web"}),
            spread("zone", 1, "DoNotSchedule", json!({})),
        );
        // Zones a=2, b=1, c=1: a is full.
        let nodes = cluster([2, 0, 1, 1]);
        let (state, st) = filter_all(&pod, &nodes);
        assert!(!st[0].is_success() && st[2].is_success());
        let victim = nodes[0].pods.values().next().expect("pod").clone();
        let mut dry = state.clone();
        PodTopologySpread::default().remove_pod(&mut dry, &pod, &victim, &nodes[0]);
        // a=1 now: every zone fits.
        let fits = |s: &CycleState| -> Vec<bool> {
            nodes[..4]
                .iter()
                .map(|n| PodTopologySpread::default().filter(s, &pod, n).is_success())
                .collect()
        };
        assert_eq!(fits(&dry), [true, true, true, true]);
        assert_eq!(fits(&state), [false, false, true, true]);
        PodTopologySpread::default().add_pod(&mut dry, &pod, &victim, &nodes[0]);
        assert_eq!(fits(&dry), fits(&state));
    }

    #[test]
    fn only_a_placed_pod_its_constraints_select_wakes_a_waiting_pod() {
        let waiting = pod_with(
            "new",
            json!({"app": "web"}),
            spread("zone", 1, "DoNotSchedule", json!({})),
        );
        assert!(placed_pod_may_help(&waiting.pod, &web(1).pod));
        let api = pod_with("api", json!({"app": "api"}), json!({}));
        assert!(!placed_pod_may_help(&waiting.pod, &api.pod));
        assert!(!placed_pod_may_help(&web(2).pod, &web(1).pod));
    }

    #[test]
    fn pods_without_constraints_keep_no_state() {
        let nodes = cluster([1, 0, 0, 0]);
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::default();
        PodTopologySpread::default().pre_filter(&mut state, &web(0), &refs);
        PodTopologySpread::default().pre_score(&mut state, &web(0), &refs, &refs);
        assert!(state.read::<PreFilterState>(NAME).is_none());
        assert!(state.read::<PreScoreState>(PRE_SCORE_KEY).is_none());
    }

    fn scores(pod: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::default();
        PodTopologySpread::default().pre_score(&mut state, pod, &refs, &refs);
        let mut s: Vec<i64> = nodes
            .iter()
            .map(|n| PodTopologySpread::default().score(&state, pod, n))
            .collect();
        PodTopologySpread::default().normalize(&state, &mut s);
        s
    }

    #[test]
    fn schedule_anyway_scores_emptier_domains_higher() {
        let zone = pod_with(
            "new",
            json!({"app": "web"}),
            spread("zone", 1, "ScheduleAnyway", json!({})),
        );
        // Zones a=2, b=1, c=0 over 3 domains: weight ln 5; raw round(2·1.609)=3, 3, 2, 0;
        // x lacks the key and scores 0. Normalized: 100·(3+0-s)/3.
        assert_eq!(scores(&zone, &cluster([1, 1, 1, 0])), [0, 0, 33, 100, 0]);
        // No matching pods anywhere: every counted node gets the maximum.
        assert_eq!(
            scores(&zone, &cluster([0, 0, 0, 0])),
            [100, 100, 100, 100, 0]
        );
        // Hostname: per node, weight ln(5 + 2); raw round(n·1.946) = 4, 2, 0, 0, 0.
        let host = pod_with(
            "new",
            json!({"app": "web"}),
            spread("kubernetes.io/hostname", 1, "ScheduleAnyway", json!({})),
        );
        assert_eq!(
            scores(&host, &cluster([2, 1, 0, 0])),
            [0, 50, 100, 100, 100]
        );
        // maxSkew adds maxSkew-1 to every counted node: raw 7, 5, 3, 3, 3 → 100·(10-s)/7.
        let skewed = pod_with(
            "new",
            json!({"app": "web"}),
            spread("kubernetes.io/hostname", 4, "ScheduleAnyway", json!({})),
        );
        assert_eq!(
            scores(&skewed, &cluster([2, 1, 0, 0])),
            [42, 71, 100, 100, 100]
        );
    }

    #[test]
    fn system_defaults_spread_pods_their_services_and_controllers_select() {
        let owned = |labels: Value, kind: &str, api: &str, owner: &str| {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": "new", "namespace": "default", "labels": labels,
                    "ownerReferences": [{"apiVersion": api, "kind": kind, "name": owner,
                        "uid": "u", "controller": true}]},
                "spec": {"containers": []}
            }))
            .expect("pod");
            PodInfo::new(Arc::new(pod))
        };
        let rs_selector = |labels: Value| {
            Selector::from_label_selector(Some(
                &serde_json::from_value(json!({"matchLabels": labels})).expect("selector"),
            ))
            .expect("valid")
        };
        let mut w = Workloads::default();
        w.replica_sets
            .insert("default/web-rs".into(), rs_selector(json!({"app": "web"})));
        w.replication_controllers.insert(
            "default/api-rc".into(),
            BTreeMap::from([("app".into(), "api".into())]),
        );
        w.services.insert(
            "default/front".into(),
            Some(BTreeMap::from([("tier".into(), "front".into())])),
        );
        w.services.insert("default/headless".into(), None);
        w.services.insert(
            "other/front".into(),
            Some(BTreeMap::from([("zone".into(), "x".into())])),
        );
        let shared = SharedWorkloads(Arc::new(w));

        // DefaultSelector: the Services in the pod's namespace selecting it, plus its controller.
        let sel = |p: &PodInfo| shared.0.default_selector(&p.pod).to_string();
        let web = owned(
            json!({"app": "web", "tier": "front"}),
            "ReplicaSet",
            "apps/v1",
            "web-rs",
        );
        assert_eq!(sel(&web), "app=web,tier=front");
        let api = owned(
            json!({"app": "api"}),
            "ReplicationController",
            "v1",
            "api-rc",
        );
        assert_eq!(sel(&api), "app=api");
        let orphan = pod_with("o", json!({"app": "web"}), json!({}));
        assert_eq!(sel(&orphan), "");

        // Scoring with the system defaults (hostname maxSkew 3, zone maxSkew 5): these nodes
        // have no `topology.kubernetes.io/zone` label, yet none is ignored and they spread by
        // hostname: weight ln(5+2), raw round(n·1.946 + 2) = 6, 4, 2, 2, 2 → 100·(8-s)/6.
        let nodes = cluster([2, 1, 0, 0]);
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let pts = PodTopologySpread::default();
        let run = |pod: &PodInfo| {
            let mut state = CycleState::default();
            state.write(SharedWorkloads::KEY, shared.clone());
            assert!(pts.pre_filter(&mut state, pod, &refs).is_success());
            assert!(
                state.read::<PreFilterState>(NAME).is_none(),
                "no DoNotSchedule defaults"
            );
            pts.pre_score(&mut state, pod, &refs, &refs);
            let mut s: Vec<i64> = nodes.iter().map(|n| pts.score(&state, pod, n)).collect();
            pts.normalize(&state, &mut s);
            s
        };
        let web_pod = owned(json!({"app": "web"}), "ReplicaSet", "apps/v1", "web-rs");
        assert_eq!(run(&web_pod), [33, 66, 100, 100, 100]);
        // Nothing selects the orphan: no default constraints, no opinion.
        assert_eq!(run(&orphan), [0, 0, 0, 0, 0]);
        // `List` defaulting with no constraints applies none.
        let none =
            PodTopologySpread::from_args(Some(&json!({"defaultingType": "List"}))).expect("args");
        assert!(none.defaults.is_empty());
    }

    #[test]
    fn args_are_validated() {
        assert!(PodTopologySpread::from_args(None).is_ok());
        assert!(
            PodTopologySpread::from_args(Some(&json!({"defaultingType": "List",
                "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}]})))
            .is_ok()
        );
        let err = PodTopologySpread::from_args(Some(&json!({"defaultingType": "Nope"})))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("Unsupported value: \"Nope\""), "{err}");
    }
}
