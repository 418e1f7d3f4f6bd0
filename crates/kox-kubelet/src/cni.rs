//! The one-node pod network: a CNI config list (bridge + host-local on the node's pod range +
//! portmap, and loopback) that containerd runs for each sandbox. The several-nodes work
//! replaces this with routes between nodes' ranges.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

/// The bridge pods attach to.
pub const BRIDGE: &str = "kox0";

/// The config list for pods on `pod_cidr` (e.g. `10.42.0.0/24`).
pub fn conflist(pod_cidr: &str) -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "kox",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    })
}

/// Writes the config list into `conf_dir` (atomically: containerd watches the folder) and
/// turns on forwarding, which pod traffic leaving the node needs.
pub fn write(conf_dir: &Path, pod_cidr: &str) -> Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    let path = conf_dir.join("10-kox.conflist");
    let text = serde_json::to_string_pretty(&conflist(pod_cidr))?;
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let tmp = conf_dir.join(".10-kox.conflist.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    for (knob, value) in [("/proc/sys/net/ipv4/ip_forward", "1")] {
        if let Err(e) = std::fs::write(knob, value) {
            tracing::warn!("setting {knob} to {value}: {e}");
        }
    }
    Ok(())
}
