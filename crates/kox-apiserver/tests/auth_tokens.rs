//! Service-account tokens: TokenRequest, verification on every request (signature, expiry,
//! audience, the service account and bound pod still existing), and what RBAC grants them.

mod auth_support;

use std::time::Duration;

use auth_support::{AuthServer, api_error, get_raw, send_raw, start};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kox_apiserver::authn::TokenSigner;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

async fn setup(s: &AuthServer, ns: &str, sa: &str) {
    let nss: Api<Namespace> = Api::all(s.admin.clone());
    let _ = nss
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": ns } })).unwrap(),
        )
        .await;
    let sas: Api<ServiceAccount> = Api::namespaced(s.admin.clone(), ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({ "metadata": { "name": sa } })).unwrap(),
    )
    .await
    .expect("creating the service account");
}

/// Issues a token through the TokenRequest API; returns the whole answer.
async fn token_request(s: &AuthServer, ns: &str, sa: &str, spec: Value) -> (u16, Value) {
    send_raw(
        &s.admin,
        http::Method::POST,
        &format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"),
        Some(&json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec })),
    )
    .await
}

async fn token(s: &AuthServer, ns: &str, sa: &str, spec: Value) -> String {
    let (code, body) = token_request(s, ns, sa, spec).await;
    assert_eq!(code, 201, "{body}");
    body["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_string()
}

async fn whoami(
    client: &kube::Client,
) -> Result<k8s_openapi::api::authentication::v1::UserInfo, kube::Error> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let r = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    Ok(r.status.and_then(|s| s.user_info).expect("userInfo"))
}

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

#[tokio::test]
async fn token_request_issues_a_token_that_authenticates_as_the_service_account() {
    let s = start().await;
    setup(&s, "dev", "builder").await;
    let (code, body) = token_request(&s, "dev", "builder", json!({})).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["kind"], "TokenRequest");
    assert_eq!(body["spec"]["expirationSeconds"], 3600);
    let expires: jiff::Timestamp = body["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .expect("expirationTimestamp");
    let in_secs = expires.as_second() - jiff::Timestamp::now().as_second();
    assert!((3500..=3600).contains(&in_secs), "{in_secs}");
    let sa = s
        .with_token(body["status"]["token"].as_str().unwrap())
        .await;
    let me = whoami(&sa).await.expect("whoami");
    assert_eq!(
        me.username.as_deref(),
        Some("system:serviceaccount:dev:builder")
    );
    assert_eq!(
        me.groups.unwrap_or_default(),
        [
            "system:serviceaccounts",
            "system:serviceaccounts:dev",
            "system:authenticated"
        ]
    );
    let sas: Api<ServiceAccount> = Api::namespaced(s.admin.clone(), "dev");
    assert_eq!(me.uid, sas.get("builder").await.unwrap().metadata.uid);
}

#[tokio::test]
async fn service_account_gets_what_its_bindings_grant() {
    let s = start().await;
    setup(&s, "dev", "builder").await;
    let sa = s
        .with_token(&token(&s, "dev", "builder", json!({})).await)
        .await;
    let pods: Api<Pod> = Api::namespaced(sa.clone(), "dev");
    let err = api_error(pods.list(&ListParams::default()).await);
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods is forbidden: User \"system:serviceaccount:dev:builder\" cannot list resource \"pods\" in API group \"\" in the namespace \"dev\""
    );
    let (code, body) = send_raw(
        &s.admin,
        http::Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings",
        Some(&json!({
            "metadata": { "name": "builder-edit" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit" },
            "subjects": [{ "kind": "ServiceAccount", "name": "builder", "namespace": "dev" }],
        })),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    eventually("the service account may list pods", || async {
        pods.list(&ListParams::default()).await.is_ok()
    })
    .await;
    assert_eq!(get_raw(&sa, "/api/v1/namespaces/default/pods").await.0, 403);
}

#[tokio::test]
async fn token_signed_by_another_key_is_401() {
    let s = start().await;
    setup(&s, "dev", "builder").await;
    let good = token(&s, "dev", "builder", json!({})).await;
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("tls")).unwrap();
    kox_apiserver::authn::service_account::ensure_key(other.path()).unwrap();
    let forger = TokenSigner::load(other.path()).unwrap();
    // Same claims, another key.
    let ours = TokenSigner::load(&s.data_dir).unwrap();
    let claims = ours.verify(&good).expect("the server's own token verifies");
    let forged = forger.sign(&claims).unwrap();
    let (code, body) = get_raw(&s.with_token(&forged).await, "/api/v1/namespaces/dev/pods").await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["message"], "Unauthorized");
    // A tampered payload under the right header and signature fails as well.
    let mut parts: Vec<&str> = good.split('.').collect();
    let tampered_payload = {
        use base64::Engine;
        let mut c = claims.clone();
        c["kubernetes.io"]["serviceaccount"]["name"] = json!("default");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string())
    };
    parts[1] = &tampered_payload;
    let (code, _) = get_raw(&s.with_token(&parts.join(".")).await, "/healthz").await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn expired_token_is_401() {
    let s = start().await;
    setup(&s, "dev", "builder").await;
    let good = token(&s, "dev", "builder", json!({})).await;
    let signer = TokenSigner::load(&s.data_dir).unwrap();
    let mut claims = signer.verify(&good).unwrap();
    let now = jiff::Timestamp::now().as_second();
    claims["iat"] = json!(now - 7200);
    claims["nbf"] = json!(now - 7200);
    claims["exp"] = json!(now - 10);
    let expired = signer.sign(&claims).unwrap();
    let (code, body) = get_raw(&s.with_token(&expired).await, "/apis").await;
    assert_eq!(code, 401, "{body}");
    // The same claims, not expired, pass: only the expiry made the difference.
    claims["exp"] = json!(now + 600);
    let fresh = signer.sign(&claims).unwrap();
    assert_eq!(get_raw(&s.with_token(&fresh).await, "/apis").await.0, 200);
}

#[tokio::test]
async fn token_dies_with_its_service_account() {
    let s = start().await;
    setup(&s, "dev", "builder").await;
    let sa = s
        .with_token(&token(&s, "dev", "builder", json!({})).await)
        .await;
    assert!(whoami(&sa).await.is_ok());
    let sas: Api<ServiceAccount> = Api::namespaced(s.admin.clone(), "dev");
    sas.delete("builder", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(get_raw(&sa, "/apis").await.0, 401);
    // A new account of the same name is another account: the old token stays dead.
    setup(&s, "dev", "builder").await;
    assert_eq!(get_raw(&sa, "/apis").await.0, 401);
}

#[tokio::test]
async fn pod_bound_token_dies_with_its_pod() {
    let s = start().await;
    setup(&s, "dev", "builder").await;
    let pods: Api<Pod> = Api::namespaced(s.admin.clone(), "dev");
    let pod = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "web" },
                "spec": { "serviceAccountName": "builder", "containers": [{ "name": "c", "image": "busybox" }] },
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let uid = pod.metadata.uid.unwrap();
    let (code, body) = token_request(
        &s,
        "dev",
        "builder",
        json!({ "boundObjectRef": { "kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "not-the-uid" } }),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    let bound = token(
        &s,
        "dev",
        "builder",
        json!({ "boundObjectRef": { "kind": "Pod", "apiVersion": "v1", "name": "web", "uid": uid } }),
    )
    .await;
    let client = s.with_token(&bound).await;
    let me = whoami(&client)
        .await
        .expect("bound token works while the pod exists");
    assert_eq!(
        me.extra.unwrap_or_default()["authentication.kubernetes.io/pod-name"],
        ["web"]
    );
    pods.delete(
        "web",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    eventually("the bound token is refused", || async {
        get_raw(&client, "/apis").await.0 == 401
    })
    .await;
}

#[tokio::test]
async fn token_requests_are_validated() {
    let s = start().await;
    setup(&s, "dev", "builder").await;
    let (code, body) =
        token_request(&s, "dev", "builder", json!({ "expirationSeconds": 60 })).await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("may not specify a duration less than 10 minutes"),
        "{body}"
    );
    let (code, body) = token_request(&s, "dev", "nobody", json!({})).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["message"], "serviceaccounts \"nobody\" not found");
}

#[tokio::test]
async fn audiences_limit_where_a_token_is_accepted() {
    let s = start().await;
    setup(&s, "dev", "builder").await;
    let vault = token(&s, "dev", "builder", json!({ "audiences": ["vault"] })).await;
    // Not for the API server…
    assert_eq!(get_raw(&s.with_token(&vault).await, "/apis").await.0, 401);
    // …but a TokenReview for that audience accepts it.
    let reviews: Api<TokenReview> = Api::all(s.admin.clone());
    let review = |aud: &str| TokenReview {
        spec: TokenReviewSpec {
            token: Some(vault.clone()),
            audiences: Some(vec![aud.to_string()]),
        },
        ..Default::default()
    };
    let ok = reviews
        .create(&PostParams::default(), &review("vault"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(ok.authenticated, Some(true));
    assert_eq!(
        ok.user.unwrap().username.as_deref(),
        Some("system:serviceaccount:dev:builder")
    );
    assert_eq!(ok.audiences.unwrap_or_default(), ["vault"]);
    let no = reviews
        .create(&PostParams::default(), &review("other"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(no.authenticated, Some(true));
}

#[test]
fn signing_key_is_created_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    kox_apiserver::authn::service_account::ensure_key(dir.path()).unwrap();
    let first = TokenSigner::load(dir.path()).unwrap();
    let token = first.sign(&json!({ "sub": "x" })).unwrap();
    kox_apiserver::authn::service_account::ensure_key(dir.path()).unwrap();
    let again = TokenSigner::load(dir.path()).unwrap();
    assert_eq!(again.verify(&token).unwrap()["sub"], "x");
}
