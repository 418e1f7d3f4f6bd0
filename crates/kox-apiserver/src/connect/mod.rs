//! Connect subresources: what the API server does not answer itself but passes on to where the
//! answer is — a pod's logs, exec, attach and port-forward streams (from the pod's node agent),
//! and HTTP proxied to a pod, a service's endpoint or a node agent. Authorization happened in
//! the request pipeline (`get pods/log`, `create pods/exec`, …); the hop to the agent
//! authenticates as the API server's kubelet client.

mod kubelet;
mod pods;
mod proxy;

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};
use crate::handlers::Request;
use crate::registry::ObjectRef;
use crate::resources;
use crate::server::App;

pub use kubelet::{KUBELET_CLIENT_USER, KubeletClient};

/// The connect subresources of pods.
pub const POD_SUBRESOURCES: &[&str] = &["attach", "exec", "log", "portforward", "proxy"];

/// A connect request: the path under `/api/v1` split into what it names.
pub enum Connect<'a> {
    /// `namespaces/{ns}/pods/{name}/{log|exec|attach|portforward}`.
    Pod {
        namespace: &'a str,
        name: &'a str,
        sub: &'a str,
    },
    /// `{namespaces/{ns}/pods|namespaces/{ns}/services|nodes}/{name[:port]}/proxy[/rest]`.
    Proxy {
        resource: &'a str,
        namespace: Option<&'a str>,
        name: &'a str,
        rest: String,
    },
}

impl<'a> Connect<'a> {
    /// The connect request `rest` (the path after `/api/v1/`) makes, if it is one.
    pub fn parse(rest: &[&'a str]) -> Option<Self> {
        match rest {
            [
                "namespaces",
                namespace,
                "pods",
                name,
                sub @ ("log" | "exec" | "attach" | "portforward"),
            ] => Some(Connect::Pod {
                namespace,
                name,
                sub,
            }),
            [
                "namespaces",
                namespace,
                resource @ ("pods" | "services"),
                name,
                "proxy",
                tail @ ..,
            ] => Some(Connect::Proxy {
                resource,
                namespace: Some(namespace),
                name,
                rest: join_rest(tail),
            }),
            ["nodes", name, "proxy", tail @ ..] => Some(Connect::Proxy {
                resource: "nodes",
                namespace: None,
                name,
                rest: join_rest(tail),
            }),
            _ => None,
        }
    }
}

fn join_rest(tail: &[&str]) -> String {
    format!("/{}", tail.join("/"))
}

/// Answers a connect request.
pub async fn serve(app: &Arc<App>, req: Request, connect: Connect<'_>) -> ApiResult<Response> {
    match connect {
        Connect::Pod {
            namespace,
            name,
            sub,
        } => pods::serve(app, req, namespace, name, sub).await,
        Connect::Proxy {
            resource,
            namespace,
            name,
            rest,
        } => proxy::serve(app, req, resource, namespace, name, &rest).await,
    }
}

/// A core/v1 object, read as its type.
async fn get<T: DeserializeOwned>(
    app: &App,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<T> {
    let def = resources::find("", "v1", plural).ok_or_else(|| ApiError::internal(plural))?;
    let value = app
        .registry
        .get(ObjectRef {
            def,
            namespace,
            name,
        })
        .await?;
    serde_json::from_value(value).map_err(ApiError::internal)
}

/// An error answered by the agent or a proxied backend, as a Status.
fn backend_error(code: u16, text: &str) -> ApiError {
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        _ => "InternalError",
    };
    ApiError::new(code, reason, text.trim().to_string())
}

/// A backend's response, passed to the client as it comes.
fn relay(resp: http::Response<kox_component::http_proxy::Body>) -> Response {
    resp.map(Body::new)
}
