//! The agent's own API on its port (10250 by default), as the kubelet's: container logs,
//! exec, attach and port-forward streams, the pods it runs, resource usage (`/stats/summary`,
//! `/metrics/resource`), health. The API server reaches it with its kubelet client
//! certificate; anyone else needs a bearer token. Every request is
//! authorized by the API server (SubjectAccessReview on `nodes/<subresource>` of this node),
//! anonymous requests are refused.

mod logs;
mod pod_lookup;
mod stats;
mod streams;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kox_component::delegated_auth::{Asked, Caller, DelegatedAuth, Verdict, bearer_token};
use kox_component::http_proxy::{Body, full};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Agent;

/// The kubelet's port.
pub const DEFAULT_PORT: u16 = 10250;

/// Where a new serving certificate and key (PEM) come from when the current one nears its
/// expiry: the cluster CA for the server's own agent, the files again for `--tls-cert-file`.
pub type Reissue = Arc<dyn Fn() -> Result<(String, String)> + Send + Sync>;

/// The TLS material of the agent's API.
#[derive(Clone, Default)]
pub struct ApiTls {
    /// A serving certificate and key (PEM) from the cluster CA; a self-signed one without.
    pub serving: Option<(String, String)>,
    /// The CA whose client certificates authenticate callers (PEM).
    pub client_ca: Option<String>,
    /// How a serving certificate is renewed; without, it is read from `serving` again.
    pub reissue: Option<Reissue>,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls")
            .field("serving", &self.serving.as_ref().map(|_| "(PEM)"))
            .field("client_ca", &self.client_ca.as_ref().map(|_| "(PEM)"))
            .field("reissue", &self.reissue.is_some())
            .finish()
    }
}

/// The acceptor of the agent's API and when its certificate is to be renewed: a new one is
/// made once two thirds of its validity have passed (as the server's own certificates).
struct Serving {
    tls: ApiTls,
    acceptor: tokio_rustls::TlsAcceptor,
    renew_at: i64,
}

impl Serving {
    fn new(mut tls: ApiTls, agent: &Agent) -> Result<Self> {
        let pair = match (&tls.serving, &tls.reissue) {
            (Some(pair), _) => pair.clone(),
            (None, Some(reissue)) => reissue()?,
            (None, None) => self_signed(agent)?,
        };
        tls.serving = Some(pair.clone());
        let config = server_config(&tls, &pair)?;
        Ok(Self {
            renew_at: renew_at(&pair.0),
            acceptor: tokio_rustls::TlsAcceptor::from(config),
            tls,
        })
    }

    /// The acceptor for a new connection, renewed first when due.
    fn acceptor(&mut self, agent: &Agent) -> tokio_rustls::TlsAcceptor {
        if unix_now() >= self.renew_at {
            let renewed = match &self.tls.reissue {
                Some(reissue) => reissue(),
                None => self_signed(agent),
            };
            match renewed.and_then(|pair| Ok((server_config(&self.tls, &pair)?, pair))) {
                Ok((config, pair)) => {
                    tracing::info!("the agent's API has a new serving certificate");
                    self.renew_at = renew_at(&pair.0);
                    self.acceptor = tokio_rustls::TlsAcceptor::from(config);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the agent's serving certificate failed; retrying in a minute");
                    self.renew_at = unix_now() + 60;
                }
            }
        }
        self.acceptor.clone()
    }
}

/// When a certificate (PEM) is due for renewal: two thirds into its validity (never, if it
/// does not parse).
fn renew_at(cert_pem: &str) -> i64 {
    rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .and_then(|der| kox_component::x509_user::validity(&der))
        .map_or(i64::MAX, |(from, to)| from + (to - from) * 2 / 3)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn self_signed(agent: &Agent) -> Result<(String, String)> {
    let names = vec![
        agent.config.node_name.clone(),
        agent.config.node_ip.to_string(),
        "localhost".into(),
    ];
    let cert = rcgen::generate_simple_self_signed(names)?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

/// Listens on `port` of every address (0: any free port); the port is what the node reports.
pub async fn bind(port: u16) -> Result<TcpListener> {
    TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("listening on port {port} for the agent's API (--kubelet-port)"))
}

/// Serves the agent's API until `stop`.
pub async fn serve(
    agent: Arc<Agent>,
    listener: TcpListener,
    tls: &ApiTls,
    stop: CancellationToken,
) -> Result<()> {
    let mut serving = Serving::new(tls.clone(), &agent)?;
    let auth = Arc::new(DelegatedAuth::new(agent.client.clone()));
    let rates = Arc::new(stats::CpuRates::default());
    loop {
        let (tcp, _) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = serving.acceptor(&agent);
        let (agent, auth, rates) = (agent.clone(), auth.clone(), rates.clone());
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let caller = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|leaf| kox_component::x509_user::subject_user(leaf));
            let service = hyper::service::service_fn(move |req| {
                let (agent, auth, caller, rates) =
                    (agent.clone(), auth.clone(), caller.clone(), rates.clone());
                async move { Ok::<_, Infallible>(handle(&agent, &auth, &rates, caller, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn server_config(
    tls: &ApiTls,
    (cert_pem, key_pem): &(String, String),
) -> Result<Arc<rustls::ServerConfig>> {
    let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<std::result::Result<Vec<CertificateDer<'static>>, _>>()?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())?
        .context("no private key in the agent's serving key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut ca.as_bytes()) {
                roots.add(cert?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    // Upgrades (exec, port-forward) are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn handle(
    agent: &Arc<Agent>,
    auth: &DelegatedAuth,
    rates: &stats::CpuRates,
    cert_user: Option<(String, Vec<String>)>,
    req: Request<Incoming>,
) -> Response<Body> {
    let caller = match (cert_user, bearer_token(req.headers())) {
        (Some((name, groups)), _) => Caller::User { name, groups },
        (None, Some(token)) => Caller::Token(token),
        (None, None) => return text(StatusCode::UNAUTHORIZED, "Unauthorized"),
    };
    let asked = Asked::Resource {
        verb: verb_of(req.method()).to_string(),
        resource: "nodes".into(),
        subresource: subresource_of(req.uri().path()).into(),
        name: agent.config.node_name.clone(),
    };
    match auth.authorize(caller, asked).await {
        Verdict::Allowed => route(agent, rates, req).await,
        Verdict::Unauthenticated => text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Verdict::Forbidden(why) => text(StatusCode::FORBIDDEN, &why),
    }
}

async fn route(
    agent: &Arc<Agent>,
    rates: &stats::CpuRates,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match (req.method(), segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(text(StatusCode::OK, "ok")),
        (&Method::GET, ["pods"]) => pods(agent).await,
        (&Method::GET, ["stats", "summary"]) => {
            stats::serve_summary(agent, rates, req.uri().query()).await
        }
        (&Method::GET, ["metrics", "resource"]) => {
            Ok(stats::serve_resource_metrics(agent, rates).await)
        }
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            logs::serve(agent, ns, pod, container, req.uri().query()).await
        }
        (&Method::GET | &Method::POST, [kind @ ("exec" | "attach"), ns, pod, container]) => {
            streams::exec_or_attach(agent, kind, ns, pod, container, req).await
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod]) => {
            streams::port_forward(agent, ns, pod, req).await
        }
        _ => Ok(text(StatusCode::NOT_FOUND, "404 page not found")),
    };
    result.unwrap_or_else(|e| e.response())
}

/// The pods bound to this node, as the API server has them (upstream's `/pods`).
async fn pods(agent: &Agent) -> Result<Response<Body>, ApiError> {
    use k8s_openapi::api::core::v1::Pod;
    let lp = kube::api::ListParams::default()
        .fields(&format!("spec.nodeName={}", agent.config.node_name));
    let list = kube::Api::<Pod>::all(agent.client.clone())
        .list(&lp)
        .await
        .map_err(|e| ApiError::internal(format!("listing the node's pods: {e}")))?;
    let body = serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": list.items,
    });
    Ok(json(StatusCode::OK, &body))
}

/// The kubelet's authorization verb for an HTTP method.
fn verb_of(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
}

/// The node subresource a path is authorized as (upstream's kubelet auth).
fn subresource_of(path: &str) -> &'static str {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else {
        "proxy"
    }
}

/// An error answered as plain text with its status, as the kubelet answers (the API server
/// turns the text into a Status message).
#[derive(Debug)]
pub struct ApiError {
    pub code: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
    fn response(self) -> Response<Body> {
        text(self.code, &self.message)
    }
}

fn text(code: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(message.to_string())));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json(code: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_renewed_two_thirds_into_their_validity() {
        let mut params = rcgen::CertificateParams::new(vec!["node".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 31);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let from = 1_893_456_000; // 2030-01-01
        assert_eq!(renew_at(&cert.pem()), from + 20 * 86_400);
        assert_eq!(renew_at("not a certificate"), i64::MAX);
    }

    #[test]
    fn paths_are_authorized_as_upstream_node_subresources() {
        assert_eq!(subresource_of("/stats/summary"), "stats");
        assert_eq!(subresource_of("/metrics/resource"), "metrics");
        assert_eq!(subresource_of("/logs/"), "log");
        assert_eq!(subresource_of("/healthz"), "proxy");
        assert_eq!(subresource_of("/containerLogs/a/b/c"), "proxy");
        assert_eq!(subresource_of("/exec/a/b/c"), "proxy");
        assert_eq!(subresource_of("/statsx"), "proxy");
        assert_eq!(verb_of(&Method::POST), "create");
        assert_eq!(verb_of(&Method::GET), "get");
    }
}
