//! What a cluster has from its first start: the system namespaces, the system priority classes
//! and the `kubernetes` service (with its Endpoints and EndpointSlice, kept as they should be).

use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::registry::{FieldValidation, ObjectRef, Registry, WriteOptions};
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
pub async fn ensure(registry: &Registry, kubernetes: &KubernetesService) -> ApiResult<()> {
    let opts = OPTS;
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
    if !kubernetes.advertise_ip.is_some_and(|ip| routable(&ip)) {
        tracing::info!("no routable advertise address: the kubernetes service gets no endpoints");
    }
    kubernetes.reconcile(registry).await
}

/// The `default/kubernetes` Service and its Endpoints and EndpointSlice, pointing at this API
/// server: created at start and reconciled every [`RECONCILE_EVERY`], so a deleted one comes
/// back (upstream's master-endpoint reconciler).
#[derive(Debug, Clone)]
pub struct KubernetesService {
    /// The Service's cluster IP, the first of the service range.
    pub service_ip: String,
    /// The port this API server serves on.
    pub secure_port: u16,
    /// The address clients reach this API server at; without a routable one there are no
    /// endpoints (upstream refuses loopback endpoints).
    pub advertise_ip: Option<std::net::IpAddr>,
}

/// How often the `kubernetes` Service, Endpoints and EndpointSlice are put back.
pub const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl KubernetesService {
    /// Creates what is missing and puts back the parts of the Endpoints and EndpointSlice this
    /// server owns; the Service is only recreated, as upstream leaves an existing one alone.
    pub async fn reconcile(&self, registry: &Registry) -> ApiResult<()> {
        let svc_def = resources::find("", "v1", "services").expect("services are served");
        ignore_exists(
            registry
                .create(svc_def, Some("default"), self.service(), OPTS)
                .await,
        )?;
        let Some(ip) = self.advertise_ip.filter(routable) else {
            return Ok(());
        };
        let ep_def = resources::find("", "v1", "endpoints").expect("endpoints are served");
        put(registry, ep_def, self.endpoints(ip), &["subsets"]).await?;
        let slice_def = resources::find("discovery.k8s.io", "v1", "endpointslices")
            .expect("endpoint slices are served");
        put(
            registry,
            slice_def,
            self.endpoint_slice(ip),
            &["addressType", "endpoints", "ports"],
        )
        .await
    }

    /// Reconciles every [`RECONCILE_EVERY`] until `stop`.
    pub async fn run(self, app: std::sync::Arc<crate::server::App>) {
        let stop = app.shutdown.clone();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RECONCILE_EVERY) => {}
            }
            if let Err(e) = self.reconcile(&app.registry).await {
                tracing::warn!("reconciling the kubernetes service: {}", e.message());
            }
        }
    }

    fn service(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": { "component": "apiserver", "provider": "kubernetes" },
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": self.service_ip,
                "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": self.secure_port }],
                "sessionAffinity": "None",
            },
        })
    }

    /// Upstream's Endpoints, marked so that no mirroring controller copies them.
    fn endpoints(&self, ip: std::net::IpAddr) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": { "endpointslice.kubernetes.io/skip-mirror": "true" },
            },
            "subsets": [{
                "addresses": [{ "ip": ip.to_string() }],
                "ports": [{ "name": "https", "port": self.secure_port, "protocol": "TCP" }],
            }],
        })
    }

    /// Upstream's `endpointSliceFromEndpoints`: the service-name label only (no managed-by, so
    /// the EndpointSlice controller leaves it alone), one ready endpoint.
    fn endpoint_slice(&self, ip: std::net::IpAddr) -> Value {
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": { "kubernetes.io/service-name": "kubernetes" },
            },
            "addressType": if ip.is_ipv6() { "IPv6" } else { "IPv4" },
            "endpoints": [{ "addresses": [ip.to_string()], "conditions": { "ready": true } }],
            "ports": [{ "name": "https", "port": self.secure_port, "protocol": "TCP" }],
        })
    }
}

const OPTS: WriteOptions<'static> = WriteOptions {
    dry_run: false,
    field_validation: FieldValidation::Strict,
    user: None,
    requested: None,
};

/// Creates `desired` in `default`, or sets its `fields` and labels on the existing object (an
/// unchanged object is not written).
async fn put(
    registry: &Registry,
    def: &'static resources::ResourceDef,
    desired: Value,
    fields: &[&str],
) -> ApiResult<()> {
    let name = desired["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = ObjectRef {
        def,
        namespace: Some("default"),
        name: &name,
    };
    match registry.get(r).await {
        Err(e) if e.code() == 404 => {
            return ignore_exists(registry.create(def, Some("default"), desired, OPTS).await);
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    registry
        .update_with(r, None, OPTS, |current| {
            let mut new = current.clone();
            for f in fields {
                new[*f] = desired[*f].clone();
            }
            for (k, v) in desired["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
            {
                new["metadata"]["labels"][k] = v.clone();
            }
            Ok((new, Vec::new()))
        })
        .await
        .map(drop)
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
