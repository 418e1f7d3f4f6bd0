//! Dynamic admission against a real HTTPS webhook server started by the test (a self-signed CA
//! from rcgen, hyper over rustls): a mutating webhook that adds a label through a JSONPatch, a
//! validating webhook that denies with a message, and failing and slow webhooks under both
//! failure policies; the webhook configurations themselves are served with validation.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use serde_json::{Value, json};
use support::{api_error, namespace, start};

/// A webhook server on 127.0.0.1 and the PEM of the CA that signed its certificate.
struct WebhookServer {
    addr: SocketAddr,
    ca_pem: String,
}

impl WebhookServer {
    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

/// The webhook's answer to one AdmissionReview, by path.
async fn answer(path: &str, review: Value) -> Value {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let name = request["name"].as_str().unwrap_or("");
    let response = match path {
        "/mutate" => {
            let patch =
                json!([{ "op": "add", "path": "/metadata/labels/mutated", "value": "yes" }]);
            json!({
                "uid": uid, "allowed": true, "patchType": "JSONPatch",
                "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string()),
                "warnings": ["mutated by the test webhook"],
            })
        }
        "/validate" if name.starts_with("deny") => json!({
            "uid": uid, "allowed": false,
            "status": { "code": 403, "reason": "Forbidden", "message": "pods named deny-* are not welcome" },
        }),
        "/validate" => json!({ "uid": uid, "allowed": true }),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            json!({ "uid": uid, "allowed": true })
        }
        _ => json!({ "uid": uid, "allowed": false }),
    };
    json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response })
}

async fn start_webhook_server() -> WebhookServer {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let cert = params.signed_by(&key, &issuer).unwrap();

    let certs = vec![cert.der().clone()];
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_string();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let out = answer(&path, review).await;
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(out.to_string())))
                                .unwrap(),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    WebhookServer { addr, ca_pem }
}

/// One webhook entry for pods in namespaces labelled `webhooks=<ns>`.
fn hook(name: &str, url: &str, ca: &str, ns: &str, failure_policy: &str, timeout: i32) -> Value {
    json!({
        "name": name,
        "clientConfig": { "url": url, "caBundle": ca },
        "rules": [{ "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"] }],
        "namespaceSelector": { "matchLabels": { "webhooks": ns } },
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": failure_policy,
        "timeoutSeconds": timeout,
    })
}

async fn labelled_namespace(client: &kube::Client, name: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"webhooks": name}}}))
            .unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": "test" } },
        "spec": { "containers": [{ "name": "app", "image": "nginx" }] },
    }))
    .unwrap()
}

#[tokio::test]
async fn mutating_and_validating_webhooks_are_called_over_https() {
    let s = start().await;
    let server = start_webhook_server().await;
    let ns = "hooked";
    labelled_namespace(&s.client, ns).await;
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(s.client.clone());
    let cfg = serde_json::from_value(json!({
        "metadata": { "name": "label-adder" },
        "webhooks": [hook("mutate.kox.test", &server.url("/mutate"), &server.ca_bundle(), ns, "Fail", 10)],
    }))
    .unwrap();
    let created = mutating.create(&PostParams::default(), &cfg).await.unwrap();
    let h = &created.webhooks.unwrap()[0];
    assert_eq!(h.match_policy.as_deref(), Some("Equivalent"));
    assert_eq!(h.reinvocation_policy.as_deref(), Some("Never"));
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(s.client.clone());
    let cfg = serde_json::from_value(json!({
        "metadata": { "name": "gatekeeper" },
        "webhooks": [hook("validate.kox.test", &server.url("/validate"), &server.ca_bundle(), ns, "Fail", 10)],
    }))
    .unwrap();
    validating
        .create(&PostParams::default(), &cfg)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(s.client.clone(), ns);
    let created = pods
        .create(&PostParams::default(), &pod("welcome"))
        .await
        .unwrap();
    let labels = created.metadata.labels.unwrap();
    assert_eq!(labels["mutated"], "yes", "the JSONPatch was applied");
    assert_eq!(labels["app"], "test");

    let err = api_error(pods.create(&PostParams::default(), &pod("deny-me")).await);
    assert_eq!(err.code, 403);
    assert_eq!(err.reason, "Forbidden");
    assert_eq!(
        err.message,
        "admission webhook \"validate.kox.test\" denied the request: pods named deny-* are not welcome"
    );
    assert_eq!(api_error(pods.get("deny-me").await).code, 404);

    // Namespaces the selectors do not match are not sent to the webhooks.
    let other = namespace(&s.client, "plain").await;
    let plain: Api<Pod> = Api::namespaced(s.client.clone(), &other);
    let created = plain
        .create(&PostParams::default(), &pod("deny-ok"))
        .await
        .unwrap();
    assert!(!created.metadata.labels.unwrap().contains_key("mutated"));

    // A webhook configuration can always be deleted.
    validating
        .delete("gatekeeper", &DeleteParams::default())
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("deny-now-allowed"))
        .await
        .unwrap();
}

#[tokio::test]
async fn failing_and_slow_webhooks_follow_their_failure_policy() {
    let s = start().await;
    let server = start_webhook_server().await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(s.client.clone());
    for (ns, policy, url, timeout) in [
        (
            "ignore-down",
            "Ignore",
            format!("https://{closed}/validate"),
            10,
        ),
        (
            "fail-down",
            "Fail",
            format!("https://{closed}/validate"),
            10,
        ),
        ("ignore-slow", "Ignore", server.url("/slow"), 1),
        ("fail-slow", "Fail", server.url("/slow"), 1),
    ] {
        labelled_namespace(&s.client, ns).await;
        let cfg = serde_json::from_value(json!({
            "metadata": { "name": ns },
            "webhooks": [hook(&format!("{ns}.kox.test"), &url, &server.ca_bundle(), ns, policy, timeout)],
        }))
        .unwrap();
        validating
            .create(&PostParams::default(), &cfg)
            .await
            .unwrap();
    }
    for ns in ["ignore-down", "ignore-slow"] {
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        let started = Instant::now();
        pods.create(&PostParams::default(), &pod("p"))
            .await
            .unwrap_or_else(|e| panic!("{ns}: failurePolicy Ignore admits: {e}"));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{ns}: the timeout is honoured"
        );
    }
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "fail-down");
    let err = api_error(pods.create(&PostParams::default(), &pod("p")).await);
    assert_eq!(err.code, 500);
    assert!(
        err.message.starts_with(&format!(
            "Internal error occurred: failed calling webhook \"fail-down.kox.test\": failed to call webhook: Post \"https://{closed}/validate?timeout=10s\":"
        )),
        "{}",
        err.message
    );
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "fail-slow");
    let err = api_error(pods.create(&PostParams::default(), &pod("p")).await);
    assert_eq!(err.code, 500);
    assert!(
        err.message
            .ends_with("?timeout=1s\": context deadline exceeded"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn webhook_configurations_are_validated() {
    let s = start().await;
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(s.client.clone());
    let bad = serde_json::from_value(json!({
        "metadata": { "name": "bad" },
        "webhooks": [{ "name": "short", "clientConfig": { "url": "http://example.com" },
                       "sideEffects": "None", "admissionReviewVersions": ["v1"] }],
    }))
    .unwrap();
    let err = api_error(validating.create(&PostParams::default(), &bad).await);
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("webhooks[0].clientConfig.url: Invalid value: \"http://example.com\": 'https' is the only allowed URL scheme"),
        "{}",
        err.message
    );
}
