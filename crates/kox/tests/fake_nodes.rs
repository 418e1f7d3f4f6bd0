//! `kox fake-nodes` behaves towards the API server as kubelets do: each node renews its Lease
//! in `kube-node-lease` by updating (PUT) the Lease it last wrote, re-reading it after a
//! conflict, and re-creating it when it is gone.

mod common;

use std::path::Path;

use common::{Cluster, FakeNodes, wait_for};
use serde_json::Value;

/// (verb, code) of every audit event on the Lease `name` in kube-node-lease.
fn lease_requests(audit: &Path, name: &str) -> Vec<(String, u64)> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && e["objectRef"]["resource"] == "leases"
                && e["objectRef"]["namespace"] == "kube-node-lease"
                && e["objectRef"]["name"] == name
        })
        .map(|e| {
            (
                e["verb"].as_str().unwrap_or("").to_string(),
                e["responseStatus"]["code"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn lease_exists(c: &Cluster, name: &str) -> Result<(), String> {
    let out = c.kubectl(&["get", "lease", "-n", "kube-node-lease", name]);
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| String::from_utf8_lossy(&out.stderr).to_string())
}

fn renew_time(c: &Cluster, name: &str) -> String {
    c.ok(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        name,
        "-o",
        "jsonpath={.spec.renewTime}",
    ])
}

#[test]
fn node_leases_are_renewed_by_update_as_the_kubelet_does() {
    let audit_dir = tempfile::tempdir().unwrap();
    let audit = audit_dir.path().join("audit.log");
    let c = Cluster::start_with(&["--audit-log-path", audit.to_str().unwrap()]);
    let _nodes = FakeNodes::start(
        &c,
        "nodes.log",
        &[
            "--count",
            "1",
            "--name-prefix",
            "n-",
            "--heartbeat-seconds",
            "1",
        ],
    );
    let name = "n-0";
    wait_for(60, "the node's Lease", || lease_exists(&c, name));
    let first = renew_time(&c, name);
    wait_for(30, "3 successful Lease updates", || {
        let updates = lease_requests(&audit, name)
            .iter()
            .filter(|(verb, code)| verb == "update" && *code == 200)
            .count();
        (updates >= 3)
            .then_some(())
            .ok_or(format!("{updates} updates"))
    });
    assert_ne!(renew_time(&c, name), first, "renewTime advances");
    let requests = lease_requests(&audit, name);
    assert!(
        requests.iter().all(|(verb, _)| verb != "patch"),
        "renewals are updates, not patches: {requests:?}"
    );

    // A Lease deleted under the node is re-created.
    c.ok(&["delete", "lease", "-n", "kube-node-lease", name]);
    wait_for(30, "the Lease re-created", || lease_exists(&c, name));
    let requests = lease_requests(&audit, name);
    assert!(
        requests
            .iter()
            .filter(|(verb, code)| verb == "create" && *code == 201)
            .count()
            >= 2,
        "created at start and again after the delete: {requests:?}"
    );
}
