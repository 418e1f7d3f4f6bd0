//! The API objects a pod refers to (upstream's `VisitPodSecretNames`,
//! `VisitPodConfigmapNames`, its claims and service account) and whether it is a mirror pod.
//!
//! One home for these rules: the Node authorizer follows them from a node's pods to what the
//! node may read, and NodeRestriction refuses mirror pods that have any.

use serde_json::Value;

/// The annotation of a mirror pod: the API copy of a static pod, which its node creates.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Whether a pod carries the mirror annotation.
pub fn is_mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(MIRROR_ANNOTATION))
}

/// A kind of object a pod can refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodRef {
    Secret,
    ConfigMap,
    /// PersistentVolumeClaims, including the ones its ephemeral volumes create.
    Claim,
    ServiceAccount,
}

/// Where a pod's volumes name secrets (upstream's `VisitPodSecretNames`; projected sources
/// apart).
const VOLUME_SECRETS: &[&str] = &[
    "/secret/secretName",
    "/azureFile/secretName",
    "/cephfs/secretRef/name",
    "/cinder/secretRef/name",
    "/flexVolume/secretRef/name",
    "/rbd/secretRef/name",
    "/scaleIO/secretRef/name",
    "/iscsi/secretRef/name",
    "/storageos/secretRef/name",
    "/csi/nodePublishSecretRef/name",
];

/// The names of the objects of `kind` a pod refers to, in its namespace.
pub fn names(pod: &Value, kind: PodRef) -> Vec<String> {
    let mut out = Vec::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let mut push = |v: Option<&Value>| {
        if let Some(name) = v.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            out.push(name.to_string());
        }
    };
    let volumes = spec.get("volumes").and_then(Value::as_array);
    match kind {
        PodRef::ServiceAccount => push(spec.get("serviceAccountName")),
        PodRef::Claim => {
            let pod_name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            for v in volumes.into_iter().flatten() {
                push(v.pointer("/persistentVolumeClaim/claimName"));
                if v.get("ephemeral").is_some() {
                    let name = v.get("name").and_then(Value::as_str).unwrap_or("");
                    push(Some(&Value::String(format!("{pod_name}-{name}"))));
                }
            }
        }
        PodRef::Secret | PodRef::ConfigMap => {
            let secret = kind == PodRef::Secret;
            if secret {
                for s in array(spec.get("imagePullSecrets")) {
                    push(s.get("name"));
                }
            }
            for v in volumes.into_iter().flatten() {
                if secret {
                    for p in VOLUME_SECRETS {
                        push(v.pointer(p));
                    }
                } else {
                    push(v.pointer("/configMap/name"));
                }
                let source = if secret {
                    "/secret/name"
                } else {
                    "/configMap/name"
                };
                for s in array(v.pointer("/projected/sources")) {
                    push(s.pointer(source));
                }
            }
            let (key_ref, from_ref) = if secret {
                ("/valueFrom/secretKeyRef/name", "/secretRef/name")
            } else {
                ("/valueFrom/configMapKeyRef/name", "/configMapRef/name")
            };
            for c in ["containers", "initContainers", "ephemeralContainers"]
                .into_iter()
                .flat_map(|k| array(spec.get(k)))
            {
                for e in array(c.get("env")) {
                    push(e.pointer(key_ref));
                }
                for e in array(c.get("envFrom")) {
                    push(e.pointer(from_ref));
                }
            }
        }
    }
    out
}

/// Whether a pod uses a projected service-account token (its own `kube-api-access-*` volume
/// or any other `serviceAccountToken` projection).
pub fn uses_service_account_token(pod: &Value) -> bool {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|v| array(v.pointer("/projected/sources")))
        .any(|s| s.get("serviceAccountToken").is_some())
}

fn array(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "annotations": {MIRROR_ANNOTATION: "x"}},
            "spec": {
                "serviceAccountName": "sa",
                "imagePullSecrets": [{"name": "pull"}],
                "volumes": [
                    {"name": "s", "secret": {"secretName": "vol-secret"}},
                    {"name": "c", "configMap": {"name": "vol-cm"}},
                    {"name": "p", "projected": {"sources": [
                        {"secret": {"name": "proj-secret"}},
                        {"configMap": {"name": "proj-cm"}},
                        {"serviceAccountToken": {"path": "token"}}]}},
                    {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {}}
                ],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
                "containers": [{"name": "c", "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}
                ]}]
            }
        })
    }

    #[test]
    fn every_reference_is_found() {
        let p = pod();
        assert_eq!(
            names(&p, PodRef::Secret),
            [
                "pull",
                "vol-secret",
                "proj-secret",
                "env-secret",
                "init-env"
            ]
        );
        assert_eq!(
            names(&p, PodRef::ConfigMap),
            ["vol-cm", "proj-cm", "env-cm"]
        );
        assert_eq!(names(&p, PodRef::Claim), ["data", "web-scratch"]);
        assert_eq!(names(&p, PodRef::ServiceAccount), ["sa"]);
        assert!(uses_service_account_token(&p));
        assert!(is_mirror(&p));
        assert!(!is_mirror(&json!({"metadata": {}})));
    }
}
