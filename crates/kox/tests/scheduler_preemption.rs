//! Preemption and scheduler profiles end to end: a real `kox server`, simulated nodes from
//! `kox fake-nodes`, the real kubectl, and (for profiles) a standalone `kox scheduler` with a
//! `KubeSchedulerConfiguration` file.

mod common;

use std::process::{Child, Command, Stdio};

use common::{Cluster, FakeNodes, free_port, table, wait_for};

/// `name -> (status, node)` of every pod in the default namespace.
fn pods(c: &Cluster) -> Vec<(String, String, String)> {
    table(&c.ok(&["get", "pods", "-o", "wide", "--no-headers"]))
        .into_iter()
        .map(|r| (r[0].clone(), r[2].clone(), r[6].clone()))
        .collect()
}

fn pod(name: &str, cpu: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra}  containers:\n  - name: c\n    image: busybox:1.36\n    resources:\n      requests:\n        cpu: \"{cpu}\"\n"
    )
}

fn one_ready_node(c: &Cluster, want: usize) {
    wait_for(60, "Ready nodes", || {
        let ready = table(&c.ok(&["get", "nodes", "--no-headers"]))
            .iter()
            .filter(|r| r.get(1).map(String::as_str) == Some("Ready"))
            .count();
        if ready == want {
            Ok(())
        } else {
            Err(format!("{ready} ready"))
        }
    });
}

#[test]
fn a_high_priority_pod_preempts_the_fewest_lower_priority_pods() {
    let c = Cluster::start();
    let _node = FakeNodes::start(
        &c,
        "fake.log",
        &["--count", "1", "--cpu", "4", "--memory", "8Gi"],
    );
    one_ready_node(&c, 1);
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: low\nvalue: 100\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high-polite\nvalue: 1000\npreemptionPolicy: Never\n",
    );
    // Four 1-CPU low-priority pods fill the node.
    let low: Vec<String> = (0..4)
        .map(|i| pod(&format!("low-{i}"), "1", "  priorityClassName: low\n"))
        .collect();
    c.ok_stdin(&["apply", "-f", "-"], &low.join("---\n"));
    wait_for(60, "4 low pods Running", || {
        let running = pods(&c).iter().filter(|p| p.1 == "Running").count();
        if running == 4 {
            Ok(())
        } else {
            Err(format!("{:?}", pods(&c)))
        }
    });

    // A pod that may not preempt stays Pending with upstream's verdict.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("polite", "2", "  priorityClassName: high-polite\n"),
    );
    wait_for(60, "the polite pod's FailedScheduling", || {
        let out = c.ok(&["describe", "pod", "polite"]);
        if out.contains("0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.") {
            Ok(())
        } else {
            Err(out)
        }
    });
    c.ok(&["delete", "pod", "polite", "--wait=false"]);

    // A 2-CPU high-priority pod evicts exactly two of them and runs on the node.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("important", "2", "  priorityClassName: high\n"),
    );
    let rows = wait_for(90, "the important pod Running", || {
        let rows = pods(&c);
        let important = rows.iter().find(|p| p.0 == "important");
        let low_left = rows.iter().filter(|p| p.0.starts_with("low-")).count();
        match important {
            Some(p) if p.1 == "Running" && low_left == 2 => Ok(rows),
            _ => Err(format!("{rows:?}")),
        }
    });
    assert!(
        rows.iter()
            .filter(|p| p.0.starts_with("low-"))
            .all(|p| p.1 == "Running"),
        "the survivors keep running: {rows:?}"
    );
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Preempted",
        "-o",
        "jsonpath={range .items[*]}{.involvedObject.name} {.message}{\"\\n\"}{end}",
    ]);
    let preempted: Vec<&str> = events.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(preempted.len(), 2, "two Preempted events: {events}");
    assert!(
        preempted.iter().all(|l| l.starts_with("low-")
            && l.contains("Preempted by pod ")
            && l.contains("on node fake-node-0")),
        "{events}"
    );
}

/// A standalone `kox scheduler`, killed when dropped.
struct Scheduler(Child);

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scheduler_cmd(c: &Cluster, config: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kox"));
    cmd.arg("scheduler")
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .arg("--config")
        .arg(config)
        .args([
            "--secure-port",
            &free_port().to_string(),
            "--bind-address",
            "127.0.0.1",
        ]);
    cmd
}

#[test]
fn profiles_from_a_configuration_file_pick_plugins_by_scheduler_name() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    let bad = c.data_dir().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: x\n  plugins:\n    score:\n      enabled:\n      - name: Nope\n",
    )
    .expect("write");
    let out = scheduler_cmd(&c, &bad).output().expect("run kox scheduler");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad configuration is refused");
    assert!(
        stderr.contains("plugin \"Nope\" does not exist") && stderr.contains("bad.yaml"),
        "{stderr}"
    );

    let config = c.data_dir().join("scheduler.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n\
         leaderElection:\n  leaderElect: false\n\
         profiles:\n- schedulerName: default-scheduler\n- schedulerName: bin-packing\n  plugins:\n    score:\n      disabled:\n      - name: NodeResourcesBalancedAllocation\n  pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        type: MostAllocated\n",
    )
    .expect("write");
    let log = std::fs::File::create(c.data_dir().join("scheduler.log")).expect("log");
    let _scheduler = Scheduler(
        scheduler_cmd(&c, &config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox scheduler"),
    );
    let _nodes = FakeNodes::start(
        &c,
        "fake.log",
        &["--count", "3", "--cpu", "8", "--memory", "32Gi"],
    );
    one_ready_node(&c, 3);
    // Bin packing puts consecutive pods on the same node while it has room…
    for i in 0..3 {
        c.ok_stdin(
            &["apply", "-f", "-"],
            &pod(
                &format!("packed-{i}"),
                "2",
                "  schedulerName: bin-packing\n",
            ),
        );
        wait_for(60, "a packed pod bound", || {
            let rows = pods(&c);
            match rows.iter().find(|p| p.0 == format!("packed-{i}")) {
                Some(p) if p.2.starts_with("fake-node-") => Ok(()),
                _ => Err(format!("{rows:?}")),
            }
        });
    }
    let rows = pods(&c);
    let packed: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|p| p.0.starts_with("packed-"))
        .map(|p| p.2.as_str())
        .collect();
    assert_eq!(packed.len(), 1, "bin-packing used one node: {rows:?}");
    // …while the default profile spreads onto the emptiest nodes.
    for i in 0..2 {
        c.ok_stdin(&["apply", "-f", "-"], &pod(&format!("spread-{i}"), "2", ""));
        wait_for(60, "a spread pod bound", || {
            let rows = pods(&c);
            match rows.iter().find(|p| p.0 == format!("spread-{i}")) {
                Some(p) if p.2.starts_with("fake-node-") => Ok(()),
                _ => Err(format!("{rows:?}")),
            }
        });
    }
    let rows = pods(&c);
    let packed_node = *packed.iter().next().expect("one node");
    assert!(
        rows.iter()
            .filter(|p| p.0.starts_with("spread-"))
            .all(|p| p.2 != packed_node),
        "the default profile avoided the full node: {rows:?}"
    );
    let spread_nodes: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|p| p.0.starts_with("spread-"))
        .map(|p| p.2.as_str())
        .collect();
    assert_eq!(
        spread_nodes.len(),
        2,
        "spread over the two empty nodes: {rows:?}"
    );
    // Pods for a scheduler nobody runs are left alone.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("elsewhere", "1", "  schedulerName: someone-else\n"),
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let rows = pods(&c);
    let elsewhere = rows.iter().find(|p| p.0 == "elsewhere").expect("listed");
    assert_eq!(
        (elsewhere.1.as_str(), elsewhere.2.as_str()),
        ("Pending", "<none>"),
        "{rows:?}"
    );
    // Events name the profile that scheduled the pod.
    let from = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=packed-0,reason=Scheduled",
        "-o",
        "jsonpath={.items[0].source.component}",
    ]);
    assert_eq!(from, "bin-packing");
}
