//! NodeRestriction: a node's agent (user `system:node:<name>` in group `system:nodes`) may
//! change only its own Node (never its taints, nor labels that steer workloads to it), the
//! status of the pods bound to it (never their labels), its own Lease and CSINode, the status
//! of claims, and may create only mirror pods of its static pods — bound to itself, owned by its
//! Node, referring to no secret, config map, claim or service account — and service-account
//! tokens only for pods bound to it. Upstream's plugin, rule for rule.

use async_trait::async_trait;
use kox_api::pod_refs::{self, PodRef};
use serde_json::Value;

use super::{Attributes, Operation, Plugin, UserInfo, forbidden};
use crate::error::ApiResult;
use crate::registry::{ObjectRef, Registry};

/// The NodeRestriction plugin.
pub struct NodeRestriction;

/// The namespace of node Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node a user is, if it is one (`system:node:<name>` in `system:nodes`).
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix("system:node:")?;
    (!name.is_empty() && user.groups.iter().any(|g| g == "system:nodes")).then_some(name)
}

fn bound_to(pod: Option<&Value>) -> &str {
    pod.and_then(|p| p.pointer("/spec/nodeName"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn at<'v>(v: Option<&'v Value>, pointer: &str) -> Option<&'v Value> {
    v.and_then(|v| v.pointer(pointer))
}

#[async_trait]
impl Plugin for NodeRestriction {
    fn name(&self) -> &'static str {
        "NodeRestriction"
    }

    async fn admit(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        let Some(node) = a.user.and_then(node_name).map(str::to_string) else {
            return Ok(());
        };
        if a.operation == Operation::Connect {
            return Ok(());
        }
        let why = match (a.def.group, a.def.plural) {
            ("", "pods") => pod(reg, a, &node).await?,
            ("", "nodes") => own_node(a, &node),
            ("", "persistentvolumeclaims") => claim_status(a, &node),
            ("", "serviceaccounts") => token(reg, a, &node).await?,
            ("coordination.k8s.io", "leases") => lease(a, &node),
            ("storage.k8s.io", "csinodes") => (a.object_name() != node).then(|| {
                "can only access CSINode with the same name as the requesting node".into()
            }),
            _ => None,
        };
        why.map_or(Ok(()), |why| Err(forbidden(a, &why)))
    }
}

/// Why a node may not do this to a pod, if it may not.
async fn pod(reg: &Registry, a: &Attributes<'_>, node: &str) -> ApiResult<Option<String>> {
    let old = a.old_object.as_ref();
    Ok(match (a.subresource, a.operation) {
        (None, Operation::Create) => mirror_pod_create(reg, a.object.as_ref(), node).await?,
        (None, Operation::Delete) => (bound_to(old) != node).then(|| {
            format!("node {node:?} can only delete pods with spec.nodeName set to itself")
        }),
        (None, op) => Some(format!(
            "unexpected operation {:?}, node {node:?} can only create and delete mirror pods",
            op.as_str()
        )),
        (Some("status"), Operation::Update) => {
            if bound_to(old) != node {
                Some(format!(
                    "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
                ))
            } else if at(old, "/metadata/labels") != at(a.object.as_ref(), "/metadata/labels") {
                Some(format!(
                    "node {node:?} cannot update labels through pod status"
                ))
            } else {
                None
            }
        }
        (Some("eviction"), Operation::Create) => (bound_to(old) != node)
            .then(|| format!("node {node} can only evict pods with spec.nodeName set to itself")),
        (Some("status" | "eviction"), op) => {
            Some(format!("unexpected operation {:?}", op.as_str()))
        }
        (Some(sub), _) => Some(format!(
            "unexpected pod subresource {sub:?}, only 'status' and 'eviction' are allowed"
        )),
    })
}

/// A node creates only mirror pods: bound to itself, owned by its Node as their controller,
/// referring to no other API object (so the Node authorizer never follows one to a secret).
async fn mirror_pod_create(
    reg: &Registry,
    pod: Option<&Value>,
    node: &str,
) -> ApiResult<Option<String>> {
    let Some(pod) = pod else {
        return Ok(Some("unexpected type <nil>".into()));
    };
    if !pod_refs::is_mirror(pod) {
        return Ok(Some(format!(
            "pod does not have {:?} annotation, node {node:?} can only create mirror pods",
            pod_refs::MIRROR_ANNOTATION
        )));
    }
    if bound_to(Some(pod)) != node {
        return Ok(Some(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        )));
    }
    if let Some(why) = owned_by_node(reg, pod, node).await? {
        return Ok(Some(why));
    }
    let refers = |kind| !pod_refs::names(pod, kind).is_empty();
    let why = if refers(PodRef::ServiceAccount) {
        "reference a service account"
    } else if refers(PodRef::Secret) {
        "reference secrets"
    } else if refers(PodRef::ConfigMap) {
        "reference configmaps"
    } else if pod_refs::uses_service_account_token(pod) {
        "reference service account tokens"
    } else if refers(PodRef::Claim) {
        "reference persistentvolumeclaims"
    } else {
        return Ok(None);
    };
    Ok(Some(format!(
        "node {node:?} can not create pods that {why}"
    )))
}

/// Why a mirror pod's owner is not its node, if it is not: exactly one owner reference, the
/// node's (`v1` `Node`, its name and current uid) and its controller, not blocking deletion.
async fn owned_by_node(reg: &Registry, pod: &Value, node: &str) -> ApiResult<Option<String>> {
    let owners = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let owner = match owners {
        [] => {
            return Ok(Some(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            )));
        }
        [owner] => owner,
        _ => {
            return Ok(Some(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            )));
        }
    };
    let field = |k: &str| owner.get(k).and_then(Value::as_str).unwrap_or("");
    if field("apiVersion") != "v1" || field("kind") != "Node" || field("name") != node {
        return Ok(Some(format!(
            "node {node:?} can only create pods with an owner reference set to itself"
        )));
    }
    if owner.get("controller").and_then(Value::as_bool) != Some(true) {
        return Ok(Some(format!(
            "node {node:?} can only create pods with a controller owner reference set to itself"
        )));
    }
    if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
        return Ok(Some(format!(
            "node {node:?} must not set blockOwnerDeletion on an owner reference"
        )));
    }
    let nodes = crate::resources::find("", "v1", "nodes").expect("nodes are served");
    let stored = reg
        .lister_get(ObjectRef {
            def: nodes,
            namespace: None,
            name: node,
        })
        .await?;
    let uid = stored
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok((field("uid") != uid).then(|| {
        format!(
            "node {node} UID mismatch: expected {} got {uid}",
            field("uid")
        )
    }))
}

/// A node changes only itself, never its taints, and sets no label outside the kubelet's own.
fn own_node(a: &Attributes<'_>, node: &str) -> Option<String> {
    let target = a.object_name();
    if target != node {
        return Some(format!(
            "node {node:?} is not allowed to modify node {target:?}"
        ));
    }
    let new = a.object.as_ref();
    let old = a.old_object.as_ref();
    match a.operation {
        Operation::Create => {
            if at(new, "/spec/configSource").is_some_and(|c| !c.is_null()) {
                return Some(format!(
                    "node {node:?} is not allowed to create pods with a non-nil configSource"
                ));
            }
            let forbidden = forbidden_labels(new, None);
            (!forbidden.is_empty()).then(|| {
                format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    forbidden.join(", ")
                )
            })
        }
        Operation::Update if a.subresource.is_none() || a.subresource == Some("status") => {
            let config = at(new, "/spec/configSource").filter(|c| !c.is_null());
            if config.is_some() && config != at(old, "/spec/configSource") {
                return Some(format!(
                    "node {node:?} is not allowed to update configSource to a new non-nil configSource"
                ));
            }
            if taints(new) != taints(old) {
                return Some(format!("node {node:?} is not allowed to modify taints"));
            }
            let forbidden = forbidden_labels(new, old);
            (!forbidden.is_empty())
                .then(|| format!("is not allowed to modify labels: {}", forbidden.join(", ")))
        }
        _ => None,
    }
}

/// A node's taints, with no taints and an empty list alike.
fn taints(node: Option<&Value>) -> &[Value] {
    at(node, "/spec/taints")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The labels that differ between `new` and `old` and that a node may not set: the
/// `node-restriction.kubernetes.io` namespace, and `kubernetes.io`/`k8s.io` labels other than
/// the kubelet's own (upstream's `getForbiddenLabels`), sorted.
fn forbidden_labels(new: Option<&Value>, old: Option<&Value>) -> Vec<String> {
    let labels = |v: Option<&Value>| v.map(super::labels_of).unwrap_or_default();
    let (new, old) = (labels(new), labels(old));
    let mut changed: Vec<&String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .chain(old.iter().filter(|(k, v)| new.get(*k) != Some(v)))
        .map(|(k, _)| k)
        .collect();
    changed.sort();
    changed.dedup();
    changed
        .into_iter()
        .filter(|key| {
            let ns = key.split_once('/').map(|(ns, _)| ns).unwrap_or("");
            let in_ns = |n: &str| ns == n || ns.ends_with(&format!(".{n}"));
            in_ns("node-restriction.kubernetes.io")
                || ((in_ns("kubernetes.io") || in_ns("k8s.io")) && !is_kubelet_label(key))
        })
        .cloned()
        .collect()
}

/// Labels the kubelet sets on its own Node (upstream's `IsKubeletLabel`).
fn is_kubelet_label(key: &str) -> bool {
    const KUBELET_LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    let ns = key.split_once('/').map(|(ns, _)| ns).unwrap_or("");
    KUBELET_LABELS.contains(&key)
        || ["kubelet.kubernetes.io", "node.kubernetes.io"]
            .iter()
            .any(|n| ns == *n || ns.ends_with(&format!(".{n}")))
}

/// A node writes only the status of claims, and in it only capacity and conditions.
fn claim_status(a: &Attributes<'_>, node: &str) -> Option<String> {
    if a.subresource != Some("status") {
        return Some("may only update PVC status".into());
    }
    if a.operation != Operation::Update {
        return Some(format!("unexpected operation {:?}", a.operation.as_str()));
    }
    let comparable = |v: Option<&Value>| {
        let mut v = v.cloned().unwrap_or_default();
        for p in ["/metadata", "/status"] {
            if let Some(m) = v.pointer_mut(p).and_then(Value::as_object_mut) {
                for k in ["resourceVersion", "managedFields", "capacity", "conditions"] {
                    m.remove(k);
                }
            }
        }
        v
    };
    (comparable(a.object.as_ref()) != comparable(a.old_object.as_ref())).then(|| {
        format!(
            "node {node:?} is not allowed to update fields other than status.capacity and status.conditions"
        )
    })
}

/// A node requests tokens only bound to a pod of its own, named with its uid.
async fn token(reg: &Registry, a: &Attributes<'_>, node: &str) -> ApiResult<Option<String>> {
    if a.operation != Operation::Create || a.subresource != Some("token") {
        return Ok(None);
    }
    let bound = at(a.object.as_ref(), "/spec/boundObjectRef");
    let field = |k: &str| {
        bound
            .and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    if field("apiVersion") != "v1" || field("kind") != "Pod" || field("name").is_empty() {
        return Ok(Some("node requested token not bound to a pod".into()));
    }
    if field("uid").is_empty() {
        return Ok(Some(
            "node requested token with a pod binding without a uid".into(),
        ));
    }
    let pods = crate::resources::find("", "v1", "pods").expect("pods are served");
    let pod = reg
        .lister_get(ObjectRef {
            def: pods,
            namespace: a.namespace,
            name: field("name"),
        })
        .await?;
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok(if field("uid") != uid {
        Some(format!(
            "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
            field("uid")
        ))
    } else if bound_to(Some(&pod)) != node {
        Some("node requested token bound to a pod scheduled on a different node".into())
    } else {
        None
    })
}

/// A node writes only its own Lease, in the node-lease namespace.
fn lease(a: &Attributes<'_>, node: &str) -> Option<String> {
    if a.namespace != Some(NODE_LEASE_NAMESPACE) {
        return Some(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        ));
    }
    (a.object_name() != node)
        .then(|| "can only access node lease with the same name as the requesting node".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admission::testing;
    use kox_api::pod_refs::MIRROR_ANNOTATION;

    fn node_user(name: &str) -> UserInfo {
        UserInfo {
            name: format!("system:node:{name}"),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            ..Default::default()
        }
    }

    fn def(plural: &str) -> &'static crate::resources::ResourceDef {
        crate::resources::find("", "v1", plural).unwrap()
    }

    /// Runs the plugin as node `n1`; the refusal's message, if refused.
    async fn as_n1(reg: &Registry, mut a: Attributes<'_>) -> Option<String> {
        let user = node_user("n1");
        a.user = Some(&user);
        NodeRestriction.admit(reg, &mut a).await.err().map(|e| {
            assert_eq!(e.code(), 403, "{}", e.message());
            e.message().to_string()
        })
    }

    fn attrs(
        op: Operation,
        plural: &str,
        sub: Option<&'static str>,
        new: Option<Value>,
        old: Option<Value>,
    ) -> Attributes<'static> {
        let mut a = Attributes::new(op, def(plural), Some("ns"));
        a.subresource = sub;
        a.name = "p".into();
        a.object = new;
        a.old_object = old;
        a
    }

    #[test]
    fn only_node_users_are_nodes() {
        assert_eq!(node_name(&node_user("n1")), Some("n1"));
        let mut u = node_user("n1");
        u.groups.clear();
        assert_eq!(node_name(&u), None);
        assert_eq!(
            node_name(&UserInfo {
                name: "admin".into(),
                ..Default::default()
            }),
            None
        );
    }

    #[tokio::test]
    async fn a_node_may_change_only_itself_and_its_pods_status() {
        let (reg, _dir) = testing::registry().await;
        let mut a = Attributes::new(Operation::Update, def("nodes"), None);
        a.name = "n1".into();
        assert_eq!(as_n1(&reg, a).await, None);
        let mut a = Attributes::new(Operation::Update, def("nodes"), None);
        a.name = "n2".into();
        assert_eq!(
            as_n1(&reg, a).await.unwrap(),
            "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
        );

        let pod = |node: &str, app: &str| json!({"metadata": {"labels": {"app": app}}, "spec": {"nodeName": node}});
        let status = |new, old| {
            attrs(
                Operation::Update,
                "pods",
                Some("status"),
                Some(new),
                Some(old),
            )
        };
        assert_eq!(
            as_n1(&reg, status(pod("n1", "a"), pod("n1", "a"))).await,
            None
        );
        assert_eq!(
            as_n1(&reg, status(pod("n2", "a"), pod("n2", "a")))
                .await
                .unwrap(),
            "pods \"p\" is forbidden: node \"n1\" can only update pod status for pods with spec.nodeName set to itself"
        );
        assert!(
            as_n1(&reg, status(pod("n1", "b"), pod("n1", "a")))
                .await
                .unwrap()
                .ends_with("node \"n1\" cannot update labels through pod status")
        );
        // The pod itself: only created (as a mirror pod) and deleted.
        let update = attrs(
            Operation::Update,
            "pods",
            None,
            Some(pod("n1", "a")),
            Some(pod("n1", "a")),
        );
        assert!(as_n1(&reg, update).await.unwrap().ends_with(
            "unexpected operation \"UPDATE\", node \"n1\" can only create and delete mirror pods"
        ));
        let delete = |node| attrs(Operation::Delete, "pods", None, None, Some(pod(node, "a")));
        assert_eq!(as_n1(&reg, delete("n1")).await, None);
        assert!(as_n1(&reg, delete("n2")).await.is_some());
        let exec = attrs(
            Operation::Create,
            "pods",
            Some("exec"),
            None,
            Some(pod("n1", "a")),
        );
        assert!(as_n1(&reg, exec).await.unwrap().ends_with(
            "unexpected pod subresource \"exec\", only 'status' and 'eviction' are allowed"
        ));
    }

    #[tokio::test]
    async fn mirror_pods_are_owned_by_their_node_and_refer_to_nothing() {
        let (reg, _dir) = testing::registry().await;
        let n1 = testing::put(&reg, "nodes", json!({"metadata": {"name": "n1"}})).await;
        let uid = n1["metadata"]["uid"].as_str().unwrap().to_string();
        let owner = json!({"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": uid, "controller": true});
        let mirror = |spec: Value, owners: Value| {
            json!({"metadata": {"name": "p", "annotations": {MIRROR_ANNOTATION: "x"}, "ownerReferences": owners},
                   "spec": spec})
        };
        let create = |pod| attrs(Operation::Create, "pods", None, Some(pod), None);
        let bare = json!({"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]});
        assert_eq!(
            as_n1(&reg, create(mirror(bare.clone(), json!([owner])))).await,
            None
        );

        let not_mirror = json!({"metadata": {"name": "p"}, "spec": bare});
        assert!(
            as_n1(&reg, create(not_mirror))
                .await
                .unwrap()
                .contains("can only create mirror pods")
        );
        let mut elsewhere = bare.clone();
        elsewhere["nodeName"] = json!("n2");
        assert!(
            as_n1(&reg, create(mirror(elsewhere, json!([owner]))))
                .await
                .unwrap()
                .ends_with("can only create pods with spec.nodeName set to itself")
        );
        let mut stale = owner.clone();
        stale["uid"] = json!("old");
        for (owners, why) in [
            (
                json!([]),
                "can only create pods with an owner reference set to itself",
            ),
            (
                json!([owner, owner]),
                "can only create pods with a single owner reference set to itself",
            ),
            (
                json!([{"apiVersion": "v1", "kind": "Node", "name": "n2", "uid": uid, "controller": true}]),
                "can only create pods with an owner reference set to itself",
            ),
            (
                json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": uid}]),
                "can only create pods with a controller owner reference set to itself",
            ),
            (json!([stale]), "UID mismatch: expected old got"),
        ] {
            let got = as_n1(&reg, create(mirror(bare.clone(), owners)))
                .await
                .unwrap();
            assert!(got.contains(why), "{got}");
        }
        let with = |extra: Value| {
            let mut spec = bare.clone();
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            create(mirror(spec, json!([owner])))
        };
        for (extra, why) in [
            (
                json!({"serviceAccountName": "sa"}),
                "reference a service account",
            ),
            (
                json!({"volumes": [{"name": "s", "secret": {"secretName": "s"}}]}),
                "reference secrets",
            ),
            (
                json!({"containers": [{"name": "c", "image": "i", "envFrom": [{"secretRef": {"name": "s"}}]}]}),
                "reference secrets",
            ),
            (
                json!({"volumes": [{"name": "c", "configMap": {"name": "c"}}]}),
                "reference configmaps",
            ),
            (
                json!({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}),
                "reference service account tokens",
            ),
            (
                json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "d"}}]}),
                "reference persistentvolumeclaims",
            ),
        ] {
            let got = as_n1(&reg, with(extra)).await.unwrap();
            assert!(
                got.ends_with(&format!("node \"n1\" can not create pods that {why}")),
                "{got}"
            );
        }
    }

    #[tokio::test]
    async fn a_node_keeps_its_taints_and_sets_only_kubelet_labels() {
        let (reg, _dir) = testing::registry().await;
        let node = |labels: Value, taints: Value| json!({"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints}});
        let base = node(json!({"kubernetes.io/hostname": "n1"}), json!([]));
        let update = |new: Value| {
            let mut a = Attributes::new(Operation::Update, def("nodes"), None);
            a.name = "n1".into();
            a.object = Some(new);
            a.old_object = Some(base.clone());
            a
        };
        let allowed = node(
            json!({"kubernetes.io/hostname": "n1", "node.kubernetes.io/exclude-from-external-load-balancers": "",
                   "topology.kubernetes.io/zone": "z", "example.com/x": "y"}),
            json!([]),
        );
        assert_eq!(as_n1(&reg, update(allowed)).await, None);
        let steering = node(
            json!({"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/control-plane": "",
                   "node-restriction.kubernetes.io/secure": "true"}),
            json!([]),
        );
        assert!(
            as_n1(&reg, update(steering)).await.unwrap().ends_with(
                "is not allowed to modify labels: node-restriction.kubernetes.io/secure, node-role.kubernetes.io/control-plane"
            )
        );
        let untainted = node(
            json!({"kubernetes.io/hostname": "n1"}),
            json!([{"key": "k", "effect": "NoSchedule"}]),
        );
        assert!(
            as_n1(&reg, update(untainted))
                .await
                .unwrap()
                .ends_with("node \"n1\" is not allowed to modify taints")
        );

        let mut register = Attributes::new(Operation::Create, def("nodes"), None);
        register.object = Some(node(
            json!({"node-role.kubernetes.io/master": ""}),
            json!([]),
        ));
        assert!(as_n1(&reg, register).await.unwrap().ends_with(
            "node \"n1\" is not allowed to set the following labels: node-role.kubernetes.io/master"
        ));
    }

    #[tokio::test]
    async fn a_node_writes_only_its_own_lease() {
        let (reg, _dir) = testing::registry().await;
        let leases = crate::resources::find("coordination.k8s.io", "v1", "leases").unwrap();
        let lease = |ns: &'static str, name: &str| {
            let mut a = Attributes::new(Operation::Create, leases, Some(ns));
            a.object = Some(json!({"metadata": {"name": name, "namespace": ns}}));
            a
        };
        assert_eq!(as_n1(&reg, lease("kube-node-lease", "n1")).await, None);
        assert!(
            as_n1(&reg, lease("kube-node-lease", "n2"))
                .await
                .unwrap()
                .ends_with("can only access node lease with the same name as the requesting node")
        );
        assert!(
            as_n1(&reg, lease("default", "n1"))
                .await
                .unwrap()
                .ends_with("can only access leases in the \"kube-node-lease\" system namespace")
        );
    }

    #[tokio::test]
    async fn a_node_requests_tokens_only_for_its_own_pods() {
        let (reg, _dir) = testing::registry().await;
        let mine = testing::put(
            &reg,
            "pods",
            json!({"metadata": {"name": "mine", "namespace": "ns"},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [{"name": "c", "image": "i"}]}}),
        )
        .await;
        let theirs = testing::put(
            &reg,
            "pods",
            json!({"metadata": {"name": "theirs", "namespace": "ns"},
            "spec": {"nodeName": "n2", "serviceAccountName": "sa", "containers": [{"name": "c", "image": "i"}]}}),
        )
        .await;
        let uid = |p: &Value| p["metadata"]["uid"].as_str().unwrap().to_string();
        let request = |bound: Value| {
            let mut a = Attributes::new(Operation::Create, def("serviceaccounts"), Some("ns"));
            a.subresource = Some("token");
            a.name = "sa".into();
            a.object =
                Some(json!({"spec": {"expirationSeconds": 315360000, "boundObjectRef": bound}}));
            a
        };
        let bound = |name: &str, uid: &str| json!({"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid});
        assert_eq!(as_n1(&reg, request(bound("mine", &uid(&mine)))).await, None);
        for (b, why) in [
            (Value::Null, "node requested token not bound to a pod"),
            (
                bound("mine", ""),
                "node requested token with a pod binding without a uid",
            ),
            (bound("mine", "other"), "does not match the UID in record"),
            (
                bound("theirs", &uid(&theirs)),
                "node requested token bound to a pod scheduled on a different node",
            ),
        ] {
            let got = as_n1(&reg, request(b)).await.unwrap();
            assert!(got.contains(why), "{got}");
        }
    }

    #[tokio::test]
    async fn other_users_are_not_restricted() {
        let (reg, _dir) = testing::registry().await;
        let admin = UserInfo {
            name: "kubernetes-admin".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        let mut a = Attributes::new(Operation::Delete, def("nodes"), None);
        a.user = Some(&admin);
        a.name = "n2".into();
        NodeRestriction.admit(&reg, &mut a).await.unwrap();
    }
}
