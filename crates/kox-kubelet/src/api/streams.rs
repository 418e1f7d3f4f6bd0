//! `/exec`, `/attach` and `/portForward`: the runtime opens the stream (CRI `Exec`, `Attach`,
//! `PortForward` give a one-time URL on containerd's loopback stream server), and the agent
//! forwards the client's upgrade request there and splices the upgraded connections, as the
//! kubelet does without redirects. The client's protocol (SPDY or WebSocket, its version) is
//! negotiated with the runtime's stream server.

use http::{Request, Response};
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::Pod;
use kox_component::http_proxy::{self, Body};

use super::ApiError;
use super::logs::{form_pairs, get_pod, runtime_id, statuses};
use crate::Agent;
use crate::cri::api;

/// What an exec or attach asks for (the kubelet's `input`, `output`, `error`, `tty`,
/// `command` parameters).
#[derive(Debug, Default, PartialEq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub command: Vec<String>,
}

impl StreamOptions {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut o = StreamOptions::default();
        let yes = |v: &str| v == "1" || v == "true";
        for (k, v) in form_pairs(query) {
            match k.as_str() {
                "input" | "stdin" => o.stdin = yes(&v),
                "output" | "stdout" => o.stdout = yes(&v),
                "error" | "stderr" => o.stderr = yes(&v),
                "tty" => o.tty = yes(&v),
                "command" => o.command.push(v),
                _ => {}
            }
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        // A terminal has one output: stderr goes to it.
        if o.tty {
            o.stderr = false;
        }
        Ok(o)
    }
}

pub async fn exec_or_attach(
    agent: &Agent,
    kind: &str,
    namespace: &str,
    pod_name: &str,
    container: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let opts = StreamOptions::parse(req.uri().query())?;
    if kind == "exec" && opts.command.is_empty() {
        return Err(ApiError::bad_request("you must specify a command"));
    }
    let pod = get_pod(agent, namespace, pod_name).await?;
    let id = running_container(&pod, container)?;
    let mut runtime = agent.cri.runtime.clone();
    let url = if kind == "exec" {
        runtime
            .exec(api::ExecRequest {
                container_id: id,
                cmd: opts.command.clone(),
                tty: opts.tty,
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
            .await
            .map(|r| r.into_inner().url)
    } else {
        runtime
            .attach(api::AttachRequest {
                container_id: id,
                stdin: opts.stdin,
                tty: opts.tty,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
            .await
            .map(|r| r.into_inner().url)
    }
    .map_err(|e| ApiError::internal(format!("the runtime refused the {kind}: {}", e.message())))?;
    let upgrade = hyper::upgrade::on(&mut req);
    to_stream_server(&url, req, upgrade).await
}

pub async fn port_forward(
    agent: &Agent,
    namespace: &str,
    pod_name: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let pod = get_pod(agent, namespace, pod_name).await?;
    let sandbox = ready_sandbox(agent, &pod).await?;
    let url = agent
        .cri
        .runtime
        .clone()
        .port_forward(api::PortForwardRequest {
            pod_sandbox_id: sandbox,
            port: Vec::new(),
        })
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "the runtime refused the port-forward: {}",
                e.message()
            ))
        })?
        .into_inner()
        .url;
    let upgrade = hyper::upgrade::on(&mut req);
    to_stream_server(&url, req, upgrade).await
}

/// The runtime id of the running container `name` of `pod` (the kubelet's "container not
/// found" otherwise).
fn running_container(pod: &Pod, name: &str) -> Result<String, ApiError> {
    statuses(pod)
        .find(|s| s.name == name && s.state.as_ref().is_some_and(|st| st.running.is_some()))
        .and_then(|s| s.container_id.as_deref())
        .map(|id| runtime_id(id).to_string())
        .ok_or_else(|| ApiError::not_found(format!("container not found (\"{name}\")")))
}

async fn ready_sandbox(agent: &Agent, pod: &Pod) -> Result<String, ApiError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let filter = api::PodSandboxFilter {
        state: Some(api::PodSandboxStateValue {
            state: api::PodSandboxState::SandboxReady as i32,
        }),
        label_selector: [(crate::pods::POD_UID.to_string(), uid)].into(),
        ..Default::default()
    };
    agent
        .cri
        .runtime
        .clone()
        .list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|e| ApiError::internal(format!("listing sandboxes: {}", e.message())))?
        .into_inner()
        .items
        .into_iter()
        .max_by_key(|s| s.created_at)
        .map(|s| s.id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "pod \"{}\" has no running sandbox on this node",
                pod.metadata.name.as_deref().unwrap_or_default()
            ))
        })
}

/// Forwards the client's request to the runtime's one-time `url`, its upgrade spliced.
async fn to_stream_server(
    url: &str,
    req: Request<Incoming>,
    upgrade: hyper::upgrade::OnUpgrade,
) -> Result<Response<Body>, ApiError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ApiError::internal(format!("the runtime gave a bad stream URL {url:?}")))?;
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| {
            ApiError::internal(format!("connecting to the runtime's stream server: {e}"))
        })?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    http_proxy::forward(
        tcp,
        &authority,
        req.method().clone(),
        path,
        http_proxy::forwarded_headers(req.headers()),
        bytes::Bytes::new(),
        Some(upgrade),
    )
    .await
    .map_err(|e| ApiError::internal(format!("the runtime's stream server: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_options_parse_like_the_kubelet() {
        let o = StreamOptions::parse(Some(
            "command=sh&command=-c&command=echo+hi&output=1&error=1",
        ))
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo hi"]);
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        let o = StreamOptions::parse(Some("input=1&output=1&error=1&tty=1")).unwrap();
        assert!(o.tty && !o.stderr);
        assert!(StreamOptions::parse(Some("command=ls")).is_err());
    }
}
