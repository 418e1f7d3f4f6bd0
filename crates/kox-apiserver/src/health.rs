//! `/healthz`, `/livez`, `/readyz`, and the component probes behind `componentstatuses`.

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

use crate::server::App;

/// Runs the checks of a health endpoint; `only` selects one check (`/readyz/etcd`).
pub async fn check(app: &Arc<App>, endpoint: &str, only: Option<&str>, verbose: bool) -> Response {
    let store_ok = tokio::time::timeout(Duration::from_secs(2), app.registry.store.status())
        .await
        .is_ok_and(|r| r.is_ok());
    let mut checks: Vec<(&str, bool)> = vec![("ping", true), ("log", true), ("etcd", store_ok)];
    if endpoint == "readyz" {
        checks.push(("poststarthook/bootstrap-controller", app.bootstrapped()));
        checks.push(("shutdown", !app.shutdown.is_cancelled()));
    }
    if let Some(name) = only {
        return match checks.iter().find(|(n, _)| *n == name) {
            Some((_, true)) => text(StatusCode::OK, "ok"),
            Some((n, false)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("internal server error: {n} check failed"),
            ),
            None => text(StatusCode::NOT_FOUND, "404 page not found"),
        };
    }
    let ok = checks.iter().all(|(_, ok)| *ok);
    if verbose || !ok {
        let mut body = String::new();
        for (name, good) in &checks {
            if *good {
                body.push_str(&format!("[+]{name} ok\n"));
            } else {
                body.push_str(&format!("[-]{name} failed: reason withheld\n"));
            }
        }
        if ok {
            body.push_str(&format!("{endpoint} check passed\n"));
        } else {
            body.push_str(&format!("{endpoint} check failed\n"));
        }
        return text(
            if ok {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            &body,
        );
    }
    text(StatusCode::OK, "ok")
}

fn text(code: StatusCode, body: &str) -> Response {
    let mut r = (code, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Probes `https://127.0.0.1:<port>/healthz` as upstream's componentstatus check does (no
/// certificate verification): (healthy, message, error).
pub async fn probe_component(port: u16) -> (bool, String, String) {
    let url = format!("https://127.0.0.1:{port}/healthz");
    match tokio::time::timeout(Duration::from_secs(3), probe(port)).await {
        Ok(Ok((200, body))) => (true, body, String::new()),
        Ok(Ok((code, body))) => (
            false,
            String::new(),
            format!("Get \"{url}\": HTTP {code}: {body}"),
        ),
        Ok(Err(e)) => (false, String::new(), format!("Get \"{url}\": {e}")),
        Err(_) => (
            false,
            String::new(),
            format!("Get \"{url}\": context deadline exceeded"),
        ),
    }
}

async fn probe(port: u16) -> Result<(u16, String), String> {
    let addr = format!("127.0.0.1:{port}");
    let tcp = tokio::net::TcpStream::connect(&addr).await.map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            _ => e.to_string(),
        };
        format!("dial tcp {addr}: connect: {reason}")
    })?;
    let connector = kox_component::probe_tls::connector().map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get("/healthz")
        .header(header::HOST, addr.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((code, String::from_utf8_lossy(&body).trim().to_string()))
}
