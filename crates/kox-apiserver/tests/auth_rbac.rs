//! Authorization: RBAC enforced on every request (resources, subresources, resourceNames,
//! non-resource URLs), upstream's 403 wording, the default policy with aggregation, access
//! reviews, and escalation prevention.

mod auth_support;

use std::time::Duration;

use auth_support::{AuthServer, get_raw, start};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

async fn create<T>(api: &Api<T>, v: Value) -> T
where
    T: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let obj: T = serde_json::from_value(v).expect("manifest");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create")
}

async fn namespace(s: &AuthServer, name: &str) {
    let api: Api<Namespace> = Api::all(s.admin.clone());
    create(&api, json!({ "metadata": { "name": name } })).await;
}

/// Polls until `f` returns true (RBAC decisions follow the watch caches within moments).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bind_in(s: &AuthServer, ns: &str, name: &str, cluster_role: &str, user: &str) {
    let api: Api<RoleBinding> = Api::namespaced(s.admin.clone(), ns);
    create(
        &api,
        json!({
            "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }],
        }),
    )
    .await;
}

#[tokio::test]
async fn anonymous_reaches_health_and_version_but_no_resources() {
    let s = start().await;
    let anon = s.anonymous().await;
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (code, body) = get_raw(&anon, path).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (code, body) = get_raw(&anon, "/api/v1/pods").await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(
        body["message"],
        "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
    );
    let (code, body) = get_raw(&anon, "/apis").await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/apis\""
    );
    let (code, _) = get_raw(&anon, "/metrics").await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn authenticated_users_get_discovery_and_nothing_else_by_default() {
    let s = start().await;
    let jane = s.user("jane", &[]).await;
    let (code, _) = get_raw(&jane, "/apis").await;
    assert_eq!(code, 200);
    let (code, _) = get_raw(&jane, "/api/v1").await;
    assert_eq!(code, 200);
    namespace(&s, "dev").await;
    let pods: Api<Pod> = Api::namespaced(jane.clone(), "dev");
    let err = auth_support::api_error(pods.list(&ListParams::default()).await);
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"dev\""
    );
    let (code, body) = get_raw(&jane, "/api/v1/namespaces/dev/pods/web").await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "pods \"web\" is forbidden: User \"jane\" cannot get resource \"pods\" in API group \"\" in the namespace \"dev\""
    );
}

#[tokio::test]
async fn system_masters_keep_full_access() {
    let s = start().await;
    let root = s.user("root", &["system:masters"]).await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(root);
    nodes
        .list(&ListParams::default())
        .await
        .expect("masters may list nodes");
}

#[tokio::test]
async fn role_binding_grants_view_in_its_namespace_only() {
    let s = start().await;
    namespace(&s, "dev").await;
    namespace(&s, "prod").await;
    let jane = s.user("jane", &[]).await;
    bind_in(&s, "dev", "jane-view", "view", "jane").await;
    let dev: Api<Pod> = Api::namespaced(jane.clone(), "dev");
    eventually("jane may list pods in dev", || async {
        dev.list(&ListParams::default()).await.is_ok()
    })
    .await;
    let prod: Api<Pod> = Api::namespaced(jane.clone(), "prod");
    assert_eq!(
        auth_support::api_error(prod.list(&ListParams::default()).await).code,
        403
    );
    // view does not write, nor read secrets.
    let err = auth_support::api_error(
        dev.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "p" },
                "spec": { "containers": [{ "name": "c", "image": "busybox" }] },
            }))
            .unwrap(),
        )
        .await,
    );
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods is forbidden: User \"jane\" cannot create resource \"pods\" in API group \"\" in the namespace \"dev\""
    );
    let (code, _) = get_raw(&jane, "/api/v1/namespaces/dev/secrets").await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn subresources_and_resource_names_need_their_own_rules() {
    let s = start().await;
    namespace(&s, "dev").await;
    let admin_pods: Api<Pod> = Api::namespaced(s.admin.clone(), "dev");
    create(
        &admin_pods,
        json!({ "metadata": { "name": "web" }, "spec": { "containers": [{ "name": "c", "image": "busybox" }] } }),
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(s.admin.clone(), "dev");
    for name in ["cfg", "other"] {
        create(&cms, json!({ "metadata": { "name": name } })).await;
    }
    let roles: Api<Role> = Api::namespaced(s.admin.clone(), "dev");
    create(
        &roles,
        json!({
            "metadata": { "name": "narrow" },
            "rules": [
                { "apiGroups": [""], "resources": ["pods"], "verbs": ["get"] },
                { "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cfg"], "verbs": ["get"] },
            ],
        }),
    )
    .await;
    let rbs: Api<RoleBinding> = Api::namespaced(s.admin.clone(), "dev");
    create(
        &rbs,
        json!({
            "metadata": { "name": "narrow" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "narrow" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane" }],
        }),
    )
    .await;
    let jane = s.user("jane", &[]).await;
    eventually("jane may get the pod", || async {
        get_raw(&jane, "/api/v1/namespaces/dev/pods/web").await.0 == 200
    })
    .await;
    let (code, body) = get_raw(&jane, "/api/v1/namespaces/dev/pods/web/status").await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "pods \"web\" is forbidden: User \"jane\" cannot get resource \"pods/status\" in API group \"\" in the namespace \"dev\""
    );
    assert_eq!(
        get_raw(&jane, "/api/v1/namespaces/dev/configmaps/cfg")
            .await
            .0,
        200
    );
    assert_eq!(
        get_raw(&jane, "/api/v1/namespaces/dev/configmaps/other")
            .await
            .0,
        403
    );
    assert_eq!(
        get_raw(&jane, "/api/v1/namespaces/dev/configmaps").await.0,
        403
    );
}

#[tokio::test]
async fn default_policy_is_created_with_aggregated_roles() {
    let s = start().await;
    let crs: Api<ClusterRole> = Api::all(s.admin.clone());
    let view = crs.get("view").await.expect("view");
    let rules = view.rules.unwrap_or_default();
    assert!(
        rules.iter().any(|r| r
            .resources
            .as_deref()
            .unwrap_or(&[])
            .contains(&"pods".to_string())
            && r.verbs.contains(&"list".to_string())),
        "view aggregates system:aggregate-to-view: {rules:?}"
    );
    let admin = crs.get("admin").await.expect("admin");
    let admin_rules = admin.rules.unwrap_or_default();
    assert!(
        admin_rules.len() > rules.len(),
        "admin aggregates edit and view too"
    );
    for name in [
        "cluster-admin",
        "edit",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:kube-scheduler",
        "system:kube-controller-manager",
        "system:node",
    ] {
        crs.get(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let crbs: Api<ClusterRoleBinding> = Api::all(s.admin.clone());
    let masters = crbs
        .get("cluster-admin")
        .await
        .expect("cluster-admin binding");
    assert_eq!(masters.subjects.unwrap()[0].name, "system:masters");

    // A new role labelled for aggregation flows into view, edit and admin.
    create(
        &crs,
        json!({
            "metadata": { "name": "widgets-view", "labels": { "rbac.authorization.k8s.io/aggregate-to-view": "true" } },
            "rules": [{ "apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"] }],
        }),
    )
    .await;
    for role in ["view", "edit", "admin"] {
        eventually(&format!("{role} aggregates widgets"), || async {
            crs.get(role)
                .await
                .ok()
                .and_then(|r| r.rules)
                .unwrap_or_default()
                .iter()
                .any(|r| {
                    r.resources
                        .as_deref()
                        .unwrap_or(&[])
                        .contains(&"widgets".to_string())
                })
        })
        .await;
    }
}

#[tokio::test]
async fn access_reviews_answer_for_self_and_others() {
    let s = start().await;
    namespace(&s, "dev").await;
    bind_in(&s, "dev", "bob-edit", "edit", "bob").await;
    let sar: Api<SubjectAccessReview> = Api::all(s.admin.clone());
    let ask = |user: &str, verb: &str, resource: &str, ns: &str| SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    eventually("bob may create deployments' pods in dev", || async {
        sar.create(&PostParams::default(), &ask("bob", "create", "pods", "dev"))
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    })
    .await;
    let no = sar
        .create(
            &PostParams::default(),
            &ask("bob", "create", "pods", "prod"),
        )
        .await
        .unwrap();
    assert!(!no.status.unwrap().allowed);

    let bob = s.user("bob", &[]).await;
    let ssar: Api<SelfSubjectAccessReview> = Api::all(bob.clone());
    let mine = |verb: &str, resource: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                namespace: Some("dev".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let yes = ssar
        .create(&PostParams::default(), &mine("delete", "configmaps"))
        .await
        .unwrap();
    assert!(yes.status.unwrap().allowed);
    let no = ssar
        .create(&PostParams::default(), &mine("create", "roles"))
        .await
        .unwrap();
    assert!(!no.status.unwrap().allowed);
    // bob may not ask about others.
    let sar_bob: Api<SubjectAccessReview> = Api::all(bob.clone());
    let err = auth_support::api_error(
        sar_bob
            .create(&PostParams::default(), &ask("jane", "get", "pods", "dev"))
            .await,
    );
    assert_eq!(err.code, 403);

    let ssrr: Api<SelfSubjectRulesReview> = Api::all(bob);
    let rules = ssrr
        .create(
            &PostParams::default(),
            &SelfSubjectRulesReview {
                spec: SelfSubjectRulesReviewSpec {
                    namespace: Some("dev".into()),
                },
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(rules.resource_rules.iter().any(|r| {
        r.resources
            .as_deref()
            .unwrap_or(&[])
            .contains(&"configmaps".to_string())
            && r.verbs.contains(&"delete".to_string())
    }));
    assert!(rules.non_resource_rules.iter().any(|r| {
        r.non_resource_urls
            .as_deref()
            .unwrap_or(&[])
            .contains(&"/healthz".to_string())
    }));
}

#[tokio::test]
async fn users_cannot_grant_themselves_more_than_they_hold() {
    let s = start().await;
    namespace(&s, "dev").await;
    bind_in(&s, "dev", "jane-admin", "admin", "jane").await;
    let jane = s.user("jane", &[]).await;
    let rbs: Api<RoleBinding> = Api::namespaced(jane.clone(), "dev");
    // admin may manage role bindings in dev …
    eventually("jane may bind view in dev", || async {
        let rb: RoleBinding = serde_json::from_value(json!({
            "metadata": { "name": "bob-view" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob" }],
        }))
        .unwrap();
        rbs.create(&PostParams::default(), &rb).await.is_ok()
    })
    .await;
    // … but not bind cluster-admin, which holds more than admin.
    let escalate: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "jane-root" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane" }],
    }))
    .unwrap();
    let err = auth_support::api_error(rbs.create(&PostParams::default(), &escalate).await);
    assert_eq!(err.code, 403, "{err:?}");
    assert!(
        err.message.starts_with(
            "rolebindings.rbac.authorization.k8s.io \"jane-root\" is forbidden: user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"
        ),
        "{}",
        err.message
    );
    // Nothing was written.
    let admin_rbs: Api<RoleBinding> = Api::namespaced(s.admin.clone(), "dev");
    assert_eq!(
        auth_support::api_error(admin_rbs.get("jane-root").await).code,
        404
    );
    // Nor a Role with rules she lacks.
    let roles: Api<Role> = Api::namespaced(jane.clone(), "dev");
    let greedy: Role = serde_json::from_value(json!({
        "metadata": { "name": "greedy" },
        "rules": [{ "apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"] }],
    }))
    .unwrap();
    let err = auth_support::api_error(roles.create(&PostParams::default(), &greedy).await);
    assert_eq!(err.code, 403, "{err:?}");
    assert!(
        err.message
            .contains("{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"delete\"]}"),
        "{}",
        err.message
    );
    assert_eq!(
        auth_support::api_error(
            Api::<Role>::namespaced(s.admin.clone(), "dev")
                .get("greedy")
                .await
        )
        .code,
        404
    );
    // A ClusterRoleBinding is not hers to create at all.
    let crbs: Api<ClusterRoleBinding> = Api::all(jane.clone());
    let crb: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "jane-root" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane" }],
    }))
    .unwrap();
    assert_eq!(
        auth_support::api_error(crbs.create(&PostParams::default(), &crb).await).code,
        403
    );
}

#[tokio::test]
async fn escalate_and_bind_verbs_lift_the_restriction() {
    let s = start().await;
    namespace(&s, "dev").await;
    let crs: Api<ClusterRole> = Api::all(s.admin.clone());
    create(
        &crs,
        json!({
            "metadata": { "name": "binder" },
            "rules": [
                { "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"] },
                { "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["edit"] },
            ],
        }),
    )
    .await;
    bind_in(&s, "dev", "amy-binder", "binder", "amy").await;
    let amy = s.user("amy", &[]).await;
    let rbs: Api<RoleBinding> = Api::namespaced(amy, "dev");
    let to = |role: &str| -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": { "name": format!("x-{role}") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "x" }],
        }))
        .unwrap()
    };
    eventually("amy may bind edit", || async {
        rbs.create(&PostParams::default(), &to("edit"))
            .await
            .is_ok()
    })
    .await;
    assert_eq!(
        auth_support::api_error(rbs.create(&PostParams::default(), &to("admin")).await).code,
        403
    );
}

#[tokio::test]
async fn the_token_cleaner_may_delete_secrets_in_kube_system_only() {
    let s = start().await;
    let roles: Api<Role> = Api::namespaced(s.admin.clone(), "kube-system");
    let role = roles
        .get("system:controller:token-cleaner")
        .await
        .expect("the token cleaner's Role");
    assert!(role.rules.unwrap_or_default().iter().any(|r| {
        r.resources.as_deref() == Some(&["secrets".to_string()][..])
            && r.verbs.contains(&"delete".to_string())
    }));
    let bindings: Api<RoleBinding> = Api::namespaced(s.admin.clone(), "kube-system");
    let binding = bindings
        .get("system:controller:token-cleaner")
        .await
        .expect("the token cleaner's RoleBinding");
    assert_eq!(binding.role_ref.kind, "Role");
    let subjects: Vec<(String, String)> = binding
        .subjects
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.kind, s.name))
        .collect();
    assert!(subjects.contains(&("ServiceAccount".into(), "token-cleaner".into())));
    // The controller manager acts for the token cleaner with the account's token; its own
    // user is not bound.
    assert!(!subjects.contains(&("User".into(), "system:kube-controller-manager".into())));

    let sar: Api<SubjectAccessReview> = Api::all(s.admin.clone());
    let allowed = |verb: &'static str, ns: &'static str| {
        let sar = sar.clone();
        async move {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some("system:serviceaccount:kube-system:token-cleaner".into()),
                    groups: Some(vec![
                        "system:serviceaccounts".into(),
                        "system:serviceaccounts:kube-system".into(),
                        "system:authenticated".into(),
                    ]),
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(verb.into()),
                        resource: Some("secrets".into()),
                        namespace: Some(ns.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            sar.create(&PostParams::default(), &review)
                .await
                .unwrap()
                .status
                .unwrap()
                .allowed
        }
    };
    eventually("the token cleaner may delete kube-system secrets", || {
        allowed("delete", "kube-system")
    })
    .await;
    assert!(allowed("watch", "kube-system").await);
    assert!(!allowed("delete", "default").await);
    assert!(!allowed("list", "default").await);
    assert!(!allowed("create", "kube-system").await);
}
