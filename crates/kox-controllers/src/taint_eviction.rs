//! The taint-eviction controller: deletes the pods of a node with `NoExecute` taints they do
//! not tolerate — at once, or once the shortest matching toleration's `tolerationSeconds`
//! has passed since the taint was added (pods get 300 s for `not-ready` and `unreachable`
//! from the DefaultTolerationSeconds admission plugin; a toleration without seconds keeps the
//! pod). Before deleting it marks the pod with upstream's `DisruptionTarget` condition and
//! records a `TaintManagerEviction` event.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio_util::sync::CancellationToken;

use crate::informer::{key_of, split_key};
use crate::{Action, Change, Context, Controller};
use kox_api::taints::tolerates;

/// The taint-eviction controller (`--controllers` name `taint-eviction-controller`).
#[derive(Debug, Default)]
pub struct TaintEvictionController;

/// What the pod's tolerations allow under these `NoExecute` taints: `None` to evict now,
/// `Some(None)` to stay for good, `Some(Some(d))` to go `d` after the taint was added.
fn allowed(tolerations: &[Toleration], taints: &[&Taint]) -> Option<Option<(Duration, usize)>> {
    let mut shortest: Option<(Duration, usize)> = None;
    for (i, taint) in taints.iter().enumerate() {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return None;
        }
        let secs = matching
            .iter()
            .map(|t| t.toleration_seconds)
            .min_by_key(|s| s.unwrap_or(i64::MAX));
        if let Some(Some(s)) = secs {
            let d = Duration::from_secs(s.max(0) as u64);
            if shortest.is_none_or(|(cur, _)| d < cur) {
                shortest = Some((d, i));
            }
        }
    }
    Some(shortest)
}

#[async_trait::async_trait]
impl Controller for TaintEvictionController {
    fn name(&self) -> &'static str {
        "taint-eviction-controller"
    }

    /// Upstream's taint eviction acts with the node controller's account and role.
    fn service_account(&self) -> Option<&'static str> {
        Some("node-controller")
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let nodes = ctx.informers.get::<Node>();
        let pods = ctx.informers.get::<Pod>();
        let queue = ctx.queue("taint_eviction");
        let q = queue.clone();
        let pods_of_node = pods.clone();
        nodes.add_handler(move |change| {
            let no_execute = |n: &Node| -> Vec<Taint> {
                n.spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| t.effect == "NoExecute")
                    .collect()
            };
            let node = change.object();
            if matches!(change, Change::Deleted(_))
                || change
                    .old()
                    .is_some_and(|old| no_execute(old) == no_execute(node))
            {
                return;
            }
            let name = node.metadata.name.as_deref();
            for pod in pods_of_node.list() {
                if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == name {
                    q.add(key_of(pod.as_ref()));
                }
            }
        });
        let q = queue.clone();
        pods.add_handler(move |change| {
            if !matches!(change, Change::Deleted(_)) {
                q.add(key_of(change.object().as_ref()));
            }
        });
        nodes.synced().await;
        pods.synced().await;
        let client = ctx.client.clone();
        let recorder = ctx.recorder("taint-eviction-controller");
        queue
            .run_workers(8, stop, move |key| {
                let (client, nodes, pods, recorder) =
                    (client.clone(), nodes.clone(), pods.clone(), recorder.clone());
                async move {
                    let Some(pod) = pods.get(&key) else {
                        return Ok(Action::await_change());
                    };
                    if pod.metadata.deletion_timestamp.is_some() {
                        return Ok(Action::await_change());
                    }
                    let Some(node) = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .and_then(|n| nodes.get(n))
                    else {
                        return Ok(Action::await_change());
                    };
                    let taints: Vec<&Taint> = node
                        .spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .into_iter()
                        .flatten()
                        .filter(|t| t.effect == "NoExecute")
                        .collect();
                    if taints.is_empty() {
                        return Ok(Action::await_change());
                    }
                    let tolerations = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.tolerations.clone())
                        .unwrap_or_default();
                    match allowed(&tolerations, &taints) {
                        Some(None) => return Ok(Action::await_change()),
                        Some(Some((d, i))) => {
                            let added = taints[i]
                                .time_added
                                .as_ref()
                                .map(|t| t.0)
                                .unwrap_or_else(k8s_openapi::jiff::Timestamp::now);
                            let elapsed = k8s_openapi::jiff::Timestamp::now()
                                .duration_since(added)
                                .unsigned_abs();
                            if elapsed < d {
                                return Ok(Action::requeue(d - elapsed));
                            }
                        }
                        None => {}
                    }
                    let (ns, name) = split_key(&key);
                    let ns = ns.unwrap_or("default");
                    recorder.normal(
                        pod.as_ref(),
                        "TaintManagerEviction",
                        &format!("Marking for deletion Pod {ns}/{name}"),
                    );
                    let api: Api<Pod> = Api::namespaced(client, ns);
                    let condition = serde_json::json!({"status": {"conditions": [{
                        "type": "DisruptionTarget", "status": "True",
                        "reason": "DeletionByTaintManager",
                        "message": "Taint manager: deleting due to NoExecute taint",
                        "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
                    }]}});
                    let _ = api
                        .patch_status(name, &PatchParams::default(), &Patch::Strategic(condition))
                        .await;
                    let params = DeleteParams {
                        preconditions: Some(Preconditions {
                            uid: pod.metadata.uid.clone(),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    match api.delete(name, &params).await {
                        Ok(_) => Ok(Action::await_change()),
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                            Ok(Action::await_change())
                        }
                        Err(e) => Err(e.into()),
                    }
                }
            })
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Taint::default()
        }
    }

    fn tol(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn untolerated_taint_evicts_now() {
        let t = taint("node.kubernetes.io/unreachable");
        assert_eq!(allowed(&[], &[&t]), None);
        assert_eq!(allowed(&[tol("other", None)], &[&t]), None);
    }

    #[test]
    fn shortest_toleration_seconds_wins_and_none_means_forever() {
        let a = taint("node.kubernetes.io/unreachable");
        let b = taint("node.kubernetes.io/not-ready");
        let tols = vec![
            tol("node.kubernetes.io/unreachable", Some(300)),
            tol("node.kubernetes.io/not-ready", Some(5)),
        ];
        assert_eq!(
            allowed(&tols, &[&a, &b]),
            Some(Some((Duration::from_secs(5), 1)))
        );
        assert_eq!(
            allowed(&[tol("node.kubernetes.io/unreachable", None)], &[&a]),
            Some(None)
        );
    }
}
