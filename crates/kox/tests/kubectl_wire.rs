//! Wire fidelity: what the real kubectl (and clients comparing bytes) read from `kox server`
//! matches upstream's API server — error wording, object shape, body encoding.

mod common;

use common::{Cluster, wait_for};
use serde_json::Value;

/// A deployment whose container has `field: value` (YAML) spliced in.
fn deployment(name: &str, replicas: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: nginx
{container_extra}"
    )
}

/// Runs `kubectl create -f -` with `manifest`, expecting failure; returns stderr.
fn create_fails(c: &Cluster, manifest: &str) -> String {
    let out = c.kubectl_stdin(&["create", "-f", "-"], manifest);
    assert!(!out.status.success(), "creating should fail:\n{manifest}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn wire_matches_upstream() {
    let c = Cluster::start_with(&["--advertise-address", ADVERTISED]);
    type_errors_name_the_field(&c);
    bodies_end_with_a_newline(&c);
    objects_carry_status_and_omit_zeros(&c);
    smaller_deviations(&c);
    // Last: it deletes everything in `default`.
    the_kubernetes_service_comes_back(&c);
}

/// The address the test server advertises (never dialled: kubectl uses the bind address).
const ADVERTISED: &str = "10.11.12.13";

/// Issue 20 item 2: a value of the wrong type is named by its field path and Go type.
fn type_errors_name_the_field(c: &Cluster) {
    let prefix = "Error from server (BadRequest): error when creating \"STDIN\": Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal";
    let cases = [
        (
            deployment(
                "env",
                "1",
                "        env:\n        - name: PORT\n          value: 8080\n",
            ),
            "number into Go struct field EnvVar.spec.template.spec.containers.env.value of type string",
        ),
        (
            deployment("replicas", "three", ""),
            "string into Go struct field DeploymentSpec.spec.replicas of type int32",
        ),
        (
            deployment(
                "port",
                "1",
                "        ports:\n        - containerPort: \"80\"\n",
            ),
            "string into Go struct field ContainerPort.spec.template.spec.containers.ports.containerPort of type int32",
        ),
        (
            deployment("map", "1", "").replace(
                "      containers:\n      - name: web\n        image: nginx\n",
                "      containers:\n        name: web\n        image: nginx\n",
            ),
            "object into Go struct field PodSpec.spec.template.spec.containers of type []v1.Container",
        ),
    ];
    for (manifest, words) in cases {
        let err = create_fails(c, &manifest);
        assert!(
            err.contains(&format!("{prefix} {words}")),
            "want `{prefix} {words}`, got: {err}"
        );
    }
    let err = create_fails(
        c,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {key: not base64}\n",
    );
    assert!(
        err.contains("Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3"),
        "{err}"
    );
}

/// Issue 20 item 6: JSON bodies end with a newline, as upstream's encoder writes them;
/// `/version` is upstream's indented raw JSON without one.
fn bodies_end_with_a_newline(c: &Cluster) {
    for path in [
        "/api/v1/namespaces/default",
        "/api/v1/namespaces?limit=1",
        "/api",
        "/apis/apps/v1",
    ] {
        let body = c.ok(&["get", "--raw", path]);
        assert!(body.ends_with("}\n"), "{path}: {body:?}");
        assert!(!body.ends_with("\n\n"), "{path}: {body:?}");
    }
    let version = c.ok(&["get", "--raw", "/version"]);
    assert!(version.starts_with("{\n  \"major\""), "{version:?}");
}

/// Issue 20 item 5: a Service always has `status.loadBalancer`, workloads `status: {}` from
/// create on, and zero values upstream leaves out (`omitempty`) are not written.
fn objects_carry_status_and_omit_zeros(c: &Cluster) {
    c.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let svc = json(&c.ok(&["get", "--raw", "/api/v1/namespaces/default/services/web"]));
    assert_eq!(
        svc["status"],
        serde_json::json!({"loadBalancer": {}}),
        "{svc}"
    );

    let created = json(&c.ok_stdin(
        &["create", "-f", "-", "-o", "json"],
        &deployment("zero", "0", ""),
    ));
    assert_eq!(created["status"], serde_json::json!({}), "{created}");
    assert_eq!(
        created["spec"]["template"]["spec"]["containers"][0]["resources"],
        serde_json::json!({}),
        "{created}"
    );
    for (kind, name, manifest) in [
        (
            "jobs",
            "j",
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  suspend: true\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: a, image: busybox}]\n",
        ),
        (
            "cronjobs",
            "cj",
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: cj}\nspec:\n  schedule: '@yearly'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: a, image: busybox}]\n",
        ),
        (
            "ingresses",
            "ing",
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ing}\nspec:\n  defaultBackend: {service: {name: web, port: {number: 80}}}\n",
        ),
    ] {
        let obj = json(&c.ok_stdin(&["create", "-f", "-", "-o", "json"], manifest));
        assert!(obj["status"].is_object(), "{kind}/{name}: {obj}");
    }

    // The controller's status of a Deployment of 0 replicas: no zero counts.
    let status = wait_for(30, "the zero deployment's status", || {
        let d = json(&c.ok(&["get", "deployment", "zero", "-o", "json"]));
        match d["status"]["observedGeneration"].as_i64() {
            Some(_) => Ok(d["status"].clone()),
            None => Err(d.to_string()),
        }
    });
    for zero in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ] {
        assert!(status.get(zero).is_none(), "{zero} in {status}");
    }
}

/// Issue 20 item 4: the `kubernetes` Service, Endpoints and EndpointSlice are upstream's and
/// come back within seconds of being deleted.
fn the_kubernetes_service_comes_back(c: &Cluster) {
    let slice = wait_for(15, "the kubernetes EndpointSlice", || {
        let out = c.kubectl(&["get", "endpointslice", "kubernetes", "-o", "json"]);
        if out.status.success() {
            Ok(json(&String::from_utf8_lossy(&out.stdout)))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    assert_eq!(
        slice["metadata"]["labels"],
        serde_json::json!({"kubernetes.io/service-name": "kubernetes"}),
        "{slice}"
    );
    assert_eq!(slice["addressType"], "IPv4", "{slice}");
    assert_eq!(
        slice["endpoints"],
        serde_json::json!([{"addresses": [ADVERTISED], "conditions": {"ready": true}}]),
        "{slice}"
    );
    assert_eq!(slice["ports"][0]["name"], "https", "{slice}");
    let port = slice["ports"][0]["port"].as_i64().expect("a port");
    let described = c.ok(&["describe", "service", "kubernetes"]);
    let endpoints = described
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_default();
    assert!(
        endpoints.ends_with(&format!("{ADVERTISED}:{port}")),
        "{described}"
    );

    c.ok(&["delete", "all", "--all", "-n", "default"]);
    // The endpoints controller may have taken the Endpoints with the Service already.
    c.ok(&[
        "delete",
        "endpointslice",
        "kubernetes",
        "--ignore-not-found",
    ]);
    c.ok(&["delete", "endpoints", "kubernetes", "--ignore-not-found"]);
    wait_for(
        25,
        "the kubernetes service, endpoints and slice to come back",
        || {
            for what in ["service", "endpoints", "endpointslice"] {
                let out = c.kubectl(&["get", what, "kubernetes", "-o", "name"]);
                if !out.status.success() {
                    return Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
            Ok(())
        },
    );
    let svc = json(&c.ok(&["get", "service", "kubernetes", "-o", "json"]));
    assert_eq!(svc["spec"]["ports"][0]["port"], 443, "{svc}");
}

/// Issue 20's smaller deviations, each as upstream has it.
fn smaller_deviations(c: &Cluster) {
    // A new Deployment stays at generation 1: the controller's revision annotation goes
    // through the status subresource.
    c.ok_stdin(&["create", "-f", "-"], &deployment("gen", "0", ""));
    let d = wait_for(30, "the revision annotation", || {
        let d = json(&c.ok(&["get", "deployment", "gen", "-o", "json"]));
        match d["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str() {
            Some("1") => Ok(d),
            _ => Err(d.to_string()),
        }
    });
    assert_eq!(d["metadata"]["generation"], 1, "{d}");

    // Pods: no generation, the serviceAccount alias, the default preemption policy.
    c.ok(&["run", "p", "--image=nginx"]);
    let pod = json(&c.ok(&["get", "pod", "p", "-o", "json"]));
    assert!(pod["metadata"].get("generation").is_none(), "{pod}");
    assert_eq!(pod["spec"]["serviceAccount"], "default", "{pod}");
    assert_eq!(pod["spec"]["serviceAccountName"], "default", "{pod}");
    assert_eq!(
        pod["spec"]["preemptionPolicy"], "PreemptLowerPriority",
        "{pod}"
    );

    // A deprecated API warns.
    let out = c.kubectl(&["get", "cs"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: v1 ComponentStatus is deprecated in v1.19+"),
        "{stderr}"
    );

    // A workload without a selector is Invalid (422), not a bad request.
    let err = create_fails(
        c,
        &deployment("nosel", "1", "").replace("  selector:\n    matchLabels: {app: nosel}\n", ""),
    );
    assert!(
        err.contains("The Deployment \"nosel\" is invalid")
            && err.contains("spec.selector: Required value"),
        "{err}"
    );

    // A PATCH may not change the uid: 422, where a PUT's uid is a precondition (409).
    let uid = "00000000-0000-0000-0000-000000000001";
    let err = c.fails(&[
        "patch",
        "deployment",
        "gen",
        "--type=merge",
        "-p",
        &format!("{{\"metadata\":{{\"uid\":\"{uid}\"}}}}"),
    ]);
    assert!(
        err.contains(&format!(
            "The Deployment \"gen\" is invalid: metadata.uid: Invalid value: \"{uid}\": field is immutable"
        )),
        "{err}"
    );

    // Changing a port's number keeps its NodePort.
    c.ok(&["create", "service", "nodeport", "np", "--tcp=80:8080"]);
    let node_port = |c: &Cluster| {
        json(&c.ok(&["get", "service", "np", "-o", "json"]))["spec"]["ports"][0]["nodePort"]
            .as_i64()
            .expect("a node port")
    };
    let before = node_port(c);
    c.ok(&[
        "patch",
        "service",
        "np",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/port","value":81}]"#,
    ]);
    assert_eq!(node_port(c), before);
}
