//! Several `kox apiserver` processes on one real 3-member etcd cluster (Debian's `etcd-server`,
//! started by the tests on loopback), driven with the real `kubectl`: they form one cluster
//! (shared CA through the token), see each other's writes, and ride out member failures.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::free_port;
use kox_store::etcd::local::{LocalEtcdCluster, LocalEtcdOptions};

/// One `kox apiserver` process with its own data directory and port.
struct ApiServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    port: u16,
}

impl ApiServer {
    fn spawn(endpoints: &[String], token: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kox"))
            .args([
                "apiserver",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &port.to_string(),
                "--datastore-endpoint",
                &endpoints.join(","),
                "--token",
                token,
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox apiserver");
        ApiServer {
            child: Some(child),
            dir,
            cache: tempfile::tempdir().expect("temp dir"),
            port,
        }
    }

    /// Starts a server and waits until it is ready.
    fn start(endpoints: &[String], token: &str) -> Self {
        let mut s = Self::spawn(endpoints, token);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("kox apiserver exited with {status}: {}", s.log());
            }
            if s.kubeconfig().exists() && s.kubectl(&["get", "--raw", "/readyz"]).status.success() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "kox apiserver did not become ready: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// kubectl against this server with this server's admin kubeconfig.
    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        self.kubectl_as(&self.kubeconfig(), args)
    }

    /// kubectl against this server with another server's kubeconfig (its CA and admin
    /// certificate).
    fn kubectl_as(&self, kubeconfig: &PathBuf, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .arg("--server")
            .arg(format!("https://127.0.0.1:{}", self.port))
            .args(args);
        cmd
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\nserver log: {}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A streaming `kubectl get -w` (or `--raw` watch) whose output lines are collected.
struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubectl watch");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Watch { child, lines }
    }

    /// Waits until a line containing `needle` arrived.
    fn saw(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcd3() -> LocalEtcdCluster {
    let etcd = LocalEtcdCluster::start(3, LocalEtcdOptions::default()).expect("start etcd");
    assert!(
        etcd.wait_for_leader(Duration::from_secs(30)).is_some(),
        "the etcd cluster elected no leader: {}",
        etcd.log(0)
    );
    etcd
}

#[test]
fn api_servers_sharing_etcd_form_one_cluster() {
    if !common::etcd_or_skip("kox HA on etcd") {
        return;
    }
    let etcd = etcd3();
    let endpoints = etcd.endpoints();
    let mut a = ApiServer::start(&endpoints, "cluster-token-1");
    let b = ApiServer::start(&endpoints, "cluster-token-1");

    // A wrong token is refused with advice, and the server does not start.
    let mut wrong = ApiServer::spawn(&endpoints, "another-token");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = wrong.child.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "a server with a wrong token kept running: {}",
            wrong.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    assert!(
        wrong.log().contains("different token") && wrong.log().contains("--token"),
        "{}",
        wrong.log()
    );

    // One CA: A's admin kubeconfig works against B, and B's against A.
    let out = b
        .kubectl_as(
            &a.kubeconfig(),
            &["get", "namespace", "default", "-o", "name"],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "A's kubeconfig against B: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = a
        .kubectl_as(
            &b.kubeconfig(),
            &["get", "namespace", "default", "-o", "name"],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every etcd member is listed in componentstatuses.
    let cs = a.ok(&["get", "componentstatuses"]);
    for member in ["etcd-0", "etcd-1", "etcd-2"] {
        let line = cs
            .lines()
            .find(|l| l.starts_with(member))
            .unwrap_or_else(|| panic!("{member} missing from:\n{cs}"));
        assert!(line.contains("Healthy"), "{cs}");
    }

    // A write through A is seen by a list and a watch on B.
    let watch_b = Watch::start(b.kubectl_cmd(&["get", "configmaps", "-w", "-o", "name"]));
    std::thread::sleep(Duration::from_secs(1));
    a.ok(&["create", "configmap", "from-a", "--from-literal=k=v"]);
    assert!(
        watch_b.saw("configmap/from-a", Duration::from_secs(30)),
        "B's watch missed A's write: {}",
        watch_b.output()
    );
    assert_eq!(
        b.ok(&["get", "configmap", "from-a", "-o", "jsonpath={.data.k}"]),
        "v"
    );

    // Two servers updating the same object from the same resourceVersion: exactly one wins.
    let current = a.ok(&["get", "configmap", "from-a", "-o", "json"]);
    let mut obj: serde_json::Value = serde_json::from_str(&current).unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, who) in ["a", "b"].iter().enumerate() {
        obj["data"]["k"] = serde_json::json!(format!("by-{who}"));
        let path = files.path().join(format!("{i}.json"));
        std::fs::write(&path, obj.to_string()).unwrap();
        paths.push(path);
    }
    let replace = |s: &ApiServer, path: &PathBuf| {
        let mut cmd = s.kubectl_cmd(&["replace", "-f"]);
        cmd.arg(path);
        cmd
    };
    let mut ca = replace(&a, &paths[0]);
    let mut cb = replace(&b, &paths[1]);
    let ha = std::thread::spawn(move || ca.output().unwrap());
    let hb = std::thread::spawn(move || cb.output().unwrap());
    let (oa, ob) = (ha.join().unwrap(), hb.join().unwrap());
    assert_eq!(
        u8::from(oa.status.success()) + u8::from(ob.status.success()),
        1,
        "exactly one concurrent replace must win: A: {} B: {}",
        String::from_utf8_lossy(&oa.stderr),
        String::from_utf8_lossy(&ob.stderr)
    );
    let loser = if oa.status.success() { &ob } else { &oa };
    assert!(
        String::from_utf8_lossy(&loser.stderr).contains("the object has been modified"),
        "{}",
        String::from_utf8_lossy(&loser.stderr)
    );

    // ClusterIPs and NodePorts created through both servers at once never collide.
    let mut handles = Vec::new();
    for (who, s) in [("a", &a), ("b", &b)] {
        for i in 0..6 {
            let mut cmd = s.kubectl_cmd(&[
                "create",
                "service",
                "nodeport",
                &format!("svc-{who}-{i}"),
                "--tcp=80:8080",
            ]);
            handles.push(std::thread::spawn(move || cmd.output().unwrap()));
        }
    }
    for h in handles {
        let out = h.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ips = a.ok(&[
        "get",
        "services",
        "-o",
        "jsonpath={range .items[*]}{.spec.clusterIP}{\"\\n\"}{end}",
    ]);
    let ips: Vec<&str> = ips.lines().collect();
    assert_eq!(ips.len(), 13, "{ips:?}");
    assert_eq!(ips.iter().collect::<BTreeSet<_>>().len(), 13, "{ips:?}");
    let ports = b.ok(&[
        "get",
        "services",
        "-o",
        "jsonpath={range .items[*]}{.spec.ports[0].nodePort}{\"\\n\"}{end}",
    ]);
    let ports: Vec<&str> = ports.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(ports.len(), 12, "{ports:?}");
    assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), 12, "{ports:?}");

    // One API server dies: the other keeps serving, including a watch opened on it.
    a.kill();
    b.ok(&["create", "configmap", "after-a-died"]);
    assert!(
        watch_b.saw("configmap/after-a-died", Duration::from_secs(30)),
        "B's watch stopped when A died: {}",
        watch_b.output()
    );
    assert!(
        b.ok(&["get", "configmaps", "-o", "name"])
            .contains("configmap/from-a")
    );
}

/// Creates configmaps through one server in a loop until stopped; returns what was
/// acknowledged (name → value) and when each acknowledgement came.
fn writer(
    server: &ApiServer,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(String, String, Instant)>> {
    let kubeconfig = server.kubeconfig();
    let cache = server.cache.path().to_path_buf();
    let url = format!("https://127.0.0.1:{}", server.port);
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let name = format!("{prefix}-{n}");
            let value = format!("value-{n}");
            let out = Command::new("kubectl")
                .env("KUBECONFIG", &kubeconfig)
                .arg("--cache-dir")
                .arg(&cache)
                .args(["--server", &url, "--request-timeout=20s"])
                .args(["create", "configmap", &name])
                .arg(format!("--from-literal=v={value}"))
                .output()
                .expect("run kubectl");
            if out.status.success() {
                acked.push((name, value, Instant::now()));
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        acked
    })
}

fn configmap_values(server: &ApiServer) -> BTreeMap<String, String> {
    let out = server.ok(&[
        "get",
        "configmaps",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.data.v}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn writes_survive_etcd_failures_and_quorum_loss_fails_fast() {
    if !common::etcd_or_skip("kox HA on etcd") {
        return;
    }
    let mut etcd = etcd3();
    let endpoints = etcd.endpoints();
    let mut a = ApiServer::start(&endpoints, "t0k3n");
    let mut b = ApiServer::start(&endpoints, "t0k3n");

    // Continuous writes through both servers while the leader, then a follower, is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let wa = writer(&a, "wa", stop.clone());
    let wb = writer(&b, "wb", stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    let leader = etcd
        .wait_for_leader(Duration::from_secs(30))
        .expect("a leader");
    etcd.kill(leader);
    let leader_killed = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    etcd.restart(leader).expect("restart the old leader");
    std::thread::sleep(Duration::from_secs(3));
    let new_leader = etcd
        .wait_for_leader(Duration::from_secs(30))
        .expect("a leader");
    let follower = (0..etcd.len()).find(|&i| i != new_leader).unwrap();
    etcd.kill(follower);
    let follower_killed = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    etcd.restart(follower).expect("restart the follower");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<_> = wa
        .join()
        .unwrap()
        .into_iter()
        .chain(wb.join().unwrap())
        .collect();
    for (what, at) in [("leader", leader_killed), ("follower", follower_killed)] {
        let after = acked
            .iter()
            .filter(|(_, _, t)| *t > at && *t < at + Duration::from_secs(8))
            .count();
        let since: Vec<String> = acked
            .iter()
            .filter(|(_, _, t)| *t > at - Duration::from_secs(3))
            .map(|(n, _, t)| format!("{n}@{:.1}s", t.duration_since(at).as_secs_f64()))
            .collect();
        assert!(
            after > 0,
            "no write succeeded in the 8 s after the etcd {what} was killed; acknowledged from 3 s before: {since:?}\nA: {}\nB: {}",
            a.log(),
            b.log()
        );
    }
    // Every acknowledged write is there, with its value.
    let stored = configmap_values(&a);
    for (name, value, _) in &acked {
        assert_eq!(
            stored.get(name),
            Some(value),
            "acknowledged write {name} lost"
        );
    }
    assert!(
        acked.len() >= 10,
        "too few writes to judge: {}",
        acked.len()
    );

    // A watch on A, open across the quorum loss below.
    let rv = a.ok(&[
        "get",
        "configmaps",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let watch_a = Watch::start(a.kubectl_cmd(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"),
    ]));

    // Two of three members down: writes fail promptly with a Status, the servers stay up and
    // say they are not ready.
    etcd.kill(0);
    etcd.kill(1);
    let started = Instant::now();
    let out = a.kubectl(&[
        "create",
        "configmap",
        "during-outage",
        "--request-timeout=90s",
    ]);
    let took = started.elapsed();
    assert!(!out.status.success(), "a write without quorum succeeded");
    assert!(
        took < Duration::from_secs(45),
        "a write without quorum took {took:?} to fail"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A 500 Status naming the datastore, as kubectl prints it.
    assert!(
        stderr.contains("Internal error occurred") && stderr.contains("etcd"),
        "{stderr}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.kubectl(&["get", "--raw", "/readyz"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "/readyz stayed ok without quorum"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(a.is_running() && b.is_running(), "a server exited");

    // The members return: the servers recover without a restart, and the watch resumes.
    etcd.restart(0).expect("restart member 0");
    etcd.restart(1).expect("restart member 1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if a.kubectl(&["create", "configmap", "after-outage"])
            .status
            .success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not recover after quorum returned: {}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Readiness follows within its next store check.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !a.kubectl(&["get", "--raw", "/readyz"]).status.success() {
        assert!(Instant::now() < deadline, "not ready again: {}", a.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        b.ok(&["get", "configmap", "after-outage", "-o", "name"])
            .contains("after-outage"),
        "B does not see the write after recovery"
    );
    assert!(
        watch_a.saw("after-outage", Duration::from_secs(30)),
        "the watch did not resume after the outage: {}",
        watch_a.output()
    );
    assert!(
        !stored_has(&a, "during-outage"),
        "the failed write was stored"
    );
}

fn stored_has(server: &ApiServer, name: &str) -> bool {
    server.kubectl(&["get", "configmap", name]).status.success()
}
