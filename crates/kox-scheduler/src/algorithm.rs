//! One scheduling attempt: pre-filter with every node, filter the nodes (a sample of them in
//! large clusters), post-filter (preemption) when none fits, pre-score and score the feasible
//! ones, pick the best. Also the FailedScheduling message, worded as upstream's
//! `FitError.Error()`.

use std::collections::BTreeMap;

use rand::Rng;

use crate::cache::Cache;
use crate::cycle_state::CycleState;
use crate::framework::{
    NamespaceLabels, NodeInfo, Nomination, PodInfo, PostFilterContext, PostFilterOutcome,
    SharedWorkloads, Status, Weighted,
};
use crate::profile::Profile;

/// Why no node fitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// How many nodes exist.
    pub num_all_nodes: usize,
    /// A pre-filter's rejection, which applies to every node.
    pub pre_filter_msg: Option<String>,
    /// The failing status of each node tried, by node name.
    pub statuses: BTreeMap<String, Status>,
    /// What the post-filter (preemption) said, when it did not nominate a node.
    pub post_filter_msg: Option<String>,
}

/// The outcome of an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Bind to this node.
    Fits(String),
    /// No node fitted; preemption may have nominated a node and chosen victims.
    Unschedulable(FitError, Option<Nomination>),
    /// There are no nodes at all (upstream's `ErrNoNodesAvailable`).
    NoNodes,
    /// A node was chosen but a reserve plugin refused it; retried after backoff.
    ReserveFailed(String),
}

/// `2 reason, 1 other`: each reason counted over the nodes whose status gives it, sorted.
pub fn reason_histogram<'a>(statuses: impl Iterator<Item = &'a Status>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in statuses {
        for r in &s.reasons {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    let mut parts: Vec<String> = counts
        .into_iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    parts.sort();
    parts.join(", ")
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        match &self.pre_filter_msg {
            Some(msg) => write!(f, " {msg}.")?,
            None => {
                let reasons = reason_histogram(self.statuses.values());
                if !reasons.is_empty() {
                    write!(f, " {reasons}.")?;
                }
            }
        }
        if let Some(msg) = &self.post_filter_msg {
            write!(f, " {msg}.")?;
        }
        Ok(())
    }
}

/// How many feasible nodes to look for before scoring (upstream's adaptive
/// `percentageOfNodesToScore`): all below 100 nodes; with `percentage` unset or 0,
/// `max(5, 50 - n/125)` percent of them, else `percentage`; never fewer than 100.
pub fn num_feasible_nodes_to_find(num_all_nodes: usize, percentage: Option<u32>) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if num_all_nodes < MIN_FEASIBLE {
        return num_all_nodes;
    }
    let percentage = match percentage {
        Some(p) if p > 0 => p.min(100) as usize,
        _ => 50usize.saturating_sub(num_all_nodes / 125).max(5),
    };
    if percentage >= 100 {
        return num_all_nodes;
    }
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE)
}

/// Runs every pre-filter; the first failure rejects the pod everywhere.
pub fn run_pre_filters(
    plugins: &[Weighted],
    state: &mut CycleState,
    pod: &PodInfo,
    nodes: &[&NodeInfo],
) -> Status {
    for p in plugins {
        let st = p.plugin.pre_filter(state, pod, nodes);
        if !st.is_success() {
            return st;
        }
    }
    Status::success()
}

/// Runs every filter on one node; stops at the first failure, as upstream.
pub fn run_filters(
    plugins: &[Weighted],
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Status {
    for p in plugins {
        let st = p.plugin.filter(state, pod, node);
        if !st.is_success() {
            return st;
        }
    }
    Status::success()
}

/// Runs the filters as upstream's `RunFilterPluginsWithNominatedPods`: when pods of at least
/// this pod's priority are nominated to the node (waiting for room preemption made), the pod
/// must fit with them counted too, so it does not take their room.
pub fn run_filters_with_nominated(
    plugins: &[Weighted],
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    nominated: &[PodInfo],
) -> Status {
    let priority = pod.priority();
    let ahead: Vec<&PodInfo> = nominated
        .iter()
        .filter(|n| n.priority() >= priority && n.key() != pod.key())
        .collect();
    if !ahead.is_empty() {
        let mut with = node.clone();
        let mut state = state.clone();
        for other in ahead {
            for p in plugins {
                p.plugin.add_pod(&mut state, pod, other, &with);
            }
            with.add_pod(other.clone());
        }
        let st = run_filters(plugins, &state, pod, &with);
        if !st.is_success() {
            return st;
        }
    }
    run_filters(plugins, state, pod, node)
}

/// Schedules one pod against the cache with a profile's plugins. `start` rotates where the
/// node search begins, so sampling spreads over the cluster; it is advanced past the nodes
/// looked at.
pub fn schedule(profile: &Profile, cache: &Cache, pod: &PodInfo, start: &mut usize) -> Outcome {
    schedule_with_state(profile, cache, pod, start).0
}

/// [`schedule`], also returning the attempt's cycle state, which reserve, unreserve and the
/// binding need.
pub fn schedule_with_state(
    profile: &Profile,
    cache: &Cache,
    pod: &PodInfo,
    start: &mut usize,
) -> (Outcome, CycleState) {
    let plugins = &profile.plugins;
    let nodes: Vec<&NodeInfo> = cache.nodes().collect();
    let n = nodes.len();
    let mut state = CycleState::default();
    if n == 0 {
        return (Outcome::NoNodes, state);
    }
    state.write(NamespaceLabels::KEY, cache.namespace_labels());
    state.write(SharedWorkloads::KEY, cache.workloads());
    let pre = run_pre_filters(plugins, &mut state, pod, &nodes);
    let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let pre_filter_msg = if pre.is_success() {
        let want = num_feasible_nodes_to_find(n, profile.percentage_of_nodes_to_score);
        let mut looked = 0;
        for i in 0..n {
            let node = nodes[(*start + i) % n];
            looked += 1;
            let st = run_filters_with_nominated(
                plugins,
                &state,
                pod,
                node,
                cache.nominated(node.name()),
            );
            if st.is_success() {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            } else {
                statuses.insert(node.name().to_string(), st);
            }
        }
        *start = (*start + looked) % n;
        None
    } else {
        for node in &nodes {
            statuses.insert(node.name().to_string(), pre.clone());
        }
        Some(pre.reasons.join(", "))
    };
    if feasible.is_empty() {
        let mut nomination = None;
        let mut post_filter_msg = None;
        let ctx = PostFilterContext {
            plugins,
            nodes: &nodes,
        };
        for p in plugins {
            match p.plugin.post_filter(&ctx, &state, pod, &statuses) {
                PostFilterOutcome::Nominated(nominated) => {
                    nomination = Some(nominated);
                    post_filter_msg = None;
                    break;
                }
                PostFilterOutcome::Failed(msg) => post_filter_msg = Some(msg),
                PostFilterOutcome::Skip => {}
            }
        }
        let err = FitError {
            num_all_nodes: n,
            pre_filter_msg,
            statuses,
            post_filter_msg,
        };
        return (Outcome::Unschedulable(err, nomination), state);
    }
    if feasible.len() == 1 {
        return (Outcome::Fits(feasible[0].name().to_string()), state);
    }
    let mut totals = vec![0i64; feasible.len()];
    let scorers: Vec<&Weighted> = plugins
        .iter()
        .filter(|p| p.plugin.scores() && p.weight > 0)
        .collect();
    for p in &scorers {
        p.plugin.pre_score(&mut state, pod, &feasible, &nodes);
    }
    for p in scorers {
        let mut scores: Vec<i64> = feasible
            .iter()
            .map(|node| p.plugin.score(&state, pod, node))
            .collect();
        p.plugin.normalize(&state, &mut scores);
        for (t, s) in totals.iter_mut().zip(scores) {
            *t += s * p.weight;
        }
    }
    // The best score wins; ties are broken uniformly at random (reservoir sampling).
    let mut rng = rand::rng();
    let mut best = 0;
    let mut ties = 0u32;
    for (i, t) in totals.iter().enumerate() {
        if *t > totals[best] {
            best = i;
            ties = 1;
        } else if *t == totals[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    (Outcome::Fits(feasible[best].name().to_string()), state)
}

/// Runs every reserve plugin for the chosen node; on a failure, unreserves those that
/// reserved (in reverse, as upstream) and returns the failure.
pub fn run_reserve(plugins: &[Weighted], state: &CycleState, pod: &PodInfo, node: &str) -> Status {
    for (i, p) in plugins.iter().enumerate() {
        let st = p.plugin.reserve(state, pod, node);
        if !st.is_success() {
            run_unreserve(&plugins[..=i], state, pod, node);
            return st;
        }
    }
    Status::success()
}

/// Runs every unreserve plugin, in reverse order.
pub fn run_unreserve(plugins: &[Weighted], state: &CycleState, pod: &PodInfo, node: &str) {
    for p in plugins.iter().rev() {
        p.plugin.unreserve(state, pod, node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing;
    use crate::profile::Profile;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::{Value, json};

    fn cache(nodes: &[(&str, Value, Value)]) -> Cache {
        let mut c = Cache::default();
        for (name, labels, spec) in nodes {
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels}, "spec": spec,
                "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}))
            .expect("node");
            c.set_node(node);
        }
        c
    }

    fn check(nodes: &[(&str, Value, Value)], pod_spec: Value, expect: &str) {
        let c = cache(nodes);
        let pod = testing::pod(pod_spec.clone());
        let got = match schedule(&Profile::default_profile(), &c, &pod, &mut 0) {
            Outcome::Fits(n) => n,
            Outcome::Unschedulable(e, _) => e.to_string(),
            Outcome::NoNodes => "no nodes".to_string(),
            Outcome::ReserveFailed(e) => e,
        };
        assert_eq!(got, expect, "{pod_spec}");
    }

    #[test]
    fn the_only_feasible_node_wins() {
        let nodes = [
            ("a", json!({"zone": "a"}), json!({})),
            ("b", json!({"zone": "b"}), json!({})),
            (
                "c",
                json!({}),
                json!({"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}),
            ),
        ];
        check(
            &nodes,
            json!({"containers": [], "nodeSelector": {"zone": "b"}}),
            "b",
        );
        check(
            &nodes,
            json!({"containers": [], "nodeSelector": {"zone": "x"}, "tolerations": [{"operator": "Exists"}]}),
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..",
        );
        check(&[], json!({"containers": []}), "no nodes");
    }

    #[test]
    fn the_failed_scheduling_message_counts_reasons_as_upstream() {
        let nodes = [
            ("a", json!({}), json!({})),
            ("b", json!({}), json!({})),
            (
                "c",
                json!({}),
                json!({"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}),
            ),
            ("d", json!({}), json!({"unschedulable": true})),
        ];
        check(
            &nodes,
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}),
            "0/4 nodes are available: 1 node(s) had untolerated taint {k: v}, 1 node(s) were unschedulable, 2 Insufficient cpu. \
             preemption: 0/4 nodes are available: 2 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling..",
        );
        check(
            &nodes[..2],
            json!({"preemptionPolicy": "Never", "containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "5Gi"}}}]}),
            "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. preemption: not eligible due to preemptionPolicy=Never..",
        );
    }

    #[test]
    fn pods_spread_over_equal_nodes() {
        let mut c = cache(&[("a", json!({}), json!({})), ("b", json!({}), json!({}))]);
        let mut start = 0;
        for i in 0..4 {
            let pod = testing::pod_requesting(&format!("p{i}"), "500m", "1Gi");
            let Outcome::Fits(node) = schedule(&Profile::default_profile(), &c, &pod, &mut start)
            else {
                panic!("pod {i} should fit");
            };
            c.assume(pod.pod.clone(), &node);
        }
        for n in c.nodes() {
            assert_eq!(n.pods.len(), 2, "{}", n.name());
        }
    }

    #[test]
    fn large_clusters_are_sampled_adaptively() {
        for (n, want) in [(10, 10), (100, 100), (1000, 420), (5000, 500), (10000, 500)] {
            assert_eq!(num_feasible_nodes_to_find(n, None), want, "{n} nodes");
        }
        assert_eq!(num_feasible_nodes_to_find(1000, Some(30)), 300);
        assert_eq!(num_feasible_nodes_to_find(1000, Some(100)), 1000);
        assert_eq!(num_feasible_nodes_to_find(200, Some(10)), 100);
    }

    #[test]
    fn a_refused_reservation_is_undone_in_reverse_order() {
        use crate::framework::Plugin;
        use std::sync::{Arc, Mutex};
        struct Recorder(&'static str, bool, Arc<Mutex<Vec<String>>>);
        impl Plugin for Recorder {
            fn name(&self) -> &'static str {
                self.0
            }
            fn reserve(&self, _: &CycleState, _: &PodInfo, node: &str) -> Status {
                self.2
                    .lock()
                    .unwrap()
                    .push(format!("reserve {} {node}", self.0));
                if self.1 {
                    Status::success()
                } else {
                    Status::unschedulable(vec!["no".into()])
                }
            }
            fn unreserve(&self, _: &CycleState, _: &PodInfo, node: &str) {
                self.2
                    .lock()
                    .unwrap()
                    .push(format!("unreserve {} {node}", self.0));
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let plugins: Vec<Weighted> = [("A", true), ("B", false), ("C", true)]
            .into_iter()
            .map(|(n, ok)| Weighted {
                plugin: Box::new(Recorder(n, ok, log.clone())),
                weight: 0,
            })
            .collect();
        let pod = testing::pod(json!({"containers": []}));
        let st = run_reserve(&plugins, &CycleState::default(), &pod, "n");
        assert!(!st.is_success());
        assert_eq!(
            *log.lock().unwrap(),
            [
                "reserve A n",
                "reserve B n",
                "unreserve B n",
                "unreserve A n"
            ]
        );
    }
}

#[cfg(test)]
mod affinity_tests {
    use super::*;
    use crate::framework::PodInfo;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn pod(name: &str, priority: i32, labels: Value, affinity: Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "labels": labels},
                "spec": {"priority": priority, "containers": [], "affinity": affinity}
            }))
            .expect("pod"),
        )
    }

    fn anti(app: &str) -> Value {
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}]}})
    }

    fn cache(names: &[&str]) -> Cache {
        let mut c = Cache::default();
        for name in names {
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
            .expect("node");
            c.set_node(node);
        }
        c
    }

    fn run(c: &Cache, p: Arc<Pod>) -> Outcome {
        schedule(&Profile::default_profile(), c, &PodInfo::new(p), &mut 0)
    }

    #[test]
    fn anti_affinity_spreads_pods_one_per_node_then_reports_upstreams_reason() {
        let mut c = cache(&["n1", "n2"]);
        for i in 0..2 {
            let p = pod(&format!("web-{i}"), 0, json!({"app": "web"}), anti("web"));
            let Outcome::Fits(node) = run(&c, p.clone()) else {
                panic!("web-{i} should fit");
            };
            c.assume(p, &node);
        }
        let names: Vec<usize> = c.nodes().map(|n| n.pods.len()).collect();
        assert_eq!(names, [1, 1]);
        let Outcome::Unschedulable(err, None) =
            run(&c, pod("web-2", 0, json!({"app": "web"}), anti("web")))
        else {
            panic!("web-2 should not fit");
        };
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. \
             preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.."
        );
    }

    #[test]
    fn preemption_evicts_the_pod_whose_anti_affinity_blocks_a_higher_priority_one() {
        let mut c = cache(&["n1"]);
        let low = pod("low", 1, json!({"app": "low"}), anti("web"));
        c.add_pod(low, "n1");
        match run(&c, pod("web", 10, json!({"app": "web"}), json!(null))) {
            Outcome::Unschedulable(err, Some(n)) => {
                assert_eq!(n.node, "n1");
                assert_eq!(n.victims[0].metadata.name.as_deref(), Some("low"));
                assert!(
                    err.to_string()
                        .contains("1 node(s) didn't satisfy existing pods anti-affinity rules"),
                    "{err}"
                );
            }
            other => panic!("expected a nomination, got {other:?}"),
        }
        // Required affinity that nothing satisfies cannot be fixed by evicting anyone.
        let lonely = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}});
        let Outcome::Unschedulable(err, None) =
            run(&c, pod("web", 10, json!({"app": "web"}), lonely))
        else {
            panic!("should not fit");
        };
        assert_eq!(
            err.to_string(),
            "0/1 nodes are available: 1 node(s) didn't match pod affinity rules. \
             preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
        );
    }
}
