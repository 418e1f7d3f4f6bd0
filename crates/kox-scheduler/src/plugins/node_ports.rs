//! NodePorts: a pod asking for a host port fits only nodes where that port (protocol, IP) is
//! free.

use crate::cycle_state::CycleState;
use crate::framework::{HostPort, NodeInfo, Plugin, PodInfo, Status};

/// Upstream's reason.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

fn conflicts(a: &HostPort, b: &HostPort) -> bool {
    a.port == b.port
        && a.protocol == b.protocol
        && (a.ip == b.ip || a.ip == "0.0.0.0" || b.ip == "0.0.0.0")
}

/// The NodePorts filter.
pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let taken = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| conflicts(want, used)));
        if taken {
            Status::unschedulable(vec![REASON.to_string()])
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::{plain_node, pod};
    use serde_json::{Value, json};

    fn with_ports(ports: Value) -> crate::framework::PodInfo {
        pod(json!({"containers": [{"name": "c", "ports": ports}]}))
    }

    #[test]
    fn a_used_host_port_keeps_the_pod_out() {
        for (used, wanted, fits) in [
            (
                json!([]),
                json!([{"containerPort": 80, "hostPort": 8080}]),
                true,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080}]),
                json!([{"containerPort": 80, "hostPort": 8080}]),
                false,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080}]),
                json!([{"containerPort": 80, "hostPort": 8081}]),
                true,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080}]),
                json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]),
                true,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]),
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.2"}]),
                true,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]),
                json!([{"containerPort": 80, "hostPort": 8080}]),
                false,
            ),
            (
                json!([{"containerPort": 80}]),
                json!([{"containerPort": 80}]),
                true,
            ),
        ] {
            let mut node = plain_node("n");
            let mut existing = with_ports(used.clone());
            if let Some(p) = std::sync::Arc::get_mut(&mut existing.pod) {
                p.metadata.name = Some("existing".into());
            }
            node.add_pod(existing);
            let st = NodePorts.filter(&Default::default(), &with_ports(wanted.clone()), &node);
            assert_eq!(st.is_success(), fits, "{wanted} vs used {used}");
        }
    }
}
