//! The HTTPS health endpoint (`/healthz`, `/livez`, `/readyz`, `/metrics`) on a component's
//! secure port, with a self-signed certificate as upstream's default, so the API server's
//! `componentstatuses` probe reports the component. Health paths are open; `/metrics` needs
//! the API server's yes ([`DelegatedAuth`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio_util::sync::CancellationToken;

use crate::delegated_auth::{DelegatedAuth, Verdict};

/// What a component serves at `/metrics`, in the Prometheus text format.
pub trait MetricsSource: Send + Sync + 'static {
    /// The current metrics text.
    fn render(&self) -> String;
}

fn tls_config() -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves until `stop`. `component` names the component in logs. If the port is taken (another
/// replica on this host), retries every few seconds rather than failing the component.
pub async fn serve(
    component: &'static str,
    addr: SocketAddr,
    metrics: Arc<dyn MetricsSource>,
    auth: Arc<DelegatedAuth>,
    stop: CancellationToken,
) {
    let tls = match tls_config() {
        Ok(t) => tokio_rustls::TlsAcceptor::from(t),
        Err(e) => {
            tracing::error!("{component} health endpoint: cannot build a certificate: {e}");
            return;
        }
    };
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) => {
                tracing::warn!(
                    "{component} health endpoint: cannot listen on {addr}: {e}; retrying"
                );
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(3)) => {}
                }
            }
        }
    };
    tracing::info!("{component} serving /healthz on https://{addr}");
    loop {
        let (tcp, _) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
        };
        let tls = tls.clone();
        let metrics = metrics.clone();
        let auth = auth.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await
            else {
                return;
            };
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (metrics, auth) = (metrics.clone(), auth.clone());
                    async move { Ok::<_, Infallible>(answer(&req, metrics.as_ref(), &auth).await) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The answer to one request: health, or metrics for those the API server allows.
async fn answer(
    req: &hyper::Request<hyper::body::Incoming>,
    metrics: &dyn MetricsSource,
    auth: &DelegatedAuth,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path();
    let verb = req.method().as_str().to_ascii_lowercase();
    let (code, body) = match auth.check(req.headers(), &verb, path).await {
        Verdict::Unauthenticated => (401, "Unauthorized\n".to_string()),
        Verdict::Forbidden(why) => (403, format!("{why}\n")),
        Verdict::Allowed => match path {
            "/healthz" | "/livez" | "/readyz" => (200, "ok".to_string()),
            "/metrics" => (200, metrics.render()),
            _ => (404, "404 page not found\n".to_string()),
        },
    };
    hyper::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}
