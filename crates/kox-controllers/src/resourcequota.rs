//! The resource quota controller: recalculates the pod-based usage in each ResourceQuota's
//! `status.used` — `pods`, `count/pods`, `cpu`, `memory`, `requests.*`, `limits.*` — from the
//! pods of its namespace that still count (not Succeeded or Failed), whenever those pods
//! change and every five minutes (upstream's `--resource-quota-sync-period`). The API
//! server's quota admission records every create and delete; this catches what happens
//! without one, such as pods finishing. Other usage is left as admission wrote it, and quotas
//! with scopes are left to admission entirely.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kox_api::quantity::{Format, Quantity};
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

use crate::informer::{key_of, split_key};
use crate::{Action, Context, Controller};

/// How often every quota is recalculated anyway.
const RESYNC: Duration = Duration::from_secs(300);

/// The resource quota controller (`--controllers` name `resourcequota`).
#[derive(Debug, Default)]
pub struct ResourceQuotaController;

fn counts(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn add(into: &mut BTreeMap<String, Quantity>, key: String, q: &Quantity) {
    let sum = match into.get(&key) {
        Some(cur) => cur.checked_add(q).unwrap_or_else(|| cur.clone()),
        None => q.clone(),
    };
    into.insert(key, sum);
}

/// A pod's requests or limits: the containers' sum, or the largest init container's if more,
/// plus the pod overhead (upstream's `PodRequests`).
fn pod_totals(pod: &Pod, limits: bool) -> BTreeMap<String, Quantity> {
    let Some(spec) = pod.spec.as_ref() else {
        return BTreeMap::new();
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| -> BTreeMap<String, Quantity> {
        let r = c.resources.as_ref().and_then(|r| {
            if limits {
                r.limits.clone()
            } else {
                r.requests.clone()
            }
        });
        r.unwrap_or_default()
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), Quantity::try_from(v).ok()?)))
            .collect()
    };
    let mut sum = BTreeMap::new();
    for c in &spec.containers {
        for (k, q) in of(c) {
            add(&mut sum, k, &q);
        }
    }
    for c in spec.init_containers.iter().flatten() {
        for (k, q) in of(c) {
            if sum.get(&k).is_none_or(|cur| q > *cur) {
                sum.insert(k, q);
            }
        }
    }
    for (k, v) in spec.overhead.iter().flatten() {
        if let Ok(q) = Quantity::try_from(v) {
            add(&mut sum, k.clone(), &q);
        }
    }
    sum
}

/// The pod-based usage of `pods`, for the resources `hard` names.
fn pod_usage(hard: &BTreeMap<String, ApiQuantity>, pods: &[Arc<Pod>]) -> BTreeMap<String, String> {
    let mut used: BTreeMap<String, Quantity> = BTreeMap::new();
    let zero = Quantity::from_units(0, Format::DecimalSI);
    for key in hard.keys() {
        if key == "pods"
            || key == "count/pods"
            || key == "cpu"
            || key == "memory"
            || key.starts_with("requests.")
            || key.starts_with("limits.")
        {
            used.insert(key.clone(), zero.clone());
        }
    }
    let one = Quantity::from_units(1, Format::DecimalSI);
    for pod in pods.iter().filter(|p| counts(p)) {
        for key in ["pods", "count/pods"] {
            if used.contains_key(key) {
                add(&mut used, key.into(), &one);
            }
        }
        for (k, q) in pod_totals(pod, false) {
            // `cpu` and `memory` alone are the requests, as upstream's quota names them.
            let mut keys = vec![format!("requests.{k}")];
            if matches!(k.as_str(), "cpu" | "memory") {
                keys.push(k.clone());
            }
            for key in keys {
                if used.contains_key(&key) {
                    add(&mut used, key, &q);
                }
            }
        }
        for (k, q) in pod_totals(pod, true) {
            let key = format!("limits.{k}");
            if used.contains_key(&key) {
                add(&mut used, key, &q);
            }
        }
    }
    used.into_iter().map(|(k, q)| (k, q.to_string())).collect()
}

#[async_trait::async_trait]
impl Controller for ResourceQuotaController {
    fn name(&self) -> &'static str {
        "resourcequota"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("resourcequota-controller")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["resourcequota-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let quotas = ctx.informers.get::<ResourceQuota>();
        let pods = ctx.informers.get::<Pod>();
        let queue = ctx.queue("resourcequota_primary");
        let q = queue.clone();
        quotas.add_handler(move |change| q.add_change(change));
        let q = queue.clone();
        let qs = quotas.clone();
        pods.add_handler(move |change| {
            let pod = change.object();
            // Only a change of whether (or how much) the pod counts matters.
            if let Some(old) = change.old()
                && counts(old) == counts(pod)
                && old.spec == pod.spec
            {
                return;
            }
            for quota in qs.list_namespace(pod.metadata.namespace.as_deref().unwrap_or("")) {
                q.add(key_of(quota.as_ref()));
            }
        });
        quotas.synced().await;
        pods.synced().await;
        let client = ctx.client.clone();
        queue
            .run_workers(5, stop, move |key| {
                let (client, quotas, pods) = (client.clone(), quotas.clone(), pods.clone());
                async move {
                    let Some(quota) = quotas.get(&key) else {
                        return Ok(Action::await_change());
                    };
                    let spec = quota.spec.clone().unwrap_or_default();
                    if spec.scopes.as_ref().is_some_and(|s| !s.is_empty())
                        || spec.scope_selector.is_some()
                    {
                        return Ok(Action::await_change());
                    }
                    let hard = spec.hard.clone().unwrap_or_default();
                    let (ns, name) = split_key(&key);
                    let ns = ns.unwrap_or("default");
                    let pod_used = pod_usage(&hard, &pods.list_namespace(ns));
                    let status = quota.status.clone().unwrap_or_default();
                    let mut used = status.used.clone().unwrap_or_default();
                    for (k, v) in pod_used {
                        used.insert(k, ApiQuantity(v));
                    }
                    used.retain(|k, _| hard.contains_key(k));
                    if status.used.as_ref() == Some(&used) && status.hard.as_ref() == Some(&hard) {
                        return Ok(Action::requeue(RESYNC));
                    }
                    let mut updated = (*quota).clone();
                    let s = updated.status.get_or_insert_with(Default::default);
                    s.hard = Some(hard);
                    s.used = Some(used);
                    let api: Api<ResourceQuota> = Api::namespaced(client, ns);
                    api.replace_status(name, &PostParams::default(), &updated)
                        .await?;
                    Ok(Action::requeue(RESYNC))
                }
            })
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus, ResourceRequirements};

    fn pod(cpu: &str, phase: &str) -> Arc<Pod> {
        Arc::new(Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([("cpu".into(), ApiQuantity(cpu.into()))])),
                        limits: Some(BTreeMap::from([("cpu".into(), ApiQuantity(cpu.into()))])),
                        ..ResourceRequirements::default()
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
            ..Pod::default()
        })
    }

    #[test]
    fn finished_pods_stop_counting() {
        let hard: BTreeMap<String, ApiQuantity> =
            ["pods", "requests.cpu", "limits.cpu", "configmaps"]
                .iter()
                .map(|k| (k.to_string(), ApiQuantity("10".into())))
                .collect();
        let pods = vec![
            pod("100m", "Running"),
            pod("250m", "Pending"),
            pod("1", "Succeeded"),
        ];
        let used = pod_usage(&hard, &pods);
        assert_eq!(used["pods"], "2");
        assert_eq!(used["requests.cpu"], "350m");
        assert_eq!(used["limits.cpu"], "350m");
        assert!(
            !used.contains_key("configmaps"),
            "object counts are admission's"
        );
        let none = pod_usage(&hard, &[]);
        assert_eq!(none["pods"], "0");
    }
}
