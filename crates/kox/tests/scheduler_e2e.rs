//! The scheduler end to end: a real `kox server` (which runs the scheduler in-process),
//! `kox fake-nodes` child processes as the nodes, and the real kubectl.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, table};

/// A `kox fake-nodes` process, killed when dropped.
struct FakeNodes(Child);

impl FakeNodes {
    fn start(c: &Cluster, log: &str, args: &[&str]) -> Self {
        let log = std::fs::File::create(c.data_dir().join(log)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kox"))
            .arg("fake-nodes")
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox fake-nodes");
        FakeNodes(child)
    }
}

impl Drop for FakeNodes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` until it returns `Some`, failing with `what` and the last value after `secs`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}; last: {last}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn ready_nodes(c: &Cluster) -> usize {
    table(&c.ok(&["get", "nodes", "--no-headers"]))
        .iter()
        .filter(|r| r.get(1).map(String::as_str) == Some("Ready"))
        .count()
}

fn pod(name: &str, cpu: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: web\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    resources:\n      requests:\n        cpu: \"{cpu}\"\n        memory: 2Gi\n{extra}"
    )
}

/// `name -> (status, node)` of every pod, from `kubectl get pods -o wide`.
fn pods_wide(c: &Cluster) -> Vec<(String, String, String, String)> {
    table(&c.ok(&["get", "pods", "-o", "wide", "--no-headers"]))
        .into_iter()
        .map(|r| (r[0].clone(), r[2].clone(), r[5].clone(), r[6].clone()))
        .collect()
}

fn describe_has(c: &Cluster, pod: &str, want: &str) -> Result<(), String> {
    let out = c.ok(&["describe", "pod", pod]);
    if out.contains(want) { Ok(()) } else { Err(out) }
}

#[test]
fn pods_spread_respect_selectors_and_taints_and_run_on_fake_nodes() {
    let c = Cluster::start();
    let _plain = FakeNodes::start(
        &c,
        "fake-a.log",
        &[
            "--count",
            "3",
            "--cpu",
            "4",
            "--memory",
            "8Gi",
            "--label",
            "zone=a",
            "--name-prefix",
            "a-",
        ],
    );
    let _gpu = FakeNodes::start(
        &c,
        "fake-gpu.log",
        &[
            "--count",
            "1",
            "--cpu",
            "4",
            "--memory",
            "8Gi",
            "--label",
            "gpu=true",
            "--taint",
            "dedicated=gpu:NoSchedule",
            "--name-prefix",
            "gpu-",
        ],
    );
    wait_for(30, "4 Ready nodes", || {
        let n = ready_nodes(&c);
        if n == 4 {
            Ok(())
        } else {
            Err(format!("{n} ready"))
        }
    });

    // Six equal pods spread two per untainted node: the least allocated node wins each time,
    // and the tainted node takes none.
    let spread: Vec<String> = (0..6).map(|i| pod(&format!("web-{i}"), "1", "")).collect();
    c.ok_stdin(&["apply", "-f", "-"], &spread.join("---\n"));
    let tolerating = "  tolerations:\n  - key: dedicated\n    operator: Equal\n    value: gpu\n    effect: NoSchedule\n  nodeSelector:\n    gpu: \"true\"\n";
    c.ok_stdin(&["apply", "-f", "-"], &pod("on-gpu", "1", tolerating));
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("wants-gpu", "1", "  nodeSelector:\n    gpu: \"true\"\n"),
    );
    c.ok_stdin(&["apply", "-f", "-"], &pod("too-big", "64", ""));

    let rows = wait_for(30, "scheduled pods Running", || {
        let rows = pods_wide(&c);
        let running = rows.iter().filter(|r| r.1 == "Running").count();
        if running == 7 {
            Ok(rows)
        } else {
            Err(format!("{rows:?}"))
        }
    });
    for node in ["a-0", "a-1", "a-2"] {
        let on: Vec<&str> = rows
            .iter()
            .filter(|r| r.3 == node)
            .map(|r| r.0.as_str())
            .collect();
        assert_eq!(on.len(), 2, "{node} should run two pods: {rows:?}");
        assert!(on.iter().all(|p| p.starts_with("web-")), "{rows:?}");
    }
    let on_gpu = rows
        .iter()
        .find(|r| r.0 == "on-gpu")
        .expect("on-gpu listed");
    assert_eq!(on_gpu.3, "gpu-0", "{rows:?}");
    // Running pods have an address from their node's range.
    assert!(
        rows.iter()
            .filter(|r| r.1 == "Running")
            .all(|r| r.2.starts_with("10.")),
        "{rows:?}"
    );

    // Pods nothing fits stay Pending, with upstream's reasons in describe.
    for (name, want) in [
        (
            "wants-gpu",
            "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling..",
        ),
        (
            "too-big",
            "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu. preemption: 0/4 nodes are available: 1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod..",
        ),
    ] {
        wait_for(
            20,
            &format!("the FailedScheduling reason of {name}"),
            || describe_has(&c, name, want),
        );
        let out = c.ok(&["describe", "pod", name]);
        assert!(out.contains("FailedScheduling"), "{out}");
        assert!(out.contains("default-scheduler"), "{out}");
        let cond = c.ok(&[
            "get",
            "pod",
            name,
            "-o",
            r#"jsonpath={.status.phase} {.status.conditions[?(@.type=="PodScheduled")].reason}"#,
        ]);
        assert_eq!(cond, "Pending Unschedulable");
    }
    let out = c.ok(&["describe", "pod", "web-0"]);
    assert!(
        out.contains("Successfully assigned default/web-0 to a-"),
        "{out}"
    );

    // A node that fits arrives: the unschedulable pod is retried and lands there.
    let _big = FakeNodes::start(
        &c,
        "fake-big.log",
        &["--count", "1", "--cpu", "128", "--name-prefix", "big-"],
    );
    wait_for(30, "too-big on big-0", || {
        let out = c.ok(&[
            "get",
            "pod",
            "too-big",
            "-o",
            "jsonpath={.spec.nodeName} {.status.phase}",
        ]);
        if out == "big-0 Running" {
            Ok(())
        } else {
            Err(out)
        }
    });

    // Graceful deletion of a pod on a fake node completes.
    let out = c.ok(&["delete", "pod", "web-0", "--timeout=20s"]);
    assert_eq!(out.trim(), r#"pod "web-0" deleted"#);
    assert!(c.fails(&["get", "pod", "web-0"]).contains("NotFound"));
}

#[test]
fn component_statuses_report_the_scheduler_healthy() {
    let c = Cluster::start();
    // Another test's server may hold the port for a moment; the scheduler retries binding it.
    wait_for(30, "scheduler Healthy", || {
        let out = c.ok(&["get", "componentstatuses"]);
        let healthy = table(&out).iter().any(|r| {
            r.first().map(String::as_str) == Some("scheduler")
                && r.get(1).map(String::as_str) == Some("Healthy")
        });
        if healthy { Ok(()) } else { Err(out) }
    });
    let lease = c.ok(&[
        "get",
        "lease",
        "kube-scheduler",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.spec.holderIdentity} {.spec.leaseDurationSeconds}",
    ]);
    assert!(lease.ends_with(" 15") && lease.len() > 3, "{lease}");
}

#[test]
fn pods_for_other_schedulers_are_left_alone() {
    let c = Cluster::start();
    let _nodes = FakeNodes::start(&c, "fake.log", &["--count", "1"]);
    wait_for(30, "a Ready node", || {
        if ready_nodes(&c) == 1 {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    c.ok_stdin(&["apply", "-f", "-"], &pod("mine", "1", ""));
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("theirs", "1", "  schedulerName: other-scheduler\n"),
    );
    wait_for(20, "mine Running", || {
        let out = c.ok(&["get", "pod", "mine", "-o", "jsonpath={.status.phase}"]);
        if out == "Running" { Ok(()) } else { Err(out) }
    });
    let out = c.ok(&[
        "get",
        "pod",
        "theirs",
        "-o",
        "jsonpath={.spec.nodeName}|{.status.conditions}",
    ]);
    assert_eq!(out, "|", "a pod for another scheduler must stay untouched");
}
