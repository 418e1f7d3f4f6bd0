//! Upstream's controller roles (`bootstrappolicy/controller_policy.go`): one
//! `system:controller:<name>` ClusterRole per controller the controller manager runs, bound to
//! the `kube-system/<name>` ServiceAccount, and to nothing else, as upstream binds it.
//!
//! The controller manager acts for each controller with that account
//! (`--use-service-account-credentials`, which `kox server` turns on): the shared informers
//! and the leader Lease use the manager's own credential, user
//! `system:kube-controller-manager`, whose role (`system:kube-controller-manager` in
//! `policy.rs`) lets it list and watch everything, create ServiceAccounts and request their
//! tokens (`serviceaccounts/token`) — and write nothing a controller writes. Each controller
//! then writes as `system:serviceaccount:kube-system:<name>` with a one-hour token the manager
//! renews. The controllers' accounts are upstream's client names, not always their names
//! in `--controllers`: `deployment` acts as `deployment-controller`, `daemonset` as
//! `daemon-set-controller`, `garbagecollector` as `generic-garbage-collector`,
//! `taint-eviction-controller` as `node-controller` (upstream gives it no role of its own).
//!
//! A controller manager run without service-account credentials acts for every controller
//! with its own credential, which then needs each of these roles bound to it (as upstream).
//! Earlier kox versions bound them to `system:kube-controller-manager` in these very
//! bindings; reconciling at start takes that subject off again (a binding annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` is left alone).
//!
//! A controller confined to one namespace gets a Role there instead of a ClusterRole
//! (upstream's `namespace_policy.go`): the token cleaner's in `kube-system`.

use serde_json::Value;

use super::policy::{READ, binding, events_rule, in_namespace, role, rule};

/// The user the controller manager authenticates as.
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";

const PREFIX: &str = "system:controller:";

/// (ServiceAccount name, rules) of each controller kox runs.
fn controllers() -> Vec<(&'static str, Vec<Value>)> {
    let apps = &["apps", "extensions"];
    vec![
        (
            "cronjob-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &["batch"],
                    &["cronjobs"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                    &["batch"],
                    &["jobs"],
                ),
                rule(&["update"], &["batch"], &["cronjobs/status"]),
                rule(&["update"], &["batch"], &["cronjobs/finalizers"]),
                rule(&["list", "watch", "delete"], &[""], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                rule(READ, apps, &["daemonsets"]),
                rule(&["update"], apps, &["daemonsets/status"]),
                rule(&["update"], apps, &["daemonsets/finalizers"]),
                rule(&["list", "watch"], &[""], &["nodes"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(&["create"], &[""], &["pods/binding"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                events_rule(),
            ],
        ),
        (
            "deployment-controller",
            vec![
                rule(&["get", "list", "watch", "update"], apps, &["deployments"]),
                rule(&["update"], apps, &["deployments/status"]),
                rule(&["update"], apps, &["deployments/finalizers"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    apps,
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], &[""], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "disruption-controller",
            vec![
                rule(READ, apps, &["deployments"]),
                rule(READ, apps, &["replicasets"]),
                rule(READ, &[""], &["replicationcontrollers"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["get"], &["*"], &["*/scale"]),
                events_rule(),
            ],
        ),
        (
            "endpoint-controller",
            vec![
                rule(READ, &[""], &["services", "pods"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &[""],
                    &["endpoints"],
                ),
                rule(&["create"], &[""], &["endpoints/restricted"]),
                events_rule(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                rule(READ, &[""], &["services", "pods", "nodes"]),
                rule(&["update"], &[""], &["services/finalizers"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                events_rule(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![
                rule(
                    &["get", "list", "watch", "patch", "update", "delete"],
                    &["*"],
                    &["*"],
                ),
                events_rule(),
            ],
        ),
        (
            "job-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &["batch"],
                    &["jobs"],
                ),
                rule(&["update"], &["batch"], &["jobs/status"]),
                rule(&["update"], &["batch"], &["jobs/finalizers"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        (
            "namespace-controller",
            vec![
                rule(&["get", "list", "watch", "delete"], &[""], &["namespaces"]),
                rule(
                    &["update"],
                    &[""],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                rule(
                    &["get", "list", "watch", "delete", "deletecollection"],
                    &["*"],
                    &["*"],
                ),
            ],
        ),
        (
            "node-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "delete", "patch"],
                    &[""],
                    &["nodes"],
                ),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["list", "watch", "get", "delete"], &[""], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "pod-garbage-collector",
            vec![
                rule(&["list", "watch", "delete"], &[""], &["pods"]),
                rule(READ, &[""], &["nodes"]),
                rule(&["patch"], &[""], &["pods/status"]),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                rule(&["get", "list", "watch", "update"], apps, &["replicasets"]),
                rule(&["update"], apps, &["replicasets/status"]),
                rule(&["update"], apps, &["replicasets/finalizers"]),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        (
            "replication-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["replicationcontrollers"],
                ),
                rule(&["update"], &[""], &["replicationcontrollers/status"]),
                rule(&["update"], &[""], &["replicationcontrollers/finalizers"]),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        (
            "resourcequota-controller",
            vec![
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["update"], &[""], &["resourcequotas/status"]),
                events_rule(),
            ],
        ),
        (
            "service-account-controller",
            vec![
                rule(&["create"], &[""], &["serviceaccounts"]),
                events_rule(),
            ],
        ),
        (
            "statefulset-controller",
            vec![
                rule(&["list", "watch"], &[""], &["pods"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(&["update"], &["apps"], &["statefulsets/status"]),
                rule(&["update"], &["apps"], &["statefulsets/finalizers"]),
                rule(
                    &["get", "create", "delete", "update", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(
                    &[
                        "get", "create", "delete", "update", "patch", "list", "watch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                rule(
                    &["get", "create", "list", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(&["update", "delete"], &[""], &["persistentvolumeclaims"]),
                rule(&["update"], &[""], &["pods/finalizers"]),
                events_rule(),
            ],
        ),
        (
            "ttl-after-finished-controller",
            vec![
                rule(&["get", "list", "watch", "delete"], &["batch"], &["jobs"]),
                events_rule(),
            ],
        ),
        (
            "root-ca-cert-publisher",
            vec![
                rule(&["create", "update"], &[""], &["configmaps"]),
                events_rule(),
            ],
        ),
    ]
}

/// (namespace, ServiceAccount name, rules) of each controller whose role is a Role in one
/// namespace.
fn namespaced_controllers() -> Vec<(&'static str, &'static str, Vec<Value>)> {
    vec![(
        "kube-system",
        "token-cleaner",
        vec![
            rule(&["get", "list", "watch", "delete"], &[""], &["secrets"]),
            events_rule(),
        ],
    )]
}

/// The controller roles.
pub fn cluster_roles() -> Vec<Value> {
    controllers()
        .into_iter()
        .map(|(name, rules)| role(&format!("{PREFIX}{name}"), &[], rules))
        .collect()
}

/// Each controller role bound to its ServiceAccount.
pub fn cluster_role_bindings() -> Vec<Value> {
    controllers()
        .into_iter()
        .map(|(name, _)| {
            let role = format!("{PREFIX}{name}");
            let account = format!("kube-system/{name}");
            binding(&role, &role, &[("ServiceAccount", &account)])
        })
        .collect()
}

/// The controllers' Roles in single namespaces.
pub fn roles() -> Vec<Value> {
    namespaced_controllers()
        .into_iter()
        .map(|(ns, name, rules)| in_namespace(role(&format!("{PREFIX}{name}"), &[], rules), ns))
        .collect()
}

/// `binding` without the controller manager's user among its subjects.
pub(super) fn without_manager(mut binding: Value) -> Value {
    if let Some(subjects) = binding["subjects"].as_array_mut() {
        subjects.retain(|s| !(s["kind"] == "User" && s["name"] == CONTROLLER_MANAGER));
    }
    binding
}

/// Each namespaced controller Role bound, in its namespace, to the controller's ServiceAccount.
pub fn role_bindings() -> Vec<Value> {
    namespaced_controllers()
        .into_iter()
        .map(|(ns, name, _)| {
            let role = format!("{PREFIX}{name}");
            let account = format!("kube-system/{name}");
            in_namespace(binding(&role, &role, &[("ServiceAccount", &account)]), ns)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn controller_roles_are_bound_to_their_accounts_only() {
        for b in cluster_role_bindings().into_iter().chain(role_bindings()) {
            let subjects = b["subjects"].as_array().expect("subjects");
            assert_eq!(subjects.len(), 1, "{b}");
            assert_eq!(subjects[0]["kind"], "ServiceAccount", "{b}");
            assert_eq!(subjects[0]["namespace"], "kube-system", "{b}");
        }
    }

    #[test]
    fn the_manager_user_is_taken_off_an_old_binding() {
        let old = json!({"subjects": [
            {"kind": "ServiceAccount", "name": "deployment-controller", "namespace": "kube-system"},
            {"kind": "User", "name": CONTROLLER_MANAGER, "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
        ]});
        let names: Vec<Value> = without_manager(old)["subjects"]
            .as_array()
            .expect("subjects")
            .iter()
            .map(|s| s["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("deployment-controller"), json!("alice")]);
    }
}
