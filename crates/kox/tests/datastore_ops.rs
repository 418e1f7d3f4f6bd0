//! `kox datastore snapshot save|restore` and `kox datastore migrate`, end to end: objects made
//! with the real `kubectl` survive a snapshot restored into a fresh data directory, and a move
//! from the embedded store to a real etcd, with their resourceVersions in the same order.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use kox_store::etcd::local::{LocalEtcd, LocalEtcdOptions};

/// `kox server` on a given data directory (and datastore flags), stopped with SIGTERM.
struct Server {
    child: Child,
    dir: PathBuf,
    cache: tempfile::TempDir,
}

impl Server {
    fn start(dir: &Path, flags: &[&str]) -> Self {
        let port = free_port();
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kox"))
            .args([
                "server",
                "--disable-agent",
                "--disable-scheduler",
                "--bind-address",
                "127.0.0.1",
            ])
            .args(["--secure-port", &port.to_string()])
            .args(flags)
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox server");
        let s = Server {
            child,
            dir: dir.to_path_buf(),
            cache: tempfile::tempdir().expect("temp dir"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(dir.join("admin.kubeconfig").exists()
            && s.kubectl(&["get", "--raw", "/readyz"]).status.success())
        {
            assert!(
                Instant::now() < deadline,
                "kox server did not become ready: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .env("KUBECONFIG", self.dir.join("admin.kubeconfig"))
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .output()
            .expect("run kubectl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kox(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kox"))
        .args(args)
        .args(paths)
        .output()
        .expect("run kox")
}

/// The objects the test made, with each one's resourceVersion: (name, data, rv).
fn configmaps(server: &Server) -> Vec<(String, String, u64)> {
    let out = server.ok(&[
        "get",
        "configmaps",
        "-n",
        "shop",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.data.k} {.metadata.resourceVersion}{\"\\n\"}{end}",
    ]);
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

/// Names in resourceVersion order.
fn rv_order(cms: &[(String, String, u64)]) -> Vec<String> {
    let mut v: Vec<_> = cms.iter().map(|(n, _, rv)| (*rv, n.clone())).collect();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}

fn fill(server: &Server) {
    server.ok(&["create", "namespace", "shop"]);
    for name in ["first", "second", "third"] {
        server.ok(&[
            "create",
            "configmap",
            name,
            "-n",
            "shop",
            &format!("--from-literal=k={name}"),
        ]);
    }
    // The first one changes last: its resourceVersion is now the largest.
    server.ok(&[
        "patch",
        "configmap",
        "first",
        "-n",
        "shop",
        "-p",
        r#"{"data":{"k":"changed"}}"#,
    ]);
}

#[test]
fn a_snapshot_restores_into_a_fresh_data_dir() {
    let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let snap = src.path().join("cluster.snap");
    let server = Server::start(src.path(), &[]);
    fill(&server);
    let before = configmaps(&server);

    // The embedded store is taken while the server runs: the tool says so.
    let out = kox(
        &["datastore", "snapshot", "save", "--data-dir"],
        &[src.path(), &snap],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stop the server first"), "{stderr}");

    server.stop();
    let out = kox(
        &["datastore", "snapshot", "save", "--data-dir"],
        &[src.path(), &snap],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved to"));

    let out = kox(
        &["datastore", "snapshot", "restore", "--data-dir"],
        &[dst.path(), &snap],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second restore into the same (now full) store is refused.
    let out = kox(
        &["datastore", "snapshot", "restore", "--data-dir"],
        &[dst.path(), &snap],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    let restored = Server::start(dst.path(), &[]);
    let after = configmaps(&restored);
    let data = |v: &[(String, String, u64)]| {
        v.iter()
            .map(|(n, d, _)| (n.clone(), d.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(data(&before), data(&after));
    assert_eq!(rv_order(&before), rv_order(&after));
    assert_eq!(rv_order(&after).last().map(String::as_str), Some("first"));
    restored.ok(&["get", "namespace", "shop"]);
    // The restored cluster keeps working.
    restored.ok(&["create", "configmap", "fourth", "-n", "shop"]);
    restored.stop();

    // A damaged file is refused, and nothing is written.
    let bad = dst.path().join("bad.snap");
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&bad, bytes).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let out = kox(
        &["datastore", "snapshot", "restore", "--data-dir"],
        &[fresh.path(), &bad],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
}

#[test]
fn migrate_moves_an_embedded_cluster_to_etcd() {
    if !common::etcd_or_skip("kox datastore migrate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    fill(&server);
    let before = configmaps(&server);
    server.stop();

    let etcd = LocalEtcd::start(LocalEtcdOptions::default()).expect("start etcd");
    let endpoint = etcd.endpoint();
    let out = kox(
        &[
            "datastore",
            "migrate",
            "--to-endpoint",
            &endpoint,
            "--data-dir",
        ],
        &[dir.path()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // etcd now holds the cluster: a second migrate into it is refused.
    let out = kox(
        &[
            "datastore",
            "migrate",
            "--to-endpoint",
            &endpoint,
            "--data-dir",
        ],
        &[dir.path()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    let moved = Server::start(dir.path(), &["--datastore-endpoint", &endpoint]);
    let after = configmaps(&moved);
    assert_eq!(
        before.iter().map(|c| (&c.0, &c.1)).collect::<Vec<_>>(),
        after.iter().map(|c| (&c.0, &c.1)).collect::<Vec<_>>()
    );
    assert_eq!(rv_order(&before), rv_order(&after));
    moved.ok(&["create", "configmap", "on-etcd", "-n", "shop"]);

    // etcd is snapshotted while the server runs; the snapshot restores into a fresh embedded
    // store, which then serves the same objects.
    let snap = dir.path().join("etcd.snap");
    let out = kox(
        &[
            "datastore",
            "snapshot",
            "save",
            "--datastore-endpoint",
            &endpoint,
            "--data-dir",
        ],
        &[dir.path(), &snap],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_etcd = configmaps(&moved);
    moved.stop();
    let fresh = tempfile::tempdir().unwrap();
    let out = kox(
        &["datastore", "snapshot", "restore", "--data-dir"],
        &[fresh.path(), &snap],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = Server::start(fresh.path(), &[]);
    let restored = configmaps(&back);
    assert_eq!(
        on_etcd.iter().map(|c| (&c.0, &c.1)).collect::<Vec<_>>(),
        restored.iter().map(|c| (&c.0, &c.1)).collect::<Vec<_>>()
    );
    assert_eq!(rv_order(&on_etcd), rv_order(&restored));
    back.stop();
}
