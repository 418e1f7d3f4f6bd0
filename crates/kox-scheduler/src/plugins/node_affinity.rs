//! NodeAffinity: `spec.nodeSelector` and required node affinity filter nodes; preferred node
//! affinity terms add their weights to a node's score.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kox_api::node_selector::{self, term_matches};

use crate::cycle_state::CycleState;
use crate::framework::{NodeInfo, Plugin, PodInfo, Status, default_normalize};

/// Upstream's reason.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// Whether a node satisfies a pod's `nodeSelector` and required node affinity (upstream's
/// `RequiredNodeAffinity.Match`).
pub fn required_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let empty = BTreeMap::new();
    node_selector::pod_fits(spec, node.labels().unwrap_or(&empty), node.name())
}

/// The NodeAffinity filter and score.
pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if required_matches(&pod.pod, node) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }

    fn scores(&self) -> bool {
        true
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let empty = BTreeMap::new();
        let labels = node.labels().unwrap_or(&empty);
        pod.pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0 && term_matches(&p.preference, labels, node.name()))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::{node, pod};
    use serde_json::{Value, json};

    fn labelled(name: &str, labels: Value) -> NodeInfo {
        node(name, labels, json!({}), json!({}))
    }

    fn required(terms: Value) -> Value {
        json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn node_selector_and_required_affinity_filter() {
        let zone_a = json!({"zone": "a", "cores": "8"});
        for (spec, labels, fits) in [
            (json!({"containers": []}), json!({}), true),
            (
                json!({"containers": [], "nodeSelector": {"zone": "a"}}),
                zone_a.clone(),
                true,
            ),
            (
                json!({"containers": [], "nodeSelector": {"zone": "b"}}),
                zone_a.clone(),
                false,
            ),
            (
                json!({"containers": [], "nodeSelector": {"zone": "a"}}),
                json!({}),
                false,
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "c"]}]}]),
                ),
                zone_a.clone(),
                true,
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]),
                ),
                zone_a.clone(),
                false,
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]),
                ),
                zone_a.clone(),
                true,
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}]),
                ),
                zone_a.clone(),
                true,
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}]),
                ),
                zone_a.clone(),
                false,
            ),
            // Terms are ORed; expressions within a term are ANDed.
            (
                required(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "Exists"}, {"key": "cores", "operator": "Exists"}]}])),
                zone_a.clone(),
                true,
            ),
            (
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                ),
                zone_a.clone(),
                true,
            ),
            (
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
                ),
                zone_a.clone(),
                false,
            ),
            (required(json!([{}])), zone_a.clone(), false),
        ] {
            let st = NodeAffinity.filter(
                &Default::default(),
                &pod(spec.clone()),
                &labelled("n1", labels.clone()),
            );
            assert_eq!(st.is_success(), fits, "{spec} on {labels}");
            if !fits {
                assert_eq!(st, Status::unresolvable(REASON));
            }
        }
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let p = pod(json!({"containers": [], "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 30, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}]}}}));
        let nodes = [
            labelled("n1", json!({"zone": "a"})),
            labelled("n2", json!({"ssd": "true"})),
            labelled("n3", json!({"zone": "a", "ssd": "true"})),
            labelled("n4", json!({})),
        ];
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| NodeAffinity.score(&Default::default(), &p, n))
            .collect();
        assert_eq!(scores, [10, 30, 40, 0]);
        NodeAffinity.normalize(&Default::default(), &mut scores);
        assert_eq!(scores, [25, 75, 100, 0]);
    }
}
