//! The Node authorizer, as upstream's: a node's agent (`system:node:<name>` in `system:nodes`)
//! reads and writes only what concerns its own node. Secrets, ConfigMaps,
//! PersistentVolumeClaims (named by a pod, or an ephemeral volume's `<pod>-<volume>`),
//! PersistentVolumes (whose `claimRef` is such a claim), the secrets those volumes use, and
//! service-account tokens it may get only when a pod bound to it leads to them — upstream keeps
//! a graph of these edges (`reaches` lists them); kox follows them through the pods and
//! volumes in the watch caches. Mirror pods lead nowhere. kox serves no `resource.k8s.io`, so
//! there are no ResourceClaim edges. Its Node, Lease and CSINode are its own by name; pods it
//! lists or watches with the field selector `spec.nodeName=<name>`. Everything else is judged
//! by the `system:node` role's rules. Writes to Nodes and pods that this lets through are
//! confined to the node's own by the NodeRestriction admission plugin.

use std::sync::Arc;

use kox_api::pod_refs::{self, PodRef};
use serde_json::Value;

use super::RequestInfo;
use k8s_openapi::api::rbac::v1::PolicyRule;

use super::rbac::{rule_allows, rules_of};
use crate::resources;
use crate::user::UserInfo;
use crate::watch_cache::WatchCaches;

/// The Node authorizer.
#[derive(Clone)]
pub struct NodeAuthorizer {
    caches: Arc<WatchCaches>,
    /// The `system:node` role's rules, for the resources not divided per node.
    rules: Arc<Vec<PolicyRule>>,
}

/// What the authorizer says: allow, or no opinion (with a reason for the 403).
pub type Opinion = Result<(), String>;

impl NodeAuthorizer {
    pub fn new(caches: Arc<WatchCaches>) -> Self {
        let rules = super::policy::cluster_roles()
            .into_iter()
            .find(|r| r.pointer("/metadata/name").and_then(Value::as_str) == Some("system:node"))
            .map(|r| rules_of(&r))
            .unwrap_or_default();
        Self {
            caches,
            rules: Arc::new(rules),
        }
    }

    /// `None` when `user` is not a node (the next authorizer decides).
    pub async fn authorize(&self, user: &UserInfo, info: &RequestInfo) -> Option<Opinion> {
        let node = crate::admission::node_restriction::node_name(user)?;
        Some(self.decide(node, info).await)
    }

    async fn decide(&self, node: &str, info: &RequestInfo) -> Opinion {
        if info.is_resource_request {
            let verb = info.verb.as_str();
            let sub = info.subresource.as_str();
            match (info.api_group.as_str(), info.resource.as_str()) {
                ("", "secrets") => return self.read_related(node, info, Kind::Secret).await,
                ("", "configmaps") => return self.read_related(node, info, Kind::ConfigMap).await,
                ("", "persistentvolumeclaims") if sub == "status" => {
                    if !matches!(verb, "update" | "patch") {
                        return Err("can only get/update/patch this type".into());
                    }
                    return self.related(node, info, Kind::Claim).await;
                }
                ("", "persistentvolumeclaims") => {
                    return self.get_related(node, info, Kind::Claim).await;
                }
                ("", "persistentvolumes") => {
                    return self.get_related(node, info, Kind::Volume).await;
                }
                ("", "serviceaccounts") => {
                    if verb != "create" || info.name.is_empty() {
                        return Err("can only create tokens for individual service accounts".into());
                    }
                    if sub != "token" {
                        return Err("can only create token subresource of serviceaccount".into());
                    }
                    return self.related(node, info, Kind::ServiceAccount).await;
                }
                ("coordination.k8s.io", "leases") => return lease(node, info),
                ("storage.k8s.io", "csinodes") => return csinode(node, info),
                ("", "nodes") => return node_object(node, info),
                ("", "pods") => return self.pod(node, info).await,
                _ => {}
            }
        }
        if self.rules.iter().any(|r| rule_allows(info, r)) {
            Ok(())
        } else {
            Err(String::new())
        }
    }

    async fn read_related(&self, node: &str, info: &RequestInfo, kind: Kind) -> Opinion {
        if !matches!(info.verb.as_str(), "get" | "list" | "watch") {
            return Err("can only read resources of this type".into());
        }
        if !info.subresource.is_empty() {
            return Err("cannot read subresource".into());
        }
        if info.namespace.is_empty() {
            return Err("can only read namespaced object of this type".into());
        }
        self.related(node, info, kind).await
    }

    async fn get_related(&self, node: &str, info: &RequestInfo, kind: Kind) -> Opinion {
        if info.verb != "get" {
            return Err("can only get individual resources of this type".into());
        }
        if !info.subresource.is_empty() {
            return Err("cannot get subresource".into());
        }
        self.related(node, info, kind).await
    }

    /// Whether the named object is reached from `node` through its pods (upstream's graph).
    async fn related(&self, node: &str, info: &RequestInfo, kind: Kind) -> Opinion {
        if info.name.is_empty() {
            return Err("No Object name found".into());
        }
        let (ns, name) = (info.namespace.as_str(), info.name.as_str());
        let found = match kind {
            // node <- pod <- pvc <- pv, by the volume's claimRef: its claim may be in any
            // namespace.
            Kind::Volume => {
                let volume: Vec<Arc<Value>> = self
                    .get("persistentvolumes", None, name)
                    .await
                    .into_iter()
                    .collect();
                reaches(
                    node,
                    kind,
                    ns,
                    name,
                    &self.pods_on(node, None).await,
                    &volume,
                )
            }
            // Secrets are used by the node's pods in their namespace, or by the volumes of
            // their claims in any namespace.
            Kind::Secret => {
                reaches(
                    node,
                    kind,
                    ns,
                    name,
                    &self.pods_on(node, Some(ns)).await,
                    &[],
                ) || reaches(
                    node,
                    kind,
                    ns,
                    name,
                    &self.pods_on(node, None).await,
                    &self.all("persistentvolumes").await,
                )
            }
            _ => reaches(
                node,
                kind,
                ns,
                name,
                &self.pods_on(node, Some(ns)).await,
                &[],
            ),
        };
        if found {
            Ok(())
        } else {
            Err(format!(
                "no relationship found between node '{node}' and this object"
            ))
        }
    }

    async fn pod(&self, node: &str, info: &RequestInfo) -> Opinion {
        match (info.subresource.as_str(), info.verb.as_str()) {
            ("", "get") => {
                let bound = self
                    .get("pods", Some(&info.namespace), &info.name)
                    .await
                    .is_some_and(|p| {
                        p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
                    });
                if bound {
                    Ok(())
                } else {
                    Err(format!(
                        "no relationship found between node '{node}' and this object"
                    ))
                }
            }
            ("", "list" | "watch") => {
                let scoped = info.field_selector.split(',').map(str::trim).any(|req| {
                    req.strip_prefix("spec.nodeName")
                        .and_then(|r| r.strip_prefix("==").or_else(|| r.strip_prefix('=')))
                        == Some(node)
                });
                if scoped {
                    Ok(())
                } else {
                    Err("can only list/watch pods with spec.nodeName field selector".into())
                }
            }
            // Mirror pods; NodeRestriction confines them to the node's own.
            ("", "create" | "delete") => Ok(()),
            ("status", "update" | "patch") => Ok(()),
            ("eviction", "create") => Ok(()),
            _ => Err(String::new()),
        }
    }

    /// The pods bound to `node`, in `namespace` or everywhere.
    async fn pods_on(&self, node: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let def = resources::find("", "v1", "pods").expect("served");
        let prefix = crate::list::list_prefix(def, namespace);
        let (pods, _) = self.caches.get(def).snapshot(prefix.as_bytes()).await;
        pods.into_iter()
            .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
            .collect()
    }

    /// Every cached object of a core/v1 resource.
    async fn all(&self, plural: &str) -> Vec<Arc<Value>> {
        let Some(def) = resources::find("", "v1", plural) else {
            return Vec::new();
        };
        let prefix = crate::list::list_prefix(def, None);
        self.caches.get(def).snapshot(prefix.as_bytes()).await.0
    }

    async fn get(&self, plural: &str, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let def = resources::find("", "v1", plural)?;
        let key = def.key(namespace, name);
        let (items, _) = self.caches.get(def).snapshot(key.as_bytes()).await;
        items
            .into_iter()
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
    }
}

/// Whether `node` reaches the object `kind` `namespace/name` through the pods in `pods`
/// (others than its own are ignored) and the PersistentVolumes in `volumes`: upstream's graph
/// edges secret/configmap/pvc/serviceaccount → pod → node, pv → pvc (the volume's `claimRef`)
/// and secret → pv (the secrets the volume's kubelet side uses, in any namespace). A mirror pod
/// leads to nothing: a node must not gain access by creating a pod.
fn reaches(
    node: &str,
    kind: Kind,
    namespace: &str,
    name: &str,
    pods: &[Arc<Value>],
    volumes: &[Arc<Value>],
) -> bool {
    let str_at = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mine: Vec<&Value> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| str_at(p, "/spec/nodeName") == node && !node.is_empty())
        .filter(|p| !pod_refs::is_mirror(p))
        .collect();
    // Whether one of the node's pods uses the claim `ns/claim`.
    let uses_claim = |ns: &str, claim: &str| {
        mine.iter().any(|p| {
            str_at(p, "/metadata/namespace") == ns
                && references(p, Kind::Claim).iter().any(|c| c == claim)
        })
    };
    // The claim a volume is bound to, if one of the node's pods uses it.
    let used = |pv: &Value| {
        let (ns, claim) = (
            str_at(pv, "/spec/claimRef/namespace"),
            str_at(pv, "/spec/claimRef/name"),
        );
        !claim.is_empty() && uses_claim(&ns, &claim)
    };
    let direct = || {
        mine.iter().any(|p| {
            str_at(p, "/metadata/namespace") == namespace
                && references(p, kind).iter().any(|n| n == name)
        })
    };
    match kind {
        Kind::Volume => volumes
            .iter()
            .any(|pv| str_at(pv, "/metadata/name") == name && used(pv)),
        Kind::Secret => {
            direct()
                || volumes.iter().any(|pv| {
                    volume_secrets(pv)
                        .iter()
                        .any(|(ns, n)| ns == namespace && n == name)
                        && used(pv)
                })
        }
        _ => direct(),
    }
}

/// The secrets (namespace, name) a PersistentVolume's node side uses (upstream's
/// `VisitPVSecretNames`, kubelet-visible ones only: not CSI's controller-publish and
/// controller-expand secrets). In-tree sources whose reference has no namespace default to
/// the bound claim's.
fn volume_secrets(pv: &Value) -> Vec<(String, String)> {
    let spec = pv.get("spec").unwrap_or(&Value::Null);
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let claim_ns = s(spec.pointer("/claimRef/namespace"));
    let or_claim_ns = |ns: String| if ns.is_empty() { claim_ns.clone() } else { ns };
    let mut out = Vec::new();
    if let Some(az) = spec.get("azureFile") {
        out.push((
            or_claim_ns(s(az.get("secretNamespace"))),
            s(az.get("secretName")),
        ));
    } else if let Some((_, r)) = ["cephfs", "flexVolume", "rbd", "scaleIO", "iscsi"]
        .iter()
        .find_map(|k| spec.get(*k).map(|src| (k, src)))
    {
        if let Some(r) = r.get("secretRef") {
            out.push((or_claim_ns(s(r.get("namespace"))), s(r.get("name"))));
        }
    } else if let Some(r) = ["cinder", "storageos"].iter().find_map(|k| spec.get(*k)) {
        if let Some(r) = r.get("secretRef") {
            out.push((s(r.get("namespace")), s(r.get("name"))));
        }
    } else if let Some(csi) = spec.get("csi") {
        for key in [
            "nodePublishSecretRef",
            "nodeStageSecretRef",
            "nodeExpandSecretRef",
        ] {
            if let Some(r) = csi.get(key) {
                out.push((s(r.get("namespace")), s(r.get("name"))));
            }
        }
    }
    out.retain(|(_, name)| !name.is_empty());
    out
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Secret,
    ConfigMap,
    Claim,
    Volume,
    ServiceAccount,
}

/// The names of the objects of `kind` a pod uses.
fn references(pod: &Value, kind: Kind) -> Vec<String> {
    let kind = match kind {
        Kind::Secret => PodRef::Secret,
        Kind::ConfigMap => PodRef::ConfigMap,
        Kind::Claim => PodRef::Claim,
        Kind::ServiceAccount => PodRef::ServiceAccount,
        Kind::Volume => return Vec::new(),
    };
    pod_refs::names(pod, kind)
}

fn lease(node: &str, info: &RequestInfo) -> Opinion {
    if !matches!(
        info.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return Err("can only get, create, update, patch, or delete a node lease".into());
    }
    if info.namespace != "kube-node-lease" {
        return Err("can only access leases in the \"kube-node-lease\" system namespace".into());
    }
    if info.verb != "create" && info.name != node {
        return Err("can only access node lease with the same name as the requesting node".into());
    }
    Ok(())
}

fn csinode(node: &str, info: &RequestInfo) -> Opinion {
    if !matches!(
        info.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return Err("can only get, create, update, patch, or delete a CSINode".into());
    }
    if !info.subresource.is_empty() {
        return Err("cannot authorize CSINode subresources".into());
    }
    if info.verb != "create" && info.name != node {
        return Err("can only access CSINode with the same name as the requesting node".into());
    }
    Ok(())
}

fn node_object(node: &str, info: &RequestInfo) -> Opinion {
    match (info.subresource.as_str(), info.verb.as_str()) {
        // NodeRestriction confines writes to the node's own object.
        ("", "create" | "update" | "patch") => Ok(()),
        ("", "get" | "list" | "watch") => match info.name.as_str() {
            n if n == node => Ok(()),
            "" => Err(format!(
                "node '{node}' cannot read all nodes, only its own Node object"
            )),
            other => Err(format!(
                "node '{node}' cannot read '{other}', only its own Node object"
            )),
        },
        ("status", "update" | "patch") => Ok(()),
        _ => Err(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Vec<Arc<Value>> {
        let web = json!({
            "metadata": { "name": "web", "namespace": "app" },
            "spec": {
                "nodeName": "node-a",
                "serviceAccountName": "web-sa",
                "imagePullSecrets": [{ "name": "pull" }],
                "containers": [{
                    "name": "c",
                    "env": [
                        { "name": "A", "valueFrom": { "secretKeyRef": { "name": "env-secret", "key": "k" } } },
                        { "name": "B", "valueFrom": { "configMapKeyRef": { "name": "env-cm", "key": "k" } } },
                    ],
                }],
                "volumes": [
                    { "name": "s", "secret": { "secretName": "plain" } },
                    { "name": "cm", "configMap": { "name": "cm" } },
                    { "name": "p", "projected": { "sources": [
                        { "secret": { "name": "projected-secret" } },
                        { "configMap": { "name": "projected-cm" } },
                    ] } },
                    { "name": "az", "azureFile": { "secretName": "az-pod", "shareName": "x" } },
                    { "name": "ceph", "cephfs": { "monitors": ["m"], "secretRef": { "name": "ceph-pod" } } },
                    { "name": "cinder", "cinder": { "volumeID": "v", "secretRef": { "name": "cinder-pod" } } },
                    { "name": "flex", "flexVolume": { "driver": "d", "secretRef": { "name": "flex-pod" } } },
                    { "name": "rbd", "rbd": { "monitors": ["m"], "image": "i", "secretRef": { "name": "rbd-pod" } } },
                    { "name": "sio", "scaleIO": { "gateway": "g", "system": "s", "secretRef": { "name": "scaleio-pod" } } },
                    { "name": "iscsi", "iscsi": { "targetPortal": "t", "iqn": "q", "lun": 0, "secretRef": { "name": "iscsi-pod" } } },
                    { "name": "sos", "storageos": { "volumeName": "v", "secretRef": { "name": "storageos-pod" } } },
                    { "name": "csi", "csi": { "driver": "d", "nodePublishSecretRef": { "name": "csi-pod" } } },
                    { "name": "data", "persistentVolumeClaim": { "claimName": "data" } },
                    { "name": "files", "persistentVolumeClaim": { "claimName": "files" } },
                    { "name": "ceph-claim", "persistentVolumeClaim": { "claimName": "ceph" } },
                    { "name": "block", "persistentVolumeClaim": { "claimName": "block" } },
                    { "name": "scratch", "ephemeral": { "volumeClaimTemplate": { "spec": {} } } },
                ],
            },
        });
        let other = json!({
            "metadata": { "name": "other", "namespace": "app" },
            "spec": {
                "nodeName": "node-b",
                "serviceAccountName": "b-sa",
                "containers": [{ "name": "c" }],
                "volumes": [
                    { "name": "s", "secret": { "secretName": "b-only" } },
                    { "name": "c", "persistentVolumeClaim": { "claimName": "b-claim" } },
                ],
            },
        });
        let mirror = json!({
            "metadata": {
                "name": "static-node-a", "namespace": "app",
                "annotations": { pod_refs::MIRROR_ANNOTATION: "hash" },
            },
            "spec": {
                "nodeName": "node-a",
                "serviceAccountName": "mirror-sa",
                "containers": [{ "name": "c" }],
                "volumes": [
                    { "name": "s", "secret": { "secretName": "mirror-secret" } },
                    { "name": "c", "persistentVolumeClaim": { "claimName": "mirror-claim" } },
                ],
            },
        });
        vec![Arc::new(web), Arc::new(other), Arc::new(mirror)]
    }

    fn volumes() -> Vec<Arc<Value>> {
        let pv = |name: &str, claim: Option<&str>, source: Value| {
            let mut spec = source;
            if let Some(claim) = claim {
                spec["claimRef"] =
                    json!({ "kind": "PersistentVolumeClaim", "namespace": "app", "name": claim });
            }
            Arc::new(json!({ "metadata": { "name": name }, "spec": spec }))
        };
        let csi = |secret: &str| {
            json!({ "csi": { "driver": "d", "volumeHandle": "h",
            "nodePublishSecretRef": { "namespace": "storage", "name": secret } } })
        };
        vec![
            pv(
                "pv-data",
                Some("data"),
                json!({ "csi": {
                    "driver": "d", "volumeHandle": "h",
                    "nodePublishSecretRef": { "namespace": "storage", "name": "csi-publish" },
                    "nodeStageSecretRef": { "namespace": "storage", "name": "csi-stage" },
                    "nodeExpandSecretRef": { "namespace": "storage", "name": "csi-expand" },
                    "controllerPublishSecretRef": { "namespace": "storage", "name": "csi-ctrl-publish" },
                    "controllerExpandSecretRef": { "namespace": "storage", "name": "csi-ctrl-expand" },
                } }),
            ),
            pv(
                "pv-files",
                Some("files"),
                json!({ "azureFile": { "secretName": "az-key", "shareName": "x" } }),
            ),
            pv(
                "pv-ceph",
                Some("ceph"),
                json!({ "cephfs": { "monitors": ["m"], "secretRef": { "namespace": "ceph-ns", "name": "ceph-key" } } }),
            ),
            pv(
                "pv-block",
                Some("block"),
                json!({ "cinder": { "volumeID": "v", "secretRef": { "namespace": "cinder-ns", "name": "cinder-key" } } }),
            ),
            pv(
                "pv-scratch",
                Some("web-scratch"),
                json!({ "rbd": { "monitors": ["m"], "image": "i", "secretRef": { "name": "rbd-key" } } }),
            ),
            pv("pv-b", Some("b-claim"), csi("b-secret")),
            pv("pv-unbound", None, csi("loose")),
            pv("pv-mirror", Some("mirror-claim"), csi("mirror-pv-secret")),
        ]
    }

    /// Whether node-a reaches `kind` `namespace/name`, as expected.
    fn check(kind: Kind, cases: &[(&str, &str, bool)]) {
        let (pods, volumes) = (pods(), volumes());
        for (namespace, name, expect) in cases {
            assert_eq!(
                reaches("node-a", kind, namespace, name, &pods, &volumes),
                *expect,
                "{kind:?} {namespace}/{name}"
            );
        }
    }

    #[test]
    fn secrets_the_nodes_pods_name_are_reached() {
        check(
            Kind::Secret,
            &[
                ("app", "plain", true),
                ("app", "pull", true),
                ("app", "env-secret", true),
                ("app", "projected-secret", true),
                ("app", "az-pod", true),
                ("app", "ceph-pod", true),
                ("app", "cinder-pod", true),
                ("app", "flex-pod", true),
                ("app", "rbd-pod", true),
                ("app", "scaleio-pod", true),
                ("app", "iscsi-pod", true),
                ("app", "storageos-pod", true),
                ("app", "csi-pod", true),
                // Another namespace's namesake, another node's pod, a mirror pod's, a config
                // map's name.
                ("other", "plain", false),
                ("app", "b-only", false),
                ("app", "mirror-secret", false),
                ("app", "cm", false),
            ],
        );
    }

    #[test]
    fn secrets_of_the_volumes_bound_to_the_nodes_claims_are_reached() {
        check(
            Kind::Secret,
            &[
                ("storage", "csi-publish", true),
                ("storage", "csi-stage", true),
                ("storage", "csi-expand", true),
                ("app", "az-key", true),
                ("ceph-ns", "ceph-key", true),
                ("cinder-ns", "cinder-key", true),
                // The ephemeral volume's claim, `<pod>-<volume>`; no namespace on the
                // reference means the claim's.
                ("app", "rbd-key", true),
                // The controller's secrets are not the kubelet's.
                ("storage", "csi-ctrl-publish", false),
                ("storage", "csi-ctrl-expand", false),
                // Not where the reference says.
                ("app", "ceph-key", false),
                ("app", "csi-publish", false),
                // Another node's claim, no claim, a mirror pod's claim.
                ("storage", "b-secret", false),
                ("storage", "loose", false),
                ("storage", "mirror-pv-secret", false),
            ],
        );
    }

    #[test]
    fn claims_and_their_volumes_are_reached_through_the_nodes_pods() {
        check(
            Kind::Claim,
            &[
                ("app", "data", true),
                ("app", "web-scratch", true),
                ("other", "data", false),
                ("app", "b-claim", false),
                ("app", "mirror-claim", false),
                ("app", "scratch", false),
            ],
        );
        check(
            Kind::Volume,
            &[
                ("", "pv-data", true),
                ("", "pv-files", true),
                ("", "pv-scratch", true),
                ("", "pv-b", false),
                ("", "pv-unbound", false),
                ("", "pv-mirror", false),
                ("", "pv-missing", false),
            ],
        );
    }

    #[test]
    fn config_maps_and_service_accounts_of_the_nodes_pods_are_reached() {
        check(
            Kind::ConfigMap,
            &[
                ("app", "cm", true),
                ("app", "env-cm", true),
                ("app", "projected-cm", true),
                ("app", "plain", false),
                ("other", "cm", false),
            ],
        );
        check(
            Kind::ServiceAccount,
            &[
                ("app", "web-sa", true),
                ("app", "b-sa", false),
                ("app", "mirror-sa", false),
                ("other", "web-sa", false),
            ],
        );
    }
}
