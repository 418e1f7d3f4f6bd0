//! Debugging through the API server, as users type it: `kubectl logs`, `exec`, `cp`,
//! `attach`, `port-forward`, `proxy`, with today's kubectl and with 1.29 (SPDY), and the
//! refusals a user without the subresource permissions gets. Runs on the node agent suite's
//! shared cluster.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::common::{Cluster, StreamedLines};
use super::{BUSYBOX, apply, namespace, phase_is, wait_for, wait_pod};

/// An older kubectl beside the current one (SPDY for exec and port-forward).
const KUBECTL_1_29: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.29";

fn old_kubectl(c: &Cluster, args: &[&str]) -> std::process::Output {
    c.kubectl_program_cmd(Path::new(KUBECTL_1_29), args)
        .output()
        .expect("run kubectl 1.29")
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `kubectl logs TARGET` (a pod with `-c`, or `deploy/NAME`) holds `text`.
fn wait_log(c: &Cluster, ns: &str, target: &[&str], text: &str, secs: u64) {
    wait_for(
        &format!("{text:?} in the log"),
        Duration::from_secs(secs),
        || {
            let mut args = vec!["logs", "-n", ns];
            args.extend(target);
            stdout_of(&c.kubectl(&args)).contains(text).then_some(())
        },
    );
}

fn running(c: &Cluster, ns: &str, pod: &str) {
    wait_pod(c, ns, pod, "Running", phase_is("Running"));
}

pub fn logs(c: &Cluster) {
    let ns = "logs";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: talker, labels: {{app: talker}}}}
spec:
  containers:
  - name: counter
    image: {BUSYBOX}
    command: [sh, -c, 'for i in 1 2 3 4 5; do echo "line $i"; done; sleep 1; echo oops >&2; i=6; while true; do echo "line $i"; i=$((i+1)); sleep 0.5; done']
  - name: quiet
    image: {BUSYBOX}
    command: [sh, -c, 'echo "quiet here"; exec sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {{name: restarter}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'echo "run at $(date +%s%N)"; sleep 2; exit 1']
"#
        ),
    );
    running(c, ns, "talker");
    wait_log(c, ns, &["talker", "-c", "counter"], "line 6", 30);
    // stdout and stderr come from two pipes: each in order, interleaved as they came.
    let all = c.ok(&["logs", "talker", "-n", ns, "-c", "counter"]);
    let stdout: Vec<&str> = all.lines().filter(|l| *l != "oops").take(6).collect();
    assert_eq!(
        stdout,
        ["line 1", "line 2", "line 3", "line 4", "line 5", "line 6"],
        "{all}"
    );
    assert!(all.lines().any(|l| l == "oops"), "{all}");
    // --tail, --timestamps, --limit-bytes, --since.
    let tail = c.ok(&["logs", "talker", "-n", ns, "-c", "counter", "--tail=2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    let stamped = c.ok(&["logs", "talker", "-n", ns, "-c", "quiet", "--timestamps"]);
    let (time, text) = stamped.trim_end().split_once(' ').expect("a timestamp");
    assert!(
        time.contains('T') && time.ends_with('Z') && text == "quiet here",
        "{stamped}"
    );
    let limited = c.ok(&[
        "logs",
        "talker",
        "-n",
        ns,
        "-c",
        "counter",
        "--limit-bytes=9",
    ]);
    assert_eq!(limited, "line 1\nli");
    let recent = c.ok(&["logs", "talker", "-n", ns, "-c", "counter", "--since=2s"]);
    assert!(
        !recent.contains("line 1\n") && recent.contains("line"),
        "{recent}"
    );
    // Two containers: kubectl picks the first and says so; the server wants a name.
    let out = c.kubectl(&["logs", "talker", "-n", ns, "--tail=1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Defaulted container \"counter\""));
    let raw = c.fails(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/pods/talker/log"),
    ]);
    assert!(
        raw.contains(
            "a container name must be specified for pod talker, choose one of: [counter quiet]"
        ),
        "{raw}"
    );
    let bad = c.fails(&["logs", "talker", "-n", ns, "-c", "nope"]);
    assert!(
        bad.contains("container nope is not valid for pod talker"),
        "{bad}"
    );
    let gone = c.fails(&["logs", "nobody", "-n", ns]);
    assert!(gone.contains("pods \"nobody\" not found"), "{gone}");
    // --all-containers, a label selector with prefixes.
    let both = c.ok(&["logs", "talker", "-n", ns, "--all-containers", "--tail=1"]);
    assert!(both.contains("quiet here"), "{both}");
    let prefixed = c.ok(&[
        "logs",
        "-l",
        "app=talker",
        "-n",
        ns,
        "-c",
        "quiet",
        "--prefix",
    ]);
    assert_eq!(prefixed.trim(), "[pod/talker/quiet] quiet here");
    // -f streams new lines as they are written.
    let follow = StreamedLines::spawn(c.kubectl_cmd(&[
        "logs", "-f", "talker", "-n", ns, "-c", "counter", "--tail=1",
    ]));
    let first: u32 = number_of(&follow.line_with("line", 20));
    let later: u32 = number_of(&follow.line_with("line", 10));
    assert!(later > first, "{first} then {later}");
    // --previous: the run before the last restart.
    let pod = wait_pod(c, ns, "restarter", "a restart", |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .is_some_and(|n| n >= 1)
    });
    assert!(pod["status"]["containerStatuses"][0]["lastState"]["terminated"].is_object());
    let previous = c.ok(&["logs", "restarter", "-n", ns, "--previous"]);
    assert!(previous.starts_with("run at "), "{previous}");
    let never = c.fails(&["logs", "talker", "-n", ns, "-c", "quiet", "--previous"]);
    assert!(
        never.contains("previous terminated container \"quiet\" in pod \"talker\" not found"),
        "{never}"
    );
    // A Deployment's logs through deploy/NAME.
    c.ok(&[
        "create",
        "deployment",
        "hello",
        "-n",
        ns,
        "--image",
        BUSYBOX,
        "--",
        "sh",
        "-c",
        "echo hello from deploy; exec sleep 3600",
    ]);
    wait_log(c, ns, &["deploy/hello"], "hello from deploy", 60);
}

/// The shared cluster rotates logs past 200 KiB and keeps 3 files: a chatty container's log
/// is rotated while `kubectl logs -f` follows it, and the follower misses no line.
pub fn log_rotation(c: &Cluster) {
    let ns = "rotation";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: chatty}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'i=0; while true; do echo "n $i ................................................................................................"; i=$((i+1)); usleep 1000; done']
"#
        ),
    );
    let pod = wait_pod(c, ns, "chatty", "Running", phase_is("Running"));
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let logs = c.data_dir().join(format!("agent/pods/{uid}/logs/c"));
    let files = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&logs)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let follow =
        StreamedLines::spawn(c.kubectl_cmd(&["logs", "-f", "chatty", "-n", ns, "--tail=1"]));
    let mut last = number_of(&follow.line_with("n ", 20));
    // Two rotations: at most three files are kept, the current one among them.
    wait_for("two rotations", Duration::from_secs(60), || {
        let rotated = files().iter().filter(|f| f.starts_with("0.log.")).count();
        // Keep reading so that the follower's pipe never fills.
        while let Some(line) = follow.next_line(Duration::from_millis(1)) {
            let n = number_of(&line);
            assert_eq!(n, last + 1, "the follower skipped lines across a rotation");
            last = n;
        }
        (rotated >= 2).then_some(())
    });
    // The current file is absent for a moment while the runtime reopens it.
    let kept = wait_for("the reopened log", Duration::from_secs(10), || {
        let kept = files();
        kept.contains(&"0.log".to_string()).then_some(kept)
    });
    assert!(kept.len() <= 3, "{kept:?}");
    // kubectl logs reads the current file only, as upstream.
    let current = c.ok(&["logs", "chatty", "-n", ns]);
    assert!(!current.starts_with("n 0 "), "the log was not rotated");
}

fn number_of(line: &str) -> u32 {
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

pub fn exec_cp_attach(c: &Cluster) {
    let ns = "exec";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: shell}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.5; done']
"#
        ),
    );
    running(c, ns, "shell");
    // Output, and the command's exit code as kubectl's.
    let out = c.kubectl(&[
        "exec",
        "shell",
        "-n",
        ns,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(stdout_of(&out), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    // A command's words are passed as they are (`true` is not a flag).
    c.ok(&["exec", "shell", "-n", ns, "--", "true"]);
    let echo = c.ok(&[
        "exec", "shell", "-n", ns, "--", "echo", "true", "false", "a b",
    ]);
    assert_eq!(echo, "true false a b\n");
    // Piped stdin reaches the command, and its end ends the command.
    let echoed = c.ok_stdin(
        &["exec", "-i", "shell", "-n", ns, "--", "sh", "-c", "wc -l"],
        "a\nb\nc\n",
    );
    assert_eq!(echoed.trim(), "3");
    // A TTY.
    let tty = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "kubectl --kubeconfig {} exec -it shell -n {ns} -- tty",
            c.kubeconfig().display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    assert!(stdout_of(&tty).contains("/dev/pts/"), "{tty:?}");
    // The terminal's size reaches the container (sent once more by the agent: containerd 1.6
    // drops a size that arrives before the process runs).
    let sized = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "stty cols 123 rows 45; kubectl --kubeconfig {} exec -it shell -n {ns} -- sh -c 'sleep 1; stty size'",
            c.kubeconfig().display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    assert!(stdout_of(&sized).contains("45 123"), "{sized:?}");
    // kubectl cp both ways, a 1 MiB file intact.
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let local = dir.path().join("blob");
    std::fs::write(&local, &data).unwrap();
    c.ok(&[
        "cp",
        local.to_str().unwrap(),
        &format!("{ns}/shell:/tmp/blob"),
    ]);
    let size = c.ok(&["exec", "shell", "-n", ns, "--", "wc", "-c", "/tmp/blob"]);
    assert!(size.starts_with("1048576"), "{size}");
    let back = dir.path().join("back");
    c.ok(&[
        "cp",
        &format!("{ns}/shell:/tmp/blob"),
        back.to_str().unwrap(),
    ]);
    assert!(std::fs::read(&back).unwrap() == data, "the copy differs");
    // The same with kubectl 1.29, which speaks SPDY.
    let old = old_kubectl(
        c,
        &[
            "exec",
            "shell",
            "-n",
            ns,
            "--",
            "sh",
            "-c",
            "echo old; exit 4",
        ],
    );
    assert_eq!(
        (old.status.code(), stdout_of(&old).as_str()),
        (Some(4), "old\n"),
        "{old:?}"
    );
    // Errors.
    let bad = c.fails(&["exec", "shell", "-n", ns, "-c", "nope", "--", "true"]);
    assert!(
        bad.contains("container nope is not valid for pod shell"),
        "{bad}"
    );
    let missing = c.fails(&["exec", "shell", "-n", ns, "--", "/no/such/program"]);
    assert!(
        missing.contains("no such file or directory") || missing.contains("not found"),
        "{missing}"
    );
    // The official Python client's stream() (WebSocket v4, text messages for stdin).
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/node_agent/python_exec.py"
    );
    let py = Command::new("python3")
        .arg(script)
        .arg(c.kubeconfig())
        .args([ns, "shell"])
        .output()
        .expect("run python3");
    assert_eq!(
        stdout_of(&py),
        "stdout: got hello\nstderr: oops\nreturncode: 3\n",
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    // kubectl attach shows the running output.
    let attach = StreamedLines::spawn(c.kubectl_cmd(&["attach", "shell", "-n", ns]));
    attach.line_with("tick", 20);
    // kubectl attach -i: what the user types reaches the container's stdin.
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
    stdin: true
    command: [sh, -c, 'while read l; do echo "got $l"; done']
"#
        ),
    );
    running(c, ns, "reader");
    c.kubectl_stdin(&["attach", "-i", "reader", "-n", ns], "hello\n");
    wait_log(c, ns, &["reader"], "got hello", 20);
}

pub fn port_forward_and_proxy(c: &Cluster) {
    let ns = "forward";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: httpd
        image: {BUSYBOX}
        command: [sh, -c, 'mkdir -p /www /alt && echo hello web > /www/index.html && echo alt > /alt/index.html && head -c 2097152 /dev/urandom > /www/big && httpd -p 8081 -h /alt && exec httpd -f -p 8080 -h /www']
        ports: [{{name: http, containerPort: 8080}}, {{name: alt, containerPort: 8081}}]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}, {{name: alt, port: 81, targetPort: 8081}}]
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
    let pod = c.ok(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let big = c.ok(&["exec", &pod, "-n", ns, "--", "md5sum", "/www/big"]);
    let big_md5 = big.split_whitespace().next().unwrap().to_string();
    // Several ports of a pod, a deployment and a service; many connections at once.
    for (target, kubectl) in [
        (format!("pod/{pod}"), None),
        ("deploy/web".to_string(), None),
        ("svc/web".to_string(), None),
        (format!("pod/{pod}"), Some(KUBECTL_1_29)),
    ] {
        let (p1, p2) = (super::common::free_port(), super::common::free_port());
        let (remote1, remote2) = if target.starts_with("svc/") {
            ("80", "81")
        } else {
            ("8080", "8081")
        };
        let args = [
            "port-forward",
            &target,
            "-n",
            ns,
            &format!("{p1}:{remote1}"),
            &format!("{p2}:{remote2}"),
        ];
        let cmd = match kubectl {
            Some(k) => c.kubectl_program_cmd(Path::new(k), &args),
            None => c.kubectl_cmd(&args),
        };
        let forward = StreamedLines::spawn(cmd);
        forward.line_with(&format!("Forwarding from 127.0.0.1:{p2}"), 30);
        assert_eq!(http_get(p1, "/index.html"), b"hello web\n", "{target}");
        assert_eq!(http_get(p2, "/index.html"), b"alt\n", "{target}");
        let many: Vec<_> = (0..10)
            .map(|_| std::thread::spawn(move || http_get(p1, "/index.html")))
            .collect();
        for h in many {
            assert_eq!(h.join().unwrap(), b"hello web\n", "{target}");
        }
        let body = http_get(p1, "/big");
        assert_eq!(body.len(), 2_097_152, "{target}");
        assert_eq!(
            format!("{:032x}", md5(&body)),
            big_md5,
            "{target}: the transfer differs"
        );
    }
    // The API server's proxies: a pod's port by name, a service's port by name and number.
    let via_pod = c.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/pods/{pod}:http/proxy/index.html"),
    ]);
    assert_eq!(via_pod, "hello web\n");
    let via_svc = c.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/services/web:alt/proxy/"),
    ]);
    assert_eq!(via_svc, "alt\n");
    // kubectl proxy, then plain HTTP to a service through it.
    let proxy = StreamedLines::spawn(c.kubectl_cmd(&["proxy", "--port=0"]));
    let line = proxy.line_with("Starting to serve on", 20);
    let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    let through = http_get(
        port,
        &format!("/api/v1/namespaces/{ns}/services/web:80/proxy/index.html"),
    );
    assert_eq!(through, b"hello web\n");
    let none = c.fails(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/services/nothing/proxy/"),
    ]);
    assert!(none.contains("not found"), "{none}");
}

/// A GET over plain HTTP/1.0 to a loopback port; the body.
fn http_get(port: u16, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read");
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    all.split_off(split)
}

fn md5(data: &[u8]) -> u128 {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    u128::from_str_radix(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap(),
        16,
    )
    .unwrap()
}

pub fn stream_permissions(c: &Cluster) {
    let ns = "streamauth";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  containers: [{{name: c, image: "{BUSYBOX}", command: [sh, -c, 'echo secret output; exec sleep 3600']}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: viewer}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: viewer}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: viewer}}
subjects: [{{kind: User, name: viewer}}]
"#
        ),
    );
    running(c, ns, "p");
    let as_viewer = |args: &[&str]| {
        // Flags first: what follows `--` is the command.
        let mut all = vec!["-n", ns, "--as", "viewer"];
        all.extend(args);
        c.fails(&all)
    };
    let logs = as_viewer(&["logs", "p"]);
    assert!(logs.contains("cannot get resource \"pods/log\""), "{logs}");
    let exec = as_viewer(&["exec", "p", "--", "true"]);
    assert!(
        exec.contains("cannot create resource \"pods/exec\""),
        "{exec}"
    );
    let attach = as_viewer(&["attach", "p"]);
    assert!(attach.contains("pods/attach"), "{attach}");
    let forward = as_viewer(&[
        "port-forward",
        "p",
        &format!("{}:80", super::common::free_port()),
    ]);
    assert!(forward.contains("pods/portforward"), "{forward}");
    let proxy = as_viewer(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/pods/p/proxy/"),
    ]);
    assert!(proxy.contains("pods/proxy"), "{proxy}");
    // The agent's own port: nobody without credentials; a ServiceAccount without nodes/proxy
    // is refused by the API server's SubjectAccessReview.
    let port = c.ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].status.daemonEndpoints.kubeletEndpoint.Port}",
    ]);
    let url = format!("https://127.0.0.1:{port}/pods");
    let anonymous = curl_status(&url, None);
    assert_eq!(anonymous, "401");
    // The agent's serving certificate comes from the cluster CA.
    let verified = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(c.data_dir().join("tls/ca.crt"))
        .arg(format!("https://localhost:{port}/pods"))
        .output()
        .expect("curl");
    assert_eq!(stdout_of(&verified), "401", "{verified:?}");
    c.ok(&["create", "serviceaccount", "nobody", "-n", ns]);
    let token = c.ok(&["create", "token", "nobody", "-n", ns]);
    assert_eq!(curl_status(&url, Some(token.trim())), "403");
    // The agent's stats through the API server: the node and the running pod's containers.
    let node = node_name(c);
    let summary: serde_json::Value = serde_json::from_str(&c.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
    ]))
    .unwrap();
    assert_eq!(summary["node"]["nodeName"], node.as_str());
    assert!(
        summary["node"]["cpu"]["usageCoreNanoSeconds"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert!(summary["node"]["fs"]["capacityBytes"].as_u64().unwrap_or(0) > 0);
    let ours = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["namespace"] == ns && p["podRef"]["name"] == "p")
        .expect("the pod in the summary");
    assert!(
        ours["memory"]["workingSetBytes"].as_u64().unwrap_or(0) > 0,
        "{ours}"
    );
    let metrics = c.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/metrics/resource"),
    ]);
    assert!(
        metrics.contains(&format!(
            "container_memory_working_set_bytes{{container=\"c\",namespace=\"{ns}\",pod=\"p\"}}"
        )),
        "{metrics}"
    );
    // A pod on a node whose agent cannot be reached: the API server says so at once. The node
    // is tainted so that nothing else is scheduled there meanwhile.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: ghost}\nspec:\n  taints: [{key: test/ghost, effect: NoSchedule}]\n",
    );
    c.ok(&[
        "patch", "node", "ghost", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}],"daemonEndpoints":{"kubeletEndpoint":{"Port":1}}}}"#,
    ]);
    c.ok_stdin(
        &["apply", "-n", ns, "-f", "-"],
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: lost}}\nspec:\n  nodeName: ghost\n  containers: [{{name: c, image: \"{BUSYBOX}\"}}]\n"),
    );
    let lost = c.fails(&["logs", "lost", "-n", ns]);
    assert!(
        lost.contains("error dialing backend: dial tcp 127.0.0.1:1"),
        "{lost}"
    );
    c.ok(&[
        "delete",
        "pod",
        "lost",
        "-n",
        ns,
        "--grace-period=0",
        "--force",
    ]);
    c.ok(&["delete", "node", "ghost"]);
    // Through the API server, the admin reads the agent's pods.
    let pods = c.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{}/proxy/pods", node_name(c)),
    ]);
    assert!(pods.contains("\"PodList\""), "{pods}");
}

fn node_name(c: &Cluster) -> String {
    c.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])
}

fn curl_status(url: &str, token: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", url]);
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    let out = cmd.output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl debug` with an ephemeral container sharing the target's processes; the
/// subresource refuses changes to an existing one and fields ephemeral containers cannot have.
pub fn debug_with_ephemeral_containers(c: &Cluster) {
    let ns = "debug";
    namespace(c, ns);
    apply(
        c,
        ns,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: app}}
spec:
  containers: [{{name: main, image: "{BUSYBOX}", command: [sh, -c, 'exec sleep 3601']}}]
"#
        ),
    );
    running(c, ns, "app");
    c.ok(&[
        "debug",
        "app",
        "-n",
        ns,
        "--image",
        BUSYBOX,
        "--target=main",
        "-c",
        "dbg",
        "--",
        "sh",
        "-c",
        "ps; exec sleep 3600",
    ]);
    let pod = wait_pod(c, ns, "app", "the ephemeral container running", |p| {
        p["status"]["ephemeralContainerStatuses"][0]["state"]["running"].is_object()
    });
    assert_eq!(
        pod["status"]["ephemeralContainerStatuses"][0]["name"],
        "dbg"
    );
    assert_eq!(pod["status"]["phase"], "Running");
    wait_log(c, ns, &["app", "-c", "dbg"], "sleep 3601", 20);
    let inside = c.ok(&["exec", "app", "-n", ns, "-c", "dbg", "--", "echo", "in dbg"]);
    assert_eq!(inside, "in dbg\n");
    // Existing ephemeral containers stay as they are; new ones have no ports.
    let url = format!("/api/v1/namespaces/{ns}/pods/app/ephemeralcontainers");
    let mut pod: serde_json::Value = serde_json::from_str(&c.ok(&["get", "--raw", &url])).unwrap();
    // Unconditional writes: the agent updates the pod's status meanwhile.
    pod["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    pod["spec"]["ephemeralContainers"][0]["image"] = "busybox:other".into();
    let changed = c.kubectl_stdin(&["replace", "--raw", &url, "-f", "-"], &pod.to_string());
    let err = String::from_utf8_lossy(&changed.stderr);
    assert!(
        err.contains("existing ephemeral containers \"dbg\" may not be changed"),
        "{err}"
    );
    pod["spec"]["ephemeralContainers"][0]["image"] = BUSYBOX.into();
    let mut extra = pod["spec"]["ephemeralContainers"][0].clone();
    extra["name"] = "ported".into();
    extra["ports"] = serde_json::json!([{"containerPort": 80}]);
    pod["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .push(extra);
    let ported = c.kubectl_stdin(&["replace", "--raw", &url, "-f", "-"], &pod.to_string());
    let err = String::from_utf8_lossy(&ported.stderr);
    assert!(
        err.contains("cannot be set for an Ephemeral Container"),
        "{err}"
    );
}
