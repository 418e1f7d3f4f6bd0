//! `kox agent`: the node agent alone, as a client of a cluster; `kox server` runs the same
//! agent in-process for its own node.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use kox_api::quantity::Quantity;
use kox_kubelet::AgentConfig;
use tokio_util::sync::CancellationToken;

/// Flags of `kox agent` (and the agent part of `kox server`).
#[derive(Args, Debug, Clone, Default)]
pub struct AgentArgs {
    /// The node's name [default: the host name].
    #[arg(long)]
    pub node_name: Option<String>,
    /// The node's InternalIP [default: the host's first non-loopback IPv4 address].
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// A label on the node, `key=value` (repeatable).
    #[arg(long = "node-label")]
    pub node_labels: Vec<String>,
    /// A taint the node registers with, `key=value:Effect` (repeatable).
    #[arg(long = "register-with-taints", value_delimiter = ',')]
    pub taints: Vec<String>,
    /// Resources kept for Kubernetes daemons, e.g. `cpu=100m,memory=256Mi`.
    #[arg(long, default_value = "")]
    pub kube_reserved: String,
    /// Resources kept for the system, e.g. `cpu=100m,memory=256Mi`.
    #[arg(long, default_value = "")]
    pub system_reserved: String,
    /// Pods the node runs at most.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// The CRI socket of a runtime to use instead of starting containerd.
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
    /// The sandbox (pause) image [default: kox's own, built in].
    #[arg(long, default_value = kox_kubelet::images::PAUSE_IMAGE)]
    pub pause_image: String,
    /// Static pod manifests: pods run from these files without the API server, mirrored into
    /// it [default: DATA_DIR/agent/pod-manifests].
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// Hard eviction thresholds: under them the node reports MemoryPressure or DiskPressure,
    /// refuses new pods and evicts running ones.
    #[arg(long, default_value = "memory.available<100Mi,nodefs.available<10%")]
    pub eviction_hard: String,
    /// The node's pod range (the one-node pod network hands pod IPs out of it).
    #[arg(long, default_value = "10.42.0.0/24")]
    pub pod_cidr: String,
    /// A container's log file is rotated when it grows past this size.
    #[arg(long, default_value = "10Mi")]
    pub container_log_max_size: String,
    /// Log files kept per container, the current one included (at least 2).
    #[arg(long, default_value_t = 5)]
    pub container_log_max_files: usize,
    /// The port of the agent's API (logs, exec, attach, port-forward); 0 picks a free one.
    #[arg(long, default_value_t = kox_kubelet::api::DEFAULT_PORT)]
    pub kubelet_port: u16,
    /// The serving certificate of the agent's API (PEM) [default: the server issues one to
    /// its own agent; a standalone agent without one uses a self-signed certificate].
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The key of `--tls-cert-file` (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// The CA whose client certificates the agent's API accepts [default: the cluster CA of
    /// the agent's kubeconfig].
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
}

/// Flags of `kox agent`.
#[derive(Args, Debug)]
pub struct AgentCmdArgs {
    /// The node's kubeconfig (`kox kubeconfig --node NAME`).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Where the agent keeps its runtime, images and pods (under `DATA_DIR/agent`)
    /// [default: /var/lib/kox as root, else ~/.local/share/kox].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub agent: AgentArgs,
}

fn reservations(flag: &str, value: &str) -> Result<BTreeMap<String, Quantity>> {
    value
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("{flag} {pair:?}: expected resource=quantity"))?;
            let q = Quantity::parse(v.trim()).map_err(|e| anyhow!("{flag} {pair:?}: {e}"))?;
            Ok((k.trim().to_string(), q))
        })
        .collect()
}

/// The host's name, as the kubelet's default node name (lower case).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|_| "localhost".into())
}

/// The agent's configuration from its flags.
pub fn config(
    args: &AgentArgs,
    data_dir: &Path,
    extra_labels: &[(&str, &str)],
) -> Result<AgentConfig> {
    let node_name = args.node_name.clone().unwrap_or_else(host_name);
    let errors = kox_api::validation::is_dns1123_subdomain(&node_name);
    if !errors.is_empty() {
        anyhow::bail!(
            "node name {node_name:?}: {} (give --node-name)",
            errors.join("; ")
        );
    }
    let mut labels = args
        .node_labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--node-label {l:?}: expected key=value"))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    labels.extend(
        extra_labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let taints = args
        .taints
        .iter()
        .map(|t| kox_fakenode::parse_taint(t).map_err(|e| anyhow!("--register-with-taints: {e}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(AgentConfig {
        node_ip: args
            .node_ip
            .or_else(crate::server::host_address)
            .unwrap_or(IpAddr::from([127, 0, 0, 1])),
        node_name,
        data_dir: data_dir.to_path_buf(),
        labels,
        taints,
        kube_reserved: reservations("--kube-reserved", &args.kube_reserved)?,
        system_reserved: reservations("--system-reserved", &args.system_reserved)?,
        max_pods: args.max_pods,
        runtime_endpoint: args
            .container_runtime_endpoint
            .as_deref()
            .map(kox_kubelet::cri::socket_path),
        pause_image: args.pause_image.clone(),
        pod_cidr: args.pod_cidr.clone(),
        kubelet_version: kox_apiserver::KUBERNETES_VERSION.to_string(),
        pod_manifest_path: args.pod_manifest_path.clone(),
        eviction_hard: kox_kubelet::eviction::Thresholds::parse(&args.eviction_hard)
            .map_err(|e| anyhow!("--eviction-hard: {e}"))?,
        api_port: args.kubelet_port,
        log_limits: log_limits(args)?,
        api_tls: api_tls(args)?,
    })
}

fn log_limits(args: &AgentArgs) -> Result<kox_kubelet::log_rotation::LogLimits> {
    let size = Quantity::parse(&args.container_log_max_size).map_err(|e| {
        anyhow!(
            "--container-log-max-size {:?}: {e}",
            args.container_log_max_size
        )
    })?;
    let max_size = u64::try_from(size.value())
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| anyhow!("--container-log-max-size must be a positive size, e.g. 10Mi"))?;
    if args.container_log_max_files < 2 {
        anyhow::bail!("--container-log-max-files must be at least 2");
    }
    Ok(kox_kubelet::log_rotation::LogLimits {
        max_size,
        max_files: args.container_log_max_files,
    })
}

/// The agent API's certificates given by flags.
fn api_tls(args: &AgentArgs) -> Result<kox_kubelet::api::ApiTls> {
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let serving = match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        _ => None,
    };
    let client_ca = args.client_ca_file.as_deref().map(read).transpose()?;
    // Certificates given as files are read again when due (whoever renews them).
    let reissue = match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            let (cert, key) = (cert.clone(), key.clone());
            Some(Arc::new(move || {
                Ok((
                    std::fs::read_to_string(&cert)?,
                    std::fs::read_to_string(&key)?,
                ))
            }) as kox_kubelet::api::Reissue)
        }
        _ => None,
    };
    Ok(kox_kubelet::api::ApiTls {
        serving,
        client_ca,
        reissue,
    })
}

/// The cluster CA (PEM) a kubeconfig trusts for its current context's server.
fn kubeconfig_ca(path: &Path) -> Result<Option<String>> {
    use base64::Engine;
    let config = kube::config::Kubeconfig::read_from(path)?;
    let context = config
        .contexts
        .iter()
        .find(|c| Some(&c.name) == config.current_context.as_ref())
        .or(config.contexts.first())
        .and_then(|c| c.context.as_ref());
    let cluster = config
        .clusters
        .iter()
        .find(|c| context.is_none_or(|ctx| ctx.cluster == c.name))
        .and_then(|c| c.cluster.as_ref());
    let Some(cluster) = cluster else {
        return Ok(None);
    };
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD.decode(data.trim())?;
        return Ok(Some(String::from_utf8(pem)?));
    }
    cluster
        .certificate_authority
        .as_deref()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {p}")))
        .transpose()
}

/// Flags of `kox killall`.
#[derive(Args, Debug)]
pub struct KillallArgs {
    /// The data directory of the stopped server or agent
    /// [default: /var/lib/kox as root, else ~/.local/share/kox].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Runs `kox killall`.
pub async fn killall(args: KillallArgs) -> Result<()> {
    let data_dir = args
        .data_dir
        .unwrap_or_else(crate::server::default_data_dir);
    kox_kubelet::killall(&data_dir).await
}

/// Runs `kox agent` until SIGTERM or SIGINT.
pub async fn run(args: AgentCmdArgs) -> Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::server::default_data_dir);
    let mut config = config(&args.agent, &data_dir, &[])?;
    if config.api_tls.client_ca.is_none() {
        config.api_tls.client_ca = kubeconfig_ca(&args.kubeconfig)
            .with_context(|| format!("reading the cluster CA of {}", args.kubeconfig.display()))?;
    }
    let client = crate::kubeconfig_client::following(&args.kubeconfig, "kubelet")
        .await
        .with_context(|| format!("loading {}", args.kubeconfig.display()))?;
    let stop = CancellationToken::new();
    let signals = stop.clone();
    tokio::spawn(async move {
        crate::scheduler_cmd::wait_for_signal().await;
        signals.cancel();
    });
    kox_kubelet::run(client, config, stop).await
}

/// Starts the in-process agent of `kox server` with a node credential it issues itself.
pub fn spawn_in_process(
    data_dir: &Path,
    admin_kubeconfig: &Path,
    args: &AgentArgs,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut config = config(args, data_dir, &[])?;
    let kubeconfig = node_kubeconfig(data_dir, admin_kubeconfig, &config.node_name)?;
    if config.api_tls.serving.is_none() {
        // The server's own agent gets its serving certificate from the cluster CA, again
        // whenever it is due.
        let (dir, node) = (data_dir.to_path_buf(), config.node_name.clone());
        let sans = [node.clone(), config.node_ip.to_string(), "localhost".into()];
        config.api_tls.reissue = Some(Arc::new(move || {
            kox_apiserver::pki::issue_node_serving_certificate(&dir, &node, &sans)
        }));
    }
    if config.api_tls.client_ca.is_none() {
        config.api_tls.client_ca = Some(
            std::fs::read_to_string(data_dir.join("tls/ca.crt"))
                .context("reading the cluster CA")?,
        );
    }
    tokio::spawn(label_control_plane(
        admin_kubeconfig.to_path_buf(),
        config.node_name.clone(),
    ));
    Ok(tokio::spawn(async move {
        let client = match crate::kubeconfig_client::following(&kubeconfig, "kubelet").await {
            Ok(c) => c,
            Err(e) => return tracing::error!("node agent: {e:#}"),
        };
        if let Err(e) = kox_kubelet::run(client, config, stop).await {
            tracing::error!("node agent: {e:#}");
        }
    }))
}

/// The control-plane role label on the server's own node: NodeRestriction keeps a node from
/// giving itself `node-role.kubernetes.io/*` labels, so the server sets it as the admin, once
/// the node registered.
async fn label_control_plane(admin: PathBuf, node: String) {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, Patch, PatchParams};
    let Ok(client) = crate::kubeconfig_client::following(&admin, "kox-server").await else {
        return;
    };
    let nodes: Api<Node> = Api::all(client);
    let patch = serde_json::json!({"metadata": {"labels": {CONTROL_PLANE_LABEL: ""}}});
    for _ in 0..600 {
        if let Ok(Some(_)) = nodes.get_opt(&node).await
            && nodes
                .patch(&node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The label of control-plane nodes.
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// `DATA_DIR/agent/kubelet.kubeconfig`: user `system:node:<name>`, against the server the
/// admin kubeconfig names.
fn node_kubeconfig(data_dir: &Path, admin: &Path, node: &str) -> Result<PathBuf> {
    let server = crate::kubeconfig_cmd::server_of(admin)?;
    let ca =
        std::fs::read_to_string(data_dir.join("tls/ca.crt")).context("reading the cluster CA")?;
    let user = format!("system:node:{node}");
    let (cert, key) =
        kox_apiserver::pki::issue_client_certificate(data_dir, &user, &["system:nodes"])?;
    let path = data_dir.join("agent/kubelet.kubeconfig");
    std::fs::create_dir_all(data_dir.join("agent"))?;
    crate::kubeconfig_cmd::write_private(
        &path,
        &kox_apiserver::pki::client_kubeconfig(&server, &ca, &user, &cert, &key),
    )?;
    Ok(path)
}
