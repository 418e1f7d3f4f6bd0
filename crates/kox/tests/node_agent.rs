//! The node agent end to end: `kox server` with its in-process agent on the real containerd,
//! runc and CNI plugins, driven by the real kubectl. One server serves every case (each in
//! its own namespace, several at once); restarting the agent with `kill -9` comes last.
//!
//! Needs root and Debian's containerd, runc, containernetworking-plugins and busybox-static
//! (the test script installs them).

mod common;
#[path = "node_agent/streams.rs"]
mod streams;

use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::Value;

/// The test image, built from the machine's static busybox by `kox image busybox`.
const BUSYBOX: &str = "busybox:1.35";

fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn pod_json(c: &Cluster, ns: &str, name: &str) -> Value {
    let out = c.kubectl(&["get", "pod", name, "-n", ns, "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Waits until the pod's JSON satisfies `done`, and returns it.
fn wait_pod(c: &Cluster, ns: &str, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let limit = Duration::from_secs(90);
    let mut last = Value::Null;
    let deadline = Instant::now() + limit;
    loop {
        let pod = pod_json(c, ns, name);
        if done(&pod) {
            return pod;
        }
        if !pod.is_null() {
            last = pod;
        }
        assert!(
            Instant::now() < deadline,
            "pod {ns}/{name}: timed out waiting for {what}; last status: {}",
            serde_json::to_string_pretty(&last["status"]).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn phase_is(phase: &'static str) -> impl Fn(&Value) -> bool {
    move |p| p["status"]["phase"] == phase
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn namespace(c: &Cluster, ns: &str) {
    c.ok(&["create", "namespace", ns]);
    // Pods need their namespace's default ServiceAccount, which the controller creates.
    wait_for(
        "the default service account",
        Duration::from_secs(30),
        || {
            c.kubectl(&["get", "serviceaccount", "default", "-n", ns])
                .status
                .success()
                .then_some(())
        },
    );
}

fn apply(c: &Cluster, ns: &str, yaml: &str) {
    c.ok_stdin(&["apply", "-n", ns, "-f", "-"], yaml);
}

fn events(c: &Cluster, ns: &str, pod: &str) -> String {
    c.ok(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    ])
}

/// Starts a server with its agent, makes the busybox image available to it and waits for its
/// node to be Ready.
fn node_cluster(extra: &[&str]) -> Cluster {
    let c = Cluster::start_with_agent(extra);
    let images = c.dir.path().join("agent/images");
    std::fs::create_dir_all(&images).expect("images folder");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kox"))
        .args(["image", "busybox", BUSYBOX, "-o"])
        .arg(images.join("busybox.tar"))
        .output()
        .expect("run kox image busybox");
    assert!(
        out.status.success(),
        "kox image busybox: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the node to be Ready with the busybox image",
        Duration::from_secs(60),
        || {
            let out = c.kubectl(&["get", "nodes", "-o", "json"]);
            let nodes: Value = serde_json::from_slice(&out.stdout).ok()?;
            let node = nodes["items"].as_array()?.first()?.clone();
            let ready = node["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            // Image status is reported with the next status change or within 10 s.
            let has_image = node["status"]["images"].as_array()?.iter().any(|i| {
                i["names"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|n| n == "docker.io/library/busybox:1.35"))
            });
            (ready && has_image).then_some(())
        },
    );
    c
}

/// One end-to-end case, run against the shared cluster.
type Case = fn(&Cluster);

#[test]
fn pods_run_on_the_servers_own_node() {
    let c = node_cluster(&[
        "--kube-reserved",
        "cpu=100m,memory=100Mi",
        "--container-log-max-size",
        "200Ki",
        "--container-log-max-files",
        "3",
    ]);
    node_reports_the_machine(&c);
    let cases: &[(&str, Case)] = &[
        ("exit codes", exit_codes_and_termination_messages),
        ("crash loop", crash_loop_back_off),
        ("init and env", init_containers_env_and_volumes),
        ("probes", probes_restart_and_gate_readiness),
        ("termination", graceful_termination_and_pre_stop),
        ("oom", oom_killed),
        ("workloads", deployment_and_job),
        ("bad input", bad_input_leaves_waiting_reasons),
        ("config updates", config_map_volume_follows_changes),
        ("static pods", static_pods_and_their_mirrors),
        ("sidecars and deadlines", sidecars_deadlines_and_claims),
        ("logs", streams::logs),
        ("log rotation", streams::log_rotation),
        ("exec, cp and attach", streams::exec_cp_attach),
        ("port-forward and proxies", streams::port_forward_and_proxy),
        ("stream permissions", streams::stream_permissions),
        ("debug", streams::debug_with_ephemeral_containers),
    ];
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(name, case)| (name, s.spawn(|| case(&c))))
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, h)| h.join().err().map(|_| name.to_string()))
            .collect()
    });
    assert!(failures.is_empty(), "failed cases: {failures:?}");
    containerd_dying_is_survived(&c);
    agent_restart_keeps_containers(c);
}

fn node_reports_the_machine(c: &Cluster) {
    let out = c.ok(&["get", "nodes", "-o", "wide"]);
    assert!(out.contains("control-plane"), "{out}");
    assert!(out.contains("containerd://"), "{out}");
    let node: Value = serde_json::from_str(&c.ok(&["get", "nodes", "-o", "json"])).unwrap();
    let node = &node["items"][0];
    for r in ["cpu", "memory", "ephemeral-storage", "pods"] {
        assert!(node["status"]["allocatable"][r].is_string(), "{r}: {node}");
    }
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    // Allocatable is the capacity less the reservations (and, for memory, the eviction
    // threshold).
    let cpus: i64 = node["status"]["capacity"]["cpu"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        node["status"]["allocatable"]["cpu"],
        format!("{}m", cpus * 1000 - 100)
    );
    let lease = c.ok(&["get", "lease", "-n", "kube-node-lease", "-o", "name"]);
    assert!(lease.contains("lease"), "{lease}");
}

fn exit_codes_and_termination_messages(c: &Cluster) {
    let ns = "exits";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: fails}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "echo 'it went wrong' > /dev/termination-log; exit 3"]
---
apiVersion: v1
kind: Pod
metadata: {{name: succeeds}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "echo done"]
---
apiVersion: v1
kind: Pod
metadata: {{name: logs-fallback}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {BUSYBOX}
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, "echo last words; exit 2"]
"#
        ),
    );
    let pod = wait_pod(c, ns, "fails", "Failed", phase_is("Failed"));
    let term = &container(&pod, "c")["state"]["terminated"];
    assert_eq!(term["exitCode"], 3, "{pod}");
    assert_eq!(term["reason"], "Error");
    assert_eq!(term["message"], "it went wrong\n");
    assert!(
        term["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://")
    );
    let pod = wait_pod(c, ns, "succeeds", "Succeeded", phase_is("Succeeded"));
    assert_eq!(
        container(&pod, "c")["state"]["terminated"]["reason"],
        "Completed"
    );
    let ready = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(ready["reason"], "PodCompleted", "{ready}");
    let pod = wait_pod(c, ns, "logs-fallback", "Failed", phase_is("Failed"));
    let message = container(&pod, "c")["state"]["terminated"]["message"].clone();
    assert_eq!(message, "last words", "{pod}");
    let listed = c.ok(&["get", "pods", "-n", ns]);
    assert!(
        listed.contains("Error") && listed.contains("Completed"),
        "{listed}"
    );
}

fn crash_loop_back_off(c: &Cluster) {
    let ns = "crash";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: crash}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "exit 1"]
"#
        ),
    );
    let pod = wait_pod(c, ns, "crash", "a restart and back-off", |p| {
        let s = container(p, "c");
        s["restartCount"].as_i64().unwrap_or(0) >= 1
            && s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let s = container(&pod, "c");
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 1, "{s}");
    let message = s["state"]["waiting"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("back-off 10s restarting failed container=c pod=crash_crash("),
        "{message}"
    );
    assert_eq!(pod["status"]["phase"], "Running");
    let listed = c.ok(&["get", "pod", "crash", "-n", ns]);
    assert!(listed.contains("CrashLoopBackOff"), "{listed}");
    assert!(events(c, ns, "crash").contains("Back-off restarting failed container"));
}

fn init_containers_env_and_volumes(c: &Cluster) {
    let ns = "init";
    namespace(c, ns);
    c.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        ns,
        "--from-literal=key=from-configmap",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "-n",
        ns,
        "--from-literal=password=s3cret",
    ]);
    let host_dir = c.dir.path().join("host-volume");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("hello"), "from the host").unwrap();
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: p, labels: {{app: demo}}}}
spec:
  restartPolicy: Never
  subdomain: sub
  initContainers:
  - {{name: first, image: "{BUSYBOX}", command: [sh, -c, "echo one >> /work/order"], volumeMounts: [{{name: work, mountPath: /work}}]}}
  - {{name: second, image: "{BUSYBOX}", command: [sh, -c, "echo two >> /work/order"], volumeMounts: [{{name: work, mountPath: /work}}]}}
  containers:
  - name: main
    image: {BUSYBOX}
    resources: {{limits: {{memory: 64Mi}}}}
    env:
    - {{name: GREETING, value: hello}}
    - {{name: PHRASE, value: "$(GREETING) world"}}
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
    - {{name: FROM_CM, valueFrom: {{configMapKeyRef: {{name: cfg, key: key}}}}}}
    - {{name: FROM_SECRET, valueFrom: {{secretKeyRef: {{name: sec, key: password}}}}}}
    - {{name: MISSING, valueFrom: {{configMapKeyRef: {{name: nope, key: k, optional: true}}}}}}
    - {{name: MEMORY_MI, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}
    envFrom:
    - {{prefix: CM_, configMapRef: {{name: cfg}}}}
    command:
    - sh
    - -c
    - |
      {{
        cat /work/order
        echo "env=$PHRASE|$POD_IP|$NODE|$FROM_CM|$FROM_SECRET|${{MISSING:-unset}}|$MEMORY_MI|$CM_key"
        echo "cm=$(cat /cfg/key) secret=$(cat /sec/password) host=$(cat /host/hello)"
        echo "labels=$(cat /info/labels)"
        echo "token=$(test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo yes) ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"
        echo "mem=$(grep ' /scratch ' /proc/mounts | cut -d' ' -f3)"
        echo "k8s=$KUBERNETES_SERVICE_HOST"
        echo "hosts=$(grep "^$POD_IP" /etc/hosts)"
      }} > /dev/termination-log
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: cfg, mountPath: /cfg}}
    - {{name: sec, mountPath: /sec}}
    - {{name: info, mountPath: /info}}
    - {{name: scratch, mountPath: /scratch}}
    - {{name: host, mountPath: /host, readOnly: true}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: scratch, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}
  - {{name: cfg, configMap: {{name: cfg}}}}
  - {{name: sec, secret: {{secretName: sec}}}}
  - {{name: info, downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]}}}}
  - {{name: host, hostPath: {{path: "{host}", type: Directory}}}}
"#,
            host = host_dir.display()
        ),
    );
    let pod = wait_pod(c, ns, "p", "Succeeded", phase_is("Succeeded"));
    let inits = pod["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(inits.len(), 2);
    assert!(
        inits
            .iter()
            .all(|i| i["state"]["terminated"]["exitCode"] == 0),
        "{pod}"
    );
    let ip = pod["status"]["podIP"].as_str().unwrap();
    let node = pod["spec"]["nodeName"].as_str().unwrap();
    let message = container(&pod, "main")["state"]["terminated"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let expected = [
        "one\ntwo\n".to_string(),
        format!("env=hello world|{ip}|{node}|from-configmap|s3cret|unset|64|from-configmap\n"),
        "cm=from-configmap secret=s3cret host=from the host\n".into(),
        "labels=app=\"demo\"\n".into(),
        "token=yes ns=init\n".into(),
        "mem=tmpfs\n".into(),
        "k8s=10.43.0.1\n".into(),
        format!("hosts={ip}\tp.sub.init.svc.cluster.local\tp\n"),
    ];
    assert_eq!(message, expected.concat(), "{message}");
}

fn probes_restart_and_gate_readiness(c: &Cluster) {
    let ns = "probes";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: liveness}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 600"]
    livenessProbe: {{exec: {{command: [test, -f, /tmp/healthy]}}, periodSeconds: 1, failureThreshold: 2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: readiness}}
spec:
  containers:
  - name: web
    image: {BUSYBOX}
    command: [sh, -c, "sleep 8; mkdir -p /www; echo ok > /www/index.html; httpd -f -p 8080 -h /www"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe: {{httpGet: {{path: /index.html, port: http}}, periodSeconds: 1}}
  - name: tcp
    image: {BUSYBOX}
    command: [sh, -c, "nc -ll -p 9000 -e true"]
    startupProbe: {{tcpSocket: {{port: 9000}}, periodSeconds: 1}}
    readinessProbe: {{exec: {{command: ["true"]}}, periodSeconds: 1}}
"#
        ),
    );
    let pod = wait_pod(c, ns, "readiness", "running but not ready", |p| {
        container(p, "web")["state"]["running"].is_object()
    });
    assert_eq!(container(&pod, "web")["ready"], false, "{pod}");
    let pod = wait_pod(c, ns, "readiness", "Ready", |p| {
        p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    });
    assert_eq!(container(&pod, "tcp")["started"], true);
    // An HTTPS probe (here against the API server's own /readyz, from the node) checks that
    // something answers, not its certificate.
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: https}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sleep, "600"]
    readinessProbe:
      httpGet: {{host: 127.0.0.1, port: {port}, path: /readyz, scheme: HTTPS}}
      periodSeconds: 1
"#,
            port = c.port
        ),
    );
    wait_pod(c, ns, "https", "ready through an HTTPS probe", |p| {
        container(p, "c")["ready"] == true
    });
    // A readiness gate holds Ready back until its condition is True.
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: gated}}
spec:
  readinessGates: [{{conditionType: example.com/ready}}]
  containers: [{{name: c, image: "{BUSYBOX}", command: [sleep, "600"]}}]
"#
        ),
    );
    let gated = wait_pod(c, ns, "gated", "containers ready", |p| {
        container(p, "c")["ready"] == true
    });
    let ready = |p: &Value| {
        p["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(ready(&gated)["reason"], "ReadinessGatesNotReady", "{gated}");
    c.ok(&[
        "patch",
        "pod",
        "gated",
        "-n",
        ns,
        "--subresource=status",
        "--type=strategic",
        "-p",
        r#"{"status":{"conditions":[{"type":"example.com/ready","status":"True"}]}}"#,
    ]);
    wait_pod(c, ns, "gated", "Ready once the gate is True", |p| {
        ready(p)["status"] == "True"
    });
    // Pods reach each other on the node's pod network.
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    c.ok(&[
        "run",
        "client",
        "-n",
        ns,
        "--image",
        BUSYBOX,
        "--restart=Never",
        "--",
        "sh",
        "-c",
        &format!("wget -q -O /dev/termination-log http://{ip}:8080/index.html"),
    ]);
    let client = wait_pod(c, ns, "client", "Succeeded", phase_is("Succeeded"));
    assert_eq!(
        container(&client, "client")["state"]["terminated"]["message"],
        "ok\n"
    );
    assert!(
        events(c, ns, "readiness").contains("Readiness probe failed: Get \"http://"),
        "{}",
        events(c, ns, "readiness")
    );
    let pod = wait_pod(
        c,
        ns,
        "liveness",
        "a restart after the liveness probe failed",
        |p| container(p, "c")["restartCount"].as_i64().unwrap_or(0) >= 1,
    );
    assert_eq!(
        container(&pod, "c")["lastState"]["terminated"]["exitCode"],
        137
    );
    let ev = events(c, ns, "liveness");
    assert!(ev.contains("Liveness probe failed"), "{ev}");
    assert!(
        ev.contains("Container c failed liveness probe, will be restarted"),
        "{ev}"
    );
}

fn graceful_termination_and_pre_stop(c: &Cluster) {
    let ns = "grace";
    namespace(c, ns);
    let marks = c.dir.path().join("grace-marks");
    std::fs::create_dir_all(&marks).unwrap();
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "trap '' TERM; while true; do sleep 1; done"]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, "echo started > /marks/post-start"]}}}}
      preStop: {{exec: {{command: [sh, -c, "echo stopping > /marks/pre-stop"]}}}}
    volumeMounts: [{{name: marks, mountPath: /marks}}]
  volumes: [{{name: marks, hostPath: {{path: "{marks}"}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: polite}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#,
            marks = marks.display()
        ),
    );
    for pod in ["stubborn", "polite"] {
        wait_pod(c, ns, pod, "Running", phase_is("Running"));
    }
    assert_eq!(
        std::fs::read_to_string(marks.join("post-start")).unwrap(),
        "started\n"
    );
    let started = Instant::now();
    c.ok(&["delete", "pod", "polite", "-n", ns]);
    let polite = started.elapsed();
    // Inside its 30 s grace period (with room for a loaded machine): it stopped on SIGTERM.
    assert!(polite < Duration::from_secs(20), "took {polite:?}");
    let started = Instant::now();
    c.ok(&["delete", "pod", "stubborn", "-n", ns]);
    let stubborn = started.elapsed();
    assert!(
        stubborn >= Duration::from_secs(3) && stubborn < Duration::from_secs(25),
        "took {stubborn:?}"
    );
    assert_eq!(
        std::fs::read_to_string(marks.join("pre-stop")).unwrap(),
        "stopping\n"
    );
    let gone = c.kubectl(&["get", "pod", "stubborn", "-n", ns]);
    assert!(!gone.status.success());
}

fn oom_killed(c: &Cluster) {
    let ns = "oom";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"]
    resources: {{limits: {{memory: 20Mi}}}}
"#
        ),
    );
    let pod = wait_pod(c, ns, "hog", "Failed", phase_is("Failed"));
    let term = &container(&pod, "c")["state"]["terminated"];
    assert_eq!(term["reason"], "OOMKilled", "{pod}");
    assert_eq!(term["exitCode"], 137);
    assert!(c.ok(&["get", "pod", "hog", "-n", ns]).contains("OOMKilled"));
}

fn deployment_and_job(c: &Cluster) {
    let ns = "workloads";
    namespace(c, ns);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        ns,
        "--image",
        BUSYBOX,
        "--replicas",
        "2",
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    ]);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: works}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: "{BUSYBOX}", command: [sh, -c, "exit 0"]}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: breaks}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: "{BUSYBOX}", command: [sh, -c, "exit 7"]}}]
"#
        ),
    );
    c.ok(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        ns,
        "--timeout=90s",
    ]);
    let pods = c.ok(&["get", "pods", "-n", ns, "-l", "app=web"]);
    assert_eq!(pods.matches("1/1     Running").count(), 2, "{pods}");
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/works",
        "-n",
        ns,
        "--timeout=90s",
    ]);
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/breaks",
        "-n",
        ns,
        "--timeout=90s",
    ]);
    let code = c.ok(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        "job-name=breaks",
        "-o",
        "jsonpath={.items[0].status.containerStatuses[0].state.terminated.exitCode}",
    ]);
    assert_eq!(code, "7");
}

fn bad_input_leaves_waiting_reasons(c: &Cluster) {
    let ns = "bad";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: no-image}}
spec:
  containers: [{{name: c, image: "example.invalid/nothing:1.0"}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: never-pull}}
spec:
  containers: [{{name: c, image: "example.invalid/nothing:1.0", imagePullPolicy: Never}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: no-command}}
spec:
  containers: [{{name: c, image: "{BUSYBOX}", command: [/no/such/program]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: no-key}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    env: [{{name: X, valueFrom: {{configMapKeyRef: {{name: absent, key: k}}}}}}]
"#
        ),
    );
    let waiting = |pod: &str, reasons: &'static [&'static str]| {
        let p = wait_pod(c, ns, pod, &format!("waiting as {reasons:?}"), |p| {
            reasons
                .iter()
                .any(|r| container(p, "c")["state"]["waiting"]["reason"] == *r)
        });
        container(&p, "c")["state"]["waiting"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let m = waiting("no-image", &["ErrImagePull", "ImagePullBackOff"]);
    assert!(m.contains("example.invalid/nothing:1.0"), "{m}");
    let m = waiting("never-pull", &["ErrImageNeverPull"]);
    assert_eq!(
        m,
        "Container image \"example.invalid/nothing:1.0\" is not present with pull policy of Never"
    );
    let m = waiting("no-key", &["CreateContainerConfigError"]);
    assert_eq!(m, "configmap \"absent\" not found");
    let p = wait_pod(c, ns, "no-command", "a failed start", |p| {
        container(p, "c")["lastState"]["terminated"]["exitCode"] == 128
            || container(p, "c")["state"]["terminated"]["exitCode"] == 128
    });
    let s = container(&p, "c");
    let term = if s["lastState"]["terminated"].is_object() {
        &s["lastState"]["terminated"]
    } else {
        &s["state"]["terminated"]
    };
    assert_eq!(term["reason"], "StartError", "{s}");
    assert!(
        term["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/program"),
        "{s}"
    );
    // The agent keeps serving every other pod meanwhile.
    c.ok(&[
        "run",
        "fine",
        "-n",
        ns,
        "--image",
        BUSYBOX,
        "--restart=Never",
        "--",
        "true",
    ]);
    wait_pod(c, ns, "fine", "Succeeded", phase_is("Succeeded"));
}

fn config_map_volume_follows_changes(c: &Cluster) {
    let ns = "updates";
    namespace(c, ns);
    c.ok(&[
        "create",
        "configmap",
        "live",
        "-n",
        ns,
        "--from-literal=mode=v1",
    ]);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: reader}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "sleep 600"]
    readinessProbe: {{exec: {{command: [grep, -q, v2, /cfg/mode]}}, periodSeconds: 1}}
    volumeMounts: [{{name: cfg, mountPath: /cfg}}]
  volumes: [{{name: cfg, configMap: {{name: live}}}}]
"#
        ),
    );
    let pod = wait_pod(c, ns, "reader", "running", phase_is("Running"));
    assert_eq!(container(&pod, "c")["ready"], false);
    c.ok_stdin(
        &["apply", "-n", ns, "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: live}\ndata: {mode: v2}\n",
    );
    wait_pod(c, ns, "reader", "ready once the new value is seen", |p| {
        container(p, "c")["ready"] == true
    });
}

fn static_pods_and_their_mirrors(c: &Cluster) {
    let node = c.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let manifests = c.dir.path().join("agent/pod-manifests");
    let manifest = |command: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: standalone, namespace: kube-system}}\nspec:\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, \"{command}\"]\n"
        )
    };
    let ns = "kube-system";
    let name = format!("standalone-{node}");
    std::fs::write(
        manifests.join("standalone.yaml"),
        manifest("trap 'exit 0' TERM; sleep 600 & wait"),
    )
    .unwrap();
    let pod = wait_pod(c, ns, &name, "the mirror pod Running", phase_is("Running"));
    assert!(
        pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string(),
        "{pod}"
    );
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "Node");
    let first_id = container(&pod, "c")["containerID"].clone();
    let first_uid = pod["metadata"]["uid"].clone();
    // Deleted, the mirror pod comes back; the static pod itself never stopped.
    c.ok(&["delete", "pod", &name, "-n", ns, "--wait=false"]);
    let pod = wait_pod(c, ns, &name, "the mirror pod back", |p| {
        p["metadata"]["uid"].is_string()
            && p["metadata"]["uid"] != first_uid
            && p["status"]["phase"] == "Running"
    });
    assert_eq!(container(&pod, "c")["containerID"], first_id);
    // An edit replaces the pod.
    std::fs::write(
        manifests.join("standalone.yaml"),
        manifest("trap 'exit 0' TERM; sleep 601 & wait"),
    )
    .unwrap();
    wait_pod(c, ns, &name, "the edited pod running", |p| {
        p["status"]["phase"] == "Running"
            && container(p, "c")["containerID"].is_string()
            && container(p, "c")["containerID"] != first_id
    });
    // Removing the file stops the pod and removes its mirror.
    std::fs::remove_file(manifests.join("standalone.yaml")).unwrap();
    wait_for("the mirror pod gone", Duration::from_secs(60), || {
        (!c.kubectl(&["get", "pod", &name, "-n", ns]).status.success()).then_some(())
    });
}

fn sidecars_deadlines_and_claims(c: &Cluster) {
    let ns = "more";
    namespace(c, ns);
    let pv_dir = c.dir.path().join("pv-data");
    std::fs::create_dir_all(pv_dir.join("sub")).unwrap();
    std::fs::write(pv_dir.join("sub/file"), "on the volume").unwrap();
    c.ok(&[
        "create",
        "secret",
        "generic",
        "keys",
        "-n",
        ns,
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: PersistentVolume
metadata: {{name: more-pv}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: "{pv}"}}
  claimRef: {{namespace: more, name: claim}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: claim}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
  volumeName: more-pv
---
apiVersion: v1
kind: Pod
metadata: {{name: with-sidecar}}
spec:
  securityContext: {{fsGroup: 1234}}
  initContainers:
  - {{name: side, image: "{BUSYBOX}", restartPolicy: Always, command: [sleep, "600"]}}
  containers:
  - name: main
    image: {BUSYBOX}
    command:
    - sh
    - -c
    - |
      {{
        echo "claim=$(cat /data/file)"
        echo "ro=$(touch /data/x 2>/dev/null && echo writable || echo read-only)"
        echo "keys=$(ls /keys | tr '\n' ' ')mode=$(stat -L -c %a /keys/renamed)"
        echo "group=$(stat -c %g /scratch)"
      }} > /dev/termination-log
      sleep 600
    volumeMounts:
    - {{name: claim, mountPath: /data, subPath: sub, readOnly: true}}
    - {{name: keys, mountPath: /keys}}
    - {{name: scratch, mountPath: /scratch}}
  volumes:
  - {{name: claim, persistentVolumeClaim: {{claimName: claim}}}}
  - {{name: keys, secret: {{secretName: keys, defaultMode: 0400, items: [{{key: a, path: renamed}}]}}}}
  - {{name: scratch, emptyDir: {{}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: too-much}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "head -c 3000000 /dev/zero > /scratch/fill; sleep 600"]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
  volumes: [{{name: scratch, emptyDir: {{sizeLimit: 1Mi}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: deadline}}
spec:
  activeDeadlineSeconds: 3
  containers: [{{name: c, image: "{BUSYBOX}", command: [sleep, "600"]}}]
"#,
            pv = pv_dir.display()
        ),
    );
    let pod = wait_pod(c, ns, "with-sidecar", "both containers running", |p| {
        p["status"]["phase"] == "Running"
            && p["status"]["initContainerStatuses"][0]["state"]["running"].is_object()
    });
    assert_eq!(
        pod["status"]["initContainerStatuses"][0]["started"], true,
        "{pod}"
    );
    // The app container's report is in its termination file only once it exits: read the
    // file on the node instead.
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let report = c
        .dir
        .path()
        .join("agent/pods")
        .join(&uid)
        .join("containers/main/termination-0");
    let text = wait_for(
        "the main container's report",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&report)
                .ok()
                .filter(|t| t.contains("group="))
        },
    );
    assert_eq!(
        text,
        "claim=on the volume\nro=read-only\nkeys=renamed mode=400\ngroup=1234\n"
    );
    let pod = wait_pod(c, ns, "too-much", "evicted", phase_is("Failed"));
    assert_eq!(pod["status"]["reason"], "Evicted", "{pod}");
    assert_eq!(
        pod["status"]["message"],
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". "
    );
    let pod = wait_pod(c, ns, "deadline", "Failed", phase_is("Failed"));
    assert_eq!(pod["status"]["reason"], "DeadlineExceeded", "{pod}");
    assert_eq!(
        pod["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
}

/// The web Deployment's containers, as `containerID restartCount` lines.
fn web_containers(c: &Cluster) -> String {
    c.ok(&[
        "get", "pods", "-n", "workloads", "-l", "app=web", "-o",
        "jsonpath={range .items[*]}{.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}",
    ])
}

/// containerd killed: the agent starts it again, the pods never stopped, new pods run.
fn containerd_dying_is_survived(c: &Cluster) {
    let before = web_containers(c);
    let pid = std::fs::read_to_string(c.dir.path().join("agent/containerd/containerd.pid"))
        .expect("containerd's pid file");
    let status = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_for("containerd running again", Duration::from_secs(30), || {
        let now =
            std::fs::read_to_string(c.dir.path().join("agent/containerd/containerd.pid")).ok()?;
        (now.trim() != pid.trim()
            && std::path::Path::new(&format!("/proc/{}", now.trim())).exists())
        .then_some(())
    });
    c.ok(&[
        "run",
        "after-restart",
        "-n",
        "workloads",
        "--image",
        BUSYBOX,
        "--restart=Never",
        "--",
        "true",
    ]);
    wait_pod(
        c,
        "workloads",
        "after-restart",
        "Succeeded",
        phase_is("Succeeded"),
    );
    assert_eq!(
        web_containers(c),
        before,
        "containers restarted with containerd"
    );
}

/// `kill -9` of the server (and its agent): started again, the agent adopts the running
/// containers instead of restarting them.
fn agent_restart_keeps_containers(mut c: Cluster) {
    let ns = "workloads";
    let before = web_containers(&c);
    assert_eq!(before.lines().count(), 2, "{before}");
    c.kill_hard();
    c.restart();
    wait_for("the node Ready again", Duration::from_secs(60), || {
        let out = c.ok(&["get", "nodes"]);
        out.contains(" Ready ").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let after = web_containers(&c);
    assert_eq!(before, after, "containers were restarted");
    let pods = c.ok(&["get", "pods", "-n", ns, "-l", "app=web"]);
    assert_eq!(pods.matches("1/1     Running").count(), 2, "{pods}");
}

/// A node whose eviction threshold cannot be met (`memory.available<100Ti`): it reports
/// MemoryPressure, refuses new BestEffort pods and evicts the running ones.
#[test]
fn node_pressure_refuses_and_evicts_pods() {
    let c = node_cluster(&["--eviction-hard", "memory.available<100Ti"]);
    let node = c.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let condition = c.ok(&[
        "get",
        "node",
        &node,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"MemoryPressure\")].reason}",
    ]);
    assert_eq!(condition, "KubeletHasInsufficientMemory");
    let ns = "pressure";
    namespace(&c, ns);
    // Bound to the node directly: the scheduler would keep pods off a node under pressure.
    apply(
        &c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: best-effort}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: "{BUSYBOX}", command: [sleep, "600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: burstable}}
spec:
  nodeName: {node}
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sleep, "600"]
    resources: {{requests: {{memory: 1Mi}}}}
"#
        ),
    );
    let pod = wait_pod(&c, ns, "best-effort", "refused", phase_is("Failed"));
    assert_eq!(pod["status"]["reason"], "Evicted", "{pod}");
    assert_eq!(
        pod["status"]["message"],
        "Pod was rejected: The node had condition: [MemoryPressure]. "
    );
    let pod = wait_pod(&c, ns, "burstable", "evicted", phase_is("Failed"));
    assert_eq!(pod["status"]["reason"], "Evicted", "{pod}");
    let message = pod["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("The node was low on resource: memory. Threshold quantity: "),
        "{message}"
    );
    assert!(events(&c, ns, "burstable").contains("The node was low on resource: memory."));
}
