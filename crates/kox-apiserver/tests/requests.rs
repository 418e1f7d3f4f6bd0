//! Request-level semantics: namespaces that must exist, `dryRun`, `fieldValidation`, and
//! errors as `Status` objects with upstream's codes, reasons and messages
//! (`apimachinery/pkg/api/errors`, `apiserver/pkg/endpoints/handlers`, the NamespaceLifecycle
//! admission plugin).

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{api_error, config_map, namespace, pod_json, raw, start};

const CM_URI: &str = "/api/v1/namespaces/default/configmaps";

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn create_in_missing_namespace_is_not_found_naming_the_namespace() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "ghost");
    let err = api_error(
        api.create(&PostParams::default(), &config_map("x", "v"))
            .await,
    );
    // NamespaceLifecycle: the namespace's own NotFound.
    assert_eq!(err.code, 404);
    assert_eq!(err.reason, "NotFound");
    assert_eq!(err.message, "namespaces \"ghost\" not found");
    let details = err.details.unwrap();
    assert_eq!(details.kind, "namespaces");
    assert_eq!(details.name, "ghost");
}

#[tokio::test]
async fn create_in_terminating_namespace_is_forbidden() {
    let s = start().await;
    let ns = namespace(&s.client, "closing").await;
    let nss: Api<Namespace> = Api::all(s.client.clone());
    nss.delete(&ns, &DeleteParams::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), &ns);
    let err = api_error(
        api.create(&PostParams::default(), &config_map("late", "v"))
            .await,
    );
    assert_eq!(err.code, 403);
    assert_eq!(err.reason, "Forbidden");
    // admission.NewForbidden(a, …): "<resource> \"<name>\" is forbidden: <why>", with a
    // NamespaceTerminating cause.
    assert_eq!(
        err.message,
        "configmaps \"late\" is forbidden: unable to create new content in namespace closing \
         because it is being terminated"
    );
    let causes = err.details.unwrap().causes;
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0].reason, "NamespaceTerminating");
    assert_eq!(causes[0].field, "metadata.namespace");
    assert_eq!(causes[0].message, "namespace closing is being terminated");
}

#[tokio::test]
async fn dry_run_create_returns_the_object_and_writes_nothing() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let answered = api
        .create(&dry_run(), &config_map("dry", "v"))
        .await
        .unwrap();
    assert_eq!(answered.metadata.name.as_deref(), Some("dry"));
    assert_eq!(answered.data.unwrap()["key"], "v");
    assert!(answered.metadata.creation_timestamp.is_some());
    assert_eq!(api_error(api.get("dry").await).code, 404);
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn dry_run_update_and_patch_change_nothing() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("dry", "one"))
        .await
        .unwrap();
    let mut body = created.clone();
    body.data = Some([("key".to_string(), "two".to_string())].into());
    let answered = api.replace("dry", &dry_run(), &body).await.unwrap();
    assert_eq!(answered.data.unwrap()["key"], "two");
    let patched = api
        .patch(
            "dry",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({ "data": { "key": "three" } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["key"], "three");
    let stored = api.get("dry").await.unwrap();
    assert_eq!(stored.data.unwrap()["key"], "one");
    assert_eq!(
        stored.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test]
async fn dry_run_delete_keeps_the_object() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("dry", "v"))
        .await
        .unwrap();
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    api.delete("dry", &dp).await.unwrap();
    assert!(api.get("dry").await.is_ok());
}

#[tokio::test]
async fn dry_run_create_of_existing_name_is_already_exists() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("dup", "v"))
        .await
        .unwrap();
    let err = api_error(api.create(&dry_run(), &config_map("dup", "v")).await);
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "AlreadyExists");
}

#[tokio::test]
async fn unsupported_dry_run_value_is_bad_request() {
    let s = start().await;
    let body = serde_json::to_vec(&config_map("dry", "v")).unwrap();
    let resp = raw(
        &s.client,
        http::Method::POST,
        &format!("{CM_URI}?dryRun=Some"),
        "application/json",
        body,
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["reason"], "BadRequest");
}

fn with_unknown_field() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "fv" },
        "data": { "key": "v" },
        "bogus": 1,
    }))
    .unwrap()
}

#[tokio::test]
async fn strict_field_validation_rejects_unknown_fields() {
    let s = start().await;
    let resp = raw(
        &s.client,
        http::Method::POST,
        &format!("{CM_URI}?fieldValidation=Strict"),
        "application/json",
        with_unknown_field(),
    )
    .await;
    assert_eq!(resp.status, 400);
    let status = resp.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: \
         unknown field \"bogus\""
    );
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    assert_eq!(api_error(api.get("fv").await).code, 404);
}

#[tokio::test]
async fn warn_field_validation_accepts_and_warns() {
    let s = start().await;
    let resp = raw(
        &s.client,
        http::Method::POST,
        &format!("{CM_URI}?fieldValidation=Warn"),
        "application/json",
        with_unknown_field(),
    )
    .await;
    assert_eq!(resp.status, 201);
    assert_eq!(
        resp.warnings(),
        vec!["299 - \"unknown field \\\"bogus\\\"\"".to_string()]
    );
    assert!(resp.json().get("bogus").is_none());
}

#[tokio::test]
async fn field_validation_defaults_to_warn() {
    let s = start().await;
    let resp = raw(
        &s.client,
        http::Method::POST,
        CM_URI,
        "application/json",
        with_unknown_field(),
    )
    .await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.warnings().len(), 1, "{:?}", resp.warnings());
}

#[tokio::test]
async fn ignore_field_validation_accepts_silently() {
    let s = start().await;
    let resp = raw(
        &s.client,
        http::Method::POST,
        &format!("{CM_URI}?fieldValidation=Ignore"),
        "application/json",
        with_unknown_field(),
    )
    .await;
    assert_eq!(resp.status, 201);
    assert!(resp.warnings().is_empty());
}

#[tokio::test]
async fn strict_field_validation_applies_to_patches() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("fv", "v"))
        .await
        .unwrap();
    let err = api_error(
        api.patch(
            "fv",
            &PatchParams::default().validation_strict(),
            &Patch::Merge(json!({ "bogus": 1 })),
        )
        .await,
    );
    assert_eq!(err.code, 400);
    assert_eq!(err.reason, "BadRequest");
    assert!(
        err.message.contains("unknown field \"bogus\""),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn get_of_missing_object_is_not_found() {
    let s = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let err = api_error(cms.get("nope").await);
    assert_eq!(err.code, 404);
    assert_eq!(err.reason, "NotFound");
    assert_eq!(err.message, "configmaps \"nope\" not found");
    let details = err.details.unwrap();
    assert_eq!(
        (
            details.name.as_str(),
            details.kind.as_str(),
            details.group.as_str()
        ),
        ("nope", "configmaps", "")
    );

    // A grouped resource is named with its group.
    let deps: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    let err = api_error(deps.get("nope").await);
    assert_eq!(err.message, "deployments.apps \"nope\" not found");
    let details = err.details.unwrap();
    assert_eq!(
        (details.kind.as_str(), details.group.as_str()),
        ("deployments", "apps")
    );
}

#[tokio::test]
async fn create_of_existing_name_is_already_exists() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("dup", "v"))
        .await
        .unwrap();
    let err = api_error(
        api.create(&PostParams::default(), &config_map("dup", "w"))
            .await,
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "AlreadyExists");
    assert_eq!(err.message, "configmaps \"dup\" already exists");
    assert_eq!(api.get("dup").await.unwrap().data.unwrap()["key"], "v");
}

#[tokio::test]
async fn invalid_object_is_unprocessable_with_causes() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let mut manifest = pod_json("bad");
    manifest["spec"]["containers"] = json!([]);
    let pod: Pod = serde_json::from_value(manifest).unwrap();
    let err = api_error(api.create(&PostParams::default(), &pod).await);
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(
        err.message,
        "Pod \"bad\" is invalid: spec.containers: Required value"
    );
    let details = err.details.unwrap();
    assert_eq!(details.kind, "Pod");
    assert_eq!(details.name, "bad");
    assert_eq!(details.causes.len(), 1);
    assert_eq!(details.causes[0].reason, "FieldValueRequired");
    assert_eq!(details.causes[0].message, "Required value");
    assert_eq!(details.causes[0].field, "spec.containers");
}

#[tokio::test]
async fn invalid_label_is_unprocessable() {
    // rest.BeforeCreate runs ValidateObjectMetaAccessor on every kind: label keys must be
    // qualified names.
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("lbl", "v");
    cm.metadata.labels = Some([("bad key".to_string(), "v".to_string())].into());
    let err = api_error(api.create(&PostParams::default(), &cm).await);
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    let causes = err.details.unwrap().causes;
    assert_eq!(causes[0].field, "metadata.labels");
    assert_eq!(causes[0].reason, "FieldValueInvalid");
}

#[tokio::test]
async fn invalid_config_map_name_is_unprocessable() {
    // ValidateConfigMap → ValidateObjectMeta with NameIsDNSSubdomain.
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let err = api_error(
        api.create(&PostParams::default(), &config_map("Bad_Name", "v"))
            .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(err.details.unwrap().causes[0].field, "metadata.name");
}

#[tokio::test]
async fn update_with_another_uid_is_conflict() {
    // The update handler turns the body's uid into a UID precondition; the storage layer
    // refuses the write when it differs.
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("uid", "v"))
        .await
        .unwrap();
    let mut body = api.get("uid").await.unwrap();
    body.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    let err = api_error(api.replace("uid", &PostParams::default(), &body).await);
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert!(
        err.message.contains(
            "Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000"
        ),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn update_whose_name_differs_from_the_url_is_bad_request() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("a", "v"))
        .await
        .unwrap();
    let mut body = api.get("a").await.unwrap();
    body.metadata.name = Some("b".into());
    let err = api_error(api.replace("a", &PostParams::default(), &body).await);
    assert_eq!(err.code, 400);
    assert_eq!(err.reason, "BadRequest");
    assert_eq!(
        err.message,
        "the name of the object (b) does not match the name on the URL (a)"
    );
}

#[tokio::test]
async fn create_whose_namespace_differs_from_the_url_is_bad_request() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("a", "v");
    cm.metadata.namespace = Some("kube-system".into());
    let err = api_error(api.create(&PostParams::default(), &cm).await);
    assert_eq!(err.code, 400);
    assert_eq!(err.reason, "BadRequest");
    assert_eq!(
        err.message,
        "the namespace of the provided object does not match the namespace sent on the request"
    );
}

#[tokio::test]
async fn malformed_body_is_bad_request() {
    let s = start().await;
    let resp = raw(
        &s.client,
        http::Method::POST,
        CM_URI,
        "application/json",
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(resp.status, 400);
    let status = resp.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
}

#[tokio::test]
async fn unknown_resource_path_is_not_found() {
    let s = start().await;
    for path in [
        "/api/v1/namespaces/default/widgets",
        "/apis/example.com/v1/widgets",
        "/api/v1/nonsense",
    ] {
        let resp = raw(
            &s.client,
            http::Method::GET,
            path,
            "application/json",
            Vec::new(),
        )
        .await;
        assert_eq!(resp.status, 404, "{path}");
        let status = resp.json();
        assert_eq!(status["kind"], "Status", "{path}");
        assert_eq!(status["reason"], "NotFound", "{path}");
        assert_eq!(status["code"], 404, "{path}");
    }
}

#[tokio::test]
async fn unsupported_method_is_method_not_allowed() {
    let s = start().await;
    let body = serde_json::to_vec(&config_map("a", "v")).unwrap();
    // PUT on a collection: the path exists, the verb does not.
    let resp = raw(
        &s.client,
        http::Method::PUT,
        CM_URI,
        "application/json",
        body,
    )
    .await;
    assert_eq!(resp.status, 405);
    let status = resp.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "MethodNotAllowed");
    assert_eq!(status["code"], 405);
}

#[tokio::test]
async fn body_over_three_mebibytes_is_too_large() {
    let s = start().await;
    let big = "x".repeat(3 * 1024 * 1024 + 1024);
    let body = serde_json::to_vec(&json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "big" },
        "data": { "key": big },
    }))
    .unwrap();
    let resp = raw(
        &s.client,
        http::Method::POST,
        CM_URI,
        "application/json",
        body,
    )
    .await;
    assert_eq!(resp.status, 413);
    let status = resp.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    assert_eq!(api_error(api.get("big").await).code, 404);
}

#[tokio::test]
async fn too_large_body_message_names_the_limit() {
    let s = start().await;
    let body = vec![b' '; 3 * 1024 * 1024 + 1];
    let resp = raw(
        &s.client,
        http::Method::POST,
        CM_URI,
        "application/json",
        body,
    )
    .await;
    assert_eq!(resp.status, 413);
    // limitedReadBody → NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", limit)).
    assert_eq!(
        resp.json()["message"],
        "Request entity too large: limit is 3145728"
    );
}

#[tokio::test]
async fn create_with_a_resource_version_is_refused() {
    // The storage layer's Create: "resourceVersion should not be set on objects to be created",
    // a plain error the handler reports as 500 with no reason.
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut cm = config_map("rv", "v");
    cm.metadata.resource_version = Some("42".into());
    let err = api_error(api.create(&PostParams::default(), &cm).await);
    assert_eq!(err.code, 500);
    assert_eq!(
        err.message,
        "resourceVersion should not be set on objects to be created"
    );
    assert_eq!(api_error(api.get("rv").await).code, 404);
}
