//! The endpoints controller: keeps each selector Service's `Endpoints` (same name) listing
//! the IPs and ports of the pods it selects — ready pods under `addresses`, the others under
//! `notReadyAddresses` (all under `addresses` with `publishNotReadyAddresses`) — with named
//! target ports resolved per pod. Services without a selector (such as `kubernetes`, whose
//! endpoints the API server keeps) are left alone.
//!
//! The pod-to-service helpers here are shared with the EndpointSlice controller.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tokio_util::sync::CancellationToken;

use crate::informer::{Informer, key_of, split_key};
use crate::{Action, Context, Controller, WorkQueue};

/// The endpoints controller (`--controllers` name `endpoint`).
#[derive(Debug, Default)]
pub struct EndpointsController;

/// Whether the service's selector selects the pod (a service without selector selects none).
pub(crate) fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    if selector.is_empty() {
        return false;
    }
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether the service is one whose endpoints a controller computes.
/// Whether this controller (and the EndpointSlice controller) gives the service endpoints:
/// upstream's `syncService` skips ExternalName services (kubernetes#105986) and services
/// without a selector, whose endpoints are written out-of-band.
pub(crate) fn gets_endpoints(svc: &Service) -> bool {
    let external_name = svc
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "ExternalName");
    !external_name && has_selector(svc) && svc.metadata.deletion_timestamp.is_none()
}

/// A 409 on a write: the informer's copy was out of date. Upstream's stale-cache case —
/// requeued, with no Warning event.
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

pub(crate) fn has_selector(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// Upstream's `ShouldPodBeInEndpoints`: a pod with an IP, not finished, and (unless
/// `include_terminating`) not being deleted.
pub(crate) fn pod_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    if matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    if status
        .and_then(|s| s.pod_ip.as_deref())
        .is_none_or(str::is_empty)
    {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Whether the pod's `Ready` condition is `True`.
pub(crate) fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's port a service port targets: a number as is, a name looked up among the pod's
/// container ports (`None` if the pod has no such port).
pub(crate) fn target_port(svc_port: &ServicePort, pod: &Pod) -> Option<i32> {
    match &svc_port.target_port {
        None => Some(svc_port.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => {
            let protocol = svc_port.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

pub(crate) fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The hostname a pod has in its service's DNS: its `spec.hostname` when its `subdomain` is
/// the service.
pub(crate) fn pod_hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref())
        .then(|| spec.hostname.clone())
        .flatten()
        .filter(|h| !h.is_empty())
}

/// Registers the handlers that enqueue the services a pod or service change concerns.
pub(crate) fn watch_services_and_pods(
    services: &Informer<Service>,
    pods: &Informer<Pod>,
    queue: &WorkQueue,
) {
    let q = queue.clone();
    services.add_handler(move |change| q.add_change(change));
    let q = queue.clone();
    let svcs = services.clone();
    pods.add_handler(move |change| {
        let pod = change.object();
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        for svc in svcs.list_namespace(ns) {
            if selects(&svc, pod) || change.old().is_some_and(|old| selects(&svc, old)) {
                q.add(key_of(svc.as_ref()));
            }
        }
    });
}

/// The subsets the service's endpoints should have, as upstream packs them: addresses
/// grouped by identical port lists, sorted.
pub(crate) fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    // Port list → (ready, not ready) addresses.
    type Addresses = (Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<Vec<(String, i32, String)>, Addresses> = BTreeMap::new();
    for pod in pods {
        if !selects(svc, pod) || !pod_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let mut ports: Vec<(String, i32, String)> = Vec::new();
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
        let status = pod.status.as_ref();
        let addr = EndpointAddress {
            ip: status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
            hostname: pod_hostname(pod, svc),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
        };
        let entry = groups.entry(ports).or_default();
        if publish_not_ready || pod_ready(pod) {
            entry.0.push(addr);
        } else {
            entry.1.push(addr);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// The labels of a service's endpoints: the service's own, plus the headless marker.
pub(crate) fn endpoint_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    labels
}

/// An API error as Go's `err.Error()` prints it in upstream's event messages: the status
/// message for an API status, else the error itself.
pub(crate) fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl Controller for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoint"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("endpoint-controller")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["endpoints-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let services = ctx.informers.get::<Service>();
        let pods = ctx.informers.get::<Pod>();
        let endpoints = ctx.informers.get::<Endpoints>();
        let queue = ctx.queue("endpoint");
        watch_services_and_pods(&services, &pods, &queue);
        services.synced().await;
        pods.synced().await;
        endpoints.synced().await;
        let client = ctx.client.clone();
        let recorder = ctx.recorder("endpoint-controller");
        // Upstream's --concurrent-endpoint-syncs default.
        queue
            .run_workers(5, stop, move |key| {
                let client = client.clone();
                let recorder = recorder.clone();
                let (services, pods, endpoints) =
                    (services.clone(), pods.clone(), endpoints.clone());
                async move {
                    let (ns, name) = split_key(&key);
                    let ns = ns.unwrap_or("default");
                    let api: Api<Endpoints> = Api::namespaced(client, ns);
                    let Some(svc) = services.get(&key) else {
                        // The service is gone: so are its endpoints.
                        if endpoints.get(&key).is_some() {
                            match api.delete(name, &DeleteParams::default()).await {
                                Ok(_) => {}
                                Err(kube::Error::Api(s)) if s.code == 404 => {}
                                Err(e) => return Err(e.into()),
                            }
                        }
                        return Ok(Action::await_change());
                    };
                    if !gets_endpoints(&svc) {
                        return Ok(Action::await_change());
                    }
                    let subsets = subsets(&svc, &pods.list_namespace(ns));
                    let labels = endpoint_labels(&svc);
                    let current = endpoints.get(&key);
                    let subsets = (!subsets.is_empty()).then_some(subsets);
                    match current {
                        Some(cur)
                            if cur.subsets == subsets
                                && cur.metadata.labels.clone().unwrap_or_default() == labels =>
                        {
                            Ok(Action::await_change())
                        }
                        Some(cur) => {
                            let mut new = (*cur).clone();
                            new.subsets = subsets;
                            new.metadata.labels = Some(labels);
                            if let Err(e) = api.replace(name, &PostParams::default(), &new).await {
                                if is_conflict(&e) {
                                    return Err(e.into());
                                }
                                recorder.warning(
                                    &new,
                                    "FailedToUpdateEndpoint",
                                    &format!(
                                        "Failed to update endpoint {ns}/{name}: {}",
                                        error_message(&e)
                                    ),
                                );
                                return Err(e.into());
                            }
                            Ok(Action::await_change())
                        }
                        None => {
                            let new = Endpoints {
                                metadata: ObjectMeta {
                                    name: Some(name.to_string()),
                                    namespace: Some(ns.to_string()),
                                    labels: Some(labels),
                                    ..ObjectMeta::default()
                                },
                                subsets,
                            };
                            match api.create(&PostParams::default(), &new).await {
                                Ok(_) => Ok(Action::await_change()),
                                Err(kube::Error::Api(s)) if s.code == 403 => {
                                    Ok(Action::await_change())
                                }
                                Err(e) => {
                                    recorder.warning(
                                        &new,
                                        "FailedToCreateEndpoint",
                                        &format!(
                                            "Failed to create endpoint for service {ns}/{name}: {}",
                                            error_message(&e)
                                        ),
                                    );
                                    Err(e.into())
                                }
                            }
                        }
                    }
                }
            })
            .await;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };

    pub(crate) fn service(publish_not_ready: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".into(), "web".into())])),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("web".into())),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                publish_not_ready_addresses: publish_not_ready.then_some(true),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn external_name_and_selectorless_services_get_no_endpoints() {
        let svc = service(false);
        assert!(gets_endpoints(&svc));
        let mut ext = svc.clone();
        ext.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        ext.spec.as_mut().unwrap().external_name = Some("example.com".into());
        assert!(!gets_endpoints(&ext));
        let mut bare = svc.clone();
        bare.spec.as_mut().unwrap().selector = None;
        assert!(!gets_endpoints(&bare));
        let conflict = kube::Error::Api(
            kube::core::Status::failure("the object has been modified", "Conflict")
                .with_code(409)
                .boxed(),
        );
        assert!(is_conflict(&conflict));
    }

    pub(crate) fn pod(name: &str, ip: &str, port: i32, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("web".into()),
                        container_port: port,
                        ..ContainerPort::default()
                    }]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some(ip.into()),
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        })
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_readiness_splits_addresses() {
        let pods = vec![
            pod("a", "10.0.0.2", 8080, true),
            pod("b", "10.0.0.1", 8080, false),
            pod("c", "10.0.0.3", 9090, true),
        ];
        let subsets = subsets(&service(false), &pods);
        assert_eq!(subsets.len(), 2, "two port lists: 8080 and 9090");
        let s8080 = &subsets[0];
        assert_eq!(s8080.ports.as_ref().unwrap()[0].port, 8080);
        assert_eq!(s8080.addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert_eq!(
            s8080.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.0.0.1"
        );
        assert_eq!(subsets[1].ports.as_ref().unwrap()[0].port, 9090);
    }

    #[test]
    fn publish_not_ready_addresses_lists_every_pod_as_ready() {
        let pods = vec![pod("b", "10.0.0.1", 8080, false)];
        let subsets = subsets(&service(true), &pods);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 1);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn pods_without_ip_or_finished_or_unselected_are_left_out() {
        let mut no_ip = (*pod("a", "", 8080, true)).clone();
        no_ip.status.as_mut().unwrap().pod_ip = None;
        let mut done = (*pod("b", "10.0.0.2", 8080, true)).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut other = (*pod("c", "10.0.0.3", 8080, true)).clone();
        other.metadata.labels = Some(BTreeMap::from([("app".into(), "db".into())]));
        let pods: Vec<Arc<Pod>> = [no_ip, done, other].into_iter().map(Arc::new).collect();
        assert!(subsets(&service(false), &pods).is_empty());
    }
}
