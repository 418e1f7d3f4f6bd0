//! A pod's logs, exec, attach and port-forward: checked here (the pod exists, is on a node,
//! the container is one of its own), then passed to the pod's node agent — a log as a
//! streamed GET, the others as an upgrade whose connection is spliced to the agent's.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use k8s_openapi::api::core::v1::{Node, Pod};
use kox_component::http_proxy;

use super::{backend_error, get, relay};
use crate::error::{ApiError, ApiResult};
use crate::handlers::Request;
use crate::server::App;

pub async fn serve(
    app: &Arc<App>,
    mut req: Request,
    namespace: &str,
    name: &str,
    sub: &str,
) -> ApiResult<Response> {
    let is_log = sub == "log";
    if is_log && req.method != http::Method::GET {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let pod: Pod = get(app, "pods", Some(namespace), name).await?;
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let container = match sub {
        "portforward" => String::new(),
        _ => container_of(&pod, req.query.get("container").unwrap_or(""))?,
    };
    let Some(node_name) = node_name.filter(|n| !n.is_empty()) else {
        if is_log {
            // Upstream answers an unscheduled pod's log with nothing.
            return Ok(text_response(StatusCode::OK, ""));
        }
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let node: Node = get(app, "nodes", None, &node_name).await?;
    let path = agent_path(sub, namespace, name, &container, &req);
    let (tls, authority) = app.kubelet.connect(&node).await?;
    let upgrade = req.upgrade.get_mut().take();
    let resp = http_proxy::forward(
        tls,
        &authority,
        req.method.clone(),
        &path,
        http_proxy::forwarded_headers(&req.headers),
        req.body.clone(),
        upgrade,
    )
    .await
    .map_err(|e| ApiError::internal(format!("the node agent of {node_name}: {e:#}")))?;
    if is_log && !resp.status().is_success() {
        let code = resp.status().as_u16();
        let text = read_text(resp).await;
        return Err(backend_error(code, &text));
    }
    Ok(relay(resp))
}

/// The container a request names, or the pod's only one, with upstream's errors.
fn container_of(pod: &Pod, asked: &str) -> ApiResult<String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut names: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| c.name.clone())
        .collect();
    names.extend(
        spec.ephemeral_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone()),
    );
    if !asked.is_empty() {
        return if names.iter().any(|n| n == asked) {
            Ok(asked.to_string())
        } else {
            Err(ApiError::bad_request(format!(
                "container {asked} is not valid for pod {pod_name}"
            )))
        };
    }
    match spec.containers.as_slice() {
        [only] => Ok(only.name.clone()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// The agent's parameters that are booleans.
const BOOLEANS: &[&str] = &[
    "follow",
    "previous",
    "timestamps",
    "input",
    "output",
    "error",
    "tty",
];

/// The agent's path for the request: upstream's names of the kubelet's parameters.
fn agent_path(sub: &str, namespace: &str, name: &str, container: &str, req: &Request) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let renames: &[(&str, &str)] = match sub {
        "log" => &[
            ("follow", "follow"),
            ("previous", "previous"),
            ("timestamps", "timestamps"),
            ("sinceSeconds", "sinceSeconds"),
            ("sinceTime", "sinceTime"),
            ("tailLines", "tailLines"),
            ("limitBytes", "limitBytes"),
        ],
        "portforward" => &[("ports", "port")],
        _ => &[
            ("command", "command"),
            ("stdin", "input"),
            ("stdout", "output"),
            ("stderr", "error"),
            ("tty", "tty"),
        ],
    };
    for (k, v) in req.query.pairs() {
        if let Some((_, to)) = renames.iter().find(|(from, _)| *from == k) {
            // The kubelet's flags are 1 and 0 (clients send any Go boolean: `True` from
            // Python); a command's words and numbers are passed as they are.
            let v = match kox_api::query::parse_bool(v) {
                Some(b) if BOOLEANS.contains(to) => {
                    if b {
                        "1"
                    } else {
                        "0"
                    }
                }
                _ => v,
            };
            query.append_pair(to, v);
        }
    }
    let query = query.finish();
    let base = match sub {
        "log" => format!("/containerLogs/{namespace}/{name}/{container}"),
        "exec" => format!("/exec/{namespace}/{name}/{container}"),
        "attach" => format!("/attach/{namespace}/{name}/{container}"),
        _ => format!("/portForward/{namespace}/{name}"),
    };
    if query.is_empty() {
        base
    } else {
        format!("{base}?{query}")
    }
}

async fn read_text(resp: http::Response<http_proxy::Body>) -> String {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(resp.into_body(), 64 * 1024);
    match limited.collect().await {
        Ok(c) => String::from_utf8_lossy(&c.to_bytes()).into_owned(),
        Err(_) => String::new(),
    }
}

fn text_response(code: StatusCode, text: &str) -> Response {
    let mut resp = Response::new(Body::from(text.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    resp
}
