//! Discovery through kube's client: every served group is found, and resources resolve to the
//! right plural, scope and subresources.

mod support;

use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope, verbs};
use support::start;

#[tokio::test]
async fn discovery_finds_every_served_group() {
    let s = start().await;
    let discovery = Discovery::new(s.client.clone()).run().await.unwrap();
    for group in [
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "coordination.k8s.io",
        "rbac.authorization.k8s.io",
        "networking.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
    ] {
        assert!(discovery.has_group(group), "group {group:?} not discovered");
    }
}

#[tokio::test]
async fn pods_resolve_to_a_namespaced_resource_with_status() {
    let s = start().await;
    let discovery = Discovery::new(s.client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Pod"))
        .expect("pods discovered");
    assert_eq!(ar.plural, "pods");
    assert_eq!(ar.api_version, "v1");
    assert_eq!(caps.scope, Scope::Namespaced);
    for verb in [
        verbs::CREATE,
        verbs::GET,
        verbs::LIST,
        verbs::WATCH,
        verbs::PATCH,
        verbs::DELETE,
    ] {
        assert!(caps.supports_operation(verb), "pods: {verb}");
    }
    let subresources: Vec<_> = caps
        .subresources
        .iter()
        .map(|(r, _)| r.plural.clone())
        .collect();
    assert!(
        subresources.iter().any(|s| s == "status"),
        "{subresources:?}"
    );
}

#[tokio::test]
async fn deployments_resolve_to_apps_v1_with_scale() {
    let s = start().await;
    let discovery = Discovery::new(s.client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("deployments discovered");
    assert_eq!(ar.plural, "deployments");
    assert_eq!(ar.group, "apps");
    assert_eq!(ar.api_version, "apps/v1");
    assert_eq!(caps.scope, Scope::Namespaced);
    let subresources: Vec<_> = caps
        .subresources
        .iter()
        .map(|(r, _)| r.plural.clone())
        .collect();
    assert!(
        subresources.iter().any(|s| s == "scale"),
        "{subresources:?}"
    );
    assert!(
        subresources.iter().any(|s| s == "status"),
        "{subresources:?}"
    );
}

#[tokio::test]
async fn cluster_scoped_kinds_resolve_as_cluster_scoped() {
    let s = start().await;
    let discovery = Discovery::new(s.client.clone()).run().await.unwrap();
    for gvk in [
        GroupVersionKind::gvk("", "v1", "Namespace"),
        GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ] {
        let (_, caps) = discovery.resolve_gvk(&gvk).expect("discovered");
        assert_eq!(caps.scope, Scope::Cluster, "{gvk:?}");
    }
}

#[tokio::test]
async fn pinned_kind_resolves_a_single_kind() {
    let s = start().await;
    let (ar, caps) = kube::discovery::pinned_kind(
        &s.client,
        &GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"),
    )
    .await
    .unwrap();
    assert_eq!(ar.plural, "leases");
    assert_eq!(caps.scope, Scope::Namespaced);
}
