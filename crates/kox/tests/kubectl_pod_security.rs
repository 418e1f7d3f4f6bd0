//! PodSecurity admission configured as upstream's `PodSecurityConfiguration` (through
//! `--admission-control-config-file`): default levels for namespaces without labels, exempt
//! usernames, runtime classes and namespaces, and `audit` mode recorded on the audit event
//! (`pod-security.kubernetes.io/audit-violations`), driven with the real kubectl.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::Value;

const ADMISSION_CONFIG: &str = r#"apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  path: pod-security.yaml
"#;

const POD_SECURITY_CONFIG: &str = r#"apiVersion: pod-security.admission.config.k8s.io/v1
kind: PodSecurityConfiguration
defaults:
  enforce: baseline
  enforce-version: latest
  audit: restricted
  audit-version: latest
  warn: restricted
  warn-version: latest
exemptions:
  usernames: [deployer]
  runtimeClasses: [kata]
  namespaces: [legacy]
"#;

fn pod(name: &str, privileged: bool, runtime_class: Option<&str>) -> String {
    let rc = runtime_class
        .map(|rc| format!(r#""runtimeClassName":"{rc}","#))
        .unwrap_or_default();
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{{rc}"containers":[{{"name":"c","image":"nginx","securityContext":{{"privileged":{privileged}}}}}]}}}}"#
    )
}

/// The audit events of successful pod creates in `ns`, oldest first. (At the Metadata level a
/// create's event names no object, so tests tell creates apart by their order.)
fn pod_creates(log: &Path, ns: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["verb"] == "create"
                && e["objectRef"]["resource"] == "pods"
                && e["objectRef"]["namespace"] == ns
                && e["responseStatus"]["code"] == 201
        })
        .collect()
}

/// Creates `pod` in `ns` with `kubectl [extra] create -f -`; returns kubectl's stderr and the
/// annotations of the create's audit event.
fn create_audited(c: &Cluster, log: &Path, ns: &str, extra: &[&str], pod: &str) -> (String, Value) {
    let before = pod_creates(log, ns).len();
    let mut args = extra.to_vec();
    args.extend_from_slice(&["create", "-n", ns, "-f", "-"]);
    let out = c.kubectl_stdin(&args, pod);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = pod_creates(log, ns);
        if events.len() > before {
            return (stderr, events[before]["annotations"].clone());
        }
        assert!(
            Instant::now() < deadline,
            "no audit event for a pod create in {ns}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pod_security_defaults_exemptions_and_audit_annotations() {
    let files = tempfile::tempdir().unwrap();
    let admission = files.path().join("admission.yaml");
    std::fs::write(&admission, ADMISSION_CONFIG).unwrap();
    std::fs::write(files.path().join("pod-security.yaml"), POD_SECURITY_CONFIG).unwrap();
    let audit_log = files.path().join("audit.log");
    let c = Cluster::start_with(&[
        "--admission-control-config-file",
        admission.to_str().unwrap(),
        "--audit-log-path",
        audit_log.to_str().unwrap(),
    ]);
    for ns in ["plain", "legacy", "open"] {
        c.ok(&["create", "namespace", ns]);
    }
    c.ok(&[
        "label",
        "namespace",
        "open",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);

    // A namespace without labels gets the configured defaults: baseline enforced…
    let out = c.kubectl_stdin(
        &["create", "-n", "plain", "-f", "-"],
        &pod("priv", true, None),
    );
    assert!(!out.status.success(), "a privileged pod passed baseline");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#),
        "{err}"
    );
    // … restricted warned and audited.
    let (err, annotations) = create_audited(&c, &audit_log, "plain", &[], &pod("web", false, None));
    assert!(
        err.contains(r#"Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false"#),
        "{err}"
    );
    let violations = annotations["pod-security.kubernetes.io/audit-violations"]
        .as_str()
        .unwrap_or_default();
    assert!(
        violations.starts_with(
            r#"would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)"#
        ),
        "{annotations}"
    );
    assert_eq!(
        annotations["pod-security.kubernetes.io/enforce-policy"], "baseline:latest",
        "{annotations}"
    );

    // A label wins over the default.
    let (_, annotations) = create_audited(&c, &audit_log, "open", &[], &pod("priv", true, None));
    assert_eq!(
        annotations["pod-security.kubernetes.io/enforce-policy"],
        "privileged:latest"
    );

    // Exempt namespace, runtime class and user: admitted, and the audit event says why.
    let (_, annotations) = create_audited(&c, &audit_log, "legacy", &[], &pod("priv", true, None));
    assert_eq!(
        annotations["pod-security.kubernetes.io/exempt"],
        "namespace"
    );
    let sandboxed = pod("sandboxed", true, Some("kata"));
    let (_, annotations) = create_audited(&c, &audit_log, "plain", &[], &sandboxed);
    assert_eq!(
        annotations["pod-security.kubernetes.io/exempt"],
        "runtimeClass"
    );
    let issued = std::process::Command::new(env!("CARGO_BIN_EXE_kox"))
        .args(["kubeconfig", "--data-dir"])
        .arg(c.data_dir())
        .args(["--user", "deployer", "--group", "system:masters"])
        .output()
        .expect("kox kubeconfig");
    assert!(issued.status.success());
    let deployer = files.path().join("deployer.kubeconfig");
    std::fs::write(&deployer, &issued.stdout).unwrap();
    let as_deployer = ["--kubeconfig", deployer.to_str().unwrap()];
    let (_, annotations) = create_audited(
        &c,
        &audit_log,
        "plain",
        &as_deployer,
        &pod("by-deployer", true, None),
    );
    assert_eq!(annotations["pod-security.kubernetes.io/exempt"], "user");
    // A create's audit event names the object it made, as upstream's does.
    let last = pod_creates(&audit_log, "plain").pop().unwrap();
    assert_eq!(last["objectRef"]["name"], "by-deployer", "{last}");
}

#[test]
fn a_bad_admission_configuration_stops_the_server() {
    let files = tempfile::tempdir().unwrap();
    let admission = files.path().join("admission.yaml");
    std::fs::write(
        &admission,
        ADMISSION_CONFIG.replace("path: pod-security.yaml", "path: missing.yaml"),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kox"))
        .args([
            "server",
            "--disable-agent",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
        ])
        .arg(common::free_port().to_string())
        .arg("--data-dir")
        .arg(data.path())
        .arg("--admission-control-config-file")
        .arg(&admission)
        .output()
        .expect("run kox server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.yaml"), "{err}");
}
