//! The disruption controller: keeps each PodDisruptionBudget's status — `expectedPods`,
//! `currentHealthy` (ready pods not being deleted), `desiredHealthy`, `disruptionsAllowed`
//! and the `DisruptionAllowed` condition — from the pods its selector matches and, for
//! percentages and `maxUnavailable`, the scale of the controllers owning them (a ReplicaSet
//! owned by a Deployment counts as the Deployment), as upstream's `disruption` controller.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kox_api::label_selector::Selector;
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

use crate::endpoints::pod_ready;
use crate::informer::{Informer, key_of, split_key};
use crate::{Action, Context, Controller};

/// The disruption controller (`--controllers` name `disruption`).
#[derive(Debug, Default)]
pub struct DisruptionController;

fn selector_of(pdb: &PodDisruptionBudget) -> Selector {
    Selector::from_label_selector(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))
        .unwrap_or_else(|_| Selector::nothing())
}

fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let empty = BTreeMap::new();
    selector_of(pdb).matches(pod.metadata.labels.as_ref().unwrap_or(&empty))
}

/// An int-or-percent against `total`, rounding up as upstream's `GetScaledValueFromIntOrPercent`.
fn scaled(v: &IntOrString, total: i32) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok(((pct * total as i64 + 99) / 100) as i32)
        }
    }
}

/// The caches the controller reads.
#[derive(Clone)]
struct Caches {
    pods: Informer<Pod>,
    replica_sets: Informer<ReplicaSet>,
    deployments: Informer<Deployment>,
    stateful_sets: Informer<StatefulSet>,
    controllers: Informer<ReplicationController>,
}

impl Caches {
    /// The expected pod count: the scales of the pods' controllers, each counted once.
    fn expected_from_controllers(&self, ns: &str, pods: &[Arc<Pod>]) -> Result<i32, String> {
        let mut seen = HashSet::new();
        let mut total = 0;
        for pod in pods {
            let owner = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true));
            let Some(owner) = owner else {
                return Err(format!(
                    "found no controllers for pod {:?}",
                    pod.metadata.name.as_deref().unwrap_or("")
                ));
            };
            let (kind, name, replicas) = match owner.kind.as_str() {
                "ReplicaSet" => {
                    let rs = self
                        .replica_sets
                        .get_in(Some(ns), &owner.name)
                        .ok_or_else(|| format!("replicaset {:?} not found", owner.name))?;
                    let deployment = rs
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|o| o.controller == Some(true) && o.kind == "Deployment")
                        .and_then(|o| self.deployments.get_in(Some(ns), &o.name));
                    match deployment {
                        Some(d) => (
                            "Deployment",
                            d.metadata.name.clone().unwrap_or_default(),
                            d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        ),
                        None => (
                            "ReplicaSet",
                            owner.name.clone(),
                            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        ),
                    }
                }
                "StatefulSet" => {
                    let s = self
                        .stateful_sets
                        .get_in(Some(ns), &owner.name)
                        .ok_or_else(|| format!("statefulset {:?} not found", owner.name))?;
                    (
                        "StatefulSet",
                        owner.name.clone(),
                        s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                }
                "ReplicationController" => {
                    let rc = self
                        .controllers
                        .get_in(Some(ns), &owner.name)
                        .ok_or_else(|| {
                            format!("replicationcontroller {:?} not found", owner.name)
                        })?;
                    (
                        "ReplicationController",
                        owner.name.clone(),
                        rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                }
                other => {
                    return Err(format!(
                        "found no controllers for pod {:?} (owner kind {other})",
                        pod.metadata.name.as_deref().unwrap_or("")
                    ));
                }
            };
            if seen.insert((kind, name)) {
                total += replicas;
            }
        }
        Ok(total)
    }
}

/// The status a budget should have.
fn status(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    expected_from_controllers: impl Fn() -> Result<i32, String>,
) -> PodDisruptionBudgetStatus {
    let spec = pdb.spec.clone().unwrap_or_default();
    let current_healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
        .count() as i32;
    let computed: Result<(i32, i32), String> = match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => expected_from_controllers().and_then(|expected| {
            let max = scaled(max, expected)?;
            Ok((expected, (expected - max).max(0)))
        }),
        (None, Some(IntOrString::Int(min))) => Ok((pods.len() as i32, *min)),
        (None, Some(min)) => {
            expected_from_controllers().and_then(|expected| Ok((expected, scaled(min, expected)?)))
        }
        (None, None) => Ok((pods.len() as i32, 1)),
    };
    let previous = pdb.status.clone().unwrap_or_default();
    let (expected, desired, allowed, reason, message) = match computed {
        Ok((expected, desired)) => {
            let allowed = (current_healthy - desired).max(0);
            let reason = if allowed > 0 {
                "SufficientPods"
            } else {
                "InsufficientPods"
            };
            (expected, desired, allowed, reason, String::new())
        }
        Err(e) => (0, 0, 0, "SyncFailed", e),
    };
    let status = if allowed > 0 { "True" } else { "False" };
    let old = previous
        .conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == "DisruptionAllowed"));
    let condition = Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: pdb.metadata.generation,
        last_transition_time: match old {
            Some(o) if o.status == status => o.last_transition_time.clone(),
            _ => Time(k8s_openapi::jiff::Timestamp::now()),
        },
    };
    PodDisruptionBudgetStatus {
        current_healthy,
        desired_healthy: desired,
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: pdb.metadata.generation,
        disrupted_pods: previous.disrupted_pods,
        conditions: Some(vec![condition]),
    }
}

#[async_trait::async_trait]
impl Controller for DisruptionController {
    fn name(&self) -> &'static str {
        "disruption"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("disruption-controller")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["disruption-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let pdbs = ctx.informers.get::<PodDisruptionBudget>();
        let caches = Caches {
            pods: ctx.informers.get::<Pod>(),
            replica_sets: ctx.informers.get::<ReplicaSet>(),
            deployments: ctx.informers.get::<Deployment>(),
            stateful_sets: ctx.informers.get::<StatefulSet>(),
            controllers: ctx.informers.get::<ReplicationController>(),
        };
        let queue = ctx.queue("disruption");
        let q = queue.clone();
        pdbs.add_handler(move |change| q.add_change(change));
        let q = queue.clone();
        let budgets = pdbs.clone();
        caches.pods.add_handler(move |change| {
            let pod = change.object();
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            for pdb in budgets.list_namespace(ns) {
                if selects(&pdb, pod) || change.old().is_some_and(|o| selects(&pdb, o)) {
                    q.add(key_of(pdb.as_ref()));
                }
            }
        });
        // A scale change changes what percentages mean: look at every budget of the namespace.
        let scale_handler = |pdbs: &Informer<PodDisruptionBudget>, q: &crate::WorkQueue| {
            let (pdbs, q) = (pdbs.clone(), q.clone());
            move |ns: Option<&str>| {
                for pdb in pdbs.list_namespace(ns.unwrap_or("")) {
                    q.add(key_of(pdb.as_ref()));
                }
            }
        };
        let h = scale_handler(&pdbs, &queue);
        caches
            .deployments
            .add_handler(move |c| h(c.object().metadata.namespace.as_deref()));
        let h = scale_handler(&pdbs, &queue);
        caches
            .replica_sets
            .add_handler(move |c| h(c.object().metadata.namespace.as_deref()));
        let h = scale_handler(&pdbs, &queue);
        caches
            .stateful_sets
            .add_handler(move |c| h(c.object().metadata.namespace.as_deref()));
        pdbs.synced().await;
        caches.pods.synced().await;
        caches.replica_sets.synced().await;
        caches.deployments.synced().await;
        caches.stateful_sets.synced().await;
        caches.controllers.synced().await;
        let client = ctx.client.clone();
        queue
            .run_workers(5, stop, move |key| {
                let (client, pdbs, caches) = (client.clone(), pdbs.clone(), caches.clone());
                async move {
                    let Some(pdb) = pdbs.get(&key) else {
                        return Ok(Action::await_change());
                    };
                    let (ns, name) = split_key(&key);
                    let ns = ns.unwrap_or("default");
                    let pods: Vec<Arc<Pod>> = caches
                        .pods
                        .list_namespace(ns)
                        .into_iter()
                        .filter(|p| selects(&pdb, p))
                        .collect();
                    let want = status(&pdb, &pods, || caches.expected_from_controllers(ns, &pods));
                    if pdb.status.as_ref() == Some(&want) {
                        return Ok(Action::await_change());
                    }
                    let mut updated = (*pdb).clone();
                    updated.status = Some(want);
                    let api: Api<PodDisruptionBudget> = Api::namespaced(client, ns);
                    api.replace_status(name, &PostParams::default(), &updated)
                        .await?;
                    Ok(Action::await_change())
                }
            })
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::tests::pod;
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;

    fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        }
    }

    #[test]
    fn min_available_counts_ready_pods() {
        let pods = vec![
            pod("a", "10.0.0.1", 80, true),
            pod("b", "10.0.0.2", 80, true),
            pod("c", "10.0.0.3", 80, false),
        ];
        let s = status(&pdb(Some(IntOrString::Int(1)), None), &pods, || Ok(3));
        assert_eq!(
            (
                s.expected_pods,
                s.current_healthy,
                s.desired_healthy,
                s.disruptions_allowed
            ),
            (3, 2, 1, 1)
        );
        let c = &s.conditions.unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "SufficientPods")
        );
    }

    #[test]
    fn max_unavailable_uses_the_controllers_scale_and_rounds_up() {
        let pods = vec![
            pod("a", "10.0.0.1", 80, true),
            pod("b", "10.0.0.2", 80, true),
        ];
        let s = status(
            &pdb(None, Some(IntOrString::String("30%".into()))),
            &pods,
            || Ok(4),
        );
        // 30% of 4 rounds up to 2 unavailable: 2 must stay healthy; 2 are.
        assert_eq!(
            (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
            (4, 2, 0)
        );
        let c = &s.conditions.unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InsufficientPods")
        );
    }

    #[test]
    fn pods_without_controllers_fail_percentages() {
        let pods = vec![pod("a", "10.0.0.1", 80, true)];
        let s = status(
            &pdb(Some(IntOrString::String("50%".into())), None),
            &pods,
            || Err("found no controllers for pod \"a\"".into()),
        );
        let c = &s.conditions.unwrap()[0];
        assert_eq!(c.reason, "SyncFailed");
        assert_eq!(s.disruptions_allowed, 0);
    }
}
