//! `kox controller-manager`: the controller manager alone, as an API client of a cluster; and
//! the in-process controller manager `kox server` starts.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use clap::Args;
use kox_component::LeaderElectionConfig;
use kox_controllers::ControllerManagerConfig;
use tokio_util::sync::CancellationToken;

use crate::scheduler_cmd::wait_for_signal;

/// Flags of `kox controller-manager`.
/// The controller manager's HTTPS port, as upstream's.
const DEFAULT_SECURE_PORT: u16 = 10257;

#[derive(Args, Debug)]
pub struct ControllerManagerArgs {
    /// Kubeconfig of the cluster to manage.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Controllers to run: `*` (all on by default), `name` (also one off by default), `-name`
    /// (not this one), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// HTTPS port of `/healthz` and `/metrics`.
    #[arg(long, default_value_t = DEFAULT_SECURE_PORT)]
    pub secure_port: u16,
    /// Address `/healthz` listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Take part in leader election through the Lease kube-system/kube-controller-manager, so
    /// only one of several controller managers is active.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// How long a node may go without a heartbeat before it is marked NotReady (Ready=Unknown).
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// Pods evicted per second from unhealthy nodes.
    #[arg(long, default_value_t = 0.1)]
    pub node_eviction_rate: f64,
    /// Terminated pods kept before the pod garbage collector deletes the oldest (0: keep all).
    #[arg(long, default_value_t = 12500)]
    pub terminated_pod_gc_threshold: usize,
    /// Act for each controller as its own ServiceAccount in kube-system (created if missing,
    /// with tokens requested through the kubeconfig's credential and renewed before they
    /// expire). Without it every controller acts with the kubeconfig's credential, which then
    /// needs every controller's role.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub use_service_account_credentials: bool,
}

/// Parses a Go-style duration: `40s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 40s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// The PEM of the cluster CA the kubeconfig's current context trusts
/// (`certificate-authority-data`, or the `certificate-authority` file).
pub fn cluster_ca_pem(path: &Path) -> Result<Option<String>> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let context_name = kubeconfig.current_context.clone().unwrap_or_default();
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| Some(&c.name) == cluster_name.as_ref())
        .or(kubeconfig.clusters.first())
        .and_then(|c| c.cluster.as_ref());
    let Some(cluster) = cluster else {
        return Ok(None);
    };
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("decoding certificate-authority-data")?;
        return Ok(Some(String::from_utf8_lossy(&pem).into_owned()));
    }
    if let Some(file) = &cluster.certificate_authority {
        let pem = std::fs::read_to_string(file)
            .with_context(|| format!("reading certificate-authority {file}"))?;
        return Ok(Some(pem));
    }
    Ok(None)
}

/// How the kubeconfig's current context reaches the API server (URL, CA, credentials): the
/// base of the controllers' own clients, whose credentials their tokens replace.
async fn api_server(path: &Path) -> Result<kube::Config> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))
}

impl ControllerManagerArgs {
    async fn config(&self) -> Result<ControllerManagerConfig> {
        let api_server = if self.use_service_account_credentials {
            Some(api_server(&self.kubeconfig).await?)
        } else {
            None
        };
        Ok(ControllerManagerConfig {
            controllers: self.controllers.clone(),
            health_address: Some(SocketAddr::new(self.bind_address, self.secure_port)),
            leader_election: self
                .leader_elect
                .then(|| LeaderElectionConfig::for_lease("kube-controller-manager")),
            root_ca_pem: cluster_ca_pem(&self.kubeconfig)?,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_monitor_period: self.node_monitor_period,
            node_eviction_rate: self.node_eviction_rate,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
            use_service_account_credentials: self.use_service_account_credentials,
            api_server,
        })
    }
}

/// Runs the controller manager until SIGTERM or SIGINT.
pub async fn run(args: ControllerManagerArgs) -> Result<()> {
    let config = args.config().await?;
    let client =
        crate::kubeconfig_client::following(&args.kubeconfig, "kube-controller-manager").await?;
    let stop = CancellationToken::new();
    let signals = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signals.cancel();
    });
    kox_controllers::run(client, config, stop).await
}

/// Starts the controller manager inside `kox server`, as a client of its API through its own
/// kubeconfig (user `system:kube-controller-manager`), each controller acting as its own
/// service account (as kubeadm and k3s run it); it stops with `stop`. The returned task ends once it has stopped.
pub fn spawn_in_process(
    kubeconfig: &Path,
    bind_address: IpAddr,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let kubeconfig = kubeconfig.to_path_buf();
    tokio::spawn(async move {
        let start = async {
            let config = ControllerManagerConfig {
                root_ca_pem: cluster_ca_pem(&kubeconfig)?,
                use_service_account_credentials: true,
                api_server: Some(api_server(&kubeconfig).await?),
                health_address: Some(SocketAddr::new(bind_address, DEFAULT_SECURE_PORT)),
                ..ControllerManagerConfig::default()
            };
            let client =
                crate::kubeconfig_client::following(&kubeconfig, "kube-controller-manager").await?;
            anyhow::Ok((client, config))
        };
        let (client, config) = match start.await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("the controller manager cannot start: {e:#}");
                return;
            }
        };
        if let Err(e) = kox_controllers::run(client, config, stop).await {
            tracing::error!("the controller manager stopped: {e:#}");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_flags() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5d").is_err());
    }

    /// Every controller's ServiceAccount is a subject of one of the default bindings, so with
    /// service-account credentials it holds its upstream role.
    #[test]
    fn every_controller_account_is_bound_to_its_role() {
        use kox_apiserver::authz::{controller_policy, policy};
        let subjects: Vec<String> = controller_policy::cluster_role_bindings()
            .into_iter()
            .chain(controller_policy::role_bindings())
            .chain(policy::cluster_role_bindings())
            .flat_map(|b| b["subjects"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["kind"] == "ServiceAccount" && s["namespace"] == "kube-system")
            .filter_map(|s| s["name"].as_str().map(str::to_string))
            .collect();
        for c in kox_controllers::all_controllers() {
            if let Some(account) = c.service_account() {
                assert!(
                    subjects.iter().any(|s| s == account),
                    "controller {} acts as kube-system/{account}, which no binding names",
                    c.name()
                );
            }
        }
        // The mapping upstream uses where a name and its account differ.
        let account = |name: &str| {
            kox_controllers::all_controllers()
                .into_iter()
                .find(|c| c.name() == name)
                .and_then(|c| c.service_account())
        };
        assert_eq!(account("deployment"), Some("deployment-controller"));
        assert_eq!(account("daemonset"), Some("daemon-set-controller"));
        assert_eq!(
            account("garbagecollector"),
            Some("generic-garbage-collector")
        );
        assert_eq!(
            account("taint-eviction-controller"),
            Some("node-controller")
        );
        assert_eq!(
            account("ttl-after-finished"),
            Some("ttl-after-finished-controller")
        );
        assert_eq!(account("tokencleaner"), Some("token-cleaner"));
    }
}
