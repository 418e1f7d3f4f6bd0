//! NodeResourcesFit: the pod's requests must fit in what the node's pods leave of its
//! allocatable. Scoring follows `scoringStrategy`: LeastAllocated (the default: nodes with
//! more left score higher), MostAllocated (bin packing) or RequestedToCapacityRatio.

use crate::cycle_state::CycleState;
use anyhow::{Result, bail};
use serde_json::Value;

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

/// How NodeResourcesFit scores (`NodeResourcesFitArgs.scoringStrategy`).
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// Emptier nodes first (spreading); the default.
    LeastAllocated,
    /// Fuller nodes first (bin packing).
    MostAllocated,
    /// Utilization mapped through a piecewise-linear shape of (utilization %, score 0..=10).
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

/// The NodeResourcesFit filter and score.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeResourcesFit {
    /// The scoring strategy.
    pub strategy: Strategy,
    /// Resources scored, with weights (default cpu 1, memory 1).
    pub resources: Vec<(String, i64)>,
}

impl Default for NodeResourcesFit {
    fn default() -> Self {
        NodeResourcesFit {
            strategy: Strategy::LeastAllocated,
            resources: vec![("cpu".into(), 1), ("memory".into(), 1)],
        }
    }
}

impl NodeResourcesFit {
    /// From `NodeResourcesFitArgs` (`scoringStrategy.type`, `.resources`,
    /// `.requestedToCapacityRatio.shape`).
    pub fn from_args(args: Option<&Value>) -> Result<Self> {
        let mut fit = NodeResourcesFit::default();
        let Some(strategy) = args.and_then(|a| a.get("scoringStrategy")) else {
            return Ok(fit);
        };
        if let Some(list) = strategy.get("resources").and_then(Value::as_array) {
            fit.resources = list
                .iter()
                .map(|r| {
                    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                    let weight = r.get("weight").and_then(Value::as_i64).unwrap_or(1);
                    if name.is_empty() || !(1..=100).contains(&weight) {
                        bail!("NodeResourcesFit: scoringStrategy.resources: Invalid value: {r}: a name and a weight in [1-100] are required");
                    }
                    Ok((name.to_string(), weight))
                })
                .collect::<Result<_>>()?;
        }
        fit.strategy = match strategy.get("type").and_then(Value::as_str) {
            None | Some("LeastAllocated") => Strategy::LeastAllocated,
            Some("MostAllocated") => Strategy::MostAllocated,
            Some("RequestedToCapacityRatio") => {
                let shape = strategy
                    .pointer("/requestedToCapacityRatio/shape")
                    .and_then(Value::as_array)
                    .map(|points| {
                        points
                            .iter()
                            .map(|p| {
                                (
                                    p.get("utilization").and_then(Value::as_i64).unwrap_or(0),
                                    p.get("score").and_then(Value::as_i64).unwrap_or(0),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if shape.is_empty() {
                    bail!(
                        "NodeResourcesFit: scoringStrategy.requestedToCapacityRatio.shape: Required value"
                    );
                }
                Strategy::RequestedToCapacityRatio(shape)
            }
            Some(other) => bail!(
                "NodeResourcesFit: scoringStrategy.type: Unsupported value: {other:?}: supported values: \"LeastAllocated\", \"MostAllocated\", \"RequestedToCapacityRatio\""
            ),
        };
        Ok(fit)
    }

    /// One resource's score from what would be requested and the node's allocatable.
    fn resource_score(&self, requested: i64, capacity: i64) -> i64 {
        match &self.strategy {
            Strategy::LeastAllocated => {
                if requested > capacity {
                    0
                } else {
                    (capacity - requested) * MAX_NODE_SCORE / capacity
                }
            }
            Strategy::MostAllocated => requested.min(capacity) * MAX_NODE_SCORE / capacity,
            Strategy::RequestedToCapacityRatio(shape) => {
                let utilization = requested.min(capacity) * 100 / capacity;
                // Shape scores are 0..=10, scaled to 0..=100 as upstream.
                let at = |i: usize| (shape[i].0, shape[i].1 * MAX_NODE_SCORE / 10);
                if utilization <= shape[0].0 {
                    return at(0).1;
                }
                for i in 1..shape.len() {
                    let ((x0, y0), (x1, y1)) = (at(i - 1), at(i));
                    if utilization <= x1 {
                        return y0 + (y1 - y0) * (utilization - x0) / (x1 - x0).max(1);
                    }
                }
                at(shape.len() - 1).1
            }
        }
    }
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
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

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let (mut total, mut weights) = (0, 0);
        for (name, weight) in &self.resources {
            // CPU and memory count pods without requests at upstream's non-zero defaults.
            let (requested, capacity) = match name.as_str() {
                "cpu" => (
                    node.non_zero_requested.0 + pod.non_zero.0,
                    node.allocatable.milli_cpu,
                ),
                "memory" => (
                    node.non_zero_requested.1 + pod.non_zero.1,
                    node.allocatable.memory,
                ),
                "ephemeral-storage" => (
                    node.requested.ephemeral_storage + pod.requests.ephemeral_storage,
                    node.allocatable.ephemeral_storage,
                ),
                other => (
                    node.requested.scalar.get(other).copied().unwrap_or(0)
                        + pod.requests.scalar.get(other).copied().unwrap_or(0),
                    node.allocatable.scalar.get(other).copied().unwrap_or(0),
                ),
            };
            if capacity <= 0 {
                continue;
            }
            total += self.resource_score(requested, capacity) * weight;
            weights += weight;
        }
        if weights == 0 { 0 } else { total / weights }
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
        let st = NodeResourcesFit::default().filter(
            &Default::default(),
            &pod_requesting("p", "1", "1Gi"),
            &n,
        );
        assert_eq!(st, Status::unschedulable(vec!["Too many pods".to_string()]));
    }

    #[test]
    fn emptier_nodes_score_higher() {
        let fit = NodeResourcesFit::default();
        let p = pod_requesting("new", "1", "2Gi");
        let scores: Vec<i64> = [
            node_with(&[]),
            node_with(&[("2", "4Gi")]),
            node_with(&[("3", "6Gi")]),
        ]
        .iter()
        .map(|n| fit.score(&Default::default(), &p, n))
        .collect();
        assert_eq!(scores, [75, 25, 0]);
    }

    #[test]
    fn most_allocated_and_ratio_strategies_prefer_fuller_nodes() {
        let p = pod_requesting("new", "1", "2Gi");
        let nodes = [
            node_with(&[]),
            node_with(&[("2", "4Gi")]),
            node_with(&[("3", "6Gi")]),
        ];
        let most = NodeResourcesFit::from_args(Some(
            &json!({"scoringStrategy": {"type": "MostAllocated"}}),
        ))
        .expect("args");
        let scores: Vec<i64> = nodes
            .iter()
            .map(|n| most.score(&Default::default(), &p, n))
            .collect();
        assert_eq!(scores, [25, 75, 100]);
        let ratio = NodeResourcesFit::from_args(Some(&json!({"scoringStrategy": {
            "type": "RequestedToCapacityRatio",
            "resources": [{"name": "cpu", "weight": 1}],
            "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}})))
        .expect("args");
        let scores: Vec<i64> = nodes
            .iter()
            .map(|n| ratio.score(&Default::default(), &p, n))
            .collect();
        assert_eq!(scores, [25, 75, 100]);
        for bad in [
            json!({"scoringStrategy": {"type": "Nope"}}),
            json!({"scoringStrategy": {"type": "RequestedToCapacityRatio"}}),
            json!({"scoringStrategy": {"resources": [{"name": "cpu", "weight": 0}]}}),
        ] {
            assert!(NodeResourcesFit::from_args(Some(&bad)).is_err(), "{bad}");
        }
    }
}
