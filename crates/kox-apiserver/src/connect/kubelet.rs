//! The API server's client of node agents: TLS with its own client certificate
//! (`kube-apiserver-kubelet-client`, bound to `system:kubelet-api-admin`), to the address and
//! port the Node reports. The agent's serving certificate is not checked, as upstream without
//! `--kubelet-certificate-authority`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{ApiError, ApiResult};
use crate::pki::{self, Credential};

/// The user the API server is to node agents.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
const KUBELET_CLIENT: Credential = ("kubelet-client", KUBELET_CLIENT_USER, &[]);
/// How long a loaded client certificate is used before it is checked for renewal again.
const RELOAD_EVERY: Duration = Duration::from_secs(600);
/// How long dialling an agent may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

pub struct KubeletClient {
    data_dir: PathBuf,
    validity: time::Duration,
    connector: Mutex<Option<(Instant, TlsConnector)>>,
}

impl KubeletClient {
    pub fn new(data_dir: PathBuf, validity: time::Duration) -> Self {
        Self {
            data_dir,
            validity,
            connector: Mutex::new(None),
        }
    }

    fn connector(&self) -> ApiResult<TlsConnector> {
        if let Some((at, c)) = self.connector.lock().as_ref()
            && at.elapsed() < RELOAD_EVERY
        {
            return Ok(c.clone());
        }
        let (cert, key) =
            pki::ensure_client_credential(&self.data_dir, KUBELET_CLIENT, self.validity).map_err(
                |e| ApiError::internal(format!("the kubelet client certificate: {e:#}")),
            )?;
        let c = kox_component::probe_tls::connector_presenting(&cert, &key)
            .map_err(|e| ApiError::internal(format!("the kubelet client certificate: {e:#}")))?;
        *self.connector.lock() = Some((Instant::now(), c.clone()));
        Ok(c)
    }

    /// A TLS connection to the agent of `node`, and the `host:port` it is at.
    pub async fn connect(&self, node: &Node) -> ApiResult<(TlsStream<TcpStream>, String)> {
        let addr = agent_address(node)?;
        let dial_error = |e: String| {
            ApiError::new(
                500,
                "InternalError",
                format!("error dialing backend: dial tcp {addr}: {e}"),
            )
        };
        let tcp = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| dial_error("i/o timeout".into()))?
            .map_err(|e| dial_error(e.to_string()))?;
        let name = rustls::pki_types::ServerName::from(addr.ip());
        let tls = tokio::time::timeout(DIAL_TIMEOUT, self.connector()?.connect(name, tcp))
            .await
            .map_err(|_| dial_error("TLS handshake timeout".into()))?
            .map_err(|e| dial_error(e.to_string()))?;
        Ok((tls, addr.to_string()))
    }
}

/// Where a node's agent listens: its InternalIP (else another address) and the port in
/// `daemonEndpoints`.
fn agent_address(node: &Node) -> ApiResult<SocketAddr> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let status = node.status.as_ref();
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(10250, |e| e.port);
    let addresses = status
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten();
    let ip = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .flat_map(|t| addresses.clone().filter(move |a| a.type_ == *t))
        .find_map(|a| a.address.parse::<std::net::IpAddr>().ok())
        .ok_or_else(|| ApiError::bad_request(format!("node {name} has no usable address")))?;
    let port = u16::try_from(port)
        .map_err(|_| ApiError::bad_request(format!("node {name} reports port {port}")))?;
    Ok(SocketAddr::new(ip, port))
}
