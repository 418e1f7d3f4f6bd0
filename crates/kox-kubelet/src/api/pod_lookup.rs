//! What the agent's endpoints look up about a pod: the pod itself, its containers' statuses
//! and their runtime ids, and the query's parameters.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::ApiError;
use crate::Agent;

/// The decoded pairs of a query string.
pub(super) fn form_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The pod `namespace/name`, as the API server has it.
pub(super) async fn get_pod(agent: &Agent, namespace: &str, name: &str) -> Result<Pod, ApiError> {
    kube::Api::<Pod>::namespaced(agent.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| ApiError::internal(format!("reading pod {namespace}/{name}: {e}")))?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "pod \"{name}\" in namespace \"{namespace}\" not found"
            ))
        })
}

/// Every status of the pod's containers (init, app, ephemeral).
pub(super) fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let s = pod.status.as_ref();
    let all = [
        s.and_then(|s| s.init_container_statuses.as_ref()),
        s.and_then(|s| s.container_statuses.as_ref()),
        s.and_then(|s| s.ephemeral_container_statuses.as_ref()),
    ];
    all.into_iter().flatten().flatten()
}

/// The runtime id in a status's `containerd://<id>`.
pub(super) fn runtime_id(container_id: &str) -> &str {
    container_id
        .split_once("://")
        .map_or(container_id, |(_, id)| id)
}
