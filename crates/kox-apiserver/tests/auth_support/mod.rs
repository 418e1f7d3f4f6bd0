//! An in-process kox API server for authentication and authorization tests, with clients for
//! any identity: client certificates (from the cluster CA or another one), bearer tokens, or
//! no credentials at all.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use kox_apiserver::{Server, ServerConfig};
use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A running server; stops it when dropped.
pub struct AuthServer {
    /// A client with the admin kubeconfig (`system:masters`).
    pub admin: kube::Client,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    pub data_dir: PathBuf,
    pub ca_pem: String,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts a server; `configure` may change its configuration (the data directory is set).
pub async fn start_with(configure: impl FnOnce(&Path, &mut ServerConfig)) -> AuthServer {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = EmbeddedStore::open(dir.path().join("store"), EmbeddedOptions::default())
        .expect("opening the embedded store");
    let mut config = ServerConfig {
        data_dir: dir.path().join("data"),
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure_port: 0,
        ..Default::default()
    };
    configure(dir.path(), &mut config);
    let data_dir = config.data_dir.clone();
    let server = Server::bind(config, Arc::new(store))
        .await
        .expect("binding the API server");
    let url = format!("https://{}", server.local_addr);
    let admin_yaml = std::fs::read_to_string(&server.kubeconfig).expect("admin kubeconfig");
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(stop.clone()));
    let ca_pem = std::fs::read_to_string(data_dir.join("tls/ca.crt")).expect("ca.crt");
    AuthServer {
        admin: client_from_yaml(&admin_yaml).await,
        url,
        data_dir,
        ca_pem,
        stop,
        _dir: dir,
    }
}

/// Starts a server with the default configuration.
pub async fn start() -> AuthServer {
    start_with(|_, _| {}).await
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// A kube client from kubeconfig YAML; no retries, so every answer is seen as given.
pub async fn client_from_yaml(yaml: &str) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(yaml).expect("kubeconfig YAML");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kube config");
    config.default_retry = false;
    kube::Client::try_from(config).expect("kube client")
}

impl AuthServer {
    fn kubeconfig(&self, user_yaml: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kox\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n{user_yaml}contexts:\n- name: kox\n  context:\n    cluster: kox\n    user: u\ncurrent-context: kox\n",
            self.url,
            b64(&self.ca_pem)
        )
    }

    /// A client without credentials.
    pub async fn anonymous(&self) -> kube::Client {
        client_from_yaml(&self.kubeconfig("    {}\n")).await
    }

    /// A client presenting a bearer token.
    pub async fn with_token(&self, token: &str) -> kube::Client {
        client_from_yaml(&self.kubeconfig(&format!("    token: {token}\n"))).await
    }

    /// A client presenting a certificate and key.
    pub async fn with_cert(&self, cert_pem: &str, key_pem: &str) -> kube::Client {
        client_from_yaml(&self.kubeconfig(&format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert_pem),
            b64(key_pem)
        )))
        .await
    }

    /// A client with a certificate from the cluster CA naming `user` in `groups`.
    pub async fn user(&self, user: &str, groups: &[&str]) -> kube::Client {
        let (cert, key) = if groups.len() <= 1 {
            kox_apiserver::pki::issue_client_certificate(&self.data_dir, user, groups)
                .expect("issuing a client certificate")
        } else {
            self.openssl_client_certificate(user, groups)
        };
        self.with_cert(&cert, &key).await
    }

    /// A certificate with several O attributes, made by the `openssl` command as an
    /// administrator would, signed by the cluster CA.
    fn openssl_client_certificate(&self, user: &str, groups: &[&str]) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = |f: &str| dir.path().join(f);
        let subject: String = groups
            .iter()
            .map(|g| format!("/O={g}"))
            .chain(std::iter::once(format!("/CN={user}")))
            .collect();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("running openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(p("ext.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
        let tls = self.data_dir.join("tls");
        run(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            p("key.pem").to_str().unwrap(),
            "-subj",
            &subject,
            "-out",
            p("csr.pem").to_str().unwrap(),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            p("csr.pem").to_str().unwrap(),
            "-CA",
            tls.join("ca.crt").to_str().unwrap(),
            "-CAkey",
            tls.join("ca.key").to_str().unwrap(),
            "-set_serial",
            "1000",
            "-days",
            "1",
            "-extfile",
            p("ext.cnf").to_str().unwrap(),
            "-out",
            p("cert.pem").to_str().unwrap(),
        ]);
        (
            std::fs::read_to_string(p("cert.pem")).unwrap(),
            std::fs::read_to_string(p("key.pem")).unwrap(),
        )
    }
}

/// A raw GET: status code and JSON body (Null if the body is not JSON).
pub async fn get_raw(client: &kube::Client, uri: &str) -> (u16, Value) {
    send_raw(client, http::Method::GET, uri, None).await
}

/// A raw request with an optional JSON body: status code and JSON body (Null if not JSON).
pub async fn send_raw(
    client: &kube::Client,
    method: http::Method,
    uri: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    use http_body_util::BodyExt;
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(bytes))
        .expect("request");
    let resp = client.send(req).await.expect("sending a request");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The `Status` of a failed call; panics if the call did not fail with an API error.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error (Status), got {other:?}"),
    }
}
