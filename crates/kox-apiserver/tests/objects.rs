//! Create / get / replace / delete round trips, server-set metadata, `generation`, optimistic
//! concurrency and the status subresource, as upstream's generic registry
//! (`apiserver/pkg/registry/generic/registry/store.go`) and the per-kind strategies behave.

mod support;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, PodStatus, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{api_error, config_map, named, pod, start};

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "nginx:1.27" }] },
            },
        },
    }))
    .expect("deployment manifest")
}

#[tokio::test]
async fn config_map_round_trips_through_create_get_replace_delete() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("rt", "one"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert!(meta.uid.as_deref().is_some_and(|u| !u.is_empty()));
    assert!(meta.creation_timestamp.is_some());
    let rv = meta.resource_version.clone().expect("resourceVersion");
    assert!(!rv.is_empty());

    let got = api.get("rt").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(got.metadata.resource_version.as_deref(), Some(rv.as_str()));
    assert_eq!(got.data, created.data);

    let mut changed = got.clone();
    changed.data = Some([("key".to_string(), "two".to_string())].into());
    let replaced = api
        .replace("rt", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.data.unwrap()["key"], "two");
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    assert_eq!(
        replaced.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );

    api.delete("rt", &DeleteParams::default()).await.unwrap();
    let err = api_error(api.get("rt").await);
    assert_eq!(err.code, 404);
    assert_eq!(err.reason, "NotFound");
}

#[tokio::test]
async fn unbound_pod_round_trips_with_defaults() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &pod("web"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    let spec = created.spec.as_ref().unwrap();
    // Upstream's SetDefaults_PodSpec and the pod strategy's PrepareForCreate.
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(
        created.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    let got = api.get("web").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);

    let mut changed = got.clone();
    changed.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.28".into());
    let replaced = api
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(
        replaced.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.28")
    );
    api.delete("web", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(api.get("web").await).code, 404);
}

#[tokio::test]
async fn deployment_round_trips_and_starts_at_generation_one() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    let got = api.get("web").await.unwrap();
    assert_eq!(got.metadata.generation, Some(1));
    api.delete("web", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(api.get("web").await).code, 404);
}

#[tokio::test]
async fn service_round_trips_keeping_its_cluster_ip() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80 }] },
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &svc).await.unwrap();
    let ip = created.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    assert!(!ip.is_empty());
    let mut changed = api.get("web").await.unwrap();
    changed.metadata.labels = Some([("tier".to_string(), "front".to_string())].into());
    let replaced = api
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(
        replaced.spec.unwrap().cluster_ip.as_deref(),
        Some(ip.as_str())
    );
    api.delete("web", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(api.get("web").await).code, 404);
}

#[tokio::test]
async fn namespace_round_trips_and_deletion_marks_it_terminating() {
    let s = start().await;
    let api: Api<Namespace> = Api::all(s.client.clone());
    let created = api
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: named("team-a"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    // The namespace strategy's PrepareForCreate and defaults.
    assert_eq!(
        created.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Active")
    );
    assert_eq!(
        created.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["kubernetes".to_string()])
    );
    assert_eq!(
        created.metadata.labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
        "team-a"
    );
    let mut changed = api.get("team-a").await.unwrap();
    changed
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("env".into(), "dev".into());
    let replaced = api
        .replace("team-a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.labels.unwrap()["env"], "dev");
    // The `kubernetes` finalizer keeps it, terminating, until the namespace controller empties it.
    api.delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = api.get("team-a").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
}

#[tokio::test]
async fn lease_round_trips() {
    let s = start().await;
    let api: Api<Lease> = Api::namespaced(s.client.clone(), "kube-node-lease");
    let lease = Lease {
        metadata: named("node-1"),
        spec: Some(LeaseSpec {
            holder_identity: Some("node-1".into()),
            lease_duration_seconds: Some(40),
            ..Default::default()
        }),
    };
    let created = api.create(&PostParams::default(), &lease).await.unwrap();
    assert!(created.metadata.resource_version.is_some());
    let mut renewed = api.get("node-1").await.unwrap();
    renewed.spec.as_mut().unwrap().holder_identity = Some("node-2".into());
    let replaced = api
        .replace("node-1", &PostParams::default(), &renewed)
        .await
        .unwrap();
    assert_eq!(
        replaced.spec.unwrap().holder_identity.as_deref(),
        Some("node-2")
    );
    api.delete("node-1", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(api.get("node-1").await).code, 404);
}

#[tokio::test]
async fn cluster_role_round_trips_without_a_namespace() {
    let s = start().await;
    let api: Api<ClusterRole> = Api::all(s.client.clone());
    let role = ClusterRole {
        metadata: named("reader"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    let created = api.create(&PostParams::default(), &role).await.unwrap();
    assert_eq!(created.metadata.namespace, None);
    assert!(created.metadata.uid.is_some());
    let mut changed = api.get("reader").await.unwrap();
    changed.rules.as_mut().unwrap()[0]
        .verbs
        .push("watch".into());
    let replaced = api
        .replace("reader", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(
        replaced.rules.unwrap()[0].verbs,
        vec!["get", "list", "watch"]
    );
    api.delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(api.get("reader").await).code, 404);
}

#[tokio::test]
async fn create_ignores_a_client_supplied_uid() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("mine", "x");
    cm.metadata.uid = Some("not-a-server-uid".into());
    // rest.BeforeCreate / FillObjectMetaSystemFields overwrite uid and creationTimestamp.
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    assert_ne!(created.metadata.uid.as_deref(), Some("not-a-server-uid"));
}

#[tokio::test]
async fn generate_name_appends_a_random_suffix() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("", "x");
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("job-".into());
    let a = api.create(&PostParams::default(), &cm).await.unwrap();
    let b = api.create(&PostParams::default(), &cm).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    // names.SimpleNameGenerator: the prefix plus five random characters.
    for name in [&a, &b] {
        assert!(name.starts_with("job-"), "{name}");
        assert_eq!(name.len(), "job-".len() + 5, "{name}");
    }
    assert_ne!(a, b);
    assert_eq!(
        api.get(&a).await.unwrap().metadata.generate_name.as_deref(),
        Some("job-")
    );
}

#[tokio::test]
async fn deployment_generation_is_bumped_by_spec_changes() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("gen"))
        .await
        .unwrap();
    let patched = api
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
}

#[tokio::test]
async fn deployment_generation_is_not_bumped_by_label_changes() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("gen"))
        .await
        .unwrap();
    let patched = api
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "tier": "web" } } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["tier"], "web");
    assert_eq!(patched.metadata.generation, Some(1));
}

#[tokio::test]
async fn deployment_generation_is_bumped_by_annotation_changes() {
    // deploymentStrategy.PrepareForUpdate: "annotation updates bump the generation because
    // annotations are copied from deployments to their replica sets".
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("gen"))
        .await
        .unwrap();
    let patched = api
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { "note": "x" } } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
}

#[tokio::test]
async fn deployment_generation_is_not_bumped_by_status_writes() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("gen"))
        .await
        .unwrap();
    let patched = api
        .patch_status(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "observedGeneration": 1, "replicas": 1 } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(1));
    assert_eq!(patched.status.unwrap().replicas, Some(1));
}

#[tokio::test]
async fn update_cannot_change_generation_or_creation_timestamp() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &deployment("meta"))
        .await
        .unwrap();
    let mut changed = created.clone();
    changed.metadata.generation = Some(42);
    changed.metadata.uid = None;
    changed.metadata.creation_timestamp = None;
    let replaced = api
        .replace("meta", &PostParams::default(), &changed)
        .await
        .unwrap();
    // rest.BeforeUpdate keeps generation and creationTimestamp from the stored object, and
    // fills an empty uid from it.
    assert_eq!(replaced.metadata.generation, Some(1));
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    assert_eq!(
        replaced.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );
}

#[tokio::test]
async fn update_with_stale_resource_version_is_conflict() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let v1 = api
        .create(&PostParams::default(), &config_map("occ", "one"))
        .await
        .unwrap();
    let mut first = v1.clone();
    first.data = Some([("key".to_string(), "two".to_string())].into());
    api.replace("occ", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = v1.clone();
    stale.data = Some([("key".to_string(), "three".to_string())].into());
    let err = api_error(api.replace("occ", &PostParams::default(), &stale).await);
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"occ\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
    let details = err.details.expect("details");
    assert_eq!(details.name, "occ");
    assert_eq!(details.kind, "configmaps");
    assert_eq!(api.get("occ").await.unwrap().data.unwrap()["key"], "two");
}

#[tokio::test]
async fn update_without_resource_version_overwrites_the_latest() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("lww", "one"))
        .await
        .unwrap();
    let mut other = api.get("lww").await.unwrap();
    other.data = Some([("key".to_string(), "two".to_string())].into());
    api.replace("lww", &PostParams::default(), &other)
        .await
        .unwrap();
    // ConfigMaps allow unconditional updates (AllowUnconditionalUpdate): no resourceVersion
    // means the write applies to whatever is stored.
    let mut blind = config_map("lww", "three");
    blind.metadata.resource_version = None;
    let written = api
        .replace("lww", &PostParams::default(), &blind)
        .await
        .unwrap();
    assert_eq!(written.data.unwrap()["key"], "three");
    assert_eq!(api.get("lww").await.unwrap().data.unwrap()["key"], "three");
}

#[tokio::test]
async fn concurrent_updates_from_one_base_let_exactly_one_win() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let base = api
        .create(&PostParams::default(), &config_map("race", "base"))
        .await
        .unwrap();
    let writers = (0..8).map(|i| {
        let api = api.clone();
        let mut cm = base.clone();
        cm.data = Some([("key".to_string(), format!("writer-{i}"))].into());
        tokio::spawn(async move { api.replace("race", &PostParams::default(), &cm).await })
    });
    let results = futures::future::join_all(writers).await;
    let mut winners = Vec::new();
    for r in results {
        match r.unwrap() {
            Ok(cm) => winners.push(cm.data.unwrap()["key"].clone()),
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        api.get("race").await.unwrap().data.unwrap()["key"],
        winners[0]
    );
}

#[tokio::test]
async fn replace_status_changes_only_status() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &deployment("st"))
        .await
        .unwrap();
    let mut body = created.clone();
    body.spec.as_mut().unwrap().replicas = Some(7);
    body.status = Some(DeploymentStatus {
        replicas: Some(1),
        ready_replicas: Some(1),
        ..Default::default()
    });
    let written = api
        .replace_status("st", &PostParams::default(), &body)
        .await
        .unwrap();
    assert_eq!(written.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(written.status.as_ref().unwrap().ready_replicas, Some(1));
    let stored = api.get("st").await.unwrap();
    assert_eq!(stored.spec.unwrap().replicas, Some(1));
    assert_eq!(stored.status.unwrap().ready_replicas, Some(1));
    assert_eq!(stored.metadata.generation, Some(1));
}

#[tokio::test]
async fn patch_status_changes_only_status() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &pod("st"))
        .await
        .unwrap();
    let written = api
        .patch_status(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": { "activeDeadlineSeconds": 5 },
                "status": { "phase": "Running", "podIP": "10.0.0.9" },
            })),
        )
        .await
        .unwrap();
    let status = written.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.9"));
    assert_eq!(written.spec.unwrap().active_deadline_seconds, None);
    let stored = api.get("st").await.unwrap();
    assert_eq!(stored.spec.unwrap().active_deadline_seconds, None);
    assert_eq!(stored.status.unwrap().phase.as_deref(), Some("Running"));
}

#[tokio::test]
async fn update_of_main_resource_cannot_change_status() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &pod("st"))
        .await
        .unwrap();
    let mut body = api.get("st").await.unwrap();
    body.status = Some(PodStatus {
        phase: Some("Succeeded".into()),
        ..Default::default()
    });
    body.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.28".into());
    let written = api
        .replace("st", &PostParams::default(), &body)
        .await
        .unwrap();
    // podStrategy.PrepareForUpdate: newPod.Status = oldPod.Status.
    assert_eq!(
        written.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.28")
    );
    assert_eq!(written.status.unwrap().phase.as_deref(), Some("Pending"));
    let stored = api.get("st").await.unwrap();
    assert_eq!(stored.status.unwrap().phase.as_deref(), Some("Pending"));
}

#[tokio::test]
async fn patch_of_main_resource_cannot_change_status() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("st"))
        .await
        .unwrap();
    let written = api
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "replicas": 9 } })),
        )
        .await
        .unwrap();
    assert_eq!(written.status.and_then(|s| s.replicas), None);
    // Nothing changed: neither resourceVersion nor generation moves.
    assert_eq!(written.metadata.generation, Some(1));
}

#[tokio::test]
async fn replace_of_missing_object_is_not_found() {
    // ConfigMaps do not allow create-on-update (AllowCreateOnUpdate is false).
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let err = api_error(
        api.replace("ghost", &PostParams::default(), &config_map("ghost", "v"))
            .await,
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.reason, "NotFound");
    assert_eq!(err.message, "configmaps \"ghost\" not found");
}

#[tokio::test]
async fn status_write_cannot_change_deployment_labels() {
    // deploymentStatusStrategy.PrepareForUpdate: newDeployment.Labels = oldDeployment.Labels.
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("st"))
        .await
        .unwrap();
    let written = api
        .patch_status(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "labels": { "sneaky": "yes" } },
                "status": { "replicas": 1 },
            })),
        )
        .await
        .unwrap();
    assert_eq!(written.status.unwrap().replicas, Some(1));
    assert_eq!(written.metadata.labels, None);
    assert_eq!(api.get("st").await.unwrap().metadata.labels, None);
}

#[tokio::test]
async fn status_write_cannot_change_pod_owner_references() {
    // podStatusStrategy.PrepareForUpdate: newPod.OwnerReferences = oldPod.OwnerReferences.
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &pod("owned"))
        .await
        .unwrap();
    let written = api
        .patch_status(
            "owned",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                    "uid": "00000000-0000-0000-0000-000000000001",
                }] },
                "status": { "phase": "Running" },
            })),
        )
        .await
        .unwrap();
    assert_eq!(written.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(written.metadata.owner_references, None);
}
