//! TaintToleration: a node's `NoSchedule`/`NoExecute` taints keep out pods that do not
//! tolerate them; untolerated `PreferNoSchedule` taints lower the node's score.

use k8s_openapi::api::core::v1::Toleration;

use kox_api::taints::tolerates;

use crate::cycle_state::CycleState;
use crate::framework::{NodeInfo, Plugin, PodInfo, Status, default_normalize};

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// The TaintToleration filter and score.
pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let tols = tolerations(pod);
        let untolerated = node.taints().iter().find(|taint| {
            (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
                && !tols.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Status::success(),
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
        }
    }

    fn scores(&self) -> bool {
        true
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        // Only tolerations that apply to PreferNoSchedule count here, as upstream.
        let tols: Vec<&Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        node.taints()
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| !tols.iter().any(|t| tolerates(t, taint)))
            .count() as i64
    }

    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::{node, pod};
    use serde_json::json;

    fn tainted(taints: serde_json::Value) -> NodeInfo {
        node("n", json!({}), json!({"taints": taints}), json!({}))
    }

    #[test]
    fn untolerated_hard_taints_keep_pods_out() {
        let taint = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        for (tolerations, taints, want) in [
            (json!([]), json!([]), None),
            (
                json!([]),
                taint.clone(),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                json!([{"key": "dedicated", "value": "gpu"}]),
                taint.clone(),
                None,
            ),
            (
                json!([{"key": "dedicated", "value": "cpu"}]),
                taint.clone(),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]),
                taint.clone(),
                None,
            ),
            (
                json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
                taint.clone(),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (json!([{"operator": "Exists"}]), taint.clone(), None),
            (
                json!([]),
                json!([{"key": "soft", "effect": "PreferNoSchedule"}]),
                None,
            ),
            (
                json!([]),
                json!([{"key": "gone", "effect": "NoExecute"}]),
                Some("node(s) had untolerated taint {gone: }"),
            ),
        ] {
            let p = pod(json!({"containers": [], "tolerations": tolerations}));
            let st = TaintToleration.filter(&Default::default(), &p, &tainted(taints.clone()));
            match want {
                None => assert!(st.is_success(), "{tolerations} vs {taints}: {st:?}"),
                Some(r) => assert_eq!(st, Status::unresolvable(r), "{tolerations} vs {taints}"),
            }
        }
    }

    #[test]
    fn fewer_untolerated_soft_taints_score_higher() {
        let p = pod(json!({"containers": [], "tolerations": [{"key": "b", "operator": "Exists"}]}));
        let nodes = [
            tainted(json!([])),
            tainted(json!([{"key": "a", "effect": "PreferNoSchedule"}])),
            tainted(
                json!([{"key": "a", "effect": "PreferNoSchedule"}, {"key": "c", "effect": "PreferNoSchedule"}]),
            ),
            tainted(json!([{"key": "b", "effect": "PreferNoSchedule"}])),
        ];
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| TaintToleration.score(&Default::default(), &p, n))
            .collect();
        TaintToleration.normalize(&Default::default(), &mut scores);
        assert_eq!(scores, [100, 50, 0, 100]);
    }
}
