//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods that tolerate the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use crate::cycle_state::CycleState;
use crate::framework::{NodeInfo, Plugin, PodInfo, Status};
use kox_api::taints::tolerates;

/// Upstream's reason.
pub const REASON: &str = "node(s) were unschedulable";

/// The NodeUnschedulable filter.
pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let cordoned = node
            .node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            return Status::success();
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let tolerations = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[]);
        if tolerations.iter().any(|t| tolerates(t, &taint)) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn cordoned_nodes_take_only_tolerating_pods() {
        let tolerating = json!({"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]});
        for (spec, unschedulable, fits) in [
            (json!({"containers": []}), false, true),
            (json!({"containers": []}), true, false),
            (tolerating, true, true),
        ] {
            let n = node(
                "n",
                json!({}),
                json!({"unschedulable": unschedulable}),
                json!({}),
            );
            let st = NodeUnschedulable.filter(&Default::default(), &pod(spec.clone()), &n);
            assert_eq!(
                st.is_success(),
                fits,
                "{spec} unschedulable={unschedulable}"
            );
            if !fits {
                assert_eq!(st, Status::unresolvable(REASON));
            }
        }
    }
}
