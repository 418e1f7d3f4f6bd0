//! `kox server`: the control plane in one process: the store, the API server, and (unless
//! disabled) the scheduler, the controller manager and a node agent for the server's own node.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use kox_apiserver::{Server, ServerConfig};
use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};
use kox_store::etcd::{EtcdOptions, EtcdStore};
use tokio_util::sync::CancellationToken;

/// Flags of `kox server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Where the store, certificates and kubeconfigs live
    /// [default: /var/lib/kox as root, else ~/.local/share/kox].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// HTTPS port of the API.
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Extra names or addresses for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    pub tls_san: Vec<String>,
    /// The address cluster members reach this server at [default: the bind address if routable,
    /// else the host's first non-loopback IPv4 address].
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// The range Services' ClusterIPs come from.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// Static bearer tokens: a CSV file of `token,user,uid,"group1,group2"` lines.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// How long the API server's serving certificate is valid (Go duration, e.g. 8760h). A
    /// third of the way before expiry (at most 30 days before) a new one is issued and served
    /// without a restart.
    #[arg(long, default_value = "8760h", value_parser = crate::controller_manager_cmd::parse_duration)]
    pub serving_cert_validity: std::time::Duration,
    /// How long the client certificates of the admin and of the scheduler and controller
    /// manager are valid (Go duration). They are renewed as the serving certificate is and
    /// their kubeconfigs rewritten; the components switch to the new ones without a restart.
    #[arg(long, default_value = "8760h", value_parser = crate::controller_manager_cmd::parse_duration)]
    pub client_cert_validity: std::time::Duration,
    /// Append an audit log here: one JSON audit.k8s.io/v1 Event per request (Metadata level).
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// Most TLS connections one client address may hold open; further ones are closed at once.
    #[arg(long, default_value_t = 1000)]
    pub max_connections_per_client: usize,
    /// Admission plugins' configuration: an `AdmissionConfiguration`
    /// (apiserver.config.k8s.io/v1) whose `PodSecurity` entry (inline `configuration` or a
    /// `path`) is a `PodSecurityConfiguration`: default levels and exemptions.
    #[arg(long)]
    pub admission_control_config_file: Option<PathBuf>,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    pub disable_scheduler: bool,
    /// Do not run the controller manager in this process.
    #[arg(long)]
    pub disable_controller_manager: bool,
    /// Do not run a node agent in this process (a control-plane-only server).
    #[arg(long)]
    pub disable_agent: bool,
    /// The in-process node agent's flags.
    #[command(flatten)]
    pub agent: Box<crate::agent_cmd::AgentArgs>,
    /// The cluster token. With `--datastore-endpoint`, the cluster's CA and keys are kept in the
    /// datastore encrypted with it: servers started with the same datastore and token form one
    /// cluster. Default: the token in DATA_DIR/token, created on first start.
    #[arg(long, env = "KOX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where the cluster state lives when it is not the embedded store.
    #[command(flatten)]
    pub datastore: Box<DatastoreArgs>,
}

/// The etcd datastore flags of `kox server` (none given: the embedded store).
#[derive(Args, Debug, Default)]
pub struct DatastoreArgs {
    /// Keep the cluster state in etcd instead of the embedded store: the members' client URLs,
    /// comma-separated (e.g. `https://10.0.0.1:2379,https://10.0.0.2:2379`).
    #[arg(long, value_delimiter = ',')]
    pub datastore_endpoint: Vec<String>,
    /// CA bundle that signs the etcd members' certificates.
    #[arg(long)]
    pub datastore_cafile: Option<PathBuf>,
    /// Client certificate presented to etcd.
    #[arg(long)]
    pub datastore_certfile: Option<PathBuf>,
    /// Key of `--datastore-certfile`.
    #[arg(long)]
    pub datastore_keyfile: Option<PathBuf>,
}

pub fn default_data_dir() -> PathBuf {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/kox");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("kox");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/kox")
}

/// Opens the cluster's store: the embedded engine in `data_dir/db`, or etcd when
/// `--datastore-endpoint` is given.
pub async fn open_store(
    data_dir: &std::path::Path,
    datastore: &DatastoreArgs,
) -> Result<Arc<dyn kox_store::Store>> {
    let store: Arc<dyn kox_store::Store> = if datastore.datastore_endpoint.is_empty() {
        let db = data_dir.join("db");
        let store = EmbeddedStore::open(&db, EmbeddedOptions::default())
            .with_context(|| format!("opening the store in {}", db.display()))?;
        Arc::new(store)
    } else {
        let options = EtcdOptions {
            endpoints: datastore.datastore_endpoint.clone(),
            ca_file: datastore.datastore_cafile.clone(),
            cert_file: datastore.datastore_certfile.clone(),
            key_file: datastore.datastore_keyfile.clone(),
            ..EtcdOptions::default()
        };
        let store = EtcdStore::connect(options).await.with_context(|| {
            format!(
                "connecting to etcd at {}",
                datastore.datastore_endpoint.join(",")
            )
        })?;
        Arc::new(store)
    };
    Ok(store)
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(args: ServerArgs) -> Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let datastore = &args.datastore;
    let store = open_store(&data_dir, datastore).await?;
    // A shared datastore shares the cluster's secrets, under the token.
    let cluster_token = if datastore.datastore_endpoint.is_empty() {
        None
    } else {
        match args.token.clone().filter(|t| !t.trim().is_empty()) {
            Some(token) => Some(token.trim().to_string()),
            None => {
                let had_token = data_dir.join("token").exists();
                let token = kox_apiserver::cluster_secrets::load_or_create_token(&data_dir)?;
                if !had_token {
                    println!(
                        "kox: cluster token written to {}; start other servers of this cluster with --token <its contents>",
                        data_dir.join("token").display()
                    );
                }
                Some(token)
            }
        }
    };
    let pod_security = match &args.admission_control_config_file {
        Some(path) => pod_security_config(path)?,
        None => Default::default(),
    };
    let config = ServerConfig {
        data_dir: data_dir.clone(),
        pod_security,
        bind_address: args.bind_address,
        secure_port: args.secure_port,
        tls_sans: args.tls_san,
        service_cidr: args.service_cidr,
        token_auth_file: args.token_auth_file,
        audit_log_path: args.audit_log_path,
        max_connections_per_client: args.max_connections_per_client,
        serving_cert_validity: args.serving_cert_validity,
        client_cert_validity: args.client_cert_validity,
        advertise_address: args
            .advertise_address
            .or_else(|| {
                Some(args.bind_address).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
            })
            .or_else(host_address),
        cluster_token,
        ..ServerConfig::default()
    };
    let server = Server::bind(config, store).await?;
    println!(
        "kox: API server listening on {}; admin kubeconfig written to {k} — run: export KUBECONFIG={k}; kubectl get namespaces",
        server.local_addr,
        k = server.kubeconfig.display()
    );
    let stop = CancellationToken::new();
    if !args.disable_scheduler {
        crate::scheduler_cmd::spawn_in_process(
            &server.scheduler_kubeconfig,
            args.bind_address,
            stop.clone(),
        );
    }
    let controller_manager = (!args.disable_controller_manager).then(|| {
        crate::controller_manager_cmd::spawn_in_process(
            &server.controller_manager_kubeconfig,
            args.bind_address,
            stop.clone(),
        )
    });
    let agent = if args.disable_agent {
        None
    } else {
        Some(crate::agent_cmd::spawn_in_process(
            &data_dir,
            &server.kubeconfig,
            &args.agent,
            stop.clone(),
        )?)
    };
    let signals = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: finishing in-flight requests");
        signals.cancel();
    });
    let served = server.serve(stop).await;
    if let Some(cm) = controller_manager {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), cm).await;
    }
    if let Some(agent) = agent {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), agent).await;
    }
    served
}

/// The PodSecurity configuration of an admission configuration file; a plugin's relative
/// `path` is relative to that file.
fn pod_security_config(
    path: &std::path::Path,
) -> Result<kox_apiserver::admission::pod_security::PodSecurityConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the admission configuration {}", path.display()))?;
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    kox_apiserver::admission::pod_security::PodSecurityConfig::from_admission_configuration(
        &text,
        |p| std::fs::read_to_string(base.join(p)).map_err(|e| format!("reading {p}: {e}")),
    )
    .map_err(|e| anyhow::anyhow!("in the admission configuration {}: {e}", path.display()))
}

/// Runs `kox apiserver`: the API server without the components `kox server` hosts beside it.
pub async fn run_apiserver(mut args: ServerArgs) -> Result<()> {
    args.disable_scheduler = true;
    args.disable_controller_manager = true;
    args.disable_agent = true;
    run(args).await
}

/// The host's address: the IPv4 address of the interface with the default route, else the
/// first global one not on a pod bridge (a host with no default route still has one).
pub fn host_address() -> Option<IpAddr> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let addresses: Vec<(&str, IpAddr)> = text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let iface = words.nth(1)?;
            let addr = words.nth(1)?.split('/').next()?.parse().ok()?;
            Some((iface, addr))
        })
        .collect();
    let default_iface = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|r| {
            r.lines()
                .skip(1)
                .find(|l| l.split_whitespace().nth(1) == Some("00000000"))
                .and_then(|l| l.split_whitespace().next().map(str::to_string))
        });
    let pod_bridge = |iface: &str| {
        iface == kox_kubelet::cni::BRIDGE || iface.starts_with("cni") || iface.starts_with("veth")
    };
    addresses
        .iter()
        .find(|(iface, _)| Some(*iface) == default_iface.as_deref())
        .or_else(|| addresses.iter().find(|(iface, _)| !pod_bridge(iface)))
        .map(|(_, ip)| *ip)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
