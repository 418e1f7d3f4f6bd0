//! NodeResourcesFit: the pod's requests must fit in what the node's pods leave of its
//! allocatable; nodes with more left score higher (LeastAllocated, CPU and memory weighted
//! equally).

use crate::framework::{MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, Status};

/// Why a pod does not fit a node, one reason per short resource, worded as upstream.
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.pods {
        reasons.push("Too many pods".to_string());
    }
    let want = &pod.requests;
    if want.is_zero() {
        return reasons;
    }
    let (have, used) = (&node.allocatable, &node.requested);
    if want.milli_cpu > 0 && want.milli_cpu > have.milli_cpu - used.milli_cpu {
        reasons.push("Insufficient cpu".to_string());
    }
    if want.memory > 0 && want.memory > have.memory - used.memory {
        reasons.push("Insufficient memory".to_string());
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage > have.ephemeral_storage - used.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".to_string());
    }
    for (name, amount) in &want.scalar {
        let free = have.scalar.get(name).copied().unwrap_or(0)
            - used.scalar.get(name).copied().unwrap_or(0);
        if *amount > 0 && *amount > free {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

/// `(capacity - requested) * 100 / capacity`, 0 when over.
fn least_allocated(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// The NodeResourcesFit filter and LeastAllocated score.
pub struct NodeResourcesFit;

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient(pod, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status::unschedulable(reasons)
        }
    }

    fn scores(&self) -> bool {
        true
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let cpu = least_allocated(
            node.non_zero_requested.0 + pod.non_zero.0,
            node.allocatable.milli_cpu,
        );
        let mem = least_allocated(
            node.non_zero_requested.1 + pod.non_zero.1,
            node.allocatable.memory,
        );
        (cpu + mem) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::{node, plain_node, pod, pod_requesting};
    use serde_json::json;

    fn node_with(pods: &[(&str, &str)]) -> NodeInfo {
        let mut n = plain_node("n");
        for (i, (cpu, mem)) in pods.iter().enumerate() {
            n.add_pod(pod_requesting(&format!("p{i}"), cpu, mem));
        }
        n
    }

    #[test]
    fn requests_must_fit_what_is_left() {
        for (existing, want, reasons) in [
            (vec![], ("1", "1Gi"), vec![]),
            (vec![("3", "1Gi")], ("1", "1Gi"), vec![]),
            (
                vec![("3", "1Gi")],
                ("1001m", "1Gi"),
                vec!["Insufficient cpu"],
            ),
            (
                vec![("1", "7Gi")],
                ("1", "2Gi"),
                vec!["Insufficient memory"],
            ),
            (
                vec![("4", "8Gi")],
                ("1", "1Gi"),
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            // A pod with no requests fits a full node.
            (vec![("4", "8Gi")], ("0", "0"), vec![]),
        ] {
            let n = node_with(&existing);
            let p = pod_requesting("new", want.0, want.1);
            assert_eq!(insufficient(&p, &n), reasons, "{existing:?} + {want:?}");
        }
    }

    #[test]
    fn pod_slots_and_extended_resources_are_counted() {
        let mut n = node(
            "n",
            json!({}),
            json!({}),
            json!({"cpu": "4", "memory": "8Gi", "pods": "1", "example.com/gpu": "1"}),
        );
        let gpu = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "2"}}}]}),
        );
        assert_eq!(insufficient(&gpu, &n), ["Insufficient example.com/gpu"]);
        n.add_pod(pod_requesting("other", "0", "0"));
        let st = NodeResourcesFit.filter(&pod_requesting("p", "1", "1Gi"), &n);
        assert_eq!(st, Status::unschedulable(vec!["Too many pods".to_string()]));
    }

    #[test]
    fn emptier_nodes_score_higher() {
        let p = pod_requesting("new", "1", "2Gi");
        let scores: Vec<i64> = [
            node_with(&[]),
            node_with(&[("2", "4Gi")]),
            node_with(&[("3", "6Gi")]),
        ]
        .iter()
        .map(|n| NodeResourcesFit.score(&p, n))
        .collect();
        assert_eq!(scores, [75, 25, 0]);
    }
}
