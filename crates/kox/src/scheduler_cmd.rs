//! `kox scheduler`: the scheduler alone, as an API client of a cluster; and the in-process
//! scheduler `kox server` starts.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use kox_scheduler::config::KubeSchedulerConfiguration;
use kox_scheduler::{LeaderElectionConfig, SchedulerConfig};
use tokio_util::sync::CancellationToken;

/// Flags of `kox scheduler`.
/// The scheduler's HTTPS port, as upstream's.
const DEFAULT_SECURE_PORT: u16 = 10259;

#[derive(Args, Debug)]
pub struct SchedulerArgs {
    /// Kubeconfig of the cluster to schedule for.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// HTTPS port of `/healthz` and `/metrics`.
    #[arg(long, default_value_t = DEFAULT_SECURE_PORT)]
    pub secure_port: u16,
    /// Address `/healthz` listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Take part in leader election through the Lease kube-system/kube-scheduler, so only one
    /// of several schedulers is active.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// A `KubeSchedulerConfiguration` file (kubescheduler.config.k8s.io/v1): profiles, plugin
    /// weights and arguments, percentageOfNodesToScore, leader election.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The scheduler's configuration from its flags and `--config` file; fails with the file's
/// problem (unknown field or plugin, bad arguments) before anything starts.
pub fn config_from(args: &SchedulerArgs) -> Result<SchedulerConfig> {
    let mut config = SchedulerConfig {
        health_address: Some(SocketAddr::new(args.bind_address, args.secure_port)),
        leader_election: args
            .leader_elect
            .then(|| LeaderElectionConfig::for_lease("kube-scheduler")),
        ..SchedulerConfig::default()
    };
    if let Some(path) = &args.config {
        let file = KubeSchedulerConfiguration::from_file(path)?;
        config.profiles = file.profiles();
        config.percentage_of_nodes_to_score = file.percentage_of_nodes_to_score;
        // `--leader-elect=false` wins over the file.
        if let Some(le) = &file.leader_election
            && let Some(base) = config.leader_election.take()
        {
            config.leader_election = le
                .apply(base)
                .with_context(|| format!("in the scheduler configuration {}", path.display()))?;
        }
        config
            .build_profiles()
            .with_context(|| format!("in the scheduler configuration {}", path.display()))?;
    }
    Ok(config)
}

/// Runs the scheduler until SIGTERM or SIGINT.
pub async fn run(args: SchedulerArgs) -> Result<()> {
    let config = config_from(&args)?;
    let client = crate::kubeconfig_client::following(&args.kubeconfig, "kube-scheduler").await?;
    let stop = CancellationToken::new();
    let signals = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signals.cancel();
    });
    kox_scheduler::run(client, config, stop).await
}

/// Starts the scheduler inside `kox server`, as a client of its API through its own kubeconfig
/// (user `system:kube-scheduler`); it stops with `stop`.
pub fn spawn_in_process(kubeconfig: &Path, bind_address: IpAddr, stop: CancellationToken) {
    let kubeconfig = kubeconfig.to_path_buf();
    tokio::spawn(async move {
        let client = match crate::kubeconfig_client::following(&kubeconfig, "kube-scheduler").await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("the scheduler cannot start: {e:#}");
                return;
            }
        };
        let config = SchedulerConfig {
            health_address: Some(SocketAddr::new(bind_address, DEFAULT_SECURE_PORT)),
            ..SchedulerConfig::default()
        };
        if let Err(e) = kox_scheduler::run(client, config, stop).await {
            tracing::error!("the scheduler stopped: {e:#}");
        }
    });
}

/// Waits for SIGTERM or SIGINT.
pub async fn wait_for_signal() {
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
