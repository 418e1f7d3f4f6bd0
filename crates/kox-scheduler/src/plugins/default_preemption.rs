//! DefaultPreemption, the post-filter: when no node fits a pod, find a node where deleting
//! lower-priority pods makes it fit, choosing as few and as unimportant victims as upstream
//! does; the scheduler then deletes them and nominates the node (`status.nominatedNodeName`).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Pod;
use rand::Rng;
use serde_json::Value;

use crate::algorithm::{reason_histogram, run_filters};
use crate::cycle_state::CycleState;
use crate::framework::{
    Code, NodeInfo, Nomination, Plugin, PodInfo, PostFilterContext, PostFilterOutcome, Status,
    Weighted,
};

/// Reason given for nodes that failed for reasons no eviction can fix.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Reason given for nodes without lower-priority pods.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// The DefaultPreemption post-filter with its `DefaultPreemptionArgs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultPreemption {
    /// Look for candidates on at least this percentage of nodes (default 10).
    pub min_candidate_nodes_percentage: i64,
    /// …and at least this many nodes (default 100).
    pub min_candidate_nodes_absolute: i64,
}

impl Default for DefaultPreemption {
    fn default() -> Self {
        DefaultPreemption {
            min_candidate_nodes_percentage: 10,
            min_candidate_nodes_absolute: 100,
        }
    }
}

impl DefaultPreemption {
    /// From `DefaultPreemptionArgs`.
    pub fn from_args(args: Option<&Value>) -> Result<Self> {
        let mut p = DefaultPreemption::default();
        if let Some(v) = args
            .and_then(|a| a.get("minCandidateNodesPercentage"))
            .and_then(Value::as_i64)
        {
            if !(0..=100).contains(&v) {
                bail!(
                    "DefaultPreemption: minCandidateNodesPercentage: Invalid value: {v}: not in valid range [0, 100]"
                );
            }
            p.min_candidate_nodes_percentage = v;
        }
        if let Some(v) = args
            .and_then(|a| a.get("minCandidateNodesAbsolute"))
            .and_then(Value::as_i64)
        {
            if v < 0 {
                bail!(
                    "DefaultPreemption: minCandidateNodesAbsolute: Invalid value: {v}: not in valid range [0, inf)"
                );
            }
            p.min_candidate_nodes_absolute = v;
        }
        Ok(p)
    }

    /// How many candidates to find among `n` potential nodes (upstream's
    /// `calculateNumCandidates`).
    fn num_candidates(&self, n: usize) -> usize {
        let n = n as i64;
        let mut want = n * self.min_candidate_nodes_percentage / 100;
        if want < self.min_candidate_nodes_absolute {
            want = self.min_candidate_nodes_absolute;
        }
        want.min(n).max(1) as usize
    }
}

fn start_time(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
}

/// Upstream's `MoreImportantPod`: higher priority, then the one that started earlier.
fn more_important_first(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority()
        .cmp(&a.priority())
        .then_with(|| match (start_time(&a.pod), start_time(&b.pod)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
}

/// A node where preemption would work and the pods it would evict there.
struct Candidate {
    node: String,
    victims: Vec<PodInfo>,
}

/// Upstream's `SelectVictimsOnNode`: remove every lower-priority pod; if the pod then fits,
/// give pods back, most important first, as long as it still fits; the rest are victims.
fn select_victims(
    plugins: &[Weighted],
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<Vec<PodInfo>, Status> {
    let priority = pod.priority();
    let mut node = node.clone();
    let mut state = state.clone();
    let mut potential: Vec<PodInfo> = node
        .pods
        .values()
        .filter(|p| p.priority() < priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status {
            code: Code::UnschedulableAndUnresolvable,
            reasons: vec![NO_VICTIMS.to_string()],
        });
    }
    for victim in &potential {
        for p in plugins {
            p.plugin.remove_pod(&mut state, pod, victim, &node);
        }
        node.remove_pod(&victim.key());
    }
    let st = run_filters(plugins, &state, pod, &node);
    if !st.is_success() {
        return Err(st);
    }
    potential.sort_by(more_important_first);
    let mut victims = Vec::new();
    for candidate in potential {
        for p in plugins {
            p.plugin.add_pod(&mut state, pod, &candidate, &node);
        }
        node.add_pod(candidate.clone());
        if !run_filters(plugins, &state, pod, &node).is_success() {
            for p in plugins {
                p.plugin.remove_pod(&mut state, pod, &candidate, &node);
            }
            node.remove_pod(&candidate.key());
            victims.push(candidate);
        }
    }
    Ok(victims)
}

/// Upstream's `pickOneNodeForPreemption` (without PodDisruptionBudgets): the lowest
/// highest-victim priority, then the lowest sum of priorities, then the fewest victims, then
/// the latest start among the most important victims.
fn pick(candidates: Vec<Candidate>) -> Option<Candidate> {
    let key = |c: &Candidate| {
        let highest = c
            .victims
            .iter()
            .map(PodInfo::priority)
            .max()
            .unwrap_or(i32::MIN);
        // Offset so negative priorities still add up as upstream's int64 sum does.
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| i64::from(v.priority()) + i64::from(i32::MAX) + 1)
            .sum();
        let earliest_top = c
            .victims
            .iter()
            .filter(|v| v.priority() == highest)
            .filter_map(|v| start_time(&v.pod))
            .min();
        (
            highest,
            sum,
            c.victims.len(),
            std::cmp::Reverse(earliest_top),
        )
    };
    candidates.into_iter().min_by_key(key)
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        "DefaultPreemption"
    }

    fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        state: &CycleState,
        pod: &PodInfo,
        statuses: &BTreeMap<String, Status>,
    ) -> PostFilterOutcome {
        let spec = pod.pod.spec.as_ref();
        if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
            return PostFilterOutcome::Failed(
                "preemption: not eligible due to preemptionPolicy=Never.".into(),
            );
        }
        // A pod that already preempted waits while its victims terminate.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        if let Some(name) = nominated
            && let Some(node) = ctx.nodes.iter().find(|n| n.name() == name)
            && node.pods.values().any(|p| {
                p.pod.metadata.deletion_timestamp.is_some() && p.priority() < pod.priority()
            })
        {
            return PostFilterOutcome::Failed(
                "preemption: not eligible due to a terminating pod on the nominated node.".into(),
            );
        }
        let mut verdicts: Vec<Status> = Vec::new();
        let potential: Vec<&&NodeInfo> = ctx
            .nodes
            .iter()
            .filter(|n| match statuses.get(n.name()) {
                Some(st) if st.code == Code::UnschedulableAndUnresolvable => {
                    verdicts.push(Status::unresolvable(NOT_HELPFUL));
                    false
                }
                _ => true,
            })
            .collect();
        let mut candidates = Vec::new();
        if !potential.is_empty() {
            let want = self.num_candidates(potential.len());
            let offset = rand::rng().random_range(0..potential.len());
            for i in 0..potential.len() {
                let node = potential[(offset + i) % potential.len()];
                match select_victims(ctx.plugins, state, pod, node) {
                    Ok(victims) if !victims.is_empty() => {
                        candidates.push(Candidate {
                            node: node.name().to_string(),
                            victims,
                        });
                        if candidates.len() >= want {
                            break;
                        }
                    }
                    // Fits without evicting anyone: a pod ended since the filters ran.
                    Ok(_) => verdicts.push(Status::unschedulable(vec![NO_VICTIMS.into()])),
                    Err(st) => verdicts.push(st),
                }
            }
        }
        match pick(candidates) {
            Some(c) => PostFilterOutcome::Nominated(Nomination {
                node: c.node,
                victims: c.victims.into_iter().map(|v| Arc::clone(&v.pod)).collect(),
            }),
            None => PostFilterOutcome::Failed(format!(
                "preemption: 0/{} nodes are available: {}.",
                ctx.nodes.len(),
                reason_histogram(verdicts.iter())
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing::plain_node;
    use crate::profile::Profile;
    use serde_json::json;

    fn prio_pod(name: &str, priority: i32, cpu: &str) -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"priority": priority, "containers": [{"name": "c",
                "resources": {"requests": {"cpu": cpu}}}]}
        }))
        .expect("pod");
        PodInfo::new(Arc::new(pod))
    }

    fn run(nodes: &[NodeInfo], pod: &PodInfo) -> PostFilterOutcome {
        let profile = Profile::default_profile();
        let all: Vec<&NodeInfo> = nodes.iter().collect();
        let state = CycleState::default();
        let statuses: BTreeMap<String, Status> = nodes
            .iter()
            .map(|n| {
                (
                    n.name().to_string(),
                    run_filters(&profile.plugins, &state, pod, n),
                )
            })
            .collect();
        let ctx = PostFilterContext {
            plugins: &profile.plugins,
            nodes: &all,
        };
        DefaultPreemption::default().post_filter(&ctx, &state, pod, &statuses)
    }

    #[test]
    fn evicts_the_fewest_least_important_pods() {
        // 4 CPUs each. a: two 2-CPU pods of priority 5; b: one 3-CPU pod of priority 1 and
        // one 1-CPU pod of priority 8.
        let mut a = plain_node("a");
        a.add_pod(prio_pod("a1", 5, "2"));
        a.add_pod(prio_pod("a2", 5, "2"));
        let mut b = plain_node("b");
        b.add_pod(prio_pod("b1", 1, "3"));
        b.add_pod(prio_pod("b2", 8, "1"));
        let pod = prio_pod("new", 10, "3");
        match run(&[a, b], &pod) {
            PostFilterOutcome::Nominated(n) => {
                assert_eq!(n.node, "b");
                let names: Vec<_> = n
                    .victims
                    .iter()
                    .map(|v| v.metadata.name.clone().unwrap_or_default())
                    .collect();
                assert_eq!(names, ["b1"]);
            }
            other => panic!("expected a nomination, got {other:?}"),
        }
    }

    #[test]
    fn says_why_when_nothing_can_be_evicted() {
        let mut a = plain_node("a");
        a.add_pod(prio_pod("a1", 100, "4"));
        let tainted = crate::framework::testing::node(
            "t",
            json!({}),
            json!({"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}),
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
        );
        let pod = prio_pod("new", 10, "1");
        assert_eq!(
            run(&[a, tainted], &pod),
            PostFilterOutcome::Failed(
                "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.".into()
            )
        );
        let never: Pod = serde_json::from_value(json!({"metadata": {"name": "n"},
            "spec": {"preemptionPolicy": "Never", "containers": []}}))
        .expect("pod");
        assert_eq!(
            run(&[plain_node("x")], &PodInfo::new(Arc::new(never))),
            PostFilterOutcome::Failed(
                "preemption: not eligible due to preemptionPolicy=Never.".into()
            )
        );
    }
}
