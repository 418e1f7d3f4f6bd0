//! Authentication: client certificates, static bearer tokens, anonymous requests, and the
//! identities `SelfSubjectReview` / `TokenReview` report.

mod auth_support;

use auth_support::{get_raw, start, start_with};
use k8s_openapi::api::authentication::v1::{
    SelfSubjectReview, TokenReview, TokenReviewSpec, UserInfo,
};
use kube::api::{Api, PostParams};

async fn whoami(client: &kube::Client) -> UserInfo {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("creating a SelfSubjectReview");
    review
        .status
        .and_then(|s| s.user_info)
        .expect("status.userInfo")
}

const TOKENS: &str = "secret-jane,jane,uid-jane,\"dev,ops\"\nsecret-bob,bob,uid-bob\n";

#[tokio::test]
async fn client_certificate_names_the_user_and_its_groups() {
    let s = start().await;
    let jane = s.user("jane", &["dev", "ops"]).await;
    let me = whoami(&jane).await;
    assert_eq!(me.username.as_deref(), Some("jane"));
    assert_eq!(
        me.groups.unwrap_or_default(),
        ["dev", "ops", "system:authenticated"]
    );
}

#[tokio::test]
async fn admin_kubeconfig_is_kubernetes_admin_in_system_masters() {
    let s = start().await;
    let me = whoami(&s.admin).await;
    assert_eq!(me.username.as_deref(), Some("kubernetes-admin"));
    assert_eq!(
        me.groups.unwrap_or_default(),
        ["system:masters", "system:authenticated"]
    );
}

#[tokio::test]
async fn token_file_tokens_authenticate_with_uid_and_groups() {
    let s = start_with(|dir, config| {
        let path = dir.join("tokens.csv");
        std::fs::write(&path, TOKENS).unwrap();
        config.token_auth_file = Some(path);
    })
    .await;
    let me = whoami(&s.with_token("secret-jane").await).await;
    assert_eq!(me.username.as_deref(), Some("jane"));
    assert_eq!(me.uid.as_deref(), Some("uid-jane"));
    assert_eq!(
        me.groups.unwrap_or_default(),
        ["dev", "ops", "system:authenticated"]
    );
    let bob = whoami(&s.with_token("secret-bob").await).await;
    assert_eq!(bob.groups.unwrap_or_default(), ["system:authenticated"]);
}

#[tokio::test]
async fn unknown_bearer_token_is_401_unauthorized() {
    let s = start_with(|dir, config| {
        let path = dir.join("tokens.csv");
        std::fs::write(&path, TOKENS).unwrap();
        config.token_auth_file = Some(path);
    })
    .await;
    let stranger = s.with_token("not-a-token").await;
    let (code, body) = get_raw(&stranger, "/api/v1/namespaces").await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["message"], "Unauthorized");
    // Even endpoints anonymous users may read refuse bad credentials.
    let (code, _) = get_raw(&stranger, "/healthz").await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let s = start().await;
    let (ca_cert, ca_key) = kox_apiserver::pki::new_certificate_authority().unwrap();
    let (cert, key) = kox_apiserver::pki::issue_client_certificate_by(
        &ca_cert,
        &ca_key,
        "mallory",
        &["system:masters"],
    )
    .unwrap();
    let mallory = s.with_cert(&cert, &key).await;
    let api: Api<SelfSubjectReview> = Api::all(mallory.clone());
    let result = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await;
    // As upstream: the handshake succeeds, the request is a 401 (not anonymous, not mallory).
    let status = auth_support::api_error(result);
    assert_eq!(status.code, 401, "{status:?}");
    assert_eq!(status.reason, "Unauthorized");
    let (code, body) = get_raw(&mallory, "/healthz").await;
    assert_eq!(code, 401, "{body}");
}

#[tokio::test]
async fn certificate_that_expires_on_an_open_connection_is_refused_from_then_on() {
    let s = start().await;
    let (cert, key) = kox_apiserver::pki::issue_client_certificate_valid_for(
        &s.data_dir,
        "jane",
        &["system:masters"],
        time::Duration::seconds(3),
    )
    .unwrap();
    let expiry = kox_apiserver::pki::not_after(&cert).unwrap();
    let jane = s.with_cert(&cert, &key).await;
    assert_eq!(whoami(&jane).await.username.as_deref(), Some("jane"));
    // The same client (and its kept-alive connection) after the certificate expired: upstream
    // verifies the certificate on every request, so this is a 401, not jane.
    while jiff::Timestamp::now().as_second() <= expiry {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (code, body) = get_raw(&jane, "/api/v1/namespaces").await;
    assert_eq!(code, 401, "{body}");
}

#[tokio::test]
async fn request_without_credentials_is_anonymous_and_reaches_healthz() {
    let s = start().await;
    let anon = s.anonymous().await;
    let (code, _) = get_raw(&anon, "/healthz").await;
    assert_eq!(code, 200);
    let (code, body) = get_raw(&anon, "/version").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["major"], "1");
}

#[tokio::test]
async fn token_review_reports_the_token_owner_or_that_it_is_invalid() {
    let s = start_with(|dir, config| {
        let path = dir.join("tokens.csv");
        std::fs::write(&path, TOKENS).unwrap();
        config.token_auth_file = Some(path);
    })
    .await;
    let api: Api<TokenReview> = Api::all(s.admin.clone());
    let review = |token: &str| TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    let ok = api
        .create(&PostParams::default(), &review("secret-jane"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(ok.authenticated, Some(true));
    assert_eq!(ok.user.unwrap().username.as_deref(), Some("jane"));
    let bad = api
        .create(&PostParams::default(), &review("nope"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(bad.authenticated, Some(true));
    assert!(!bad.error.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn audit_log_records_each_request_at_metadata_level() {
    let s = start_with(|dir, config| {
        config.audit_log_path = Some(dir.join("audit.log"));
    })
    .await;
    let jane = s.user("jane", &[]).await;
    let (code, _) = get_raw(&jane, "/api/v1/namespaces/default/pods").await;
    assert_eq!(code, 403);
    let path = s.data_dir.parent().unwrap().join("audit.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let event = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["user"]["username"] == "jane");
        if let Some(e) = found {
            break e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit event for jane: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(event["kind"], "Event");
    assert_eq!(event["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(event["level"], "Metadata");
    assert_eq!(event["verb"], "list");
    assert_eq!(event["requestURI"], "/api/v1/namespaces/default/pods");
    assert_eq!(event["objectRef"]["resource"], "pods");
    assert_eq!(event["objectRef"]["namespace"], "default");
    assert_eq!(event["responseStatus"]["code"], 403);
    assert_eq!(
        event["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert!(event.get("requestObject").is_none());
}
