//! Scheduler leader election end to end: `kox server --disable-scheduler`, two `kox scheduler`
//! processes competing for the Lease `kube-system/kube-scheduler`, `kox fake-nodes`, and the
//! real kubectl. The active scheduler is killed (SIGKILL: it cannot release its lease); the
//! standby takes the lease over once it expires and binds a pod created after the kill.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{Cluster, free_port, wait_for};

/// A child process of the test, killed when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(c: &Cluster, log: &str, args: &[&str]) -> Self {
        let log = c.data_dir().join(log);
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kox"))
            .args(args)
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start kox");
        Proc { child, log }
    }

    fn scheduler(c: &Cluster, log: &str) -> Self {
        let port = free_port().to_string();
        Self::start(
            c,
            log,
            &[
                "scheduler",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &port,
            ],
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    resources:\n      requests:\n        cpu: 100m\n"
    )
}

fn node_of(c: &Cluster, pod: &str) -> String {
    c.ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
}

fn holder(c: &Cluster) -> String {
    let out = c.kubectl(&[
        "get",
        "lease",
        "kube-scheduler",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_standby_scheduler_takes_over_when_the_leader_is_killed() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    let _nodes = Proc::start(&c, "fake-nodes.log", &["fake-nodes", "--count", "3"]);
    let mut schedulers = [
        Proc::scheduler(&c, "scheduler-a.log"),
        Proc::scheduler(&c, "scheduler-b.log"),
    ];

    // One of them holds the lease; its log names the identity it won with.
    let (leader, identity) = wait_for(60, "a scheduler to hold the lease", || {
        let id = holder(&c);
        if id.is_empty() {
            return Err("no holder yet".into());
        }
        let holders: Vec<usize> = (0..2)
            .filter(|&i| {
                schedulers[i]
                    .log()
                    .lines()
                    .any(|l| l.contains("became leader") && l.contains(&id))
            })
            .collect();
        match holders.as_slice() {
            [i] => Ok((*i, id)),
            _ => Err(format!("holder {id}, logs claiming it: {holders:?}")),
        }
    });
    let standby = 1 - leader;
    c.ok_stdin(&["apply", "-f", "-"], &pod("before"));
    wait_for(60, "the leader to bind a pod", || {
        let node = node_of(&c, "before");
        if node.is_empty() {
            Err("pending".into())
        } else {
            Ok(())
        }
    });
    assert!(
        !schedulers[standby].log().contains("became leader"),
        "the standby must not lead while the leader renews:\n{}",
        schedulers[standby].log()
    );

    // Kill the leader without letting it release the lease, then create a pod at once.
    schedulers[leader].child.kill().expect("kill the leader");
    schedulers[leader].child.wait().expect("reap the leader");
    let killed = Instant::now();
    c.ok_stdin(&["apply", "-f", "-"], &pod("after"));

    // Upstream's timings: the lease lasts 15 s after the last renewal and a standby retries
    // every 2 s, so the takeover takes up to ~17 s; the deadline is generous for a loaded
    // machine, the measured time is printed.
    let node = wait_for(90, "the standby to bind the pod", || {
        let node = node_of(&c, "after");
        if node.is_empty() {
            Err(format!(
                "pending; lease holder {}; standby log:\n{}",
                holder(&c),
                schedulers[standby].log()
            ))
        } else {
            Ok(node)
        }
    });
    let takeover = killed.elapsed();
    println!(
        "standby bound pod `after` to {node} {:.1} s after the leader was killed",
        takeover.as_secs_f64()
    );
    let new_holder = holder(&c);
    assert_ne!(new_holder, identity, "the lease must have a new holder");
    assert!(
        schedulers[standby]
            .log()
            .lines()
            .any(|l| l.contains("became leader") && l.contains(&new_holder)),
        "the standby holds the lease now ({new_holder}):\n{}",
        schedulers[standby].log()
    );
    let events: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "events", "-o", "json"])).expect("events JSON");
    let scheduled = events["items"].as_array().expect("items").iter().any(|e| {
        e["reason"] == "Scheduled"
            && e["involvedObject"]["name"] == "after"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Successfully assigned default/after to"))
    });
    assert!(scheduled, "no Scheduled event for `after`: {events}");
}
