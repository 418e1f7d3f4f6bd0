//! `kox fake-nodes`: simulated nodes for tests and scale experiments.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::Args;
use kox_fakenode::FakeNodesConfig;
use tokio_util::sync::CancellationToken;

/// Flags of `kox fake-nodes`.
#[derive(Args, Debug)]
pub struct FakeNodesArgs {
    /// Kubeconfig of the cluster to join.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// How many nodes to simulate.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// CPU capacity of each node.
    #[arg(long, default_value = "32")]
    pub cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "256Gi")]
    pub memory: String,
    /// Pod capacity of each node.
    #[arg(long, default_value = "110")]
    pub pods: String,
    /// A taint on every node, `key=value:Effect` (repeatable).
    #[arg(long = "taint")]
    pub taints: Vec<String>,
    /// A label on every node, `key=value` (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Nodes are named this prefix followed by 0, 1, 2…
    #[arg(long, default_value = "fake-node-")]
    pub name_prefix: String,
    /// Spread the nodes over this many zones, round-robin: the label
    /// `topology.kubernetes.io/zone=zone-0…zone-<K-1>` (0: no zone label).
    #[arg(long, default_value_t = 0)]
    pub zones: usize,
    /// Seconds between node Lease renewals.
    #[arg(long, default_value_t = 10)]
    pub heartbeat_seconds: u64,
}

/// Registers the nodes and serves them until SIGTERM or SIGINT.
pub async fn run(args: FakeNodesArgs) -> Result<()> {
    for (what, v) in [
        ("--cpu", &args.cpu),
        ("--memory", &args.memory),
        ("--pods", &args.pods),
    ] {
        kox_api_quantity_check(what, v)?;
    }
    let taints = args
        .taints
        .iter()
        .map(|t| kox_fakenode::parse_taint(t).map_err(|e| anyhow!("--taint: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let labels = args
        .labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--label {l:?}: expected key=value"))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let config = FakeNodesConfig {
        count: args.count,
        name_prefix: args.name_prefix,
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        taints,
        labels,
        zones: args.zones,
        heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        ..FakeNodesConfig::default()
    };
    let client = crate::kubeconfig_client::following(&args.kubeconfig, "kox-fake-nodes").await?;
    let stop = CancellationToken::new();
    let signals = stop.clone();
    tokio::spawn(async move {
        crate::scheduler_cmd::wait_for_signal().await;
        signals.cancel();
    });
    kox_fakenode::run(client, config, stop).await
}

fn kox_api_quantity_check(flag: &str, value: &str) -> Result<()> {
    kox_api::quantity::Quantity::parse(value)
        .map(|_| ())
        .map_err(|e| anyhow!("{flag} {value:?}: {e}"))
}
