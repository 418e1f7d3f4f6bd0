//! The scheduler end to end: a real `kox server` (which runs the scheduler in-process),
//! `kox fake-nodes` child processes as the nodes, and the real kubectl.

mod common;

use common::{Cluster, FakeNodes, table, wait_for};

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

/// A `kubectl get pods -o wide` row: name, status, IP, node.
type PodRow = (String, String, String, String);

/// `node -> count` of the Running pods whose name starts with `prefix`, once `running` of
/// them run (and the rest stay Pending), with the rows.
fn running_by_node(
    c: &Cluster,
    prefix: &str,
    running: usize,
) -> (std::collections::BTreeMap<String, usize>, Vec<PodRow>) {
    wait_for(60, &format!("{running} {prefix} pods Running"), || {
        let rows: Vec<_> = pods_wide(c)
            .into_iter()
            .filter(|r| r.0.starts_with(prefix))
            .collect();
        let mut by_node = std::collections::BTreeMap::new();
        for r in rows.iter().filter(|r| r.1 == "Running") {
            *by_node.entry(r.3.clone()).or_insert(0) += 1;
        }
        if by_node.values().sum::<usize>() == running {
            Ok((by_node, rows))
        } else {
            Err(format!("{rows:?}"))
        }
    })
}

fn deployment(name: &str, replicas: usize, spec_extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: busybox:1.36\n        resources:\n          requests:\n            cpu: 100m\n{spec_extra}"
    )
}

#[test]
fn required_pod_anti_affinity_spreads_one_pod_per_node_and_the_extra_one_waits() {
    let c = Cluster::start();
    let _nodes = FakeNodes::start(&c, "fake.log", &["--count", "3", "--name-prefix", "n-"]);
    wait_for(30, "3 Ready nodes", || {
        let n = ready_nodes(&c);
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{n} ready"))
        }
    });
    let anti = "      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector:\n              matchLabels:\n                app: solo\n            topologyKey: kubernetes.io/hostname\n";
    c.ok_stdin(&["apply", "-f", "-"], &deployment("solo", 4, anti));
    let (by_node, rows) = running_by_node(&c, "solo-", 3);
    assert_eq!(by_node.len(), 3, "one per node: {rows:?}");
    assert!(by_node.values().all(|n| *n == 1), "{rows:?}");
    let pending: Vec<&String> = rows
        .iter()
        .filter(|r| r.1 == "Pending")
        .map(|r| &r.0)
        .collect();
    assert_eq!(pending.len(), 1, "{rows:?}");
    let want = "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..";
    wait_for(30, "the anti-affinity FailedScheduling reason", || {
        describe_has(&c, pending[0], want)
    });

    // A pod the running ones' anti-affinity selects is kept off every node by theirs.
    let intruder = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: intruder\n  labels:\n    app: solo\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n";
    c.ok_stdin(&["apply", "-f", "-"], intruder);
    wait_for(30, "the existing anti-affinity reason", || {
        describe_has(
            &c,
            "intruder",
            "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules.",
        )
    });

    // Scaling down to three drops the waiting replica; three stay, one per node.
    c.ok(&["delete", "pod", "intruder", "--wait=false"]);
    c.ok(&["scale", "deployment", "solo", "--replicas=3"]);
    let (by_node, rows) = running_by_node(&c, "solo-", 3);
    assert!(by_node.values().all(|n| *n == 1), "{rows:?}");

    // Affinity across namespaces by a namespace selector on the namespace's labels.
    c.ok(&["create", "namespace", "data"]);
    c.ok(&["label", "namespace", "data", "team=data"]);
    let db = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: db\n  namespace: data\n  labels:\n    app: db\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n";
    c.ok_stdin(&["apply", "-f", "-"], db);
    let db_node = wait_for(30, "db Running", || {
        let out = c.ok(&[
            "get",
            "pod",
            "db",
            "-n",
            "data",
            "-o",
            "jsonpath={.status.phase} {.spec.nodeName}",
        ]);
        match out.split_once(' ') {
            Some(("Running", node)) => Ok(node.to_string()),
            _ => Err(out),
        }
    });
    let near_db = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: near-db\nspec:\n  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          matchLabels:\n            app: db\n        namespaceSelector:\n          matchLabels:\n            team: data\n        topologyKey: kubernetes.io/hostname\n  containers:\n  - name: c\n    image: busybox:1.36\n";
    c.ok_stdin(&["apply", "-f", "-"], near_db);
    wait_for(30, "near-db on db's node", || {
        let out = c.ok(&[
            "get",
            "pod",
            "near-db",
            "-o",
            "jsonpath={.status.phase} {.spec.nodeName}",
        ]);
        if out == format!("Running {db_node}") {
            Ok(())
        } else {
            Err(out)
        }
    });
    // A pod with affinity to a pod that does not exist yet waits, and follows it as soon as
    // that pod is placed (not at the five-minute flush).
    let follower = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: follower\nspec:\n  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          matchLabels:\n            app: cache\n        topologyKey: kubernetes.io/hostname\n  containers:\n  - name: c\n    image: busybox:1.36\n";
    c.ok_stdin(&["apply", "-f", "-"], follower);
    wait_for(30, "the affinity FailedScheduling reason", || {
        describe_has(
            &c,
            "follower",
            "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..",
        )
    });
    let cache = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: cache\n  labels:\n    app: cache\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n";
    c.ok_stdin(&["apply", "-f", "-"], cache);
    wait_for(30, "follower next to cache", || {
        let nodes = c.ok(&[
            "get",
            "pods",
            "cache",
            "follower",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ]);
        match nodes.split_once(' ') {
            Some((a, b)) if !a.is_empty() && a == b => Ok(()),
            _ => Err(nodes),
        }
    });

    // The scheduler's identity may watch what its plugins read.
    let log = c.server_log();
    for kind in [
        "namespace",
        "Service",
        "ReplicationController",
        "ReplicaSet",
        "StatefulSet",
    ] {
        assert!(
            !log.contains(&format!("scheduler {kind} watch")),
            "{kind} watch failed: {log}"
        );
    }
}

#[test]
fn a_zone_topology_spread_constraint_balances_a_deployment_over_zones() {
    let c = Cluster::start();
    // Five nodes over three zones: zone-0 and zone-1 have two nodes each, zone-2 one. Spreading
    // by node alone would put fewer pods in zone-2; the constraint keeps the zones even.
    let _nodes = FakeNodes::start(
        &c,
        "fake.log",
        &["--count", "5", "--zones", "3", "--name-prefix", "z-"],
    );
    wait_for(30, "5 Ready nodes", || {
        let n = ready_nodes(&c);
        if n == 5 {
            Ok(())
        } else {
            Err(format!("{n} ready"))
        }
    });
    let spread = "      topologySpreadConstraints:\n      - maxSkew: 1\n        topologyKey: topology.kubernetes.io/zone\n        whenUnsatisfiable: DoNotSchedule\n        labelSelector:\n          matchLabels:\n            app: spread\n";
    c.ok_stdin(&["apply", "-f", "-"], &deployment("spread", 9, spread));
    let (by_node, rows) = running_by_node(&c, "spread-", 9);
    let zone_of = |node: &str| {
        c.ok(&[
            "get",
            "node",
            node,
            "-o",
            r"jsonpath={.metadata.labels.topology\.kubernetes\.io/zone}",
        ])
    };
    let mut by_zone = std::collections::BTreeMap::new();
    for (node, n) in &by_node {
        *by_zone.entry(zone_of(node)).or_insert(0) += n;
    }
    assert_eq!(
        by_zone.into_iter().collect::<Vec<_>>(),
        [
            ("zone-0".to_string(), 3),
            ("zone-1".to_string(), 3),
            ("zone-2".to_string(), 3)
        ],
        "{rows:?}"
    );

    // A pod asking for a zone key no node has stays Pending with upstream's reason.
    let lost = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lost\n  labels:\n    app: lost\nspec:\n  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: rack\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector:\n      matchLabels:\n        app: lost\n  containers:\n  - name: c\n    image: busybox:1.36\n";
    c.ok_stdin(&["apply", "-f", "-"], lost);
    wait_for(30, "the missing-label reason", || {
        describe_has(
            &c,
            "lost",
            "0/5 nodes are available: 5 node(s) didn't match pod topology spread constraints (missing required label).",
        )
    });
}
