//! `/exec`, `/attach` and `/portForward`: the runtime opens the stream (CRI `Exec`, `Attach`,
//! `PortForward` give a one-time URL on containerd's loopback stream server), and the agent
//! connects the client to it. The runtime speaks SPDY (and WebSocket protocols up to v4), so
//! what it does not speak the agent translates, as upstream's API server does: WebSocket
//! exec/attach clients (`v5.channel.k8s.io`, kubectl's default since 1.30, and the older
//! channel protocols) are bridged to a SPDY session, and port-forward tunnelled in a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31) is relayed as bytes to a SPDY upgrade.
//! Plain SPDY upgrades (older clients) are forwarded and spliced unchanged.

use http::{Request, Response};
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::Pod;
use kox_component::http_proxy::{self, Body};

use super::ApiError;
use super::pod_lookup::{form_pairs, get_pod, runtime_id, statuses};
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
    if let Some(protocol) = websocket_protocol(&req, EXEC_PROTOCOLS) {
        return bridged_exec(&url, req, &protocol, &opts).await;
    }
    let upgrade = hyper::upgrade::on(&mut req);
    to_stream_server(&url, req, upgrade).await
}

/// The WebSocket subprotocols of exec and attach the agent bridges, most preferred first.
const EXEC_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "base64.channel.k8s.io",
    "channel.k8s.io",
];

/// The WebSocket subprotocol to answer, when the request is a WebSocket upgrade offering one
/// of `supported`.
fn websocket_protocol(req: &Request<Incoming>, supported: &[&str]) -> Option<String> {
    if !is_websocket(req) {
        return None;
    }
    let offered = req
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    kox_streams::websocket::select_subprotocol(offered, supported)
}

/// Answers the WebSocket handshake with `protocol` and runs `session` on the socket once the
/// connection is switched.
fn accept_websocket<F, Fut>(
    mut req: Request<Incoming>,
    protocol: &str,
    session: F,
) -> Result<Response<Body>, ApiError>
where
    F: FnOnce(WebSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let key = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?
        .to_string();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        session(ws).await;
    });
    let mut resp = Response::new(http_proxy::empty());
    *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    let value =
        |s: &str| http::HeaderValue::from_str(s).map_err(|_| ApiError::bad_request("bad header"));
    h.insert(http::header::UPGRADE, value("websocket")?);
    h.insert(http::header::CONNECTION, value("Upgrade")?);
    h.insert(
        http::header::SEC_WEBSOCKET_ACCEPT,
        value(&kox_streams::websocket::websocket_accept_key(&key))?,
    );
    if !protocol.is_empty() {
        h.insert(http::header::SEC_WEBSOCKET_PROTOCOL, value(protocol)?);
    }
    Ok(resp)
}

type WebSocket =
    tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// A WebSocket exec/attach client bridged to a SPDY session with the runtime.
async fn bridged_exec(
    url: &str,
    req: Request<Incoming>,
    protocol: &str,
    opts: &StreamOptions,
) -> Result<Response<Body>, ApiError> {
    use kox_streams::remotecommand::{BridgeOptions, SPDY_PROTOCOL_V4, bridge_websocket_to_spdy};
    let channel = kox_streams::channel::Protocol::from_name(protocol)
        .ok_or_else(|| ApiError::bad_request(format!("unsupported protocol {protocol}")))?;
    let (spdy, _) = kox_streams::spdy::client_upgrade(url, "", &[SPDY_PROTOCOL_V4])
        .await
        .map_err(|e| ApiError::internal(format!("the runtime's stream server: {e}")))?;
    let bridge = BridgeOptions {
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
        tty: opts.tty,
        ..BridgeOptions::new(channel)
    };
    accept_websocket(req, protocol, move |ws| async move {
        if let Err(e) = bridge_websocket_to_spdy(ws, spdy, bridge).await {
            tracing::debug!(error = %e, "exec session ended");
        }
    })
}

/// Port-forward tunnelled in a WebSocket, relayed as bytes to a SPDY upgrade of the runtime.
async fn tunneled_port_forward(
    url: &str,
    req: Request<Incoming>,
    offered: Vec<String>,
) -> Result<Response<Body>, ApiError> {
    use kox_streams::portforward::{tunnel_subprotocol, tunnel_websocket_to_spdy};
    let protocols: Vec<&str> = offered.iter().map(String::as_str).collect();
    let (upstream, chosen) = kox_streams::spdy::upgrade_raw(url, "", &protocols)
        .await
        .map_err(|e| ApiError::internal(format!("the runtime's stream server: {e}")))?;
    let answer = chosen
        .as_deref()
        .map(tunnel_subprotocol)
        .unwrap_or_default();
    accept_websocket(req, &answer, move |ws| async move {
        if let Err(e) = tunnel_websocket_to_spdy(ws, upstream).await {
            tracing::debug!(error = %e, "port-forward tunnel ended");
        }
    })
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
    let offered = tunneled_protocols(&req);
    if !offered.is_empty() {
        return tunneled_port_forward(&url, req, offered).await;
    }
    let upgrade = hyper::upgrade::on(&mut req);
    to_stream_server(&url, req, upgrade).await
}

/// The SPDY protocols a WebSocket port-forward client tunnels (`SPDY/3.1+portforward.k8s.io`).
fn tunneled_protocols(req: &Request<Incoming>) -> Vec<String> {
    if !is_websocket(req) {
        return Vec::new();
    }
    kox_streams::portforward::tunneled_spdy_protocols(
        req.headers()
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// Whether the request is a WebSocket handshake.
fn is_websocket(req: &Request<Incoming>) -> bool {
    http_proxy::is_upgrade(req.headers()) && http_proxy::upgrades_to_websocket(req.headers())
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
