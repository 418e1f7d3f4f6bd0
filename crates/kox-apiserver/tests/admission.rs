//! The built-in admission plugins seen through kube-rs: NamespaceLifecycle, ServiceAccount,
//! LimitRanger, ResourceQuota, Priority, DefaultTolerationSeconds and PodSecurity, with
//! upstream's status codes and messages.

mod support;

use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, ServiceAccount,
};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{api_error, config_map, eventually, namespace, pod, start};

fn from(v: Value) -> Pod {
    serde_json::from_value(v).expect("pod manifest")
}

#[tokio::test]
async fn quota_exceeded_is_forbidden_with_upstreams_text_and_nothing_is_written() {
    let s = start().await;
    let ns = namespace(&s.client, "quota").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(s.client.clone(), &ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "compute"},
        "spec": {"hard": {"pods": "1", "configmaps": "5"}},
    }))
    .unwrap();
    let created = quotas.create(&PostParams::default(), &quota).await.unwrap();
    let status = created.status.expect("a new quota has its status computed");
    assert_eq!(status.used.unwrap()["pods"].0, "0");

    let pods: Api<Pod> = Api::namespaced(s.client.clone(), &ns);
    pods.create(&PostParams::default(), &pod("first"))
        .await
        .unwrap();
    let used = quotas
        .get("compute")
        .await
        .unwrap()
        .status
        .unwrap()
        .used
        .unwrap();
    assert_eq!(used["pods"].0, "1");

    let err = api_error(pods.create(&PostParams::default(), &pod("second")).await);
    assert_eq!(err.code, 403);
    assert_eq!(err.reason, "Forbidden");
    assert_eq!(
        err.message,
        "pods \"second\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=1, limited: pods=1"
    );
    let err = api_error(pods.get("second").await);
    assert_eq!(err.code, 404, "a refused pod is not stored");
    let names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(names, vec!["first"]);

    // Deleting the pod gives its quota back (usage is counted from what the namespace holds).
    pods.delete("first", &DeleteParams::default())
        .await
        .unwrap();
    let used = quotas
        .get("compute")
        .await
        .unwrap()
        .status
        .unwrap()
        .used
        .unwrap();
    assert_eq!(used["pods"].0, "0", "a deletion gives quota back at once");
    pods.create(&PostParams::default(), &pod("third"))
        .await
        .unwrap();
}

#[tokio::test]
async fn limit_range_defaults_are_applied_and_bounds_enforced() {
    let s = start().await;
    let ns = namespace(&s.client, "limits").await;
    let ranges: Api<LimitRange> = Api::namespaced(s.client.clone(), &ns);
    let range: LimitRange = serde_json::from_value(json!({
        "metadata": {"name": "defaults"},
        "spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "max": {"cpu": "1"}}]},
    }))
    .unwrap();
    ranges.create(&PostParams::default(), &range).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), &ns);
    let created = pods
        .create(&PostParams::default(), &pod("defaulted"))
        .await
        .unwrap();
    let res = created.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(res.requests.unwrap()["cpu"].0, "100m");
    assert_eq!(res.limits.unwrap()["memory"].0, "256Mi");
    assert_eq!(
        created.metadata.annotations.unwrap()["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app"
    );

    let big = from(json!({"metadata": {"name": "big"}, "spec": {"containers": [
        {"name": "app", "image": "nginx", "resources": {"limits": {"cpu": "2"}}}]}}));
    let err = api_error(pods.create(&PostParams::default(), &big).await);
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
}

#[tokio::test]
async fn pod_security_restricted_namespace_refuses_a_privileged_pod() {
    let s = start().await;
    let ns = namespace(&s.client, "secure").await;
    let namespaces: Api<Namespace> = Api::all(s.client.clone());
    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted"}}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), &ns);
    let privileged = from(json!({"metadata": {"name": "x"}, "spec": {"containers": [
        {"name": "app", "image": "nginx", "securityContext": {"privileged": true}}]}}));
    let err = api_error(pods.create(&PostParams::default(), &privileged).await);
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), privileged (container \"app\" must not set securityContext.privileged=true), runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    let compliant = from(json!({"metadata": {"name": "ok"}, "spec": {
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "image": "nginx", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}));
    pods.create(&PostParams::default(), &compliant)
        .await
        .expect("a restricted-compliant pod (with its token volume) is admitted");

    let err = api_error(
        namespaces
            .patch(
                &ns,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {
                    "pod-security.kubernetes.io/enforce": "strict"}}})),
            )
            .await,
    );
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn terminating_namespace_refuses_creates_and_system_namespaces_stay() {
    let s = start().await;
    let ns = namespace(&s.client, "leaving").await;
    let namespaces: Api<Namespace> = Api::all(s.client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), &ns);
    let err = api_error(
        cms.create(&PostParams::default(), &config_map("c", "v"))
            .await,
    );
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "configmaps \"c\" is forbidden: unable to create new content in namespace leaving because it is being terminated"
    );
    assert_eq!(
        err.details.unwrap().causes[0].reason,
        "NamespaceTerminating"
    );

    let missing: Api<ConfigMap> = Api::namespaced(s.client.clone(), "nowhere");
    let err = api_error(
        missing
            .create(&PostParams::default(), &config_map("c", "v"))
            .await,
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"nowhere\" not found");

    for system in ["default", "kube-system", "kube-public"] {
        let err = api_error(namespaces.delete(system, &DeleteParams::default()).await);
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            format!("namespaces \"{system}\" is forbidden: this namespace may not be deleted")
        );
    }
}

#[tokio::test]
async fn pods_run_as_a_service_account_with_the_token_volume() {
    let s = start().await;
    let ns = namespace(&s.client, "accounts").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(s.client.clone(), &ns);
    eventually("the default service account", || async {
        accounts.get_opt("default").await.ok().flatten()
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), &ns);
    let created = pods
        .create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let volume = &spec.volumes.unwrap()[0];
    assert!(volume.name.starts_with("kube-api-access-"));
    let sources = volume.projected.as_ref().unwrap().sources.as_ref().unwrap();
    assert_eq!(
        sources[0]
            .service_account_token
            .as_ref()
            .unwrap()
            .expiration_seconds,
        Some(3607)
    );
    let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        mount.mount_path,
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(mount.read_only, Some(true));
    let tolerations = spec.tolerations.unwrap();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/not-ready")
                && t.toleration_seconds == Some(300))
    );

    let robot = from(json!({"metadata": {"name": "r"}, "spec": {
        "serviceAccountName": "robot", "containers": [{"name": "app", "image": "nginx"}]}}));
    let err = api_error(pods.create(&PostParams::default(), &robot).await);
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        format!(
            "pods \"r\" is forbidden: error looking up service account {ns}/robot: serviceaccount \"robot\" not found"
        )
    );
}

#[tokio::test]
async fn priority_classes_give_pods_their_priority() {
    let s = start().await;
    let classes: Api<PriorityClass> = Api::all(s.client.clone());
    let critical = classes.get("system-cluster-critical").await.unwrap();
    assert_eq!(critical.value, 2_000_000_000);
    classes.get("system-node-critical").await.unwrap();
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "kube-system");
    let p = from(json!({"metadata": {"name": "c"}, "spec": {
        "priorityClassName": "system-cluster-critical",
        "containers": [{"name": "app", "image": "nginx"}]}}));
    let created = pods.create(&PostParams::default(), &p).await.unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.priority, Some(2_000_000_000));
    assert_eq!(
        spec.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    let missing = from(json!({"metadata": {"name": "m"}, "spec": {
        "priorityClassName": "gold", "containers": [{"name": "app", "image": "nginx"}]}}));
    let err = api_error(pods.create(&PostParams::default(), &missing).await);
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"m\" is forbidden: no PriorityClass with name gold was found"
    );
}

#[tokio::test]
async fn concurrent_creates_cannot_overrun_a_quota() {
    let s = start().await;
    let ns = namespace(&s.client, "race").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(s.client.clone(), &ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "three"}, "spec": {"hard": {"configmaps": "3"}},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), &ns);
    let attempts = (0..8).map(|i| {
        let cms = cms.clone();
        async move {
            cms.create(&PostParams::default(), &config_map(&format!("c{i}"), "v"))
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(admitted, 3, "{results:?}");
    for r in results.into_iter().filter(|r| r.is_err()) {
        let err = api_error(r);
        assert_eq!(err.code, 403, "{err:?}");
        assert!(
            err.message.contains("exceeded quota: three"),
            "{}",
            err.message
        );
    }
    let stored = cms.list(&ListParams::default()).await.unwrap().items.len();
    assert_eq!(stored, 3);
    let used = quotas
        .get("three")
        .await
        .unwrap()
        .status
        .unwrap()
        .used
        .unwrap();
    assert_eq!(used["configmaps"].0, "3");
}
