//! The Node authorizer, as upstream's: a node's agent (`system:node:<name>` in `system:nodes`)
//! reads and writes only what concerns its own node. Secrets, ConfigMaps,
//! PersistentVolumeClaims, PersistentVolumes and service-account tokens it may get only when a
//! pod bound to it uses them — upstream keeps a graph of these edges; kox follows them through
//! the pods in the watch cache. Its Node, Lease and CSINode are its own by name; pods it lists or
//! watches with the field selector `spec.nodeName=<name>`. Everything else is judged by the
//! `system:node` role's rules. Writes to Nodes and pods that this lets through are confined to
//! the node's own by the NodeRestriction admission plugin.

use std::sync::Arc;

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

    /// Whether the named object is used by a pod bound to `node`.
    async fn related(&self, node: &str, info: &RequestInfo, kind: Kind) -> Opinion {
        if info.name.is_empty() {
            return Err("No Object name found".into());
        }
        let found = match kind {
            Kind::Volume => {
                // node <- pod <- pvc <- pv: the claims of its pods, in every namespace.
                let pods = self.pods_on(node, None).await;
                let mut claims = Vec::new();
                for pod in &pods {
                    let ns = pod
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    for claim in references(pod, Kind::Claim) {
                        claims.push((ns.to_string(), claim));
                    }
                }
                let mut bound = false;
                for (ns, claim) in claims {
                    if let Some(pvc) = self.get("persistentvolumeclaims", Some(&ns), &claim).await
                        && pvc.pointer("/spec/volumeName").and_then(Value::as_str)
                            == Some(info.name.as_str())
                    {
                        bound = true;
                        break;
                    }
                }
                bound
            }
            _ => self
                .pods_on(node, Some(&info.namespace))
                .await
                .iter()
                .any(|pod| references(pod, kind).contains(&info.name)),
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

    async fn get(&self, plural: &str, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let def = resources::find("", "v1", plural)?;
        let key = def.key(namespace, name);
        let (items, _) = self.caches.get(def).snapshot(key.as_bytes()).await;
        items
            .into_iter()
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Secret,
    ConfigMap,
    Claim,
    Volume,
    ServiceAccount,
}

/// The names of the objects of `kind` a pod uses.
fn references(pod: &Value, kind: Kind) -> Vec<String> {
    let mut out = Vec::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let mut push = |v: Option<&Value>| {
        if let Some(name) = v.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            out.push(name.to_string());
        }
    };
    let volumes = spec.get("volumes").and_then(Value::as_array);
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .filter_map(|k| spec.get(k).and_then(Value::as_array))
        .flatten();
    match kind {
        Kind::ServiceAccount => push(spec.get("serviceAccountName")),
        Kind::Claim => {
            let pod_name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            for v in volumes.into_iter().flatten() {
                push(v.pointer("/persistentVolumeClaim/claimName"));
                if v.get("ephemeral").is_some() {
                    let name = v.get("name").and_then(Value::as_str).unwrap_or("");
                    let generated = Value::String(format!("{pod_name}-{name}"));
                    push(Some(&generated));
                }
            }
        }
        Kind::Volume => {}
        Kind::Secret | Kind::ConfigMap => {
            let secret = matches!(kind, Kind::Secret);
            if secret {
                for s in spec
                    .get("imagePullSecrets")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    push(s.get("name"));
                }
            }
            for v in volumes.into_iter().flatten() {
                if secret {
                    push(v.pointer("/secret/secretName"));
                    for p in ["/csi/nodePublishSecretRef/name", "/cephfs/secretRef/name"] {
                        push(v.pointer(p));
                    }
                } else {
                    push(v.pointer("/configMap/name"));
                }
                let source = if secret { "secret" } else { "configMap" };
                for s in v
                    .pointer("/projected/sources")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    push(s.pointer(&format!("/{source}/name")));
                }
            }
            let (key_ref, from_ref) = if secret {
                ("/valueFrom/secretKeyRef/name", "/secretRef/name")
            } else {
                ("/valueFrom/configMapKeyRef/name", "/configMapRef/name")
            };
            for c in containers {
                for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                    push(e.pointer(key_ref));
                }
                for e in c
                    .get("envFrom")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    push(e.pointer(from_ref));
                }
            }
        }
    }
    out
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
