//! End to end: the attacks of the security review, each tried as an attacker would and each
//! refused, with the server still answering. (SECURITY.md lists what these cover.)

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Cluster, connect_from, curl, h2_admin, kox_kubeconfig, status, wait_for};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The real kubectl with another kubeconfig (a node's, a user's).
struct As<'a> {
    c: &'a Cluster,
    kubeconfig: PathBuf,
}

impl As<'_> {
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut full = vec!["--kubeconfig", self.kubeconfig.to_str().unwrap()];
        full.extend_from_slice(args);
        self.c.kubectl_stdin(&full, stdin)
    }

    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting a refusal that says `why`; returns stderr.
    fn refused(&self, args: &[&str], stdin: &str, why: &str) -> String {
        let out = self.run(args, stdin);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "kubectl {args:?} was allowed");
        assert!(
            err.contains(why),
            "kubectl {args:?}: expected {why:?} in {err}"
        );
        err
    }
}

fn mirror_pod(name: &str, node_uid: &str, spec: Value) -> String {
    let mut spec = spec;
    spec["nodeName"] = json!("node-a");
    spec.as_object_mut()
        .unwrap()
        .entry("containers")
        .or_insert(json!([{"name": "c", "image": "registry.local/app"}]));
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "victim",
            "annotations": {"kubernetes.io/config.mirror": "hash"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "node-a",
                                 "uid": node_uid, "controller": true}]
        },
        "spec": spec
    })
    .to_string()
}

/// Issue items 1, 3 and part of 8: a node credential reaches no Secret through a mirror pod,
/// and stays within upstream's NodeRestriction.
#[test]
fn a_node_stays_within_its_own_objects() {
    let c = Cluster::start();
    let node = As {
        c: &c,
        kubeconfig: kox_kubeconfig(&c, "node-a", &["--node", "node-a"]),
    };
    node.ok(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a","labels":{"kubernetes.io/hostname":"node-a"}}}"#,
    );
    let uid = c.ok(&["get", "node", "node-a", "-o", "jsonpath={.metadata.uid}"]);
    c.ok(&["create", "namespace", "victim"]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "db-password",
        "-n",
        "victim",
        "--from-literal=password=hunter2",
    ]);

    // 1. A mirror pod naming a Secret is refused, however it names it.
    for (name, spec) in [
        (
            "env-from",
            json!({"containers": [{"name": "c", "image": "registry.local/app",
                   "envFrom": [{"secretRef": {"name": "db-password"}}]}]}),
        ),
        (
            "volume",
            json!({"volumes": [{"name": "s", "secret": {"secretName": "db-password"}}]}),
        ),
    ] {
        node.refused(
            &["create", "-f", "-"],
            &mirror_pod(name, &uid, spec),
            &format!(
                r#"pods "{name}" is forbidden: node "node-a" can not create pods that reference secrets"#
            ),
        );
    }
    for (spec, why) in [
        (
            json!({"volumes": [{"name": "c", "configMap": {"name": "kube-root-ca.crt"}}]}),
            "can not create pods that reference configmaps",
        ),
        (
            json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}),
            "can not create pods that reference persistentvolumeclaims",
        ),
        (
            json!({"serviceAccountName": "default"}),
            "can not create pods that reference a service account",
        ),
    ] {
        node.refused(
            &["create", "-f", "-"],
            &mirror_pod("other-refs", &uid, spec),
            why,
        );
    }
    node.refused(
        &["create", "-f", "-"],
        &mirror_pod("stale-owner", "not-the-node-uid", json!({})),
        "UID mismatch",
    );
    // A mirror pod that refers to nothing is the node's to create; it may not then shed the
    // annotation (which would let the Node authorizer follow it), nor may anyone add it.
    node.ok(
        &["create", "-f", "-"],
        &mirror_pod("static-web", &uid, json!({})),
    );
    let mut unmirrored: Value =
        serde_json::from_str(&c.ok(&["get", "pod", "static-web", "-n", "victim", "-o", "json"]))
            .unwrap();
    unmirrored["metadata"]["annotations"] = json!({});
    node.refused(
        &["replace", "--subresource=status", "-f", "-"],
        &unmirrored.to_string(),
        r#"Pod "static-web" is invalid: metadata.annotations[kubernetes.io/config.mirror]: Forbidden: may not remove or update mirror pod annotation"#,
    );
    c.ok(&[
        "run",
        "web",
        "-n",
        "victim",
        "--image=registry.local/app",
        "--overrides={\"spec\":{\"nodeName\":\"node-a\"}}",
    ]);
    let admin = As {
        c: &c,
        kubeconfig: c.kubeconfig(),
    };
    admin.refused(
        &[
            "annotate",
            "pod",
            "web",
            "-n",
            "victim",
            "kubernetes.io/config.mirror=x",
        ],
        "",
        "metadata.annotations[kubernetes.io/config.mirror]: Forbidden: may not add mirror pod annotation",
    );
    node.refused(
        &["get", "secret", "db-password", "-n", "victim"],
        "",
        "is forbidden",
    );

    // 3. Its own Node: no steering labels, no taint changes; kubelet labels are fine.
    node.ok(
        &["label", "node", "node-a", "topology.kubernetes.io/zone=z1"],
        "",
    );
    node.refused(
        &[
            "label",
            "node",
            "node-a",
            "node-role.kubernetes.io/control-plane=",
        ],
        "",
        "is not allowed to modify labels: node-role.kubernetes.io/control-plane",
    );
    node.refused(
        &[
            "label",
            "node",
            "node-a",
            "node-restriction.kubernetes.io/pci=true",
        ],
        "",
        "is not allowed to modify labels: node-restriction.kubernetes.io/pci",
    );
    c.ok(&["taint", "node", "node-a", "dedicated=db:NoSchedule"]);
    node.refused(
        &["taint", "node", "node-a", "dedicated=db:NoSchedule-"],
        "",
        r#"node "node-a" is not allowed to modify taints"#,
    );
    let node_c = As {
        c: &c,
        kubeconfig: kox_kubeconfig(&c, "node-c", &["--node", "node-c"]),
    };
    node_c.refused(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-c","labels":{"node-role.kubernetes.io/master":""}}}"#,
        r#"node "node-c" is not allowed to set the following labels: node-role.kubernetes.io/master"#,
    );

    // Its pods' labels are not its to change through pods/status.
    let mut relabelled: Value =
        serde_json::from_str(&c.ok(&["get", "pod", "web", "-n", "victim", "-o", "json"])).unwrap();
    relabelled["metadata"]["labels"]["tier"] = json!("frontend");
    node.refused(
        &["replace", "--subresource=status", "-f", "-"],
        &relabelled.to_string(),
        r#"node "node-a" cannot update labels through pod status"#,
    );

    // Service-account tokens: only bound to a pod of its own (8: and only for the pod's own
    // account, whoever asks).
    c.ok(&["create", "serviceaccount", "builder", "-n", "victim"]);
    c.ok(&[
        "run",
        "build",
        "-n",
        "victim",
        "--image=registry.local/app",
        "--overrides={\"spec\":{\"nodeName\":\"node-a\",\"serviceAccountName\":\"builder\"}}",
    ]);
    let pod_uid = c.ok(&[
        "get",
        "pod",
        "build",
        "-n",
        "victim",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    wait_for(30, "the node's view of its new pod", || {
        let out = node.run(
            &[
                "create",
                "token",
                "builder",
                "-n",
                "victim",
                "--bound-object-kind=Pod",
                "--bound-object-name=build",
                &format!("--bound-object-uid={pod_uid}"),
            ],
            "",
        );
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
    });
    node.refused(
        &[
            "create",
            "token",
            "builder",
            "-n",
            "victim",
            "--duration=87600h",
        ],
        "",
        "node requested token not bound to a pod",
    );
    admin.refused(
        &[
            "create",
            "token",
            "default",
            "-n",
            "victim",
            "--bound-object-kind=Pod",
            "--bound-object-name=build",
        ],
        "",
        r#"cannot bind token for serviceaccount "default" to pod running with different serviceaccount name."#,
    );

    // Leases: its own only.
    let lease = |name: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": name, "namespace": "kube-node-lease"},
               "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}})
        .to_string()
    };
    node.ok(&["create", "-f", "-"], &lease("node-a"));
    node.refused(
        &["create", "-f", "-"],
        &lease("node-b"),
        "can only access node lease with the same name as the requesting node",
    );
}

/// How long the server takes to close a connection on which the client writes `lines`, one
/// every `every`, and nothing else; `None` if it is still open after `limit`.
async fn closed_after<S>(
    stream: S,
    lines: &[&[u8]],
    every: Duration,
    limit: Duration,
) -> Option<Duration>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let started = Instant::now();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let closed = async move {
        let mut buf = [0u8; 1024];
        // Closed: end of stream or an error (a reset, a TLS stream cut without close_notify).
        while let Ok(1..) = reader.read(&mut buf).await {}
    };
    let stall = async move {
        for line in lines {
            if writer.write_all(line).await.is_err() || writer.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = closed => Some(started.elapsed()),
        _ = stall => unreachable!(),
        _ = tokio::time::sleep(limit) => None,
    }
}

/// A TLS connection (no client certificate: anonymous) to the server from `source`.
async fn tls_from(
    c: &Cluster,
    source: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let ca = std::fs::read(c.data_dir().join("tls/ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = connect_from(source, c.port).await;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Issue item 2: connections that send nothing, or a header line now and then, are closed as
/// upstream closes them; one address cannot hold more than its share; the API keeps
/// answering everyone else and the log does not fill up.
#[test]
fn stalled_and_flooding_connections_are_closed_and_the_api_answers() {
    let c = Cluster::start_with(&["--max-connections-per-client", "200"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = c.port;

    // A flood from one address: beyond its 200 connections, each new one is closed at once.
    // (The server's own components hold ~80 connections from 127.0.0.1, kubectl's address.)
    let flood = rt.block_on(async {
        let mut flood = Vec::new();
        for _ in 0..400 {
            flood.push(connect_from("127.0.0.2", port).await);
        }
        flood
    });
    // (Checked all at once: the admitted ones stay open until their TLS handshake times out.)
    let (flood, closed) = rt.block_on(async move {
        let mut checks = tokio::task::JoinSet::new();
        for mut s in flood {
            checks.spawn(async move {
                let mut b = [0u8; 1];
                let open = tokio::time::timeout(Duration::from_millis(500), s.read(&mut b))
                    .await
                    .is_err();
                (s, open)
            });
        }
        let (mut open, mut closed) = (Vec::new(), 0);
        while let Some(Ok((s, still_open))) = checks.join_next().await {
            if still_open {
                open.push(s);
            } else {
                closed += 1;
            }
        }
        (open, closed)
    });
    assert_eq!(closed, 200, "connections closed beyond the address's share");
    assert_eq!(flood.len(), 200);
    // Everyone else is served while the flood holds its share.
    let started = Instant::now();
    c.ok(&["get", "namespaces"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(flood);

    // Stalls: a TCP connection that never starts TLS, a TLS connection that sends nothing, and
    // one that sends a header line every 10 s (slowloris).
    let (no_tls, silent, slowloris) = rt.block_on(async {
        let limit = Duration::from_secs(60);
        let quiet = Duration::from_secs(3600);
        let no_tls = closed_after(connect_from("127.0.0.3", port).await, &[], quiet, limit);
        let silent = closed_after(tls_from(&c, "127.0.0.3").await, &[], quiet, limit);
        let slow: &[&[u8]] = &[
            b"GET /version HTTP/1.1\r\n",
            b"Host: 127.0.0.1\r\n",
            b"X-Stall-1: a\r\n",
            b"X-Stall-2: a\r\n",
            b"X-Stall-3: a\r\n",
            b"X-Stall-4: a\r\n",
            b"X-Stall-5: a\r\n",
        ];
        let slowloris = closed_after(
            tls_from(&c, "127.0.0.3").await,
            slow,
            Duration::from_secs(10),
            limit,
        );
        tokio::join!(no_tls, silent, slowloris)
    });
    let within = |d: Option<Duration>, lo: u64, hi: u64| {
        d.is_some_and(|d| d >= Duration::from_secs(lo) && d <= Duration::from_secs(hi))
    };
    assert!(within(no_tls, 9, 15), "no TLS handshake: {no_tls:?}");
    assert!(within(silent, 30, 40), "silent TLS connection: {silent:?}");
    assert!(within(slowloris, 30, 40), "slowloris: {slowloris:?}");
    c.ok(&["get", "namespaces"]);

    // 200 refusals in a moment: one log line.
    let log = c.server_log();
    let lines = log.matches("too many connections").count();
    assert!((1..=2).contains(&lines), "{lines} lines:\n{log}");
}

/// Issue items 5 and 6: an impersonation header that is not text is refused, never ignored;
/// the audit log, readable by its owner only, names both the impersonator and the
/// impersonated user, and every request's User-Agent.
#[test]
fn impersonation_is_never_ignored_and_audited_as_both_users() {
    let audit_dir = tempfile::tempdir().unwrap();
    let log = audit_dir.path().join("audit.log");
    let c = Cluster::start_with(&["--audit-log-path", log.to_str().unwrap()]);

    // 5. A user name, group or uid that is not UTF-8: 400, not the caller's own rights.
    for name in ["Impersonate-User", "Impersonate-Group", "Impersonate-Uid"] {
        let mut value = format!("{name}: ").into_bytes();
        value.extend_from_slice(b"adm\xffin");
        let mut headers = vec![OsStr::new("-H"), OsStr::from_bytes(&value)];
        let user = OsStr::new("Impersonate-User: jane");
        if name != "Impersonate-User" {
            headers.extend([OsStr::new("-H"), user]);
        }
        let (head, body) = curl(&c, "/api/v1/namespaces", &headers);
        assert_eq!(status(&head), "400", "{name}: {head}");
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains(&format!(
                "the {} header is not valid UTF-8",
                name.to_ascii_lowercase()
            )),
            "{body}"
        );
    }

    // 6. Impersonated requests name both users; the log is the owner's alone.
    let err = c.fails(&["get", "namespaces", "--as=jane", "--as-group=devs"]);
    assert!(
        err.contains(r#"User "jane" cannot list resource "namespaces""#),
        "{err}"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "audit log mode {mode:o}");
    let events = || -> Vec<Value> {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let impersonated = wait_for(10, "the impersonated request's audit event", || {
        events()
            .into_iter()
            .find(|e| {
                e["impersonatedUser"]["username"] == "jane"
                    && e["objectRef"]["resource"] == "namespaces"
            })
            .ok_or_else(|| "not yet".to_string())
    });
    assert_eq!(impersonated["user"]["username"], "kubernetes-admin");
    assert_eq!(
        impersonated["impersonatedUser"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    assert_eq!(impersonated["responseStatus"]["code"], 403);
    // Every request says who sent it: kubectl, the scheduler, the controller manager.
    let agents: Vec<String> = events()
        .iter()
        .map(|e| e["userAgent"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(agents.iter().all(|a| !a.is_empty()), "{agents:?}");
    for component in ["kubectl/", "kube-scheduler/", "kube-controller-manager/"] {
        assert!(
            agents.iter().any(|a| a.starts_with(component)),
            "{component}: {agents:?}"
        );
    }
}

/// curl without credentials, or with whatever `args` bring: the status code it printed and
/// whether it exited cleanly.
fn curl_anonymous(c: &Cluster, path: &str, args: &[&str]) -> (String, bool) {
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .arg(format!("https://127.0.0.1:{}{path}", c.port))
        .output()
        .expect("run curl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

/// Issue items 8 and 9: PodSecurity baseline refuses host-process pods (and validation wants
/// the host network with them); nobody marks a live namespace Terminating; HEAD works over
/// HTTP/2; a refused upload is answered, not reset; a negative resourceVersion is refused.
#[test]
fn pod_security_namespaces_and_protocol_edges_hold() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "apps"]);
    c.ok(&[
        "label",
        "namespace",
        "apps",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    let host_process = |ns: &str, host_network: bool| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "hpc", "namespace": ns},
               "spec": {"hostNetwork": host_network,
                        "containers": [{"name": "c", "image": "registry.local/app",
                                        "securityContext": {"windowsOptions": {"hostProcess": true}}}]}})
        .to_string()
    };
    let err = c
        .kubectl_stdin(&["create", "-f", "-"], &host_process("apps", true))
        .stderr;
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains(r#"violates PodSecurity "baseline:latest""#)
            && err.contains(
                r#"hostProcess (container "c" must not set securityContext.windowsOptions.hostProcess=true)"#
            ),
        "{err}"
    );
    let err = c
        .kubectl_stdin(&["create", "-f", "-"], &host_process("default", false))
        .stderr;
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("spec.hostNetwork: Invalid value: false: hostNetwork must be true if pod contains any hostProcess containers"),
        "{err}"
    );

    let mut ns: Value =
        serde_json::from_str(&c.ok(&["get", "namespace", "apps", "-o", "json"])).unwrap();
    ns["status"]["phase"] = json!("Terminating");
    let out = c.kubectl_stdin(
        &[
            "replace",
            "--raw",
            "/api/v1/namespaces/apps/status",
            "-f",
            "-",
        ],
        &ns.to_string(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("may only be 'Active' if `deletionTimestamp` is empty"),
        "{err}"
    );
    assert_eq!(
        c.ok(&["get", "namespace", "apps", "-o", "jsonpath={.status.phase}"]),
        "Active"
    );

    // HEAD over HTTP/2 and HTTP/1.1: the GET answer's head.
    for version in ["--http2", "--http1.1"] {
        let (head, body) = curl(
            &c,
            "/api/v1/namespaces/apps",
            &[OsStr::new(version), OsStr::new("-I")],
        );
        assert_eq!(status(&head), "200", "HEAD {version}: {head}");
        // (With -I, curl writes the head where the body would go.)
        assert!(!String::from_utf8_lossy(&body).contains("\"kind\""));
    }
    // A 3 MB upload refused before it is read: the client gets the 401, every time.
    let upload = c.data_dir().join("upload.json");
    std::fs::write(&upload, vec![b'a'; 3_000_000]).unwrap();
    let body = format!("@{}", upload.display());
    for _ in 0..5 {
        let (code, clean) = curl_anonymous(
            &c,
            "/api/v1/namespaces/default/configmaps",
            &[
                "--http2",
                "-X",
                "POST",
                "-H",
                "Authorization: Bearer not-a-token",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
            ],
        );
        assert!(
            clean && code == "401",
            "refused upload: {code}, clean: {clean}"
        );
    }
    let err = c.fails(&["get", "--raw", "/api/v1/pods?resourceVersion=-5"]);
    assert!(
        err.contains(r#"resourceVersion: Invalid value: "-5""#),
        "{err}"
    );
}

/// A child process killed when the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue item 7: a component's `/metrics` needs the API server's yes (TokenReview, then
/// SubjectAccessReview on the path); health stays open; it listens only where told.
#[test]
fn component_metrics_are_authorized_and_bound_where_told() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    let port = common::free_port();
    let log = std::fs::File::create(c.data_dir().join("scheduler.log")).unwrap();
    let _scheduler = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_kox"))
            .args(["scheduler", "--bind-address", "127.0.0.1", "--secure-port"])
            .arg(port.to_string())
            .arg("--kubeconfig")
            .arg(c.data_dir().join("scheduler.kubeconfig"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox scheduler"),
    );
    let get = |address: &str, path: &str, token: Option<&str>| -> (String, String) {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sk", "--max-time", "10", "-w", "\n%{http_code}"]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let out = cmd
            .arg(format!("https://{address}:{port}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.to_string(), body.to_string())
    };
    wait_for(30, "the scheduler's health endpoint", || {
        let (code, body) = get("127.0.0.1", "/healthz", None);
        (code == "200").then_some(()).ok_or(body)
    });
    let (code, body) = get("127.0.0.1", "/metrics", None);
    assert_eq!(code, "403", "{body}");
    assert!(
        body.contains(r#"forbidden: User "system:anonymous" cannot get path "/metrics""#),
        "{body}"
    );
    let (code, _) = get("127.0.0.1", "/metrics", Some("not-a-token"));
    assert_eq!(code, "401");

    c.ok(&["create", "serviceaccount", "prometheus"]);
    c.ok(&["create", "serviceaccount", "nosy"]);
    c.ok(&[
        "create",
        "clusterrole",
        "metrics-reader",
        "--verb=get",
        "--non-resource-url=/metrics",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "prometheus-metrics",
        "--clusterrole=metrics-reader",
        "--serviceaccount=default:prometheus",
    ]);
    let scraper = c.ok(&["create", "token", "prometheus"]);
    let (code, body) = wait_for(30, "the scraper allowed", || {
        let (code, body) = get("127.0.0.1", "/metrics", Some(scraper.trim()));
        (code == "200")
            .then_some((code.clone(), body.clone()))
            .ok_or(format!("{code} {body}"))
    });
    assert_eq!(code, "200");
    assert!(body.contains("# TYPE"), "{body}");
    let nosy = c.ok(&["create", "token", "nosy"]);
    let (code, body) = get("127.0.0.1", "/metrics", Some(nosy.trim()));
    assert_eq!(code, "403", "{body}");
    assert!(
        body.contains(r#"User "system:serviceaccount:default:nosy" cannot get path "/metrics""#),
        "{body}"
    );
    // Bound to 127.0.0.1, it is not reachable at another local address.
    let (code, _) = get("127.0.0.2", "/healthz", None);
    assert_eq!(code, "000", "reachable beyond its bind address");
}

/// Issue item 4: watches and lists that a client never reads, over one HTTP/2 connection,
/// hold a bounded amount of the server's memory (a list is made as it is read, a watch's
/// initial events likewise; one user's lists in flight are limited), and everyone else is
/// answered meanwhile.
#[test]
fn unread_watches_and_lists_hold_bounded_memory() {
    let c = Cluster::start_with(&["--disable-controller-manager", "--disable-scheduler"]);
    // A 15 MB collection: 150 config maps of 100 KB.
    let items: Vec<Value> = (0..150)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": format!("big-{i}"), "namespace": "default"},
                   "data": {"blob": "x".repeat(100_000)}})
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    c.ok_stdin(&["create", "-f", "-"], &list);
    c.ok(&["get", "configmaps", "-o", "name"]);
    let bystander = As {
        c: &c,
        kubeconfig: kox_kubeconfig(
            &c,
            "bystander",
            &["--user", "bystander", "--group", "system:masters"],
        ),
    };
    let before = c.rss_mib();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt.block_on(async {
        let mut send = h2_admin::<http_body_util::Empty<bytes::Bytes>>(&c).await;
        let mut held = Vec::new();
        for path in ["/api/v1/configmaps?watch=1", "/api/v1/configmaps"] {
            for _ in 0..50 {
                send.ready().await.unwrap();
                let req = http::Request::get(path)
                    .body(http_body_util::Empty::new())
                    .unwrap();
                held.push(send.send_request(req));
            }
        }
        // The answers' heads arrive; their bodies are never read.
        let mut responses = Vec::new();
        for r in held {
            if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(15), r).await {
                responses.push(resp);
            }
        }
        (send, responses)
    });
    let started = Instant::now();
    bystander.ok(&["get", "namespaces"], "");
    let answered_in = started.elapsed();
    let during = c.rss_mib();
    let statuses: Vec<u16> = held.1.iter().map(|r| r.status().as_u16()).collect();
    drop(held);
    assert!(
        answered_in < Duration::from_secs(3),
        "GET took {answered_in:?}"
    );
    // (Before lists and watches were made as they are read, this grew by gigabytes.)
    assert!(
        during < before + 500,
        "the server grew from {before} MiB to {during} MiB"
    );
    // One user's lists beyond its 16 slots were told to come back later.
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 66,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    eprintln!("unread watches and lists: {before} MiB before, {during} MiB during");
}
