//! What a cluster has from its first start: the system namespaces and the `kubernetes` service.

use serde_json::json;

use crate::error::ApiResult;
use crate::registry::{FieldValidation, Registry, WriteOptions};
use crate::resources;

/// Namespaces that always exist.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The system priority classes: name, value, description (upstream's wording).
const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// Creates whatever of the bootstrap objects is missing (idempotent, run at every start).
pub async fn ensure(
    registry: &Registry,
    service_ip: &str,
    secure_port: u16,
    advertise_ip: Option<std::net::IpAddr>,
) -> ApiResult<()> {
    let opts = WriteOptions {
        dry_run: false,
        field_validation: FieldValidation::Strict,
        user: None,
    };
    let ns_def = resources::find("", "v1", "namespaces").expect("namespaces are served");
    for ns in SYSTEM_NAMESPACES {
        let body = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } });
        ignore_exists(registry.create(ns_def, None, body, opts).await)?;
        crate::admission::service_account::ensure_default(registry, ns).await;
    }
    // The built-in priority classes upstream's scheduling bootstrap creates.
    let pc_def = resources::find("scheduling.k8s.io", "v1", "priorityclasses")
        .expect("priority classes are served");
    for (name, value, description) in SYSTEM_PRIORITY_CLASSES {
        let body = json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": { "name": name },
            "value": value,
            "description": description,
        });
        ignore_exists(registry.create(pc_def, None, body, opts).await)?;
    }
    let svc_def = resources::find("", "v1", "services").expect("services are served");
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": { "component": "apiserver", "provider": "kubernetes" },
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": service_ip,
            "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port }],
            "sessionAffinity": "None",
        },
    });
    ignore_exists(registry.create(svc_def, Some("default"), svc, opts).await)?;
    // Endpoints may not point at loopback (as upstream validates): without a routable address
    // the `kubernetes` service has no endpoints until one is advertised.
    let Some(advertise_ip) = advertise_ip.filter(routable) else {
        tracing::info!("no routable advertise address: the kubernetes service gets no endpoints");
        return Ok(());
    };
    let advertise_ip = advertise_ip.to_string();
    let ep_def = resources::find("", "v1", "endpoints").expect("endpoints are served");
    let ep = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": { "name": "kubernetes", "namespace": "default", "labels": { "endpointslice.kubernetes.io/skip-mirror": "true" } },
        "subsets": [{ "addresses": [{ "ip": advertise_ip }], "ports": [{ "name": "https", "port": secure_port, "protocol": "TCP" }] }],
    });
    ignore_exists(registry.create(ep_def, Some("default"), ep, opts).await)?;
    Ok(())
}

/// Whether an address may be an endpoint (upstream refuses loopback, link-local and multicast).
fn routable(ip: &std::net::IpAddr) -> bool {
    let link_local = match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || link_local)
}

fn ignore_exists<T>(r: ApiResult<T>) -> ApiResult<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
