//! DELETE: finalizers, preconditions, graceful pod deletion and deletecollection, as upstream's
//! `registry/generic/registry/store.go` (Delete, DeleteCollection, updateForGracefulDeletion…),
//! `registry/rest/delete.go` (BeforeDelete) and the pod strategy's CheckGracefulDelete do them.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use support::{api_error, config_map, labelled, pod_json, start};

fn bound_pod(name: &str) -> Pod {
    let mut manifest = pod_json(name);
    manifest["spec"]["nodeName"] = json!("node-1");
    serde_json::from_value(manifest).unwrap()
}

#[tokio::test]
async fn finalizers_keep_a_deleted_object_until_they_are_removed() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("held", "v");
    cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();

    let answer = api.delete("held", &DeleteParams::default()).await.unwrap();
    // Not deleted yet: the response is the object, marked for deletion.
    let marked = answer.left().expect("the object back, not a Status");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let stored = api.get("held").await.unwrap();
    assert!(stored.metadata.deletion_timestamp.is_some());
    assert_eq!(stored.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(
        stored.metadata.finalizers,
        Some(vec!["example.com/hold".to_string()])
    );

    // Other updates still work while it waits.
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "key": "w" } })),
    )
    .await
    .unwrap();
    assert!(
        api.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    // Removing the last finalizer completes the deletion.
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    let err = api_error(api.get("held").await);
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn no_finalizer_may_be_added_to_an_object_being_deleted() {
    // ValidateObjectMetaUpdate → ValidateNoNewFinalizers once deletionTimestamp is set.
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("held", "v");
    cm.metadata.finalizers = Some(vec!["example.com/a".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let err = api_error(
        api.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "finalizers": ["example.com/a", "example.com/b"] } }),
            ),
        )
        .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(
        err.message,
        "ConfigMap \"held\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be \
         added if the object is being deleted, found new finalizers []string{\"example.com/b\"}"
    );
}

#[tokio::test]
async fn update_cannot_clear_deletion_timestamp() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("held", "v");
    cm.metadata.finalizers = Some(vec!["example.com/a".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let mut body = api.get("held").await.unwrap();
    let stamp = body.metadata.deletion_timestamp.take();
    // rest.BeforeUpdate: "an update can never remove/change a deletion timestamp".
    let written = api
        .replace("held", &PostParams::default(), &body)
        .await
        .unwrap();
    assert_eq!(written.metadata.deletion_timestamp, stamp);
}

#[tokio::test]
async fn uid_precondition_mismatch_is_conflict() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("pre", "v"))
        .await
        .unwrap();
    let uid = created.metadata.uid.unwrap();
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("00000000-0000-0000-0000-000000000000".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = api_error(api.delete("pre", &dp).await);
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    // BeforeDelete names the kind, not the resource, in this conflict.
    assert_eq!(
        err.message,
        format!(
            "Operation cannot be fulfilled on ConfigMap \"pre\": the UID in the precondition \
             (00000000-0000-0000-0000-000000000000) does not match the UID in record ({uid}). \
             The object might have been deleted and then recreated"
        )
    );
    assert!(api.get("pre").await.is_ok());
}

#[tokio::test]
async fn resource_version_precondition_mismatch_is_conflict() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("pre", "v"))
        .await
        .unwrap();
    let old_rv = created.metadata.resource_version.unwrap();
    let updated = api
        .patch(
            "pre",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "key": "w" } })),
        )
        .await
        .unwrap();
    let new_rv = updated.metadata.resource_version.unwrap();
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: Some(old_rv.clone()),
        }),
        ..Default::default()
    };
    let err = api_error(api.delete("pre", &dp).await);
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        format!(
            "Operation cannot be fulfilled on ConfigMap \"pre\": the ResourceVersion in the \
             precondition ({old_rv}) does not match the ResourceVersion in record ({new_rv}). \
             The object might have been modified"
        )
    );
    assert!(api.get("pre").await.is_ok());
}

#[tokio::test]
async fn matching_preconditions_allow_the_delete() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("pre", "v"))
        .await
        .unwrap();
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: created.metadata.uid.clone(),
            resource_version: created.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    api.delete("pre", &dp).await.unwrap();
    assert_eq!(api_error(api.get("pre").await).code, 404);
}

#[tokio::test]
async fn deleting_a_config_map_answers_with_a_success_status() {
    // Stores without ReturnDeletedObject answer an immediate delete with
    // Status{status: Success, details: {name, kind: <resource>, uid}} (store.finalizeDelete).
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("gone", "v"))
        .await
        .unwrap();
    let answer = api.delete("gone", &DeleteParams::default()).await.unwrap();
    let status = answer.right().expect("a Status, not the object");
    assert!(status.is_success(), "{status:?}");
    let details = status.details.unwrap();
    assert_eq!(details.name, "gone");
    assert_eq!(details.kind, "configmaps");
    assert_eq!(Some(details.uid), created.metadata.uid);
}

#[tokio::test]
async fn deleting_a_pod_answers_with_the_pod() {
    // The pod store sets ReturnDeletedObject.
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &support::pod("gone"))
        .await
        .unwrap();
    let answer = api.delete("gone", &DeleteParams::default()).await.unwrap();
    let pod = answer.left().expect("the pod, not a Status");
    assert_eq!(pod.metadata.name.as_deref(), Some("gone"));
}

#[tokio::test]
async fn bound_pod_is_deleted_gracefully() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &bound_pod("web"))
        .await
        .unwrap();
    api.delete("web", &DeleteParams::default()).await.unwrap();
    // CheckGracefulDelete: a scheduled pod waits for its kubelet, for the pod's grace period.
    let pod = api.get("web").await.unwrap();
    assert!(pod.metadata.deletion_timestamp.is_some());
    assert_eq!(pod.metadata.deletion_grace_period_seconds, Some(30));
}

#[tokio::test]
async fn bound_pod_with_zero_grace_period_is_deleted_at_once() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &bound_pod("web"))
        .await
        .unwrap();
    api.delete("web", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(api_error(api.get("web").await).code, 404);
}

#[tokio::test]
async fn gracefully_deleting_pod_can_be_forced_with_zero_grace_period() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &bound_pod("web"))
        .await
        .unwrap();
    api.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(api.get("web").await.is_ok());
    api.delete("web", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(api_error(api.get("web").await).code, 404);
}

#[tokio::test]
async fn gracefully_deleting_pod_grace_period_can_only_shrink() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &bound_pod("web"))
        .await
        .unwrap();
    api.delete("web", &DeleteParams::default().grace_period(10))
        .await
        .unwrap();
    assert_eq!(
        api.get("web")
            .await
            .unwrap()
            .metadata
            .deletion_grace_period_seconds,
        Some(10)
    );
    api.delete("web", &DeleteParams::default().grace_period(20))
        .await
        .unwrap();
    assert_eq!(
        api.get("web")
            .await
            .unwrap()
            .metadata
            .deletion_grace_period_seconds,
        Some(10)
    );
    api.delete("web", &DeleteParams::default().grace_period(5))
        .await
        .unwrap();
    assert_eq!(
        api.get("web")
            .await
            .unwrap()
            .metadata
            .deletion_grace_period_seconds,
        Some(5)
    );
}

#[tokio::test]
async fn unbound_pod_is_deleted_at_once() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &support::pod("web"))
        .await
        .unwrap();
    api.delete("web", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(api.get("web").await).code, 404);
}

#[tokio::test]
async fn finished_pod_is_deleted_at_once() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &bound_pod("job"))
        .await
        .unwrap();
    api.patch_status(
        "job",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "phase": "Succeeded" } })),
    )
    .await
    .unwrap();
    api.delete("job", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(api.get("job").await).code, 404);
}

#[tokio::test]
async fn delete_of_missing_object_is_not_found() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let err = api_error(api.delete("nope", &DeleteParams::default()).await);
    assert_eq!(err.code, 404);
    assert_eq!(err.reason, "NotFound");
    assert_eq!(err.message, "configmaps \"nope\" not found");
}

#[tokio::test]
async fn delete_collection_removes_only_selected_objects() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    for (name, app) in [
        ("x1", "x"),
        ("x2", "x"),
        ("x3", "x"),
        ("y1", "y"),
        ("y2", "y"),
    ] {
        let cm = ConfigMap {
            metadata: labelled(name, &[("app", app)]),
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let answer = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=x"),
        )
        .await
        .unwrap();
    if let Some(list) = answer.left() {
        let mut names: Vec<_> = list
            .items
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["x1", "x2", "x3"]);
    }
    let mut left: Vec<_> = api
        .list(&ListParams::default().labels("app"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    left.sort();
    assert_eq!(left, vec!["y1", "y2"]);
}
