//! End to end: admission as the real `kubectl` sees it — quotas, Pod Security labels,
//! LimitRange defaults, protected namespaces and the webhook configuration resources.

mod common;

use common::{Cluster, table};

#[test]
fn a_quota_refuses_the_pod_past_its_limit_with_upstreams_message() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "q"]);
    c.ok(&[
        "create",
        "quota",
        "two-pods",
        "--hard=pods=1,configmaps=10",
        "-n",
        "q",
    ]);
    c.ok(&["run", "first", "--image=nginx", "-n", "q"]);
    let err = c.fails(&["run", "second", "--image=nginx", "-n", "q"]);
    assert!(
        err.contains(
            "Error from server (Forbidden): pods \"second\" is forbidden: exceeded quota: two-pods, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{err}"
    );
    let out = c.ok(&["describe", "quota", "two-pods", "-n", "q"]);
    let pods_row = out
        .lines()
        .find(|l| l.trim_start().starts_with("pods"))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(pods_row, vec!["pods", "1", "1"], "{out}");
    // A server-side dry run is checked too, and records nothing.
    let err = c.fails(&[
        "run",
        "third",
        "--image=nginx",
        "-n",
        "q",
        "--dry-run=server",
    ]);
    assert!(err.contains("exceeded quota: two-pods"), "{err}");
}

#[test]
fn pod_security_labels_enforce_and_warn() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "locked"]);
    c.ok(&[
        "label",
        "ns",
        "locked",
        "pod-security.kubernetes.io/enforce=baseline",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    let privileged = r#"{"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "root", "namespace": "locked"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                 "securityContext": {"privileged": true}}]}}"#;
    let out = c.kubectl_stdin(&["create", "-f", "-"], privileged);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "pods \"root\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
        ),
        "{err}"
    );
    // Baseline admits a plain pod, and the restricted warn level says why it would not.
    let out = c.kubectl(&["run", "plain", "--image=nginx", "-n", "locked"]);
    assert!(out.status.success(), "{out:?}");
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{warning}"
    );
    // Tightening the enforce level warns about the pods already there.
    let out = c.kubectl(&[
        "label",
        "ns",
        "locked",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    assert!(out.status.success(), "{out:?}");
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("Warning: existing pods in namespace \"locked\" violate the new PodSecurity enforce level \"restricted:latest\"")
            && warning.contains("Warning: plain: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"),
        "{warning}"
    );
    let err = c.fails(&[
        "label",
        "ns",
        "locked",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=everything",
    ]);
    assert!(
        err.contains("must be one of privileged, baseline, restricted"),
        "{err}"
    );
}

#[test]
fn limit_ranges_default_resources_and_system_namespaces_cannot_be_deleted() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "lr"]);
    let lr = r#"{"apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "defaults", "namespace": "lr"},
        "spec": {"limits": [{"type": "Container", "default": {"memory": "256Mi"},
                              "defaultRequest": {"memory": "64Mi"}}]}}"#;
    c.ok_stdin(&["create", "-f", "-"], lr);
    c.ok(&["run", "p", "--image=nginx", "-n", "lr"]);
    let limits = c.ok(&[
        "get",
        "pod",
        "p",
        "-n",
        "lr",
        "-o",
        "jsonpath={.spec.containers[0].resources.limits.memory} {.spec.containers[0].resources.requests.memory} {.spec.serviceAccountName}",
    ]);
    assert_eq!(limits, "256Mi 64Mi default");

    let err = c.fails(&["delete", "namespace", "kube-system"]);
    assert!(
        err.contains(
            "Error from server (Forbidden): namespaces \"kube-system\" is forbidden: this namespace may not be deleted"
        ),
        "{err}"
    );
}

#[test]
fn webhook_configurations_are_served_to_kubectl() {
    let c = Cluster::start();
    let cfg = r#"{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "policy"},
        "webhooks": [{"name": "policy.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                      "clientConfig": {"service": {"namespace": "default", "name": "policy"}},
                      "rules": [{"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}],
                      "failurePolicy": "Ignore"}]}"#;
    c.ok_stdin(&["create", "-f", "-"], cfg);
    let rows = table(&c.ok(&["get", "validatingwebhookconfigurations"]));
    assert_eq!(rows[0], vec!["NAME", "WEBHOOKS", "AGE"]);
    assert_eq!(rows[1][..2], ["policy".to_string(), "1".to_string()]);
    let res = c.ok(&["api-resources", "--api-group=admissionregistration.k8s.io"]);
    assert!(res.contains("mutatingwebhookconfigurations"), "{res}");
    // The service does not exist and the policy is Ignore: deployments are still created.
    c.ok(&["create", "deployment", "web", "--image=nginx"]);
    let explain = c.ok(&[
        "explain",
        "validatingwebhookconfigurations.webhooks.failurePolicy",
    ]);
    assert!(explain.contains("failurePolicy"), "{explain}");
    c.ok(&["delete", "validatingwebhookconfiguration", "policy"]);
}
