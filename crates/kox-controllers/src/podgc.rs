//! The pod garbage collector: every 20 s, force-deletes
//!
//! - pods bound to nodes that no longer exist (missing from the cache on two checks in a row
//!   and confirmed by a live GET — upstream's quarantine), first marked `Failed` with a
//!   `DisruptionTarget` condition;
//! - pods being deleted that were never scheduled;
//! - pods being deleted on a not-ready node tainted `node.kubernetes.io/out-of-service`;
//! - the oldest terminated (Succeeded/Failed) pods beyond `--terminated-pod-gc-threshold`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::{Context, Controller};

/// How often the collector looks (upstream's `gcCheckPeriod`).
const CHECK_PERIOD: Duration = Duration::from_secs(20);
/// The taint that lets pods of a down node go (upstream's out-of-service taint).
const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// The pod garbage collector (`--controllers` name `podgc`).
#[derive(Debug, Default)]
pub struct PodGcController;

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The terminated pods to delete so at most `threshold` remain: the oldest first.
fn excess_terminated(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut done: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| matches!(phase(p), "Succeeded" | "Failed"))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    if done.len() <= threshold {
        return Vec::new();
    }
    done.sort_by(|a, b| {
        let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let n = done.len() - threshold;
    done.truncate(n);
    done
}

async fn force_delete(client: &Client, pod: &Pod, mark_failed: bool) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    if mark_failed && !matches!(phase(pod), "Succeeded" | "Failed") {
        let patch = serde_json::json!({"status": {"phase": "Failed", "conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": Time(k8s_openapi::jiff::Timestamp::now()),
        }]}});
        let _ = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await;
    }
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "pod garbage collector: deleted"),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), "pod garbage collector: {e}"),
    }
}

#[async_trait::async_trait]
impl Controller for PodGcController {
    fn name(&self) -> &'static str {
        "podgc"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("pod-garbage-collector")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["pod-garbage-collector-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let nodes = ctx.informers.get::<Node>();
        let pods = ctx.informers.get::<Pod>();
        nodes.synced().await;
        pods.synced().await;
        let threshold = ctx.config.terminated_pod_gc_threshold;
        let client = ctx.client.clone();
        let node_api: Api<Node> = Api::all(client.clone());
        // Nodes found missing on the last check (the quarantine).
        let mut missing_before: HashSet<String> = HashSet::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(CHECK_PERIOD) => {}
            }
            let all = pods.list();
            for pod in excess_terminated(&all, threshold) {
                force_delete(&client, &pod, false).await;
            }
            let mut missing_now = HashSet::new();
            for pod in &all {
                let Some(node) = node_name(pod) else {
                    if pod.metadata.deletion_timestamp.is_some() {
                        force_delete(&client, pod, false).await;
                    }
                    continue;
                };
                match nodes.get(node) {
                    Some(n) => {
                        let out_of_service = n
                            .spec
                            .as_ref()
                            .and_then(|s| s.taints.as_ref())
                            .is_some_and(|t| t.iter().any(|t| t.key == OUT_OF_SERVICE));
                        let ready = n
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                            .is_some_and(|c| c.status == "True");
                        if out_of_service && !ready && pod.metadata.deletion_timestamp.is_some() {
                            force_delete(&client, pod, false).await;
                        }
                    }
                    None => {
                        missing_now.insert(node.to_string());
                        if missing_before.contains(node)
                            && matches!(node_api.get_opt(node).await, Ok(None))
                        {
                            force_delete(&client, pod, true).await;
                        }
                    }
                }
            }
            missing_before = missing_now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, phase: &str, age_secs: i64) -> Arc<Pod> {
        let created = k8s_openapi::jiff::Timestamp::now()
            - k8s_openapi::jiff::SignedDuration::from_secs(age_secs);
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(created)),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
            ..Pod::default()
        })
    }

    #[test]
    fn the_oldest_terminated_pods_beyond_the_threshold_go() {
        let pods = vec![
            pod("new-done", "Succeeded", 10),
            pod("old-done", "Succeeded", 300),
            pod("running", "Running", 500),
            pod("mid-failed", "Failed", 100),
        ];
        let names = |v: Vec<Arc<Pod>>| -> Vec<String> {
            v.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
        };
        assert_eq!(
            names(excess_terminated(&pods, 1)),
            ["old-done", "mid-failed"]
        );
        assert!(excess_terminated(&pods, 3).is_empty());
        assert!(excess_terminated(&pods, 0).is_empty(), "0 keeps every pod");
    }
}
