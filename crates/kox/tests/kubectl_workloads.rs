//! The workload controllers end to end: a real `kox server` (scheduler and controller manager
//! in-process), `kox fake-nodes` as the nodes, and the real kubectl creating, scaling,
//! updating and rolling back workloads.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cluster, FakeNodes, table, wait_for};
use serde_json::Value;

/// A background kubectl (e.g. a watch) whose stdout is collected line by line.
struct Background {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Background {
    fn start(c: &Cluster, args: &[&str]) -> Self {
        let mut child = c
            .kubectl_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubectl");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        Background { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ready_nodes(c: &Cluster, want: usize) {
    wait_for(40, &format!("{want} Ready nodes"), || {
        let rows = table(&c.ok(&["get", "nodes", "--no-headers"]));
        let n = rows
            .iter()
            .filter(|r| r.get(1).map(String::as_str) == Some("Ready"))
            .count();
        if n == want {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    });
}

fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&c.ok(&a)).expect("kubectl json")
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// `name -> phase` of the pods matching `selector` that are not being deleted.
fn live_pods(c: &Cluster, selector: &str) -> BTreeMap<String, String> {
    items(&json(c, &["get", "pods", "-l", selector]))
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["status"]["phase"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn running(c: &Cluster, selector: &str, want: usize) -> BTreeMap<String, String> {
    wait_for(60, &format!("{want} Running pods {selector}"), || {
        let pods = live_pods(c, selector);
        if pods.len() == want && pods.values().all(|p| p == "Running") {
            Ok(pods)
        } else {
            Err(format!("{pods:?}"))
        }
    })
}

fn rollout_status(c: &Cluster, what: &str) -> String {
    c.ok(&["rollout", "status", what, "--timeout=90s"])
}

/// `name -> (spec.replicas, revision annotation, template image)` of the ReplicaSets of `app`.
fn replica_sets(c: &Cluster, app: &str) -> BTreeMap<String, (i64, String, String)> {
    items(&json(c, &["get", "rs", "-l", &format!("app={app}")]))
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap_or("").to_string(),
                (
                    rs["spec"]["replicas"].as_i64().unwrap_or(0),
                    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    rs["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
            )
        })
        .collect()
}

fn events(c: &Cluster, kind: &str) -> String {
    c.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind={kind}"),
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    ])
}

/// Every ReplicaSet state seen on a `get rs -w -o json` stream, checked against a rollout's
/// budget: at most `max_pods` pods asked for and at least `min_available` available.
fn check_budget(stream: &str, max_pods: i64, min_available: i64) -> usize {
    let mut state: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut seen = 0;
    for v in serde_json::Deserializer::from_str(stream).into_iter::<Value>() {
        let Ok(rs) = v else { break };
        let name = rs["metadata"]["name"].as_str().unwrap_or("").to_string();
        state.insert(
            name,
            (
                rs["spec"]["replicas"].as_i64().unwrap_or(0),
                rs["status"]["availableReplicas"].as_i64().unwrap_or(0),
            ),
        );
        seen += 1;
        let asked: i64 = state.values().map(|s| s.0).sum();
        let available: i64 = state.values().map(|s| s.1).sum();
        assert!(
            asked <= max_pods,
            "the rollout asked for {asked} pods (max {max_pods}): {state:?}"
        );
        assert!(
            available >= min_available,
            "only {available} pods available (min {min_available}): {state:?}"
        );
    }
    seen
}

#[test]
fn deployment_creates_scales_updates_and_rolls_back() {
    let c = Cluster::start();
    let _nodes = FakeNodes::start(&c, "fake.log", &["--count", "2"]);
    ready_nodes(&c, 2);

    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=3",
    ]);
    let out = rollout_status(&c, "deployment/web");
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let pods = running(&c, "app=web", 3);
    let rs = replica_sets(&c, "web");
    assert_eq!(rs.len(), 1, "{rs:?}");
    let (first_rs, (replicas, rev, _)) = rs.iter().next().expect("a replica set");
    assert_eq!((*replicas, rev.as_str()), (3, "1"));
    let hash = c.ok(&[
        "get",
        "rs",
        first_rs,
        "-o",
        "jsonpath={.metadata.labels.pod-template-hash}",
    ]);
    assert_eq!(first_rs, &format!("web-{hash}"));
    assert!(
        pods.keys().all(|p| p.starts_with(&format!("{first_rs}-"))),
        "{pods:?}"
    );
    let owner = c.ok(&[
        "get",
        "pod",
        pods.keys().next().expect("pod"),
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].controller} {.metadata.ownerReferences[0].blockOwnerDeletion}",
    ]);
    assert_eq!(owner, format!("ReplicaSet/{first_rs} true true"));
    let ev = events(&c, "Deployment");
    assert!(
        ev.contains(&format!("Scaled up replica set {first_rs} from 0 to 3")),
        "{ev}"
    );
    let ev = events(&c, "ReplicaSet");
    assert!(ev.contains("SuccessfulCreate"), "{ev}");
    assert!(ev.contains(&format!("Created pod: {first_rs}-")), "{ev}");
    let status = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.status.readyReplicas}/{.status.availableReplicas}/{.status.updatedReplicas} {.status.conditions[?(@.type==\"Available\")].reason} {.status.conditions[?(@.type==\"Progressing\")].reason}",
    ]);
    assert_eq!(
        status,
        "3/3/3 MinimumReplicasAvailable NewReplicaSetAvailable"
    );

    // Scale: the same ReplicaSet grows; deleting a pod gets it replaced.
    c.ok(&["scale", "deployment", "web", "--replicas=4"]);
    running(&c, "app=web", 4);
    rollout_status(&c, "deployment/web");
    wait_for(30, "the scale-up event", || {
        let ev = events(&c, "Deployment");
        if ev.contains(&format!("Scaled up replica set {first_rs} from 3 to 4")) {
            Ok(())
        } else {
            Err(ev)
        }
    });
    let victim = live_pods(&c, "app=web")
        .keys()
        .next()
        .cloned()
        .expect("pod");
    c.ok(&["delete", "pod", &victim]);
    wait_for(60, "a replacement pod", || {
        let pods = live_pods(&c, "app=web");
        if pods.len() == 4 && !pods.contains_key(&victim) && pods.values().all(|p| p == "Running") {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });

    // A rolling update within maxSurge=1 / maxUnavailable=0, watched at every step.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}"#,
    ]);
    let watch = Background::start(&c, &["get", "rs", "-l", "app=web", "-w", "-o", "json"]);
    wait_for(20, "the replica set watch", || {
        if watch.lines().is_empty() {
            Err("no output".into())
        } else {
            Ok(())
        }
    });
    c.ok(&["set", "image", "deployment/web", "nginx=nginx:1.26"]);
    rollout_status(&c, "deployment/web");
    running(&c, "app=web", 4);
    let seen = check_budget(&watch.lines().join("\n"), 5, 4);
    assert!(seen >= 4, "too few replica set updates seen: {seen}");
    drop(watch);
    let rs = replica_sets(&c, "web");
    assert_eq!(rs.len(), 2, "{rs:?}");
    let (new_rs, new) = rs
        .iter()
        .find(|(_, v)| v.2 == "nginx:1.26")
        .expect("the new replica set");
    assert_eq!((new.0, new.1.as_str()), (4, "2"), "{rs:?}");
    assert_eq!(rs[first_rs].0, 0, "{rs:?}");
    let ev = events(&c, "Deployment");
    assert!(
        ev.contains(&format!("Scaled up replica set {new_rs} from 0 to 1")),
        "{ev}"
    );
    assert!(
        ev.contains(&format!("Scaled down replica set {first_rs} from 4 to 3")),
        "{ev}"
    );

    // History and undo: revision 1 comes back as revision 3.
    let hist = c.ok(&["rollout", "history", "deployment/web"]);
    let revs: Vec<String> = table(&hist)
        .into_iter()
        .skip(2)
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(revs, ["1", "2"], "{hist}");
    let rev1 = c.ok(&["rollout", "history", "deployment/web", "--revision=1"]);
    assert!(rev1.contains("nginx:1.25"), "{rev1}");
    c.ok(&["rollout", "undo", "deployment/web"]);
    rollout_status(&c, "deployment/web");
    let image = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    ]);
    assert_eq!(image, "nginx:1.25 3");
    let back = c.ok(&[
        "get",
        "rs",
        first_rs,
        "-o",
        "jsonpath={.spec.replicas} {.metadata.annotations.deployment\\.kubernetes\\.io/revision} {.metadata.annotations.deployment\\.kubernetes\\.io/revision-history}",
    ]);
    assert_eq!(back, "4 3 1");
    let hist = c.ok(&["rollout", "history", "deployment/web"]);
    let revs: Vec<String> = table(&hist)
        .into_iter()
        .skip(2)
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(revs, ["2", "3"], "{hist}");

    // Paused: template changes wait for resume.
    c.ok(&["rollout", "pause", "deployment/web"]);
    c.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    wait_for(30, "the paused condition", || {
        let r = c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason} {.status.observedGeneration} {.metadata.generation}",
        ]);
        let f: Vec<&str> = r.split(' ').collect();
        if f.len() == 3 && f[0] == "DeploymentPaused" && f[1] == f[2] {
            Ok(())
        } else {
            Err(r)
        }
    });
    assert_eq!(replica_sets(&c, "web").len(), 2);
    c.ok(&["rollout", "resume", "deployment/web"]);
    rollout_status(&c, "deployment/web");
    let rs = replica_sets(&c, "web");
    assert_eq!(rs.len(), 3, "{rs:?}");
    assert!(
        rs.values().any(|v| v.2 == "nginx:1.27" && v.0 == 4),
        "{rs:?}"
    );

    // Restart: a new template annotation, so a new ReplicaSet with the same image.
    c.ok(&["rollout", "restart", "deployment/web"]);
    rollout_status(&c, "deployment/web");
    let rs = replica_sets(&c, "web");
    assert_eq!(rs.len(), 4, "{rs:?}");
    assert_eq!(rs.values().filter(|v| v.0 == 4).count(), 1, "{rs:?}");
    running(&c, "app=web", 4);

    // History beyond revisionHistoryLimit is pruned.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"revisionHistoryLimit":1}}"#,
    ]);
    wait_for(30, "old replica sets pruned", || {
        let rs = replica_sets(&c, "web");
        if rs.len() == 2 {
            Ok(())
        } else {
            Err(format!("{rs:?}"))
        }
    });

    // Recreate: the old pods are all gone before the new ReplicaSet grows.
    c.ok_stdin(&["apply", "-f", "-"], &deployment("rec", 2, "Recreate", ""));
    rollout_status(&c, "deployment/rec");
    let watch = Background::start(&c, &["get", "rs", "-l", "app=rec", "-w", "-o", "json"]);
    wait_for(20, "the replica set watch", || {
        if watch.lines().is_empty() {
            Err("no output".into())
        } else {
            Ok(())
        }
    });
    c.ok(&["set", "image", "deployment/rec", "c=busybox:1.37"]);
    rollout_status(&c, "deployment/rec");
    running(&c, "app=rec", 2);
    let mut state: BTreeMap<String, i64> = BTreeMap::new();
    let stream = watch.lines().join("\n");
    for v in serde_json::Deserializer::from_str(&stream).into_iter::<Value>() {
        let Ok(rs) = v else { break };
        let name = rs["metadata"]["name"].as_str().unwrap_or("").to_string();
        let live = rs["spec"]["replicas"]
            .as_i64()
            .unwrap_or(0)
            .max(rs["status"]["replicas"].as_i64().unwrap_or(0));
        state.insert(name, live);
        let active = state.values().filter(|n| **n > 0).count();
        assert!(
            active <= 1,
            "old and new pods at once under Recreate: {state:?}"
        );
    }
    assert_eq!(state.len(), 2, "{state:?}");
    drop(watch);

    // A rollout that cannot progress reports ProgressDeadlineExceeded, and rollout status
    // fails as against upstream.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &deployment(
            "stuck",
            1,
            "RollingUpdate",
            "      nodeSelector:\n        nowhere: \"true\"\n",
        ),
    );
    c.ok(&[
        "patch",
        "deployment",
        "stuck",
        "-p",
        r#"{"spec":{"progressDeadlineSeconds":3}}"#,
    ]);
    let err = c.fails(&["rollout", "status", "deployment/stuck", "--timeout=60s"]);
    assert!(
        err.contains("deployment \"stuck\" exceeded its progress deadline"),
        "{err}"
    );
    let cond = c.ok(&[
        "get",
        "deploy",
        "stuck",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Progressing\")].status} {.status.conditions[?(@.type==\"Progressing\")].reason} {.status.conditions[?(@.type==\"Progressing\")].message}",
    ]);
    assert!(
        cond.starts_with("False ProgressDeadlineExceeded ReplicaSet \"stuck-")
            && cond.ends_with("\" has timed out progressing."),
        "{cond}"
    );

    // ReplicationControllers adopt matching orphans.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: stray\n  labels:\n    app: legacy\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
    );
    running(&c, "app=legacy", 1);
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: legacy\nspec:\n  replicas: 2\n  selector:\n    app: legacy\n  template:\n    metadata:\n      labels:\n        app: legacy\n    spec:\n      containers:\n      - name: c\n        image: busybox\n",
    );
    let pods = running(&c, "app=legacy", 2);
    assert!(pods.contains_key("stray"), "{pods:?}");
    let owner = c.ok(&[
        "get",
        "pod",
        "stray",
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    ]);
    assert_eq!(owner, "ReplicationController/legacy");
    c.ok(&["scale", "rc", "legacy", "--replicas=3"]);
    running(&c, "app=legacy", 3);
    wait_for(30, "the rc status", || {
        let st = c.ok(&[
            "get",
            "rc",
            "legacy",
            "-o",
            "jsonpath={.status.readyReplicas}/{.status.replicas}",
        ]);
        if st == "3/3" { Ok(()) } else { Err(st) }
    });
}

/// A Deployment of busybox pods labelled `app=<name>`, `extra` appended to the pod spec.
fn deployment(name: &str, replicas: i32, strategy: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  strategy:\n    type: {strategy}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n{extra}"
    )
}

const STATEFULSET: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  clusterIP: None
  selector:
    app: nginx
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 3
  persistentVolumeClaimRetentionPolicy:
    whenScaled: Delete
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: ["ReadWriteOnce"]
      resources:
        requests:
          storage: 1Gi
"#;

/// The index of the first watch line about `pod` that contains `what`.
fn first_line(lines: &[String], pod: &str, what: &str) -> Option<usize> {
    lines.iter().position(|l| {
        let cells: Vec<&str> = l.split_whitespace().collect();
        cells.first() == Some(&pod) && l.contains(what)
    })
}

#[test]
fn statefulset_starts_in_order_and_scales_down_in_reverse() {
    let c = Cluster::start();
    let _nodes = FakeNodes::start(&c, "fake.log", &["--count", "2"]);
    ready_nodes(&c, 2);
    let watch = Background::start(
        &c,
        &["get", "pods", "-l", "app=nginx", "-w", "--no-headers"],
    );
    std::thread::sleep(Duration::from_millis(500));
    c.ok_stdin(&["apply", "-f", "-"], STATEFULSET);
    let out = rollout_status(&c, "statefulset/web");
    assert!(out.contains("complete"), "{out}");
    let pods = running(&c, "app=nginx", 3);
    assert_eq!(
        pods.keys().cloned().collect::<Vec<_>>(),
        ["web-0", "web-1", "web-2"]
    );
    // Each pod is created only after the one before it runs.
    let lines = wait_for(20, "the watch to show every pod Running", || {
        let lines = watch.lines();
        if ["web-0", "web-1", "web-2"]
            .iter()
            .all(|p| first_line(&lines, p, "Running").is_some())
        {
            Ok(lines)
        } else {
            Err(format!("{lines:#?}"))
        }
    });
    for (before, after) in [("web-0", "web-1"), ("web-1", "web-2")] {
        let ran = first_line(&lines, before, "Running").expect("running");
        let born = first_line(&lines, after, "").expect("created");
        assert!(
            ran < born,
            "{after} appeared before {before} ran: {lines:#?}"
        );
    }
    let claims = c.ok(&["get", "pvc", "-o", "name"]);
    for n in ["www-web-0", "www-web-1", "www-web-2"] {
        assert!(claims.contains(n), "{claims}");
    }
    let hostname = c.ok(&[
        "get",
        "pod",
        "web-1",
        "-o",
        "jsonpath={.spec.hostname}.{.spec.subdomain} {.metadata.labels.statefulset\\.kubernetes\\.io/pod-name} {.spec.volumes[?(@.name==\"www\")].persistentVolumeClaim.claimName}",
    ]);
    assert_eq!(hostname, "web-1.nginx web-1 www-web-1");
    let revs = c.ok(&["get", "controllerrevisions", "-o", "name"]);
    assert_eq!(revs.lines().count(), 1, "{revs}");
    let st = c.ok(&[
        "get",
        "sts",
        "web",
        "-o",
        "jsonpath={.status.replicas} {.status.readyReplicas} {.status.currentReplicas} {.status.updatedReplicas} {.status.availableReplicas}",
    ]);
    assert_eq!(st, "3 3 3 3 3");

    // A rolling update replaces pods from the highest ordinal down.
    c.ok(&["set", "image", "statefulset/web", "nginx=nginx:1.26"]);
    rollout_status(&c, "statefulset/web");
    let images = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=nginx",
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].image} {end}",
    ]);
    assert_eq!(images.trim(), "nginx:1.26 nginx:1.26 nginx:1.26");
    let st = c.ok(&[
        "get",
        "sts",
        "web",
        "-o",
        "jsonpath={.status.currentRevision}={.status.updateRevision}",
    ]);
    let (cur, upd) = st.split_once('=').expect("revisions");
    assert_eq!(cur, upd);
    let lines = watch.lines();
    let t2 = first_line(&lines, "web-2", "Terminating");
    let t0 = first_line(&lines, "web-0", "Terminating");
    assert!(
        matches!((t2, t0), (Some(a), Some(b)) if a < b),
        "the update should replace web-2 before web-0: {lines:#?}"
    );

    // A partition keeps the ordinals below it at the current revision.
    c.ok(&[
        "patch",
        "statefulset",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
    ]);
    c.ok(&["set", "image", "statefulset/web", "nginx=nginx:1.27"]);
    let out = rollout_status(&c, "statefulset/web");
    assert!(
        out.contains("partitioned roll out complete: 1 new pods have been updated"),
        "{out}"
    );
    wait_for(30, "only web-2 updated", || {
        let images = c.ok(&[
            "get",
            "pods",
            "-l",
            "app=nginx",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.containers[0].image} {end}",
        ]);
        if images.trim() == "web-0=nginx:1.26 web-1=nginx:1.26 web-2=nginx:1.27" {
            Ok(())
        } else {
            Err(images)
        }
    });

    // Scale down: the highest ordinals go, one after the other.
    c.ok(&["scale", "statefulset", "web", "--replicas=1"]);
    wait_for(60, "one pod left", || {
        let pods = live_pods(&c, "app=nginx");
        if pods.keys().cloned().collect::<Vec<_>>() == ["web-0"] {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });
    wait_for(20, "the scale-down in the watch", || {
        let lines = watch.lines();
        let last_term = |p: &str| {
            lines
                .iter()
                .rposition(|l| l.split_whitespace().next() == Some(p) && l.contains("Terminating"))
        };
        match (last_term("web-2"), last_term("web-1")) {
            (Some(a), Some(b)) if a < b => Ok(()),
            _ => Err(format!("{lines:#?}")),
        }
    });
    let ev = events(&c, "StatefulSet");
    assert!(
        ev.contains("create Pod web-0 in StatefulSet web successful"),
        "{ev}"
    );
    assert!(
        ev.contains("delete Pod web-2 in StatefulSet web successful"),
        "{ev}"
    );
    c.ok(&["delete", "statefulset", "web"]);
    wait_for(60, "the pods gone with their set", || {
        let pods = live_pods(&c, "app=nginx");
        if pods.is_empty() {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });
    // Claims of scaled-away pods went with them (whenScaled: Delete); the rest outlive the
    // set (whenDeleted: Retain).
    wait_for(60, "the claims of web-1 and web-2 gone", || {
        let claims = c.ok(&["get", "pvc", "-o", "name"]);
        if claims.trim() == "persistentvolumeclaim/www-web-0" {
            Ok(())
        } else {
            Err(claims)
        }
    });
}

/// Finishes a Job pod as its kubelet would when the container exits with `code`.
fn finish_pod(c: &Cluster, pod: &str, code: i32) {
    let (phase, reason) = if code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let patch = format!(
        r#"{{"status":{{"phase":"{phase}","containerStatuses":[{{"name":"c","image":"busybox","imageID":"","ready":false,"restartCount":0,"state":{{"terminated":{{"exitCode":{code},"reason":"{reason}"}}}}}}]}}}}"#
    );
    c.ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

/// The Running pods of a Job, waiting until there are `want`.
fn job_pods(c: &Cluster, job: &str, want: usize) -> Vec<String> {
    running(c, &format!("batch.kubernetes.io/job-name={job}"), want)
        .into_keys()
        .collect()
}

const INDEXED_JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: indexed
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
"#;

#[test]
fn jobs_complete_fail_and_cronjobs_start_jobs() {
    let c = Cluster::start();
    let _nodes = FakeNodes::start(&c, "fake.log", &["--count", "2"]);
    ready_nodes(&c, 2);
    // The schedule fires at the next minute; created first so the wait overlaps the rest.
    c.ok(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=* * * * *",
        "--",
        "true",
    ]);

    // A pod whose command finishes completes the Job (the simulated node runs it to exit 0).
    c.ok(&[
        "create",
        "job",
        "work",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/work",
        "--timeout=60s",
    ]);
    let st = c.ok(&[
        "get",
        "job",
        "work",
        "-o",
        "jsonpath={.status.succeeded} {.status.active} {.status.conditions[?(@.type==\"Complete\")].reason} {.status.completionTime}",
    ]);
    // `active: 0` is left out, as upstream's `omitempty` does.
    assert!(st.starts_with("1  CompletionsReached 20"), "{st}");
    let ev = events(&c, "Job");
    assert!(ev.contains("Created pod: work-"), "{ev}");
    assert!(ev.contains("Completed"), "{ev}");

    // Indexed: every index succeeds once, two at a time (these pods run until told to stop,
    // as their kubelet would report).
    c.ok_stdin(&["apply", "-f", "-"], INDEXED_JOB);
    let pods = job_pods(&c, "indexed", 2);
    let index = |p: &str| {
        c.ok(&[
            "get",
            "pod",
            p,
            "-o",
            "jsonpath={.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index}",
        ])
    };
    let mut seen: Vec<String> = pods.iter().map(|p| index(p)).collect();
    seen.sort();
    assert_eq!(seen, ["0", "1"]);
    for p in &pods {
        finish_pod(&c, p, 0);
    }
    let last = wait_for(60, "the pod of index 2", || {
        let pods = live_pods(&c, "batch.kubernetes.io/job-name=indexed");
        pods.iter()
            .find(|(p, phase)| *phase == "Running" && index(p) == "2")
            .map(|(p, _)| p.clone())
            .ok_or(format!("{pods:?}"))
    });
    assert!(last.starts_with("indexed-2-"), "{last}");
    finish_pod(&c, &last, 0);
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/indexed",
        "--timeout=60s",
    ]);
    let done = c.ok(&[
        "get",
        "job",
        "indexed",
        "-o",
        "jsonpath={.status.completedIndexes}",
    ]);
    assert_eq!(done, "0-2");

    // Failures beyond backoffLimit fail the Job.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: doomed\nspec:\n  backoffLimit: 1\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox\n        command: [\"sh\", \"-c\", \"exit 2\"]\n",
    );
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/doomed",
        "--timeout=60s",
    ]);
    let st = c.ok(&[
        "get",
        "job",
        "doomed",
        "-o",
        "jsonpath={.status.failed} {.status.conditions[?(@.type==\"Failed\")].reason}",
    ]);
    assert_eq!(st, "2 BackoffLimitExceeded");

    // A finished Job with ttlSecondsAfterFinished is deleted.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: brief\nspec:\n  ttlSecondsAfterFinished: 1\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox\n        command: [\"true\"]\n",
    );
    wait_for(60, "the finished job deleted", || {
        let out = c.kubectl(&["get", "job", "brief"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if err.contains("NotFound") {
            Ok(())
        } else {
            Err(err)
        }
    });

    // The CronJob started a Job of its own by now or within the minute, which completed.
    let job = wait_for(75, "a job from the cronjob", || {
        let jobs = items(&json(&c, &["get", "jobs"]));
        jobs.iter()
            .find(|j| j["metadata"]["ownerReferences"][0]["kind"] == "CronJob")
            .map(|j| j["metadata"]["name"].as_str().unwrap_or("").to_string())
            .ok_or(format!("{jobs:?}"))
    });
    assert!(job.starts_with("tick-"), "{job}");
    let minutes: i64 = job["tick-".len()..].parse().expect("minutes in the name");
    assert!(minutes > 29_000_000, "{job}");
    c.ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{job}"),
        "--timeout=60s",
    ]);
    wait_for(30, "the cronjob status", || {
        let st = c.ok(&[
            "get",
            "cronjob",
            "tick",
            "-o",
            "jsonpath={.status.lastScheduleTime} {.status.lastSuccessfulTime}",
        ]);
        if st.starts_with("20") && st.contains(" 20") {
            Ok(())
        } else {
            Err(st)
        }
    });
    let ev = events(&c, "CronJob");
    assert!(ev.contains(&format!("Created job {job}")), "{ev}");
    assert!(
        ev.contains(&format!("Saw completed job: {job}, status: Complete")),
        "{ev}"
    );
}

const DAEMONSETS: &str = r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: agent
        image: busybox
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: gpu-agent
spec:
  selector:
    matchLabels:
      app: gpu-agent
  template:
    metadata:
      labels:
        app: gpu-agent
    spec:
      nodeSelector:
        gpu: "true"
      tolerations:
      - key: dedicated
        operator: Equal
        value: gpu
        effect: NoSchedule
      containers:
      - name: agent
        image: busybox
"#;

/// `pod -> node` of the pods matching `selector`.
fn pods_on_nodes(c: &Cluster, selector: &str) -> BTreeMap<String, String> {
    items(&json(c, &["get", "pods", "-l", selector]))
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
        })
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn daemonsets_follow_selectors_and_taints() {
    let c = Cluster::start();
    let _plain = FakeNodes::start(&c, "fake-a.log", &["--count", "2", "--name-prefix", "a-"]);
    let _gpu = FakeNodes::start(
        &c,
        "fake-gpu.log",
        &[
            "--count",
            "1",
            "--label",
            "gpu=true",
            "--taint",
            "dedicated=gpu:NoSchedule",
            "--name-prefix",
            "gpu-",
        ],
    );
    ready_nodes(&c, 3);
    c.ok_stdin(&["apply", "-f", "-"], DAEMONSETS);
    rollout_status(&c, "daemonset/agent");
    rollout_status(&c, "daemonset/gpu-agent");
    let agents = pods_on_nodes(&c, "app=agent");
    let mut nodes: Vec<&String> = agents.values().collect();
    nodes.sort();
    assert_eq!(nodes, ["a-0", "a-1"], "{agents:?}");
    let gpu = pods_on_nodes(&c, "app=gpu-agent");
    assert_eq!(gpu.values().collect::<Vec<_>>(), ["gpu-0"], "{gpu:?}");
    let pod = agents.keys().next().expect("pod");
    let pinned = c.ok(&[
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key} {.spec.tolerations[?(@.key==\"node.kubernetes.io/unreachable\")].effect}",
    ]);
    assert_eq!(pinned, "metadata.name NoExecute");
    let st = table(&c.ok(&["get", "ds", "agent", "--no-headers"]));
    // NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE
    assert_eq!(&st[0][1..6], ["2", "2", "2", "2", "2"], "{st:?}");

    // A template change rolls through the nodes, one unavailable at a time.
    c.ok(&["set", "image", "daemonset/agent", "agent=busybox:1.37"]);
    rollout_status(&c, "daemonset/agent");
    wait_for(30, "every agent at the new image", || {
        let images = c.ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={range .items[*]}{.metadata.deletionTimestamp}{.spec.containers[0].image} {end}",
        ]);
        if images.trim() == "busybox:1.37 busybox:1.37" {
            Ok(())
        } else {
            Err(images)
        }
    });
    let revs = c.ok(&[
        "get",
        "controllerrevisions",
        "-l",
        "app=agent",
        "-o",
        "name",
    ]);
    assert_eq!(revs.lines().count(), 2, "{revs}");

    // Labelling a node into a selector starts a pod there; out again stops it.
    c.ok(&["label", "node", "a-0", "gpu=true"]);
    wait_for(60, "a gpu agent on a-0", || {
        let gpu = pods_on_nodes(&c, "app=gpu-agent");
        let mut n: Vec<String> = gpu.into_values().collect();
        n.sort();
        if n == ["a-0", "gpu-0"] {
            Ok(())
        } else {
            Err(format!("{n:?}"))
        }
    });
    c.ok(&["label", "node", "a-0", "gpu-"]);
    wait_for(60, "the gpu agent gone from a-0", || {
        let gpu = pods_on_nodes(&c, "app=gpu-agent");
        let n: Vec<String> = gpu.into_values().collect();
        if n == ["gpu-0"] {
            Ok(())
        } else {
            Err(format!("{n:?}"))
        }
    });

    // With maxSurge the new pod starts beside the old one, which goes once the new one is
    // available: every node keeps a ready agent throughout, watched at every step.
    c.ok(&[
        "patch",
        "daemonset",
        "agent",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}"#,
    ]);
    rollout_status(&c, "daemonset/agent");
    let watch = Background::start(&c, &["get", "pods", "-l", "app=agent", "-w", "-o", "json"]);
    wait_for(20, "the pod watch", || {
        if watch.lines().is_empty() {
            Err("no output".into())
        } else {
            Ok(())
        }
    });
    c.ok(&["set", "image", "daemonset/agent", "agent=busybox:1.36"]);
    rollout_status(&c, "daemonset/agent");
    wait_for(30, "every agent at the surged image", || {
        let images = c.ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={range .items[*]}{.metadata.deletionTimestamp}{.spec.containers[0].image} {end}",
        ]);
        if images.trim() == "busybox:1.36 busybox:1.36" {
            Ok(())
        } else {
            Err(images)
        }
    });
    let stream = watch.lines().join("\n");
    drop(watch);
    // Live pods by name: (node, ready).
    let mut live: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let (mut events, mut started) = (0, false);
    let mut doubled = std::collections::BTreeSet::new();
    for v in serde_json::Deserializer::from_str(&stream).into_iter::<Value>() {
        let Ok(pod) = v else { break };
        events += 1;
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
        if pod["metadata"]["deletionTimestamp"].is_string() {
            live.remove(&name);
        } else {
            let ready = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_string();
            live.insert(name, (node, ready));
        }
        // The watch lists the two existing agents one by one first.
        let covered = ["a-0", "a-1"]
            .iter()
            .all(|n| live.values().any(|(node, ready)| node == n && *ready));
        started |= covered;
        assert!(
            !started || covered,
            "a node without a ready agent during a surge rollout: {live:?}"
        );
        let starting = live.values().filter(|(_, ready)| !ready).count();
        assert!(
            starting <= 1,
            "more new agents on their way than maxSurge 1: {live:?}"
        );
        for n in ["a-0", "a-1"] {
            if live.values().filter(|(node, _)| node == n).count() == 2 {
                doubled.insert(n);
            }
        }
    }
    assert!(started, "the watch never showed both agents ready");
    assert_eq!(
        doubled.len(),
        2,
        "each node had its new agent beside the old one"
    );
    assert!(events >= 6, "too few pod updates seen: {events}");
}

/// The Warning `FailedCreate` Events in `ns`: how many Event objects, the sum of their
/// counts, and whether one combines similar events.
fn failed_creates(c: &Cluster, ns: &str) -> (usize, i64, bool) {
    let evs = items(&json(
        c,
        &[
            "-n",
            ns,
            "get",
            "events",
            "--field-selector",
            "reason=FailedCreate",
        ],
    ));
    let count: i64 = evs.iter().map(|e| e["count"].as_i64().unwrap_or(1)).sum();
    let combined = evs.iter().any(|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("(combined from similar events): "))
    });
    (evs.len(), count, combined)
}

/// The `ReplicaFailure` condition of a Deployment or ReplicaSet, if it has one.
fn replica_failure(c: &Cluster, ns: &str, what: &str) -> Option<Value> {
    let v = json(c, &["-n", ns, "get", what]);
    let conds = v["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conds.into_iter().find(|c| c["type"] == "ReplicaFailure")
}

#[test]
fn deployment_blocked_by_a_quota_backs_off_and_explains_the_stall() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "tight"]);
    c.ok(&["-n", "tight", "create", "quota", "one-pod", "--hard=pods=1"]);
    c.ok(&[
        "-n",
        "tight",
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    let t0 = std::time::Instant::now();

    // `kubectl describe` says why the Deployment is short of pods; the condition carries the
    // quota's refusal, as on the ReplicaSet it is copied from.
    wait_for(30, "ReplicaFailure on the Deployment", || {
        let d = c.ok(&["-n", "tight", "describe", "deployment", "web"]);
        let row = d.lines().any(|l| {
            l.split_whitespace().collect::<Vec<_>>() == ["ReplicaFailure", "True", "FailedCreate"]
        });
        if row { Ok(()) } else { Err(d) }
    });
    let cond = replica_failure(&c, "tight", "deployment/web").expect("condition");
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("is forbidden: exceeded quota: one-pod, requested: pods=1, used: pods=1, limited: pods=1"),
        "{cond}"
    );
    let rs = c.ok(&["-n", "tight", "get", "rs", "-l", "app=web", "-o", "name"]);
    let rs_cond = replica_failure(&c, "tight", rs.trim()).expect("the ReplicaSet's condition");
    assert_eq!(rs_cond["reason"], "FailedCreate");

    // Retries back off (5 ms doubling: about a dozen in the first 15 s, one or two in the
    // next 30 s) and their Events are combined: a stuck controller no longer writes
    // thousands of Events a minute.
    std::thread::sleep(Duration::from_secs(15).saturating_sub(t0.elapsed()));
    let (objects1, count1, _) = failed_creates(&c, "tight");
    std::thread::sleep(Duration::from_secs(45).saturating_sub(t0.elapsed()));
    let (objects2, count2, combined) = failed_creates(&c, "tight");
    eprintln!(
        "FailedCreate after 15 s: {objects1} Events, count {count1}; after 45 s: {objects2} Events, count {count2}"
    );
    assert!(count1 >= 5, "creates are retried at first: {count1}");
    assert!(
        count2 - count1 <= 3,
        "retries slow down: {count1} in the first 15 s, {} in the next 30 s",
        count2 - count1
    );
    assert!(
        objects2 <= 11 && combined,
        "similar Events are combined: {objects2} Events"
    );

    // Once the Deployment fits the quota, the failure is gone from both.
    c.ok(&["-n", "tight", "scale", "deployment", "web", "--replicas=1"]);
    wait_for(30, "ReplicaFailure removed", || {
        let d = replica_failure(&c, "tight", "deployment/web");
        let r = replica_failure(&c, "tight", rs.trim());
        if d.is_none() && r.is_none() {
            Ok(())
        } else {
            Err(format!("{d:?} {r:?}"))
        }
    });
    assert!(
        !c.ok(&["-n", "tight", "describe", "deployment", "web"])
            .contains("ReplicaFailure")
    );
}
