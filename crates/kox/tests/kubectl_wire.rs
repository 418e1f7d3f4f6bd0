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
    let c = Cluster::start();
    type_errors_name_the_field(&c);
    bodies_end_with_a_newline(&c);
    objects_carry_status_and_omit_zeros(&c);
}

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
