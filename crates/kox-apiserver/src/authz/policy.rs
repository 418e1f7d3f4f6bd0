//! Upstream's default RBAC policy (`bootstrappolicy`): the cluster roles and bindings every
//! cluster starts with (and the controllers' Roles in `kube-system`), created at start and
//! reconciled on every later start (missing objects created; rules, subjects, labels and
//! annotations added to objects that still carry
//! `rbac.authorization.kubernetes.io/autoupdate: "true"`). Aggregated roles (`admin`, `edit`,
//! `view`) get their rules from [`super::aggregation`].
//!
//! Reconciling never takes anything away, as upstream's start-up reconciliation (which runs
//! without `RemoveExtraSubjects`): in particular a cluster made when `system:node` was still
//! bound to the group `system:nodes` keeps that subject, and with it every node's broad read
//! access beside the Node authorizer, until an administrator removes it (`kubectl auth
//! reconcile --remove-extra-subjects`, or an edit of the binding), as upstream leaves it to
//! the installer.

use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::registry::{FieldValidation, ObjectRef, Registry, WriteOptions};

/// Server-made writes: real, and strict about unknown fields.
const STRICT: WriteOptions<'static> = WriteOptions {
    dry_run: false,
    field_validation: FieldValidation::Strict,
    user: None,
    requested: None,
};
use crate::resources;

const BOOTSTRAPPING: &str = "kubernetes.io/bootstrapping";
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const AGG_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGG_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGG_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

pub(super) const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub(super) fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({ "apiGroups": groups, "resources": resources, "verbs": verbs })
}

fn named_rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({ "apiGroups": groups, "resources": resources, "resourceNames": names, "verbs": verbs })
}

fn url_rule(verbs: &[&str], urls: &[&str]) -> Value {
    json!({ "nonResourceURLs": urls, "verbs": verbs })
}

pub(super) fn events_rule() -> Value {
    rule(
        &["create", "patch", "update"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

pub(super) fn role(name: &str, extra_labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(BOOTSTRAPPING.into(), json!("rbac-defaults"));
    for (k, v) in extra_labels {
        labels.insert((*k).into(), json!(v));
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": { AUTOUPDATE: "true" },
        },
        "rules": rules,
    })
}

/// A ClusterRole or ClusterRoleBinding made into a Role or RoleBinding of `namespace` (a
/// binding then refers to a Role of that namespace).
pub(super) fn in_namespace(mut obj: Value, namespace: &str) -> Value {
    let kind = match obj["kind"].as_str() {
        Some("ClusterRoleBinding") => {
            obj["roleRef"]["kind"] = json!("Role");
            "RoleBinding"
        }
        _ => "Role",
    };
    obj["kind"] = json!(kind);
    obj["metadata"]["namespace"] = json!(namespace);
    obj
}

fn aggregated(name: &str, extra_labels: &[(&str, &str)], selector_label: &str) -> Value {
    let mut r = role(name, extra_labels, Vec::new());
    r["aggregationRule"] =
        json!({ "clusterRoleSelectors": [{ "matchLabels": { selector_label: "true" } }] });
    r
}

/// The default cluster roles.
pub fn cluster_roles() -> Vec<Value> {
    vec![
        role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        aggregated("admin", &[], AGG_ADMIN),
        aggregated("edit", &[(AGG_ADMIN, "true")], AGG_EDIT),
        aggregated("view", &[(AGG_EDIT, "true")], AGG_VIEW),
        role(
            "system:aggregate-to-admin",
            &[(AGG_ADMIN, "true")],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(
                    READ_WRITE,
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                ),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &[(AGG_EDIT, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
                rule(
                    WRITE,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "ingresses",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                    ],
                ),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                ),
                rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        role(
            "system:aggregate-to-view",
            &[(AGG_VIEW, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                ),
                rule(
                    READ,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                    ],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
            ],
        ),
        role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        role(
            "system:discovery",
            &[],
            vec![url_rule(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![url_rule(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        role(
            "system:monitoring",
            &[],
            vec![url_rule(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        role(
            "system:kube-controller-manager",
            &[],
            vec![
                events_rule(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named_rule(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-controller-manager"],
                ),
                rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
                rule(&["delete"], &[""], &["secrets"]),
                rule(
                    &["get"],
                    &[""],
                    &["configmaps", "namespaces", "secrets", "serviceaccounts"],
                ),
                rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
            ],
        ),
        // Full access to the node agents' API (upstream's bootstrap role).
        role(
            "system:kubelet-api-admin",
            &[],
            vec![
                rule(&["get", "list", "watch"], &[""], &["nodes"]),
                rule(&["proxy"], &[""], &["nodes"]),
                rule(
                    &["*"],
                    &[""],
                    &["nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log"],
                ),
            ],
        ),
        role(
            "system:kube-scheduler",
            &[],
            vec![
                events_rule(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named_rule(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-scheduler"],
                ),
                rule(READ, &[""], &["nodes"]),
                rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
                rule(&["create"], &[""], &["bindings", "pods/binding"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(READ, &[""], &["replicationcontrollers", "services"]),
                rule(READ, &["apps", "extensions"], &["replicasets"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    READ,
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                rule(READ, &["storage.k8s.io"], &["csinodes"]),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["storage.k8s.io"], &["csidrivers"]),
                rule(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
            ],
        ),
        role(
            "system:volume-scheduler",
            &[],
            vec![
                rule(
                    &["get", "list", "patch", "update", "watch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(
                    &["get", "list", "patch", "update", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
            ],
        ),
        role(
            "system:node",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews", "subjectaccessreviews"],
                ),
                rule(READ, &[""], &["services"]),
                rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["patch", "update"], &[""], &["nodes"]),
                rule(&["create", "patch", "update"], &[""], &["events"]),
                rule(READ, &[""], &["pods"]),
                rule(&["create", "delete"], &[""], &["pods"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(READ, &[""], &["configmaps", "secrets"]),
                rule(
                    &["get"],
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(&["get"], &[""], &["endpoints"]),
                rule(
                    &["create", "get", "list", "watch"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["create", "delete", "get", "patch", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    &["get", "patch", "update"],
                    &[""],
                    &["persistentvolumeclaims/status"],
                ),
                rule(READ, &["storage.k8s.io"], &["csidrivers"]),
                rule(
                    &["create", "delete", "get", "patch", "update"],
                    &["storage.k8s.io"],
                    &["csinodes"],
                ),
                rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
            ],
        ),
        role(
            "system:node-proxier",
            &[],
            vec![
                rule(&["list", "watch"], &[""], &["endpoints", "services"]),
                rule(READ, &[""], &["nodes"]),
                events_rule(),
                rule(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        role(
            "system:kube-dns",
            &[],
            vec![rule(&["list", "watch"], &[""], &["endpoints", "services"])],
        ),
        role(
            "system:service-account-issuer-discovery",
            &[],
            vec![url_rule(
                &["get"],
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
            )],
        ),
    ]
}

pub(super) fn binding(name: &str, role: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(kind, name)| match *kind {
            "ServiceAccount" => {
                let (ns, n) = name.split_once('/').unwrap_or(("default", name));
                json!({ "kind": kind, "name": n, "namespace": ns })
            }
            _ => json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name }),
        })
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": { BOOTSTRAPPING: "rbac-defaults" },
            "annotations": { AUTOUPDATE: "true" },
        },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": subjects,
    })
}

/// The default cluster role bindings. `system:node` is bound to nobody, as upstream: the Node
/// authorizer ([`super::node`]) grants nodes their access.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            &[("Group", "system:masters")],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &[("Group", "system:authenticated")],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &[("Group", "system:authenticated")],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        binding(
            "system:monitoring",
            "system:monitoring",
            &[("Group", "system:monitoring")],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            &[("User", "system:kube-controller-manager")],
        ),
        binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        binding(
            "system:volume-scheduler",
            "system:volume-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        binding(
            "kox:kube-apiserver-kubelet-client",
            "system:kubelet-api-admin",
            &[("User", crate::connect::KUBELET_CLIENT_USER)],
        ),
        binding("system:node", "system:node", &[]),
        binding(
            "system:node-proxier",
            "system:node-proxier",
            &[("User", "system:kube-proxy")],
        ),
        binding(
            "system:kube-dns",
            "system:kube-dns",
            &[("ServiceAccount", "kube-system/kube-dns")],
        ),
        binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            &[("Group", "system:serviceaccounts")],
        ),
    ]
}

/// Creates the default policy, or reconciles it with what is stored.
pub async fn ensure(registry: &Registry) -> ApiResult<()> {
    let roles = rbac_def("clusterroles");
    for expected in cluster_roles()
        .into_iter()
        .chain(super::controller_policy::cluster_roles())
    {
        reconcile(registry, roles, expected, merge_role).await?;
    }
    let bindings = rbac_def("clusterrolebindings");
    for expected in cluster_role_bindings() {
        reconcile(registry, bindings, expected, merge_binding).await?;
    }
    for expected in super::controller_policy::cluster_role_bindings() {
        reconcile(registry, bindings, expected, merge_controller_binding).await?;
    }
    let roles = rbac_def("roles");
    for expected in super::controller_policy::roles() {
        reconcile(registry, roles, expected, merge_role).await?;
    }
    let bindings = rbac_def("rolebindings");
    for expected in super::controller_policy::role_bindings() {
        reconcile(registry, bindings, expected, merge_controller_binding).await?;
    }
    Ok(())
}

fn rbac_def(plural: &str) -> &'static resources::ResourceDef {
    resources::find("rbac.authorization.k8s.io", "v1", plural).expect("RBAC resources are served")
}

async fn reconcile(
    registry: &Registry,
    def: &'static resources::ResourceDef,
    expected: Value,
    merge: fn(&Value, &Value) -> Value,
) -> ApiResult<()> {
    let name = expected["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let namespace = expected["metadata"]["namespace"]
        .as_str()
        .map(str::to_string);
    let r = ObjectRef {
        def,
        namespace: namespace.as_deref(),
        name: &name,
    };
    match registry.get(r).await {
        Err(e) if e.code() == 404 => {
            match registry
                .create(def, namespace.as_deref(), expected, STRICT)
                .await
            {
                Ok(_) => Ok(()),
                // Another server created it meanwhile.
                Err(e) if e.code() == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
        Ok(current) => {
            if current
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    AUTOUPDATE.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                == Some("false")
            {
                return Ok(());
            }
            let merged = merge(&current, &expected);
            if merged == current {
                return Ok(());
            }
            registry
                .update_with(r, None, STRICT, |cur| {
                    Ok((merge(cur, &expected), Vec::new()))
                })
                .await
                .map(|_| ())
        }
    }
}

/// Adds the expected labels and annotations (existing values win).
fn merge_meta(current: &mut Value, expected: &Value) {
    for field in ["labels", "annotations"] {
        let Some(want) = expected["metadata"][field].as_object() else {
            continue;
        };
        let have = &mut current["metadata"][field];
        if !have.is_object() {
            *have = json!({});
        }
        if let Some(have) = have.as_object_mut() {
            for (k, v) in want {
                have.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

fn merge_role(current: &Value, expected: &Value) -> Value {
    let mut out = current.clone();
    merge_meta(&mut out, expected);
    if expected.get("aggregationRule").is_some() {
        // The rules of an aggregated role are the aggregation's business; only the selectors
        // are reconciled (upstream adds missing ones).
        let want = expected["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let have = &mut out["aggregationRule"]["clusterRoleSelectors"];
        if !have.is_array() {
            *have = json!([]);
        }
        if let Some(have) = have.as_array_mut() {
            for s in want {
                if !have.contains(&s) {
                    have.push(s);
                }
            }
        }
        return out;
    }
    let have: Vec<k8s_openapi::api::rbac::v1::PolicyRule> = super::rbac::rules_of(current);
    let missing: Vec<Value> = expected["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|want| {
            serde_json::from_value::<k8s_openapi::api::rbac::v1::PolicyRule>((*want).clone())
                .map(|w| !super::escalation::covers(&have, std::slice::from_ref(&w)))
                .unwrap_or(false)
        })
        .cloned()
        .collect();
    if !missing.is_empty() {
        let rules = &mut out["rules"];
        if !rules.is_array() {
            *rules = json!([]);
        }
        if let Some(rules) = rules.as_array_mut() {
            rules.extend(missing);
        }
    }
    out
}

/// A controller's binding: subjects added as for any binding, and the controller manager's
/// user, which bindings written by earlier versions name, taken off.
fn merge_controller_binding(current: &Value, expected: &Value) -> Value {
    super::controller_policy::without_manager(merge_binding(current, expected))
}

fn merge_binding(current: &Value, expected: &Value) -> Value {
    let mut out = current.clone();
    merge_meta(&mut out, expected);
    let subjects = &mut out["subjects"];
    if !subjects.is_array() {
        *subjects = json!([]);
    }
    if let Some(have) = subjects.as_array_mut() {
        for s in expected["subjects"].as_array().into_iter().flatten() {
            let same = |h: &Value| {
                h["kind"] == s["kind"]
                    && h["name"] == s["name"]
                    && h.get("namespace") == s.get("namespace")
            };
            if !have.iter().any(same) {
                have.push(s.clone());
            }
        }
    }
    out
}
