//! The node agent (the kubelet's part of kox): it supervises containerd, registers its Node
//! and keeps its Lease, and runs the pods bound to it through CRI, reporting their status.
//!
//! **Architecture invariant:** like every component, it is an ordinary API client (kube-rs)
//! with the identity `system:node:<name>` — held to its own node by the Node authorizer and
//! NodeRestriction — and never reads the store.

pub mod api;
pub mod cni;
pub mod containerd;
pub mod cri;
mod events;
pub mod eviction;
pub mod images;
pub mod log_rotation;
mod node;
pub mod oci;
mod pods;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Taint;
use kox_api::quantity::Quantity;
use kube::Client;
use tokio_util::sync::CancellationToken;

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub node_name: String,
    pub node_ip: IpAddr,
    /// `DATA_DIR`: the agent keeps everything under `DATA_DIR/agent`.
    pub data_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub kube_reserved: BTreeMap<String, Quantity>,
    pub system_reserved: BTreeMap<String, Quantity>,
    pub max_pods: u32,
    /// A runtime to use instead of starting containerd (its CRI socket).
    pub runtime_endpoint: Option<PathBuf>,
    pub pause_image: String,
    /// The node's pod range, used by the one-node pod network.
    pub pod_cidr: String,
    /// What the node reports as its kubelet version (`v1.32.0`).
    pub kubelet_version: String,
    /// Static pod manifests [default: `DATA_DIR/agent/pod-manifests`].
    pub pod_manifest_path: Option<PathBuf>,
    /// Hard eviction thresholds (`--eviction-hard`).
    pub eviction_hard: eviction::Thresholds,
    /// The port of the agent's API (0: any free port).
    pub api_port: u16,
    /// The agent API's certificates.
    pub api_tls: api::ApiTls,
    /// When container logs are rotated.
    pub log_limits: log_rotation::LogLimits,
}

impl AgentConfig {
    pub fn agent_dir(&self) -> PathBuf {
        self.data_dir.join("agent")
    }
    pub fn images_dir(&self) -> PathBuf {
        self.agent_dir().join("images")
    }
    pub fn pods_dir(&self) -> PathBuf {
        self.agent_dir().join("pods")
    }
    pub fn manifests_dir(&self) -> PathBuf {
        self.pod_manifest_path
            .clone()
            .unwrap_or_else(|| self.agent_dir().join("pod-manifests"))
    }
}

/// What every part of the agent shares.
pub struct Agent {
    pub config: AgentConfig,
    pub client: Client,
    pub cri: cri::Cri,
    pub machine: node::Machine,
    /// The runtime's name and version, as CRI reports them.
    pub runtime_version: (String, String),
    /// The Node's uid, once registered (mirror pods are owned by it).
    pub node_uid: std::sync::OnceLock<String>,
    /// Memory or disk pressure, as the node status last found it.
    pub pressure: eviction::Pressure,
    /// The port the agent's API listens on (reported in the Node's `daemonEndpoints`).
    pub api_port: u16,
}

/// Runs the agent until `stop`.
pub async fn run(client: Client, config: AgentConfig, stop: CancellationToken) -> Result<()> {
    let agent_dir = config.agent_dir();
    for dir in [
        agent_dir.clone(),
        config.images_dir(),
        config.pods_dir(),
        config.manifests_dir(),
    ] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let runtime_stop = CancellationToken::new();
    let (socket, supervisor) = match &config.runtime_endpoint {
        Some(endpoint) => (endpoint.clone(), None),
        None => {
            containerd::check_binaries()?;
            let layout = containerd::Layout::new(&agent_dir, containerd::find_cni_bin_dir()?);
            containerd::write_config(&layout, &config.pause_image)?;
            cni::write(&layout.cni_conf_dir, &config.pod_cidr)?;
            let task = containerd::spawn(layout.clone(), runtime_stop.clone())?;
            (layout.socket(), Some(task))
        }
    };
    // The runtime stops with the agent, however the agent ends.
    let _runtime_guard = runtime_stop.clone().drop_guard();
    let cri = cri::Cri::connect(&socket)?;
    let runtime_version = cri.wait_ready(Duration::from_secs(30)).await?;
    tracing::info!(runtime = %runtime_version.0, version = %runtime_version.1, socket = %socket.display(), "container runtime ready");
    images::ensure_pause(&cri, &socket, &agent_dir, &config.pause_image).await?;
    let listener = api::bind(config.api_port).await?;
    let api_port = listener.local_addr()?.port();
    let api_tls = config.api_tls.clone();
    let agent = Arc::new(Agent {
        api_port,
        machine: node::Machine::read(&config.data_dir),
        config,
        client,
        cri,
        runtime_version,
        node_uid: std::sync::OnceLock::new(),
        pressure: eviction::Pressure::default(),
    });
    let node_uid = node::register(&agent).await?;
    let _ = agent.node_uid.set(node_uid.clone());
    tracing::info!(node = %agent.config.node_name, "node registered");
    let tasks = vec![
        tokio::spawn(node::heartbeat(agent.clone(), node_uid, stop.clone())),
        tokio::spawn(images::import_dir_loop(
            socket.clone(),
            agent.config.images_dir(),
            stop.clone(),
        )),
        tokio::spawn(pods::run(agent.clone(), stop.clone())),
        tokio::spawn(log_rotation::run(agent.clone(), stop.clone())),
        tokio::spawn({
            let (agent, stop) = (agent.clone(), stop.clone());
            async move {
                if let Err(e) = api::serve(agent, listener, &api_tls, stop).await {
                    tracing::error!("the agent's API: {e:#}");
                }
            }
        }),
    ];
    for t in tasks {
        let _ = t.await;
    }
    runtime_stop.cancel();
    if let Some(task) = supervisor {
        let _ = task.await;
    }
    Ok(())
}

/// Now, to the second, as API timestamps are written.
pub(crate) fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Stops every pod this node's runtime runs and the runtime itself, and unmounts what the
/// agent mounted under `DATA_DIR/agent` (as k3s's `k3s-killall.sh`): for uninstalling, or
/// clearing a node the agent was killed on.
pub async fn killall(data_dir: &std::path::Path) -> Result<()> {
    let agent_dir = data_dir.join("agent");
    let layout = containerd::Layout::new(&agent_dir, containerd::find_cni_bin_dir()?);
    let stop = CancellationToken::new();
    let cri = cri::Cri::connect(&layout.socket())?;
    let supervisor = if cri.version().await.is_ok() {
        None
    } else {
        containerd::check_binaries()?;
        Some(containerd::spawn(layout.clone(), stop.clone())?)
    };
    cri.wait_ready(Duration::from_secs(30)).await?;
    // A sandbox still being created when the agent stopped appears only later: sweep until
    // none is left.
    let mut removed = 0;
    for _ in 0..5 {
        let now = pods::remove_all(&cri).await?;
        removed += now;
        if now == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::info!(removed, "pods stopped and removed");
    stop.cancel();
    match supervisor {
        Some(task) => {
            let _ = task.await;
        }
        None => containerd::stop_leftover(&layout),
    }
    for mount in pods::mounts_under(&agent_dir) {
        let _ = tokio::process::Command::new("umount")
            .arg("-l")
            .arg(&mount)
            .status()
            .await;
    }
    Ok(())
}
