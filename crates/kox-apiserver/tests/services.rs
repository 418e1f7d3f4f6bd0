//! Service address allocation: ClusterIPs and NodePorts unique, explicit addresses claimed,
//! released on delete, and immutable, as upstream's service REST
//! (`pkg/registry/core/service/storage`, `ipallocator`, `portallocator`) and
//! `ValidateServiceUpdate` behave.

mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::{api_error, start};

fn service(name: &str, extra: serde_json::Value) -> Service {
    let mut spec = json!({ "selector": { "app": name }, "ports": [{ "port": 80 }] });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).unwrap()
}

#[tokio::test]
async fn cluster_ips_are_unique_across_many_creates() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    let creates = (0..40).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            api.create(
                &PostParams::default(),
                &service(&format!("svc-{i}"), json!({})),
            )
            .await
            .unwrap()
        })
    });
    let created = futures::future::join_all(creates).await;
    let mut ips = BTreeSet::new();
    for svc in created {
        let spec = svc.unwrap().spec.unwrap();
        let ip = spec.cluster_ip.unwrap();
        assert_eq!(spec.cluster_ips, Some(vec![ip.clone()]));
        assert!(ip.starts_with("10.43."), "{ip}");
        assert_ne!(
            ip, "10.43.0.1",
            "the kubernetes service's address was handed out again"
        );
        assert!(ips.insert(ip.clone()), "{ip} allocated twice");
    }
    assert_eq!(ips.len(), 40);
}

#[tokio::test]
async fn node_ports_are_unique_and_in_range() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    let creates = (0..20).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            let svc = service(
                &format!("np-{i}"),
                json!({ "type": "NodePort", "ports": [
                    { "name": "http", "port": 80 },
                    { "name": "https", "port": 443 },
                ] }),
            );
            api.create(&PostParams::default(), &svc).await.unwrap()
        })
    });
    let mut ports = BTreeSet::new();
    for svc in futures::future::join_all(creates).await {
        for p in svc.unwrap().spec.unwrap().ports.unwrap() {
            let np = p.node_port.expect("a nodePort for a NodePort service");
            assert!((30000..=32767).contains(&np), "{np}");
            assert!(ports.insert(np), "{np} allocated twice");
        }
    }
    assert_eq!(ports.len(), 40);
}

#[tokio::test]
async fn explicit_cluster_ip_already_in_use_is_invalid() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &service("first", json!({ "clusterIP": "10.43.0.50" })),
    )
    .await
    .unwrap();
    let err = api_error(
        api.create(
            &PostParams::default(),
            &service("second", json!({ "clusterIP": "10.43.0.50" })),
        )
        .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(
        err.message,
        "Service \"second\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.50\"}: \
         failed to allocate IP 10.43.0.50: provided IP is already allocated"
    );
    assert_eq!(err.details.unwrap().causes[0].field, "spec.clusterIPs");
}

#[tokio::test]
async fn explicit_node_port_already_in_use_is_invalid() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    let np = |name: &str| {
        service(
            name,
            json!({ "type": "NodePort", "ports": [{ "port": 80, "nodePort": 30080 }] }),
        )
    };
    api.create(&PostParams::default(), &np("first"))
        .await
        .unwrap();
    let err = api_error(api.create(&PostParams::default(), &np("second")).await);
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(
        err.message,
        "Service \"second\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided \
         port is already allocated"
    );
}

#[tokio::test]
async fn deleting_a_service_releases_its_cluster_ip() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &service("first", json!({ "clusterIP": "10.43.0.60" })),
    )
    .await
    .unwrap();
    api.delete("first", &DeleteParams::default()).await.unwrap();
    let again = api
        .create(
            &PostParams::default(),
            &service("second", json!({ "clusterIP": "10.43.0.60" })),
        )
        .await
        .unwrap();
    assert_eq!(
        again.spec.unwrap().cluster_ip.as_deref(),
        Some("10.43.0.60")
    );
}

#[tokio::test]
async fn failed_create_does_not_leak_its_cluster_ip() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    // Invalid (a port out of range) after the address is asked for: nothing must stay claimed.
    let bad = service(
        "bad",
        json!({ "clusterIP": "10.43.0.70", "ports": [{ "port": 0 }] }),
    );
    assert_eq!(
        api_error(api.create(&PostParams::default(), &bad).await).code,
        422
    );
    api.create(
        &PostParams::default(),
        &service("good", json!({ "clusterIP": "10.43.0.70" })),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn cluster_ip_outside_the_range_is_invalid() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    let err = api_error(
        api.create(
            &PostParams::default(),
            &service("out", json!({ "clusterIP": "192.168.1.1" })),
        )
        .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
}

#[tokio::test]
async fn cluster_ip_cannot_be_changed() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &service("fixed", json!({})))
        .await
        .unwrap();
    let ip = created.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    let other = if ip == "10.43.0.99" {
        "10.43.0.98"
    } else {
        "10.43.0.99"
    };
    let mut body = created.clone();
    let spec = body.spec.as_mut().unwrap();
    spec.cluster_ip = Some(other.into());
    spec.cluster_ips = Some(vec![other.into()]);
    let err = api_error(api.replace("fixed", &PostParams::default(), &body).await);
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    let causes = err.details.unwrap().causes;
    assert!(
        causes
            .iter()
            .any(|c| c.field == "spec.clusterIPs[0]"
                && c.message.contains("may not change once set")),
        "{causes:?}"
    );
    let stored = api.get("fixed").await.unwrap();
    assert_eq!(stored.spec.unwrap().cluster_ip, Some(ip));
}

#[tokio::test]
async fn update_without_cluster_ip_keeps_the_allocated_one() {
    let s = start().await;
    let api: Api<Service> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &service("keep", json!({})))
        .await
        .unwrap();
    let ip = created.spec.as_ref().unwrap().cluster_ip.clone();
    let mut body = service("keep", json!({ "ports": [{ "port": 8080 }] }));
    body.metadata.resource_version = created.metadata.resource_version.clone();
    let written = api
        .replace("keep", &PostParams::default(), &body)
        .await
        .unwrap();
    assert_eq!(written.spec.unwrap().cluster_ip, ip);
}
