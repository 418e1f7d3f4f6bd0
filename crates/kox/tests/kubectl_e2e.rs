//! End to end: the real `kubectl` against a real `kox server`, checking what it prints and what
//! the cluster then holds.

mod common;

use std::time::Duration;

use common::{Cluster, StreamedLines, table};

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

/// Creates a ConfigMap from a JSON manifest (the generators are covered in
/// `kubectl_create_generators.rs`).
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
    // The controller manager runs inside `kox server` and answers its /healthz (once its
    // endpoint is up). The scheduler runs there too; scheduler_e2e.rs checks its row.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.ok(&[
            "get",
            "componentstatuses",
            "controller-manager",
            "--no-headers",
        ]);
        if out.contains("Healthy") && !out.contains("Unhealthy") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(out.lines().any(|l| l.starts_with("scheduler")), "{out}");
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

    let generation_of = || -> u64 {
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .trim()
        .parse()
        .expect("a numeric generation")
    };
    let before = generation_of();

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
    // A spec change bumps the generation. (Upstream bumps it for annotation changes too —
    // last-applied, the deployment controller's revision — so only the increase is certain.)
    assert!(generation_of() > before);

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
    // Paged lists return everything (the three ConfigMaps made here, and kube-root-ca.crt
    // once the root CA publisher has written it).
    let paged = c.ok(&["get", "cm", "-n", "team", "--chunk-size=1", "-o", "name"]);
    let mine = paged.lines().filter(|l| !l.contains("kube-root-ca.crt"));
    assert_eq!(mine.count(), 3, "{paged}");
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
    let watcher =
        StreamedLines::spawn(c.kubectl_cmd(&["get", "configmaps", "-w", "--output-watch-events"]));
    std::thread::sleep(Duration::from_millis(1500));
    configmap(&c, "default", "live", &[("a", "b")]);
    c.ok(&["label", "configmap", "live", "x=y"]);
    c.ok(&["delete", "configmap", "live"]);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match watcher.next_line(Duration::from_secs(10)) {
            Some(line) if line.split_whitespace().nth(1) == Some("live") => seen.push(line),
            Some(_) => {}
            None => break,
        }
    }
    drop(watcher);
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

/// The tables of a `kubectl get` output, one per resource type (blank lines between), each
/// row cut at its header's column offsets so that empty cells and cells with spaces survive.
fn aligned_tables(out: &str) -> Vec<Vec<Vec<String>>> {
    let mut tables = Vec::new();
    for block in out.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        let header = lines[0];
        // Header cells are separated by at least three spaces; a header may contain one.
        let mut starts = vec![0];
        let bytes = header.as_bytes();
        for i in 1..bytes.len() {
            if bytes[i] != b' ' && i >= 2 && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
                starts.push(i);
            }
        }
        let cut = |line: &str| -> Vec<String> {
            starts
                .iter()
                .enumerate()
                .map(|(n, &s)| {
                    let end = starts
                        .get(n + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    line.get(s.min(line.len())..end)
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .collect()
        };
        tables.push(lines.iter().map(|l| cut(l)).collect());
    }
    tables
}

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 2
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: postgres
        image: postgres:17
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      nodeSelector:
        kubernetes.io/os: linux
      containers:
      - name: agent
        image: busybox:1.36
---
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: pi
        image: perl:5.40
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: hello
            image: busybox:1.36
"#;

#[test]
fn workload_tables_print_upstream_columns() {
    let c = Cluster::start();
    let out = c.ok_stdin(&["create", "-f", "-"], WORKLOADS);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "statefulset.apps/db created",
            "daemonset.apps/agent created",
            "job.batch/pi created",
            "cronjob.batch/hello created"
        ]
    );

    let tables = aligned_tables(&c.ok(&["get", "statefulset,daemonset,job,cronjob"]));
    assert_eq!(tables.len(), 4, "{tables:?}");
    let without_age = |row: &[String]| row[..row.len() - 1].to_vec();
    assert_eq!(tables[0][0], ["NAME", "READY", "AGE"]);
    assert_eq!(without_age(&tables[0][1]), ["statefulset.apps/db", "0/2"]);
    assert_eq!(
        tables[1][0],
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE"
        ]
    );
    assert_eq!(
        without_age(&tables[1][1]),
        [
            "daemonset.apps/agent",
            "0",
            "0",
            "0",
            "0",
            "0",
            "kubernetes.io/os=linux"
        ]
    );
    assert_eq!(
        tables[2][0],
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    );
    // DURATION counts from the job controller's startTime.
    assert_eq!(tables[2][1][..3], ["job.batch/pi", "Running", "0/1"]);
    assert_eq!(
        tables[3][0],
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ]
    );
    assert_eq!(
        without_age(&tables[3][1]),
        [
            "cronjob.batch/hello",
            "*/5 * * * *",
            "<none>",
            "False",
            "0",
            "<none>"
        ]
    );

    // Wide: the job's selector is the one the server generated from its uid.
    let uid = c.ok(&["get", "job", "pi", "-o", "jsonpath={.metadata.uid}"]);
    let wide = aligned_tables(&c.ok(&["get", "job", "pi", "-o", "wide"]));
    assert_eq!(
        wide[0][0],
        [
            "NAME",
            "STATUS",
            "COMPLETIONS",
            "DURATION",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        wide[0][1][5..],
        [
            "pi".to_string(),
            "perl:5.40".to_string(),
            format!("batch.kubernetes.io/controller-uid={uid}")
        ]
    );

    // Upstream's defaults were filled in.
    assert_eq!(
        c.ok(&[
            "get",
            "job",
            "pi",
            "-o",
            "jsonpath={.spec.backoffLimit} {.spec.completionMode} {.spec.template.metadata.labels.job-name}",
        ]),
        "6 NonIndexed pi"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "sts",
            "db",
            "-o",
            "jsonpath={.spec.podManagementPolicy} {.spec.updateStrategy.type} {.spec.revisionHistoryLimit}",
        ]),
        "OrderedReady RollingUpdate 10"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cj",
            "hello",
            "-o",
            "jsonpath={.spec.concurrencyPolicy} {.spec.successfulJobsHistoryLimit} {.spec.failedJobsHistoryLimit}",
        ]),
        "Allow 3 1"
    );
}

const CLUSTER_OBJECTS: &str = r#"
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high
value: 1000
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: example.com/disk
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: web}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: devs
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: edit
subjects:
- kind: User
  name: alice
- kind: Group
  name: devs
- kind: ServiceAccount
  name: builder
  namespace: ci
"#;

#[test]
fn policy_storage_and_rbac_tables_print_upstream_columns() {
    let c = Cluster::start();
    c.ok_stdin(&["create", "-f", "-"], CLUSTER_OBJECTS);
    let tables = aligned_tables(&c.ok(&["get", "priorityclass,storageclass"]));
    let pc = tables
        .iter()
        .find(|t| t[1][0] == "priorityclass.scheduling.k8s.io/high")
        .expect("the priority class table");
    assert_eq!(pc[0], ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE"]);
    assert_eq!(pc[1][1..3], ["1000", "false"]);
    let sc = tables
        .iter()
        .find(|t| t[0].contains(&"PROVISIONER".to_string()))
        .expect("the storage class table");
    assert_eq!(
        sc[0],
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    assert_eq!(
        sc[1][..5],
        [
            "storageclass.storage.k8s.io/fast (default)",
            "example.com/disk",
            "Delete",
            "WaitForFirstConsumer",
            "true"
        ]
    );

    let pdb = aligned_tables(&c.ok(&["get", "pdb"]));
    assert_eq!(
        pdb[0][0],
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(pdb[0][1][..4], ["web", "1", "N/A", "0"]);

    let rb = aligned_tables(&c.ok(&["get", "rolebinding", "-o", "wide"]));
    assert_eq!(
        rb[0][0],
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    assert_eq!(rb[0][1][..2], ["devs", "Role/edit"]);
    assert_eq!(rb[0][1][3..], ["alice", "devs", "ci/builder"]);

    // Kinds without an upstream printer show when they were created.
    c.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"edit"},
            "rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]}"#,
    );
    let roles = aligned_tables(&c.ok(&["get", "roles"]));
    assert_eq!(roles[0][0], ["NAME", "CREATED AT"]);
    assert_eq!(roles[0][1][0], "edit");
    assert!(roles[0][1][1].ends_with('Z'), "{roles:?}");
}

#[test]
fn new_kinds_are_validated_with_upstream_messages() {
    let c = Cluster::start();
    let bad_cron = r#"{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"bad"},
        "spec":{"schedule":"61 * * * *","jobTemplate":{"spec":{"template":{"spec":{
        "restartPolicy":"Always","containers":[{"name":"c","image":"busybox"}]}}}}}}"#;
    let out = c.kubectl_stdin(&["create", "-f", "-"], bad_cron);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#"The CronJob "bad" is invalid: "#), "{err}");
    assert!(
        err.contains(r#"spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#),
        "{err}"
    );
    assert!(
        err.contains(r#"spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#),
        "{err}"
    );

    let frozen = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"frozen"},
        "immutable":true,"data":{"a":"1"}}"#;
    c.ok_stdin(&["create", "-f", "-"], frozen);
    let err = c.fails(&[
        "patch",
        "cm",
        "frozen",
        "--type=merge",
        "-p",
        r#"{"data":{"a":"2"}}"#,
    ]);
    assert!(
        err.contains(r#"The ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set"#),
        "{err}"
    );

    let tls = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"cert"},
        "type":"kubernetes.io/tls","stringData":{"tls.crt":"x"}}"#;
    let out = c.kubectl_stdin(&["create", "-f", "-"], tls);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"The Secret "cert" is invalid: data[tls.key]: Required value"#),
        "{err}"
    );
}
