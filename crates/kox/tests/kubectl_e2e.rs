//! End to end: the real `kubectl` against a real `kox server`, checking what it prints and what
//! the cluster then holds.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{Cluster, table};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
"#;

/// Creates a ConfigMap from a manifest (`kubectl create configmap` sends protobuf, which the
/// server does not decode yet).
fn configmap(c: &Cluster, ns: &str, name: &str, data: &[(&str, &str)]) -> String {
    let data: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": data,
    });
    c.ok_stdin(&["create", "-f", "-"], &manifest.to_string())
}

#[test]
fn version_and_discovery_look_like_kubernetes() {
    let c = Cluster::start();
    let v = c.ok(&["version"]);
    assert!(v.contains("Server Version: v1.32.0+kox"), "{v}");

    let res = c.ok(&["api-resources"]);
    let rows = table(&res);
    let pods = rows.iter().find(|r| r[0] == "pods").expect("pods listed");
    assert_eq!(pods[1], "po", "{pods:?}");
    assert!(
        rows.iter()
            .any(|r| r[0] == "deployments" && r[1] == "deploy" && r[2] == "apps/v1"),
        "{res}"
    );
    assert!(
        rows.iter()
            .any(|r| r[0] == "leases" && r[1] == "coordination.k8s.io/v1"),
        "{res}"
    );

    let versions = c.ok(&["api-versions"]);
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "rbac.authorization.k8s.io/v1",
        "autoscaling/v2",
    ] {
        assert!(
            versions.lines().any(|l| l == gv),
            "{gv} missing from {versions}"
        );
    }
}

#[test]
fn system_namespaces_and_kubernetes_service_exist_from_the_start() {
    let c = Cluster::start();
    let ns = c.ok(&["get", "namespaces", "-o", "name"]);
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{want}")), "{ns}");
    }
    let svc = table(&c.ok(&["get", "svc", "kubernetes"]));
    assert_eq!(
        svc[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(
        &svc[1][..5],
        ["kubernetes", "ClusterIP", "10.43.0.1", "<none>", "443/TCP"]
    );
}

#[test]
fn componentstatuses_report_store_and_missing_components() {
    let c = Cluster::start();
    let out = c.ok(&["get", "componentstatuses"]);
    let rows = table(&out);
    assert_eq!(rows[0], ["NAME", "STATUS", "MESSAGE", "ERROR"]);
    let etcd = rows.iter().find(|r| r[0] == "etcd-0").expect("etcd-0 row");
    assert_eq!(etcd[1], "Healthy");
    let sched = out
        .lines()
        .find(|l| l.starts_with("scheduler"))
        .expect("scheduler row");
    assert!(sched.contains("Unhealthy"), "{sched}");
    assert!(
        sched.contains("dial tcp 127.0.0.1:10259: connect: connection refused"),
        "{sched}"
    );
}

#[test]
fn create_apply_and_replace_a_deployment() {
    let c = Cluster::start();
    let out = c.ok_stdin(&["create", "-f", "-"], DEPLOYMENT);
    assert_eq!(out.trim(), "deployment.apps/web created");

    let rows = table(&c.ok(&["get", "deploy", "web", "-o", "wide"]));
    assert_eq!(
        rows[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(rows[1][0], "web");
    assert_eq!(rows[1][1], "0/2");
    assert_eq!(&rows[1][5..], ["nginx", "nginx:1.27", "app=web"]);

    // apply over a create: configured (annotation added); again: unchanged.
    let out = c.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    assert!(out.contains("deployment.apps/web"), "{out}");
    let out = c.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    assert_eq!(out.trim(), "deployment.apps/web unchanged");

    // Change the container list: add a sidecar.
    let changed = DEPLOYMENT.replace(
        "        - containerPort: 80\n",
        "        - containerPort: 80\n      - name: sidecar\n        image: busybox:1.36\n",
    );
    let out = c.ok_stdin(&["apply", "-f", "-"], &changed);
    assert_eq!(out.trim(), "deployment.apps/web configured");
    let names = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert_eq!(names, "nginx sidecar");
    let generation = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    // Upstream bumps a Deployment's generation for annotation changes too (they are copied to
    // ReplicaSets): create = 1, the apply adding last-applied = 2, the sidecar = 3.
    assert_eq!(generation, "3");

    // Remove it again with apply.
    let out = c.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    assert_eq!(out.trim(), "deployment.apps/web configured");
    let names = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert_eq!(names, "nginx");

    // replace with a new replica count.
    let out = c.ok_stdin(
        &["replace", "-f", "-"],
        &DEPLOYMENT.replace("replicas: 2", "replicas: 4"),
    );
    assert_eq!(out.trim(), "deployment.apps/web replaced");
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
}

#[test]
fn patch_label_annotate_and_scale() {
    let c = Cluster::start();
    c.ok_stdin(&["create", "-f", "-"], DEPLOYMENT);
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
    ]);
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    c.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.28"}]}}}}"#,
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.28"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}"
        ]),
        "80",
        "strategic merge keeps the rest of the container"
    );

    let out = c.ok(&["label", "deploy", "web", "tier=frontend"]);
    assert_eq!(out.trim(), "deployment.apps/web labeled");
    let out = c.ok(&["annotate", "deploy", "web", "owner=team-a"]);
    assert_eq!(out.trim(), "deployment.apps/web annotated");
    assert_eq!(
        c.ok(&["get", "deploy", "-l", "tier=frontend", "-o", "name"])
            .trim(),
        "deployment.apps/web"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "-l", "tier!=frontend", "-o", "name"])
            .trim(),
        ""
    );

    let out = c.ok(&["scale", "deploy", "web", "--replicas=7"]);
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "7"
    );
}

#[test]
fn errors_print_as_upstream() {
    let c = Cluster::start();
    let err = c.fails(&["get", "pod", "nope"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );

    configmap(&c, "default", "cfg", &[("a", "b")]);
    let out = c.kubectl_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"}}"#,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#"Error from server (AlreadyExists): error when creating "STDIN": configmaps "cfg" already exists"#), "{err}");

    let bad_pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: Bad_Name\n";
    let err = c.kubectl_stdin(&["create", "-f", "-"], bad_pod);
    let err = String::from_utf8_lossy(&err.stderr);
    assert!(err.contains(r#"The Pod "bad" is invalid: "#), "{err}");
    assert!(
        err.contains("spec.containers[0].image: Required value"),
        "{err}"
    );
    assert!(
        err.contains("spec.containers[0].name: Invalid value: \"Bad_Name\""),
        "{err}"
    );

    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndatas:\n  a: b\n";
    let out = c.kubectl_stdin(&["create", "-f", "-"], unknown);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#"unknown field "datas""#), "{err}");
    assert!(
        !c.ok(&["get", "cm", "-o", "name"]).contains("configmap/x"),
        "nothing was written"
    );

    let err = c.fails(&["get", "namespaces", "--field-selector", "spec.bogus=1"]);
    assert!(
        err.contains("field label not supported: spec.bogus"),
        "{err}"
    );

    // Optimistic concurrency: an update with a stale resourceVersion is refused.
    let cm = c.ok(&["get", "cm", "cfg", "-o", "json"]);
    c.ok(&["label", "cm", "cfg", "x=1"]);
    let out = c.kubectl_stdin(&["replace", "-f", "-"], &cm);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"Operation cannot be fulfilled on configmaps "cfg": the object has been modified; please apply your changes to the latest version and try again"#),
        "{err}"
    );
}

#[test]
fn get_output_formats_selectors_and_sorting() {
    let c = Cluster::start();
    c.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}"#,
    );
    for (name, tier) in [("c", "b"), ("a", "a"), ("b", "a")] {
        configmap(&c, "team", name, &[("tier", tier)]);
        c.ok(&["label", "cm", name, "-n", "team", &format!("tier={tier}")]);
    }
    let names = c.ok(&["get", "cm", "-n", "team", "-l", "tier=a", "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["configmap/a", "configmap/b"]
    );
    let names = c.ok(&[
        "get",
        "cm",
        "-n",
        "team",
        "-l",
        "tier in (b)",
        "-o",
        "custom-columns=N:.metadata.name,T:.data.tier",
        "--no-headers",
    ]);
    assert_eq!(table(&names), [["c", "b"]]);
    let sorted = c.ok(&[
        "get",
        "cm",
        "-n",
        "team",
        "-l",
        "tier",
        "--sort-by",
        ".data.tier",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert!(sorted.ends_with('c'), "{sorted}");
    let by_field = c.ok(&[
        "get",
        "cm",
        "-A",
        "--field-selector",
        "metadata.name=b",
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), "configmap/b");
    let yaml = c.ok(&["get", "cm", "a", "-n", "team", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("tier: a"),
        "{yaml}"
    );
    let all = table(&c.ok(&["get", "cm", "-A"]));
    assert_eq!(all[0], ["NAMESPACE", "NAME", "DATA", "AGE"]);
    // Paged lists return everything.
    let paged = c.ok(&["get", "cm", "-n", "team", "--chunk-size=1", "-o", "name"]);
    assert_eq!(paged.lines().count(), 3, "{paged}");
}

#[test]
fn dry_run_server_writes_nothing() {
    let c = Cluster::start();
    let out = c.ok_stdin(
        &["create", "-f", "-", "--dry-run=server"],
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dry"}}"#,
    );
    assert_eq!(out.trim(), "configmap/dry created (server dry run)");
    let err = c.fails(&["get", "cm", "dry"]);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn watch_sees_added_modified_deleted_live() {
    let c = Cluster::start();
    let mut watcher = c
        .kubectl_cmd(&["get", "configmaps", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubectl get -w");
    let stdout = watcher.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    configmap(&c, "default", "live", &[("a", "b")]);
    c.ok(&["label", "configmap", "live", "x=y"]);
    c.ok(&["delete", "configmap", "live"]);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.split_whitespace().nth(1) == Some("live") => seen.push(line),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let kinds: Vec<&str> = seen
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"], "{seen:?}");
}

#[test]
fn pods_bound_through_the_binding_subresource_sort_by_node() {
    let c = Cluster::start();
    for (pod, _node) in [
        ("etcd-master", "master"),
        ("proxy-w2", "worker-2"),
        ("proxy-w1", "worker-1"),
        ("dns-master", "master"),
    ] {
        c.ok(&[
            "run",
            pod,
            "-n",
            "kube-system",
            "--image=registry.k8s.io/pause:3.10",
            "--restart=Never",
        ]);
    }
    for (pod, node) in [
        ("etcd-master", "master"),
        ("proxy-w2", "worker-2"),
        ("proxy-w1", "worker-1"),
        ("dns-master", "master"),
    ] {
        let binding = format!(
            r#"{{"apiVersion":"v1","kind":"Binding","metadata":{{"name":"{pod}"}},"target":{{"apiVersion":"v1","kind":"Node","name":"{node}"}}}}"#
        );
        let path = format!("/api/v1/namespaces/kube-system/pods/{pod}/binding");
        c.ok_stdin(&["create", "--raw", &path, "-f", "-"], &binding);
    }
    // A second binding of a bound pod is a conflict.
    let again = r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"proxy-w1"},"target":{"name":"master"}}"#;
    let out = c.kubectl_stdin(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/kube-system/pods/proxy-w1/binding",
            "-f",
            "-",
        ],
        again,
    );
    assert!(!out.status.success());

    let out = c.ok(&[
        "get",
        "pod",
        "-o",
        "custom-columns=POD:metadata.name,NODE:spec.nodeName",
        "--sort-by",
        "spec.nodeName",
        "-n",
        "kube-system",
    ]);
    let rows = table(&out);
    assert_eq!(rows[0], ["POD", "NODE"]);
    let nodes: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(nodes, ["master", "master", "worker-1", "worker-2"], "{out}");
    let wide = table(&c.ok(&["get", "pod", "proxy-w1", "-n", "kube-system", "-o", "wide"]));
    assert_eq!(
        wide[0],
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    assert_eq!(wide[1][6], "worker-1");
}

#[test]
fn delete_by_label_and_forced_pod_deletion() {
    let c = Cluster::start();
    for n in ["a", "b", "keep"] {
        configmap(&c, "default", n, &[]);
    }
    c.ok(&["label", "cm", "a", "b", "gone=yes"]);
    let out = c.ok(&["delete", "cm", "-l", "gone=yes"]);
    assert!(
        out.contains(r#"configmap "a" deleted"#) && out.contains(r#"configmap "b" deleted"#),
        "{out}"
    );
    assert_eq!(
        c.ok(&["get", "cm", "-o", "name"])
            .lines()
            .filter(|l| !l.contains("kube-root"))
            .count(),
        1
    );

    // A pod bound to a node waits for the node's agent; --force --grace-period=0 removes it now.
    c.ok(&["run", "p", "--image=busybox", "--restart=Never"]);
    c.ok_stdin(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods/p/binding",
            "-f",
            "-",
        ],
        r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"name":"n1"}}"#,
    );
    c.ok(&["delete", "pod", "p", "--wait=false"]);
    let status = table(&c.ok(&["get", "pod", "p"]));
    assert_eq!(status[1][2], "Terminating");
    let out = c.kubectl(&["delete", "pod", "p", "--grace-period=0", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.fails(&["get", "pod", "p"]).contains("NotFound"));

    // An unbound pod goes at once, and --wait returns.
    c.ok(&["run", "q", "--image=busybox", "--restart=Never"]);
    let out = c.ok(&["delete", "pod", "q", "--wait", "--timeout=20s"]);
    assert_eq!(out.trim(), r#"pod "q" deleted"#);
}

#[test]
fn objects_and_certificates_survive_a_restart() {
    let mut c = Cluster::start();
    configmap(&c, "default", "persist", &[("k", "v")]);
    let rv_before = c.ok(&[
        "get",
        "cm",
        "persist",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let ca_before = std::fs::read(c.data_dir().join("tls/ca.crt")).expect("ca");
    let status = c.stop();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    c.restart();
    assert_eq!(
        c.ok(&["get", "cm", "persist", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "persist",
            "-o",
            "jsonpath={.metadata.resourceVersion}"
        ]),
        rv_before
    );
    assert_eq!(
        std::fs::read(c.data_dir().join("tls/ca.crt")).expect("ca"),
        ca_before
    );
    // The old kubeconfig still works (same CA, same admin certificate).
    c.ok(&["get", "ns", "default"]);
}

#[test]
fn explain_reads_the_openapi_schema() {
    let c = Cluster::start();
    let out = c.ok(&["explain", "deployment.spec.replicas"]);
    assert!(
        out.contains("GROUP:      apps") && out.contains("replicas"),
        "{out}"
    );
    assert!(out.contains("Number of desired pods"), "{out}");
}

#[test]
fn services_get_unique_cluster_ips_and_node_ports() {
    let c = Cluster::start();
    let svc = |name: &str, ty: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": ty, "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
        })
        .to_string()
    };
    c.ok_stdin(&["create", "-f", "-"], &svc("s", "ClusterIP"));
    let rows = table(&c.ok(&["get", "svc", "s"]));
    assert!(rows[1][2].starts_with("10.43."), "{rows:?}");
    assert_eq!(rows[1][4], "80/TCP");
    c.ok_stdin(&["create", "-f", "-"], &svc("np", "NodePort"));
    let port: u16 = c
        .ok(&[
            "get",
            "svc",
            "np",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .expect("a node port");
    assert!((30000..=32767).contains(&port));
    let ips = c.ok(&["get", "svc", "-o", "jsonpath={.items[*].spec.clusterIP}"]);
    let mut ips: Vec<&str> = ips.split_whitespace().collect();
    let n = ips.len();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), n, "no duplicate ClusterIPs");
    // The ClusterIP is immutable.
    let out = c.kubectl(&[
        "patch",
        "svc",
        "s",
        "--type=merge",
        "-p",
        r#"{"spec":{"clusterIP":"10.43.9.9"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not change once set"));
}
