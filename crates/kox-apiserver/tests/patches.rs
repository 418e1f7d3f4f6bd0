//! PATCH: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch with
//! upstream's list merge keys and directives (`apimachinery/pkg/util/strategicpatch`), as the
//! patch handler (`apiserver/pkg/endpoints/handlers/patch.go`) applies them.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{api_error, config_map, raw, start};

const CM_URI: &str = "/api/v1/namespaces/default/configmaps";

/// Sends a JSON patch (kube's `Patch::Json` needs a feature this workspace does not enable).
async fn json_patch(
    client: &kube::Client,
    name: &str,
    ops: serde_json::Value,
) -> support::RawResponse {
    raw(
        client,
        http::Method::PATCH,
        &format!("{CM_URI}/{name}"),
        "application/json-patch+json",
        serde_json::to_vec(&ops).unwrap(),
    )
    .await
}

fn two_container_deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [
                    { "name": "app", "image": "nginx:1.27", "env": [{ "name": "A", "value": "1" }] },
                    { "name": "sidecar", "image": "busybox:1.36" },
                ] },
            },
        },
    }))
    .unwrap()
}

fn containers(d: &Deployment) -> Vec<(String, String)> {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn json_patch_applies_operations_in_order() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("jp", "one"))
        .await
        .unwrap();
    let resp = json_patch(
        &s.client,
        "jp",
        json!([
            { "op": "add", "path": "/data/b", "value": "2" },
            { "op": "replace", "path": "/data/key", "value": "changed" },
            { "op": "copy", "from": "/data/b", "path": "/data/c" },
            { "op": "remove", "path": "/data/b" },
        ]),
    )
    .await;
    assert_eq!(resp.status, 200);
    let patched: ConfigMap = serde_json::from_value(resp.json()).unwrap();
    assert_eq!(api.get("jp").await.unwrap().data, patched.data);
    let data = patched.data.unwrap();
    assert_eq!(data.len(), 2, "{data:?}");
    assert_eq!(data["key"], "changed");
    assert_eq!(data["c"], "2");
}

#[tokio::test]
async fn json_patch_with_failing_test_operation_is_invalid_and_changes_nothing() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("jp", "one"))
        .await
        .unwrap();
    let resp = json_patch(
        &s.client,
        "jp",
        json!([
            { "op": "replace", "path": "/data/key", "value": "two" },
            { "op": "test", "path": "/data/key", "value": "not-two" },
        ]),
    )
    .await;
    // applyJSPatch: a patch that does not apply is 422 (NewGenericServerResponse).
    assert_eq!(resp.status, 422);
    let status = resp.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    let stored = api.get("jp").await.unwrap();
    assert_eq!(stored.data.unwrap()["key"], "one");
    assert_eq!(
        stored.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test]
async fn merge_patch_merges_maps_and_null_deletes_a_key() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("mp", "one");
    cm.data.as_mut().unwrap().insert("other".into(), "x".into());
    cm.metadata.labels = Some([("a".to_string(), "1".to_string())].into());
    api.create(&PostParams::default(), &cm).await.unwrap();
    let patched = api
        .patch(
            "mp",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "labels": { "b": "2" } },
                "data": { "key": null, "new": "v" },
            })),
        )
        .await
        .unwrap();
    let data = patched.data.unwrap();
    assert_eq!(data.get("key"), None);
    assert_eq!(data["other"], "x");
    assert_eq!(data["new"], "v");
    let labels = patched.metadata.labels.unwrap();
    assert_eq!(labels["a"], "1");
    assert_eq!(labels["b"], "2");
}

#[tokio::test]
async fn merge_patch_replaces_lists_whole() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &two_container_deployment("mp"))
        .await
        .unwrap();
    let patched = api
        .patch(
            "mp",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "template": { "spec": {
                "containers": [{ "name": "app", "image": "nginx:1.28" }],
            } } } })),
        )
        .await
        .unwrap();
    assert_eq!(containers(&patched), pairs(&[("app", "nginx:1.28")]));
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &two_container_deployment("smp"))
        .await
        .unwrap();
    let patched = api
        .patch(
            "smp",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "template": { "spec": {
                "containers": [
                    { "name": "app", "image": "nginx:1.28" },
                    { "name": "extra", "image": "redis:7" },
                ],
            } } } })),
        )
        .await
        .unwrap();
    // normalizeElementOrder/mergeSortedSlice: patch items keep the patch's order and a
    // server-only item goes before a patch item only when both are in the live list and it
    // comes first there; so `extra` (not live) is placed before `sidecar`.
    assert_eq!(
        containers(&patched),
        pairs(&[
            ("app", "nginx:1.28"),
            ("extra", "redis:7"),
            ("sidecar", "busybox:1.36")
        ])
    );
    // Fields of a merged element that the patch does not name are kept.
    let app = &patched.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(app.env.as_ref().unwrap()[0].name, "A");
}

#[tokio::test]
async fn strategic_merge_patch_delete_directive_removes_a_container() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &two_container_deployment("smp"))
        .await
        .unwrap();
    let patched = api
        .patch(
            "smp",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "template": { "spec": {
                "containers": [{ "name": "sidecar", "$patch": "delete" }],
            } } } })),
        )
        .await
        .unwrap();
    assert_eq!(containers(&patched), pairs(&[("app", "nginx:1.27")]));
}

#[tokio::test]
async fn strategic_merge_patch_set_element_order_reorders_the_list() {
    let s = start().await;
    let api: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &two_container_deployment("smp"))
        .await
        .unwrap();
    // What `kubectl apply` sends: the full order, and only the changed elements.
    let patched = api
        .patch(
            "smp",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "template": { "spec": {
                "$setElementOrder/containers": [{ "name": "sidecar" }, { "name": "app" }],
                "containers": [{ "name": "app", "image": "nginx:1.28" }],
            } } } })),
        )
        .await
        .unwrap();
    assert_eq!(
        containers(&patched),
        pairs(&[("sidecar", "busybox:1.36"), ("app", "nginx:1.28")])
    );
}

#[tokio::test]
async fn strategic_merge_patch_null_deletes_a_map_key() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("smp", "one");
    cm.metadata.labels = Some(
        [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]
        .into(),
    );
    api.create(&PostParams::default(), &cm).await.unwrap();
    let patched = api
        .patch(
            "smp",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "metadata": { "labels": { "a": null } } })),
        )
        .await
        .unwrap();
    let labels = patched.metadata.labels.unwrap();
    assert_eq!(labels.get("a"), None);
    assert_eq!(labels["b"], "2");
}

#[tokio::test]
async fn patch_of_missing_object_is_not_found() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    for patch in [
        Patch::Merge(json!({ "data": { "a": "b" } })),
        Patch::Strategic(json!({ "data": { "a": "b" } })),
    ] {
        let err = api_error(api.patch("nope", &PatchParams::default(), &patch).await);
        assert_eq!(err.code, 404);
        assert_eq!(err.reason, "NotFound");
        assert_eq!(err.message, "configmaps \"nope\" not found");
    }
}

#[tokio::test]
async fn patch_with_stale_resource_version_is_conflict() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("p", "one"))
        .await
        .unwrap();
    api.patch(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "key": "two" } })),
    )
    .await
    .unwrap();
    let stale = created.metadata.resource_version.unwrap();
    let err = api_error(
        api.patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "resourceVersion": stale }, "data": { "key": "three" } }),
            ),
        )
        .await,
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
}

#[tokio::test]
async fn patch_that_changes_nothing_keeps_the_resource_version() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("p", "one"))
        .await
        .unwrap();
    let patched = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "key": "one" } })),
        )
        .await
        .unwrap();
    // A no-op update is not written (GuaranteedUpdate short-circuits identical bytes).
    assert_eq!(
        patched.metadata.resource_version,
        created.metadata.resource_version
    );
}
