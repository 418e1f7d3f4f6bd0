//! A kox API server in the test process, over a temporary embedded store, and a `kube::Client`
//! for it built from the admin kubeconfig the server writes.
//!
//! Each test starts its own server (its own store, certificates and port), so tests are
//! independent and run in parallel.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kox_apiserver::{Server, ServerConfig};
use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Status;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A running server; stops it when dropped.
pub struct TestServer {
    pub client: kube::Client,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts a server on an ephemeral port of 127.0.0.1.
pub async fn start() -> TestServer {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = EmbeddedStore::open(dir.path().join("store"), EmbeddedOptions::default())
        .expect("opening the embedded store");
    let config = ServerConfig {
        data_dir: dir.path().join("data"),
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure_port: 0,
        ..Default::default()
    };
    let server = Server::bind(config, Arc::new(store))
        .await
        .expect("binding the API server");
    let kubeconfig = Kubeconfig::read_from(&server.kubeconfig).expect("reading admin.kubeconfig");
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(stop.clone()));
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kube config from admin.kubeconfig");
    // Tests see every answer as the server gave it: no silent retries of 429/503/504.
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("kube client");
    TestServer {
        client,
        stop,
        _dir: dir,
    }
}

/// The `Status` of a failed call; panics if the call did not fail with an API error.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error (Status), got {other:?}"),
    }
}

/// Metadata with just a name.
pub fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        ..Default::default()
    }
}

/// Metadata with a name and labels.
pub fn labelled(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// A ConfigMap with one data entry.
pub fn config_map(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: named(name),
        data: Some([("key".to_string(), value.to_string())].into()),
        ..Default::default()
    }
}

/// A one-container pod (from JSON, so tests read like manifests).
pub fn pod(name: &str) -> Pod {
    serde_json::from_value(pod_json(name)).expect("pod manifest")
}

/// The JSON manifest of a one-container pod.
pub fn pod_json(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": { "containers": [{ "name": "app", "image": "nginx:1.27" }] },
    })
}

/// Creates a namespace and returns its name.
pub async fn namespace(client: &kube::Client, name: &str) -> String {
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &Namespace {
            metadata: named(name),
            ..Default::default()
        },
    )
    .await
    .expect("creating a namespace");
    name.to_string()
}

/// A raw HTTP response: status, headers and body.
pub struct RawResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The values of every `Warning` header.
    pub fn warnings(&self) -> Vec<String> {
        self.headers
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect()
    }
}

/// Sends a request as-is and reads the whole response, whatever its status.
pub async fn raw(
    client: &kube::Client,
    method: http::Method,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> RawResponse {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(body))
        .expect("request");
    let resp = client.send(req).await.expect("sending a raw request");
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .expect("reading the response body")
        .to_bytes()
        .to_vec();
    RawResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Polls `check` until it returns `Some`, for at most five seconds.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
