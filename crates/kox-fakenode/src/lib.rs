//! Simulated nodes, like kwok: registers nodes that stay Ready (Lease heartbeats in
//! `kube-node-lease`), and plays the node agent's part for the pods bound to them — marks them
//! Running and Ready with a pod IP, and completes their graceful deletion — without running
//! anything.
//!
//! It is light by construction: one pod watch and one heartbeat loop serve every node; a
//! node costs its name, IP and Lease in memory. Like independent kubelets, the nodes renew
//! their Leases spread evenly over the heartbeat interval (no burst of N writes at once), and
//! report their status every 5 minutes when nothing changed, also spread: N nodes cost the API
//! server N/10 Lease writes and N/300 status writes per second.
//!
//! **Architecture invariant:** like every component, this is an ordinary API client (kube-rs).
#![forbid(unsafe_code)]

mod node;
mod pods;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;
use kube::Client;
use tokio_util::sync::CancellationToken;

pub use node::{ZONE_LABEL, node_object};

/// What nodes to simulate.
#[derive(Clone, Debug)]
pub struct FakeNodesConfig {
    /// How many nodes (default 1).
    pub count: usize,
    /// Node names are this prefix and an index from 0 (default `fake-node-`).
    pub name_prefix: String,
    /// CPU capacity (default `32`).
    pub cpu: String,
    /// Memory capacity (default `256Gi`).
    pub memory: String,
    /// Pod capacity (default `110`).
    pub pods: String,
    /// Taints every node carries (default none).
    pub taints: Vec<Taint>,
    /// Labels every node carries besides the well-known ones (default none).
    pub labels: BTreeMap<String, String>,
    /// Zones the nodes are spread over round-robin, as the label
    /// `topology.kubernetes.io/zone=zone-<i>` (default 0: no zone label).
    pub zones: usize,
    /// How often node Leases are renewed (default 10 s, as the kubelet).
    pub heartbeat: Duration,
    /// How often a node reports its status when nothing changed (default 5 min, as the
    /// kubelet's `nodeStatusReportFrequency`).
    pub status_report: Duration,
}

impl Default for FakeNodesConfig {
    fn default() -> Self {
        FakeNodesConfig {
            count: 1,
            name_prefix: "fake-node-".into(),
            cpu: "32".into(),
            memory: "256Gi".into(),
            pods: "110".into(),
            taints: Vec::new(),
            labels: BTreeMap::new(),
            zones: 0,
            heartbeat: Duration::from_secs(10),
            status_report: Duration::from_secs(300),
        }
    }
}

/// Parses `key=value:Effect` or `key:Effect` as kubectl taint does.
pub fn parse_taint(s: &str) -> Result<Taint, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid taint {s:?}: expected key=value:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(format!(
            "invalid taint effect {effect:?} in {s:?}: use NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(format!("invalid taint {s:?}: the key is empty"));
    }
    Ok(Taint {
        key: key.into(),
        value,
        effect: effect.into(),
        time_added: None,
    })
}

/// Registers the nodes, then keeps them alive and serves their pods until `stop`.
pub async fn run(
    client: Client,
    config: FakeNodesConfig,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let nodes = node::register(&client, &config).await?;
    tracing::info!(count = nodes.len(), "fake nodes registered and Ready");
    let nodes = Arc::new(nodes);
    let heartbeat = tokio::spawn(node::heartbeat(
        client.clone(),
        config.clone(),
        nodes.clone(),
        stop.clone(),
    ));
    pods::serve(client, nodes, stop).await;
    let _ = heartbeat.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_as_kubectl_writes_them() {
        for (input, want) in [
            ("k=v:NoSchedule", Ok(("k", Some("v"), "NoSchedule"))),
            ("dedicated:NoExecute", Ok(("dedicated", None, "NoExecute"))),
            ("k=v", Err(())),
            ("k=v:Sometimes", Err(())),
            ("=v:NoSchedule", Err(())),
        ] {
            let got = parse_taint(input);
            match want {
                Ok((k, v, e)) => {
                    let t = got.expect(input);
                    assert_eq!(
                        (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
                        (k, v, e)
                    );
                }
                Err(()) => assert!(got.is_err(), "{input}"),
            }
        }
    }
}
