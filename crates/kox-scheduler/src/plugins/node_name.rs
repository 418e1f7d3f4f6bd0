//! NodeName: a pod that names a node in `spec.nodeName` fits only that node.

use crate::cycle_state::CycleState;
use crate::framework::{NodeInfo, Plugin, PodInfo, Status};

/// Upstream's reason.
pub const REASON: &str = "node(s) didn't match the requested node name";

/// The NodeName filter.
pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(want) if !want.is_empty() && want != node.name() => Status::unresolvable(REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::{plain_node, pod};
    use serde_json::json;

    #[test]
    fn only_the_named_node_fits() {
        for (spec, node, fits) in [
            (json!({"containers": []}), "a", true),
            (json!({"containers": [], "nodeName": "a"}), "a", true),
            (json!({"containers": [], "nodeName": "a"}), "b", false),
        ] {
            let st = NodeName.filter(&Default::default(), &pod(spec.clone()), &plain_node(node));
            assert_eq!(st.is_success(), fits, "{spec} on {node}");
            if !fits {
                assert_eq!(st, Status::unresolvable(REASON));
            }
        }
    }
}
