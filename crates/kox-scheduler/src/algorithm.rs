//! One scheduling attempt: pre-filter with every node, filter the nodes (a sample of them in
//! large clusters), post-filter (preemption) when none fits, pre-score and score the feasible
//! ones, pick the best. Also the FailedScheduling message, worded as upstream's
//! `FitError.Error()`.

use std::collections::BTreeMap;

use rand::Rng;

use crate::cache::Cache;
use crate::cycle_state::CycleState;
use crate::framework::{
    NodeInfo, Nomination, PodInfo, PostFilterContext, PostFilterOutcome, Status, Weighted,
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
    let plugins = &profile.plugins;
    let nodes: Vec<&NodeInfo> = cache.nodes().collect();
    let n = nodes.len();
    if n == 0 {
        return Outcome::NoNodes;
    }
    let mut state = CycleState::default();
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
        return Outcome::Unschedulable(
            FitError {
                num_all_nodes: n,
                pre_filter_msg,
                statuses,
                post_filter_msg,
            },
            nomination,
        );
    }
    if feasible.len() == 1 {
        return Outcome::Fits(feasible[0].name().to_string());
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
    Outcome::Fits(feasible[best].name().to_string())
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
}
