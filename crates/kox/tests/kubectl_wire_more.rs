//! More wire fidelity with the real kubectl: no endpoints for ExternalName services,
//! `autoscaling/v1` HorizontalPodAutoscalers, and enums in the OpenAPI schemas.

mod common;

use common::{Cluster, wait_for};
use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn slices_of(c: &Cluster, svc: &str) -> usize {
    let out = c.ok(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={svc}"),
        "-o",
        "json",
    ]);
    json(&out)["items"].as_array().map_or(0, Vec::len)
}

#[test]
fn kubectl_sees_upstreams_smaller_details() {
    let c = Cluster::start();

    // 1. An ExternalName service gets no EndpointSlice (nor Endpoints); a selector service
    //    created with its pods does, without conflict warnings.
    c.ok(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name",
        "example.com",
    ]);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    c.ok(&["expose", "deployment", "web", "--port=80"]);
    wait_for(30, "the web service's EndpointSlice", || {
        (slices_of(&c, "web") > 0)
            .then_some(())
            .ok_or("none yet".to_string())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        slices_of(&c, "ext"),
        0,
        "an ExternalName service has no slices"
    );
    let eps = c.kubectl(&["get", "endpoints", "ext"]);
    assert!(
        !eps.status.success(),
        "an ExternalName service has no Endpoints"
    );
    let events = c.ok(&["get", "events", "-o", "json"]);
    assert!(
        !events.contains("FailedToUpdateEndpointSlices"),
        "no stale-cache warnings: {events}"
    );

    // 2. autoscaling/v1 (`hpa.v1.autoscaling` is expanded by kubectl's shortcut expander to
    //    the preferred version, as against upstream; the full name picks v1) HorizontalPodAutoscalers, stored as v2.
    let groups = json(&c.ok(&["get", "--raw", "/apis/autoscaling"]));
    assert_eq!(groups["preferredVersion"]["version"], "v2");
    let versions: Vec<&str> = groups["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v2", "v1"]);
    let api_versions = c.ok(&["api-versions"]);
    assert!(api_versions.contains("autoscaling/v1") && api_versions.contains("autoscaling/v2"));
    let v1_list = json(&c.ok(&["get", "--raw", "/apis/autoscaling/v1"]));
    assert!(
        v1_list["resources"]
            .to_string()
            .contains("horizontalpodautoscalers")
    );

    c.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=1",
        "--max=3",
        "--cpu-percent=80",
    ]);
    let hpa = c.ok(&["get", "hpa"]);
    assert!(
        hpa.contains("web") && hpa.contains("Deployment/web"),
        "{hpa}"
    );
    let v1_table = c.ok(&["get", "horizontalpodautoscalers.v1.autoscaling"]);
    assert!(v1_table.contains("web"), "{v1_table}");
    let v1 = json(&c.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-o",
        "json",
    ]));
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80);
    assert_eq!(v1["spec"]["maxReplicas"], 3);
    let v2 = json(&c.ok(&[
        "get",
        "horizontalpodautoscalers.v2.autoscaling",
        "web",
        "-o",
        "json",
    ]));
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    let raw = json(&c.ok(&[
        "get",
        "--raw",
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers",
    ]));
    assert_eq!(raw["kind"], "HorizontalPodAutoscalerList");
    assert_eq!(raw["apiVersion"], "autoscaling/v1");
    assert_eq!(
        raw["items"][0]["spec"]["targetCPUUtilizationPercentage"],
        80
    );
    let yaml = c.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-o",
        "yaml",
    ]);
    assert!(
        yaml.contains("apiVersion: autoscaling/v1")
            && yaml.contains("targetCPUUtilizationPercentage: 80"),
        "{yaml}"
    );
    let watched = c.ok(&[
        "get",
        "--raw",
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers?watch=true&timeoutSeconds=1",
    ]);
    let first = json(watched.lines().next().expect("an event"));
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["apiVersion"], "autoscaling/v1");
    assert_eq!(
        first["object"]["spec"]["targetCPUUtilizationPercentage"],
        80
    );
    // A v1 patch and a v1 manifest.
    c.ok(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"targetCPUUtilizationPercentage":50}}"#,
    ]);
    let v2 = json(&c.ok(&["get", "hpa", "web", "-o", "json"]));
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    c.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: other
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  targetCPUUtilizationPercentage: 60
",
    );
    let other = json(&c.ok(&["get", "hpa", "other", "-o", "json"]));
    assert_eq!(
        other["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );
    c.ok(&["delete", "horizontalpodautoscalers.v1.autoscaling", "other"]);
    let explain = c.ok(&["explain", "hpa.spec", "--api-version=autoscaling/v1"]);
    assert!(
        explain.contains("targetCPUUtilizationPercentage"),
        "{explain}"
    );
    let explain = c.ok(&["explain", "hpa.spec"]);
    assert!(
        explain.contains("metrics") && explain.contains("VERSION:    v2"),
        "{explain}"
    );
    // kubectl 1.27's autoscale (autoscaling/v1 too).
    let old = std::path::Path::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.27");
    if old.exists() {
        let out = c
            .kubectl_program_cmd(
                old,
                &["autoscale", "deployment", "web", "--name=old", "--max=2"],
            )
            .output()
            .expect("kubectl 1.27 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let old_hpa = json(&c.ok(&["get", "hpa", "old", "-o", "json"]));
        assert_eq!(old_hpa["spec"]["maxReplicas"], 2);
    }

    // 3. Enum types list their values, as `kubectl explain` prints them.
    let explain = c.ok(&["explain", "svc.spec.type"]);
    assert!(explain.contains("ENUM:"), "{explain}");
    for v in ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"] {
        assert!(explain.contains(v), "{v} in {explain}");
    }
    let explain = c.ok(&["explain", "pod.spec.restartPolicy"]);
    assert!(
        explain.contains("ENUM:") && explain.contains("OnFailure"),
        "{explain}"
    );
    let explain = c.ok(&["explain", "deploy.spec.strategy.type"]);
    assert!(
        explain.contains("ENUM:") && explain.contains("Recreate"),
        "{explain}"
    );
    let explain = c.ok(&["explain", "svc.spec.sessionAffinity"]);
    assert!(
        explain.contains("ENUM:") && explain.contains("ClientIP"),
        "{explain}"
    );
}
