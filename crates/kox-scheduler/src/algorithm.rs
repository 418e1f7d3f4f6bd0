//! One scheduling attempt: filter the nodes (a sample of them in large clusters), score the
//! feasible ones, pick the best. Also the FailedScheduling message, worded as upstream's
//! `FitError.Error()` followed by the preemption verdict.

use std::collections::BTreeMap;

use rand::Rng;

use crate::cache::Cache;
use crate::framework::{Code, NodeInfo, PodInfo, Status};
use crate::plugins::Weighted;

/// Why no node fitted: each node's failing status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// How many nodes exist.
    pub num_all_nodes: usize,
    /// The failing status of each node tried.
    pub statuses: Vec<Status>,
    /// Whether the pod may preempt (`preemptionPolicy` is not `Never`).
    pub may_preempt: bool,
}

/// The outcome of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Bind to this node.
    Fits(String),
    /// No node fitted.
    Unschedulable(FitError),
    /// There are no nodes at all (upstream's `ErrNoNodesAvailable`).
    NoNodes,
}

fn histogram(
    statuses: &[Status],
    num_all_nodes: usize,
    reason_of: impl Fn(&Status) -> Vec<String>,
) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in statuses {
        for r in reason_of(s) {
            *counts.entry(r).or_default() += 1;
        }
    }
    let mut parts: Vec<String> = counts
        .into_iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    parts.sort();
    format!(
        "0/{num_all_nodes} nodes are available: {}.",
        parts.join(", ")
    )
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filter = histogram(&self.statuses, self.num_all_nodes, |s| s.reasons.clone());
        // DefaultPreemption's verdict; this scheduler does not evict, so no node has victims.
        let preemption = if self.may_preempt {
            histogram(&self.statuses, self.num_all_nodes, |s| {
                vec![if s.code == Code::UnschedulableAndUnresolvable {
                    "Preemption is not helpful for scheduling".to_string()
                } else {
                    "No preemption victims found for incoming pod".to_string()
                }]
            })
        } else {
            "not eligible due to preemptionPolicy=Never.".to_string()
        };
        write!(f, "{filter} preemption: {preemption}.")
    }
}

/// How many feasible nodes to look for before scoring (upstream's adaptive
/// `percentageOfNodesToScore`): all below 100 nodes, else `max(5, 50 - n/125)` percent of
/// them but at least 100.
pub fn num_feasible_nodes_to_find(num_all_nodes: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if num_all_nodes < MIN_FEASIBLE {
        return num_all_nodes;
    }
    let percentage = 50usize.saturating_sub(num_all_nodes / 125).max(5);
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE)
}

/// Runs every filter on one node; stops at the first failure, as upstream.
pub fn run_filters(plugins: &[Weighted], pod: &PodInfo, node: &NodeInfo) -> Status {
    for p in plugins {
        let st = p.plugin.filter(pod, node);
        if !st.is_success() {
            return st;
        }
    }
    Status::success()
}

/// Schedules one pod against the cache. `start` rotates where the node search begins, so
/// sampling spreads over the cluster; it is advanced past the nodes looked at.
pub fn schedule(plugins: &[Weighted], cache: &Cache, pod: &PodInfo, start: &mut usize) -> Outcome {
    let nodes: Vec<&NodeInfo> = cache.nodes().collect();
    let n = nodes.len();
    if n == 0 {
        return Outcome::NoNodes;
    }
    let want = num_feasible_nodes_to_find(n);
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let mut failed: Vec<Status> = Vec::new();
    let mut looked = 0;
    for i in 0..n {
        let node = nodes[(*start + i) % n];
        looked += 1;
        let st = run_filters(plugins, pod, node);
        if st.is_success() {
            feasible.push(node);
            if feasible.len() >= want {
                break;
            }
        } else {
            failed.push(st);
        }
    }
    *start = (*start + looked) % n;
    if feasible.is_empty() {
        let may_preempt = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.preemption_policy.as_deref())
            != Some("Never");
        return Outcome::Unschedulable(FitError {
            num_all_nodes: n,
            statuses: failed,
            may_preempt,
        });
    }
    if feasible.len() == 1 {
        return Outcome::Fits(feasible[0].name().to_string());
    }
    let mut totals = vec![0i64; feasible.len()];
    for p in plugins.iter().filter(|p| p.plugin.scores() && p.weight > 0) {
        let mut scores: Vec<i64> = feasible
            .iter()
            .map(|node| p.plugin.score(pod, node))
            .collect();
        p.plugin.normalize(&mut scores);
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
    use crate::plugins::default_plugins;
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
        let got = match schedule(&default_plugins(), &c, &pod, &mut 0) {
            Outcome::Fits(n) => n,
            Outcome::Unschedulable(e) => e.to_string(),
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
            let Outcome::Fits(node) = schedule(&default_plugins(), &c, &pod, &mut start) else {
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
            assert_eq!(num_feasible_nodes_to_find(n), want, "{n} nodes");
        }
    }
}
