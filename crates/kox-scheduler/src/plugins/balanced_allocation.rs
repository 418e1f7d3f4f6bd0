//! NodeResourcesBalancedAllocation: nodes whose CPU and memory would be used in similar
//! fractions after placing the pod score higher.

use crate::cycle_state::CycleState;
use crate::framework::{MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo};

/// The BalancedAllocation score.
pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn scores(&self) -> bool {
        true
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let fraction = |requested: i64, capacity: i64| {
            if capacity <= 0 {
                return 1.0;
            }
            (requested as f64 / capacity as f64).min(1.0)
        };
        let cpu = fraction(
            node.non_zero_requested.0 + pod.non_zero.0,
            node.allocatable.milli_cpu,
        );
        let mem = fraction(
            node.non_zero_requested.1 + pod.non_zero.1,
            node.allocatable.memory,
        );
        // The standard deviation of two fractions is half their distance.
        let std = (cpu - mem).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::{plain_node, pod_requesting};

    #[test]
    fn balanced_use_scores_higher() {
        for (existing, want, score) in [
            (("0", "0"), ("2", "4Gi"), 100),
            (("2", "0"), ("0", "0"), 75),
            (("4", "0"), ("0", "0"), 50),
        ] {
            let mut n = plain_node("n");
            n.add_pod(pod_requesting("old", existing.0, existing.1));
            let p = pod_requesting("new", want.0, want.1);
            assert_eq!(
                BalancedAllocation.score(&Default::default(), &p, &n),
                score,
                "{existing:?} + {want:?}"
            );
        }
    }
}
