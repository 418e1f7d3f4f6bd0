//! The real `kubectl` against a `kox server` whose state lives in a real etcd
//! (`--datastore-endpoint`), started by the test on loopback and killed when it ends.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{StreamedLines, free_port};
use kox_store::etcd::local::{LocalEtcd, LocalEtcdOptions};

/// A `kox server` on etcd (kept alive by this guard, with the etcd member).
struct EtcdCluster {
    child: Option<Child>,
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    port: u16,
    // Dropped after the server (fields drop in order), so the server never outlives its store.
    etcd: LocalEtcd,
}

impl EtcdCluster {
    fn start() -> Self {
        let etcd = LocalEtcd::start(LocalEtcdOptions::default()).expect("start etcd");
        let mut c = EtcdCluster {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            cache: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            etcd,
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kox"))
            .args([
                "server",
                "--disable-agent",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &self.port.to_string(),
                "--datastore-endpoint",
                &self.etcd.endpoint(),
                "--data-dir",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.kubeconfig().exists()
                && self.kubectl(&["get", "--raw", "/readyz"]).status.success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kox server on etcd did not become ready: {}\netcd: {}",
                self.server_log(),
                self.etcd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// SIGTERM, wait for the exit, start again on the same etcd, data dir and port.
    fn restart(&mut self) {
        let mut child = self.child.take().expect("server running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while child.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn();
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.cache.path())
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
            self.server_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write manifest");
        path.display().to_string()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
  labels:
    app: demo
data:
  mode: one
";

#[test]
fn kubectl_create_get_apply_watch_delete_and_restart_on_etcd() {
    if !common::etcd_or_skip("kox on etcd") {
        return;
    }
    let mut c = EtcdCluster::start();
    // The embedded store was not opened: the state is in etcd.
    assert!(!c.dir.path().join("db").exists());

    // A watch opened before the changes sees every one of them.
    let watcher =
        StreamedLines::spawn(c.kubectl_cmd(&["get", "configmaps", "-w", "--output-watch-events"]));
    std::thread::sleep(Duration::from_millis(1500));

    let manifest = c.file("cm.yaml", CONFIGMAP);
    let out = c.ok(&["create", "-f", &manifest]);
    assert!(out.contains("configmap/settings created"), "{out}");
    let mode = c.ok(&[
        "get",
        "configmap",
        "settings",
        "-o",
        "jsonpath={.data.mode}",
    ]);
    assert_eq!(mode, "one");

    let changed = c.file("cm2.yaml", &CONFIGMAP.replace("mode: one", "mode: two"));
    let out = c.ok(&["apply", "-f", &changed]);
    assert!(out.contains("configmap/settings configured"), "{out}");
    let mode = c.ok(&[
        "get",
        "configmap",
        "settings",
        "-o",
        "jsonpath={.data.mode}",
    ]);
    assert_eq!(mode, "two");

    c.ok(&["create", "namespace", "team"]);
    c.ok(&[
        "create",
        "configmap",
        "other",
        "-n",
        "team",
        "--from-literal=k=v",
    ]);
    let listed = c.ok(&["get", "configmaps", "-A", "-l", "app=demo", "-o", "name"]);
    assert_eq!(listed.trim(), "configmap/settings");

    c.ok(&["delete", "configmap", "settings"]);
    let out = c.kubectl(&["get", "configmap", "settings"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match watcher.next_line(Duration::from_secs(10)) {
            Some(line) if line.split_whitespace().nth(1) == Some("settings") => seen.push(line),
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

    // A restarted server finds the objects in etcd.
    let before = c.ok(&[
        "get",
        "configmap",
        "other",
        "-n",
        "team",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    c.restart();
    let after = c.ok(&[
        "get",
        "configmap",
        "other",
        "-n",
        "team",
        "-o",
        "jsonpath={.metadata.resourceVersion} {.data.k}",
    ]);
    assert_eq!(after, format!("{before} v"));
    let namespaces = c.ok(&["get", "namespaces", "-o", "name"]);
    assert!(namespaces.contains("namespace/team"), "{namespaces}");
    assert!(!c.dir.path().join("db").exists());
}
