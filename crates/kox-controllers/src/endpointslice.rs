//! The EndpointSlice controller: keeps the EndpointSlices of each selector Service — at most
//! 100 endpoints per slice, one port list per slice, labelled
//! `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`, owned by the
//! Service (so the garbage collector removes them with it). Every pod the service selects
//! that has an IP is an endpoint, terminating ones included, with upstream's `ready`,
//! `serving` and `terminating` conditions.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tokio_util::sync::CancellationToken;

use crate::endpoints::{
    error_message, gets_endpoints, is_conflict, pod_hostname, pod_in_endpoints, pod_ready, pod_ref,
    selects, target_port, watch_services_and_pods,
};
use crate::informer::split_key;
use crate::{Action, Context, Controller};

/// The label naming a slice's service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The EndpointSlice controller (`--controllers` name `endpointslice`).
#[derive(Debug, Default)]
pub struct EndpointSliceController;

type PortKey = Vec<(String, i32, String)>;

/// The endpoints of a service grouped by their port list, each group sorted and cut into
/// slices of at most [`MAX_ENDPOINTS_PER_SLICE`].
fn desired_groups(svc: &Service, pods: &[Arc<Pod>]) -> BTreeMap<PortKey, Vec<Vec<Endpoint>>> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let mut groups: BTreeMap<PortKey, Vec<Endpoint>> = BTreeMap::new();
    for pod in pods {
        if !selects(svc, pod) || !pod_in_endpoints(pod, true) {
            continue;
        }
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        if ip.contains(':') {
            // IPv4 slices only.
            continue;
        }
        let mut ports: PortKey = Vec::new();
        for sp in spec.ports.iter().flatten() {
            if let Some(p) = target_port(sp, pod) {
                ports.push((
                    sp.name.clone().unwrap_or_default(),
                    p,
                    sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ));
            }
        }
        if ports.is_empty() && spec.ports.as_ref().is_some_and(|p| !p.is_empty()) {
            continue;
        }
        ports.sort();
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = pod_ready(pod);
        let ready = publish_not_ready || (serving && !terminating);
        groups.entry(ports).or_default().push(Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(serving || publish_not_ready),
                terminating: Some(terminating),
            }),
            hostname: pod_hostname(pod, svc),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
            ..Endpoint::default()
        });
    }
    groups
        .into_iter()
        .map(|(ports, mut endpoints)| {
            endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
            let chunks = endpoints
                .chunks(MAX_ENDPOINTS_PER_SLICE)
                .map(<[Endpoint]>::to_vec)
                .collect();
            (ports, chunks)
        })
        .collect()
}

fn slice_ports(ports: &PortKey) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|(name, port, protocol)| EndpointPort {
            name: Some(name.clone()),
            port: Some(*port),
            protocol: Some(protocol.clone()),
            app_protocol: None,
        })
        .collect()
}

fn port_key(slice: &EndpointSlice) -> PortKey {
    let mut key: PortKey = slice
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            )
        })
        .collect();
    key.sort();
    key
}

fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = crate::endpoints::endpoint_labels(svc);
    labels.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels
}

/// What to write so the service's slices match: (slices to create, slices to replace, names
/// to delete). Existing slices with the same port list are reused in name order.
fn plan(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
) -> (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<String>) {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let labels = slice_labels(svc);
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: name.clone(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut by_ports: BTreeMap<PortKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for s in existing {
        by_ports.entry(port_key(s)).or_default().push(s.clone());
    }
    for slices in by_ports.values_mut() {
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
    let mut groups = desired_groups(svc, pods);
    if groups.is_empty() {
        // A service with no endpoints still has one (empty) slice, as upstream's placeholder.
        let ports: PortKey = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .map(|ps| {
                let mut k: PortKey = ps
                    .iter()
                    .filter(|p| {
                        matches!(
                            p.target_port,
                            None | Some(
                                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(_)
                            )
                        )
                    })
                    .map(|p| {
                        (
                            p.name.clone().unwrap_or_default(),
                            match p.target_port {
                                Some(
                                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                                        t,
                                    ),
                                ) => t,
                                _ => p.port,
                            },
                            p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        )
                    })
                    .collect();
                k.sort();
                k
            })
            .unwrap_or_default();
        groups.insert(ports, vec![Vec::new()]);
    }
    let (mut create, mut update, mut delete) = (Vec::new(), Vec::new(), Vec::new());
    for (ports, chunks) in &groups {
        let mut reuse = by_ports.remove(ports).unwrap_or_default().into_iter();
        for endpoints in chunks {
            let want_ports = slice_ports(ports);
            match reuse.next() {
                Some(cur) => {
                    let same = cur.endpoints == *endpoints
                        && cur.ports.as_ref() == Some(&want_ports)
                        && cur.metadata.labels.as_ref() == Some(&labels)
                        && cur
                            .metadata
                            .owner_references
                            .as_ref()
                            .is_some_and(|o| o.contains(&owner));
                    if !same {
                        let mut s = (*cur).clone();
                        s.endpoints = endpoints.clone();
                        s.ports = Some(want_ports);
                        s.metadata.labels = Some(labels.clone());
                        s.metadata.owner_references = Some(vec![owner.clone()]);
                        update.push(s);
                    }
                }
                None => create.push(EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: svc.metadata.namespace.clone(),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner.clone()]),
                        ..ObjectMeta::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints: endpoints.clone(),
                    ports: Some(want_ports),
                }),
            }
        }
        delete.extend(reuse.filter_map(|s| s.metadata.name.clone()));
    }
    for slices in by_ports.into_values() {
        delete.extend(slices.into_iter().filter_map(|s| s.metadata.name.clone()));
    }
    (create, update, delete)
}

#[async_trait::async_trait]
impl Controller for EndpointSliceController {
    fn name(&self) -> &'static str {
        "endpointslice"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("endpointslice-controller")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["endpointslice-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let services = ctx.informers.get::<Service>();
        let pods = ctx.informers.get::<Pod>();
        let slices = ctx.informers.get::<EndpointSlice>();
        let queue = ctx.queue("endpoint_slice");
        watch_services_and_pods(&services, &pods, &queue);
        let q = queue.clone();
        slices.add_handler(move |change| {
            let s = change.object();
            let labels = s.metadata.labels.as_ref();
            if labels
                .and_then(|l| l.get(MANAGED_BY_LABEL))
                .map(String::as_str)
                == Some(MANAGED_BY)
                && let Some(svc) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                let ns = s.metadata.namespace.clone().unwrap_or_default();
                q.add(format!("{ns}/{svc}"));
            }
        });
        services.synced().await;
        pods.synced().await;
        slices.synced().await;
        let client = ctx.client.clone();
        let recorder = ctx.recorder("endpoint-slice-controller");
        // Upstream's --concurrent-service-endpoint-syncs default.
        queue
            .run_workers(5, stop, move |key| {
                let client = client.clone();
                let recorder = recorder.clone();
                let (services, pods, slices) = (services.clone(), pods.clone(), slices.clone());
                async move {
                    let (ns, name) = split_key(&key);
                    let ns = ns.unwrap_or("default");
                    let Some(svc) = services.get(&key) else {
                        // The garbage collector deletes the slices the service owned.
                        return Ok(Action::await_change());
                    };
                    if !gets_endpoints(&svc) {
                        return Ok(Action::await_change());
                    }
                    let existing: Vec<Arc<EndpointSlice>> = slices
                        .list_namespace(ns)
                        .into_iter()
                        .filter(|s| {
                            let l = s.metadata.labels.as_ref();
                            l.and_then(|l| l.get(SERVICE_NAME_LABEL))
                                .map(String::as_str)
                                == Some(name)
                                && l.and_then(|l| l.get(MANAGED_BY_LABEL)).map(String::as_str)
                                    == Some(MANAGED_BY)
                        })
                        .collect();
                    let (create, update, delete) = plan(&svc, &pods.list_namespace(ns), &existing);
                    let api: Api<EndpointSlice> = Api::namespaced(client, ns);
                    let written = async {
                        for s in update {
                            let n = s.metadata.name.clone().unwrap_or_default();
                            if let Err(e) = api.replace(&n, &PostParams::default(), &s).await {
                                return Err((
                                    format!(
                                        "failed to update {n} EndpointSlice for Service {ns}/{name}: {}",
                                        error_message(&e)
                                    ),
                                    e,
                                ));
                            }
                        }
                        for s in create {
                            match api.create(&PostParams::default(), &s).await {
                                Ok(_) => {}
                                Err(kube::Error::Api(e)) if e.code == 403 => {}
                                Err(e) => {
                                    return Err((
                                        format!(
                                            "failed to create EndpointSlice for Service {ns}/{name}: {}",
                                            error_message(&e)
                                        ),
                                        e,
                                    ));
                                }
                            }
                        }
                        for n in delete {
                            match api.delete(&n, &DeleteParams::default()).await {
                                Ok(_) => {}
                                Err(kube::Error::Api(e)) if e.code == 404 => {}
                                Err(e) => {
                                    return Err((
                                        format!(
                                            "Error deleting {n} EndpointSlice for Service {ns}/{name}: {}",
                                            error_message(&e)
                                        ),
                                        e,
                                    ));
                                }
                            }
                        }
                        Ok(())
                    };
                    if let Err((msg, e)) = written.await {
                        if is_conflict(&e) {
                            // A stale informer cache: retried, as upstream, without a Warning.
                            return Err(e.into());
                        }
                        recorder.warning(
                            svc.as_ref(),
                            "FailedToUpdateEndpointSlices",
                            &format!("Error updating Endpoint Slices for Service {ns}/{name}: {msg}"),
                        );
                        return Err(e.into());
                    }
                    Ok(Action::await_change())
                }
            })
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::tests::{pod, service};

    #[test]
    fn endpoints_carry_readiness_conditions_and_slices_hold_at_most_100() {
        let pods: Vec<Arc<Pod>> = (0..150)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    8080,
                    i % 2 == 0,
                )
            })
            .collect();
        let (create, update, delete) = plan(&service(false), &pods, &[]);
        assert!(update.is_empty() && delete.is_empty());
        assert_eq!(create.len(), 2);
        assert_eq!(create[0].endpoints.len(), 100);
        assert_eq!(create[1].endpoints.len(), 50);
        let labels = create[0].metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(create[0].ports.as_ref().unwrap()[0].port, Some(8080));
        let ready = create
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().unwrap().ready == Some(true))
            .count();
        assert_eq!(ready, 75);
    }

    #[test]
    fn an_up_to_date_slice_is_left_alone_and_a_stale_one_rewritten() {
        let pods = vec![pod("a", "10.0.0.1", 8080, true)];
        let (create, _, _) = plan(&service(false), &pods, &[]);
        let mut existing = create[0].clone();
        existing.metadata.name = Some("web-abcde".into());
        let existing = vec![Arc::new(existing)];
        let (c, u, d) = plan(&service(false), &pods, &existing);
        assert!(
            c.is_empty() && u.is_empty() && d.is_empty(),
            "{c:?} {u:?} {d:?}"
        );
        let pods = vec![pod("a", "10.0.0.1", 8080, false)];
        let (c, u, d) = plan(&service(false), &pods, &existing);
        assert!(c.is_empty() && d.is_empty());
        assert_eq!(u.len(), 1);
        let cond = u[0].endpoints[0].conditions.as_ref().unwrap();
        assert_eq!((cond.ready, cond.serving), (Some(false), Some(false)));
    }

    #[test]
    fn terminating_pods_stay_as_not_ready_terminating_endpoints() {
        let mut p = (*pod("a", "10.0.0.1", 8080, true)).clone();
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        let (create, _, _) = plan(&service(false), &[Arc::new(p)], &[]);
        let cond = create[0].endpoints[0].conditions.clone().unwrap();
        assert_eq!(
            (cond.ready, cond.serving, cond.terminating),
            (Some(false), Some(true), Some(true))
        );
    }
}
