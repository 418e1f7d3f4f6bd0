//! `pods/proxy`, `services/proxy` and `nodes/proxy`: HTTP (upgrades included) passed to a pod's
//! IP, to a ready endpoint of a service, or to a node's agent — what `kubectl proxy` users
//! reach as `…/services/NAME:PORT/proxy/PATH`.

use std::sync::Arc;

use axum::response::Response;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use kox_component::http_proxy;
use tokio::net::TcpStream;

use super::{get, relay};
use crate::error::{ApiError, ApiResult};
use crate::handlers::Request;
use crate::server::App;

/// How long dialling a pod may take.
const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn serve(
    app: &Arc<App>,
    mut req: Request,
    resource: &str,
    namespace: Option<&str>,
    id: &str,
    rest: &str,
) -> ApiResult<Response> {
    let (name, port) = split_name_port(id);
    let path = with_query(rest, &req);
    let upgrade = req.upgrade.get_mut().take();
    let headers = http_proxy::forwarded_headers(&req.headers);
    let (io, authority): (Box<dyn http_proxy::Io>, String) = match resource {
        "nodes" => {
            let node: Node = get(app, "nodes", None, name).await?;
            let (tls, authority) = app.kubelet.connect(&node).await?;
            (Box::new(tls), authority)
        }
        _ => {
            let addr = match resource {
                "pods" => pod_address(app, namespace.unwrap_or(""), name, port).await?,
                _ => service_address(app, namespace.unwrap_or(""), name, port).await?,
            };
            (Box::new(dial(&addr).await?), addr)
        }
    };
    let resp = http_proxy::forward(
        io,
        &authority,
        req.method.clone(),
        &path,
        headers,
        req.body.clone(),
        upgrade,
    )
    .await
    .map_err(|e| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach {resource}: {e:#}"),
        )
    })?;
    Ok(relay(resp))
}

/// `[scheme:]name[:port]`, as upstream's `SplitSchemeNamePort` (the scheme is ignored: kox
/// proxies plain HTTP).
fn split_name_port(id: &str) -> (&str, &str) {
    let parts: Vec<&str> = id.split(':').collect();
    match parts.as_slice() {
        [name] => (name, ""),
        [name, port] => (name, port),
        [_, name, port, ..] => (name, port),
        [] => ("", ""),
    }
}

fn with_query(rest: &str, req: &Request) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in req.query.pairs() {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        rest.to_string()
    } else {
        format!("{rest}?{q}")
    }
}

async fn dial(addr: &str) -> ApiResult<TcpStream> {
    let refused = |e: String| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: dial tcp {addr}: {e}"),
        )
    };
    tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| refused("i/o timeout".into()))?
        .map_err(|e| refused(e.to_string()))
}

/// The pod's IP and the port asked (else its first container port, else 80).
async fn pod_address(app: &App, namespace: &str, name: &str, port: &str) -> ApiResult<String> {
    let pod: Pod = get(app, "pods", Some(namespace), name).await?;
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                format!("pod \"{name}\" has no IP address yet"),
            )
        })?;
    let spec = pod.spec.unwrap_or_default();
    let named = |wanted: &str| {
        spec.containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(wanted))
            .map(|p| p.container_port)
    };
    let port = if port.is_empty() {
        spec.containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| p.container_port)
            .next()
            .unwrap_or(80)
    } else {
        match port.parse::<i32>() {
            Ok(n) => n,
            Err(_) => named(port).ok_or_else(|| {
                ApiError::bad_request(format!("pod {name} has no port named {port:?}"))
            })?,
        }
    };
    Ok(host_port(&ip, port))
}

/// A ready endpoint of the service for the port asked (by name or number; the only one when
/// not given).
async fn service_address(app: &App, namespace: &str, name: &str, port: &str) -> ApiResult<String> {
    let service: Service = get(app, "services", Some(namespace), name).await?;
    let ports = service.spec.and_then(|s| s.ports).unwrap_or_default();
    let wanted = ports
        .iter()
        .find(|p| {
            if port.is_empty() {
                ports.len() == 1
            } else {
                p.name.as_deref() == Some(port) || p.port.to_string() == port
            }
        })
        .ok_or_else(|| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                format!("no service port {port:?} found for service \"{name}\""),
            )
        })?;
    let none = || {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("no endpoints available for service \"{name}\""),
        )
    };
    let endpoints: Endpoints = get(app, "endpoints", Some(namespace), name)
        .await
        .map_err(|_| none())?;
    endpoints
        .subsets
        .iter()
        .flatten()
        .find_map(|subset| {
            let port = subset.ports.iter().flatten().find(|p| {
                p.name == wanted.name || subset.ports.as_ref().is_some_and(|ps| ps.len() == 1)
            })?;
            let address = subset.addresses.as_ref()?.first()?;
            Some(host_port(&address.ip, port.port))
        })
        .ok_or_else(none)
}

fn host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_like_upstream() {
        assert_eq!(split_name_port("web"), ("web", ""));
        assert_eq!(split_name_port("web:8080"), ("web", "8080"));
        assert_eq!(split_name_port("https:web:http"), ("web", "http"));
    }
}
