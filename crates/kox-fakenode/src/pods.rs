//! The node agent's part for pods bound to simulated nodes: report them Running and Ready
//! with a pod IP, and finish their graceful deletion at once (there is nothing to stop).
//!
//! A pod that is meant to finish (restartPolicy `Never` or `OnFailure`, every container given
//! an explicit `command`) runs for about a second and then terminates as its command would:
//! exit code N for a command ending in `exit N`, 1 for `false`, otherwise 0. That is what
//! lets Jobs complete on simulated nodes. A failing `OnFailure` pod keeps running, as a
//! kubelet restarting it would.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::node::{FakeNode, Nodes};

/// API requests about pods kept in flight at most.
const CONCURRENCY: usize = 64;

/// Pod bookkeeping shared by the watch loop and the request tasks.
#[derive(Default)]
struct Book {
    /// Pods with a request in flight (one at a time per pod).
    busy: HashSet<String>,
    /// Pod IPs handed out, by pod key, so a repeated report keeps the same address.
    ips: HashMap<String, String>,
    /// Next address per node.
    next: HashMap<String, u32>,
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// What a pod on a simulated node needs next.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Nothing,
    ReportRunning,
    /// The containers exited with this code.
    ReportExit(i32),
    FinishDeletion,
}

/// How long a finite pod runs on a simulated node.
const RUN_TIME: Duration = Duration::from_secs(1);

/// The exit code a pod's containers end with, if the pod is meant to finish (see the module
/// docs); `None` for a pod that runs until deleted.
fn exit_code(pod: &Pod) -> Option<i32> {
    let spec = pod.spec.as_ref()?;
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if policy == "Always" || spec.containers.is_empty() {
        return None;
    }
    let mut worst = 0;
    for c in &spec.containers {
        let command = c.command.as_ref().filter(|c| !c.is_empty())?;
        let line: Vec<&str> = command
            .iter()
            .chain(c.args.iter().flatten())
            .flat_map(|w| w.split_whitespace())
            .collect();
        let code = match line.as_slice() {
            [.., "exit", n] => n.trim_end_matches(';').parse().unwrap_or(1),
            ["false"] | ["/bin/false"] => 1,
            _ => 0,
        };
        if worst == 0 {
            worst = code;
        }
    }
    // A failing container under OnFailure is restarted in place: the pod does not finish.
    (worst == 0 || policy == "Never").then_some(worst)
}

fn next_action(pod: &Pod) -> Action {
    if pod.metadata.deletion_timestamp.is_some() {
        return Action::FinishDeletion;
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let has_ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty());
    match phase {
        "Succeeded" | "Failed" => Action::Nothing,
        "Running" if has_ip => match exit_code(pod) {
            Some(code) => Action::ReportExit(code),
            None => Action::Nothing,
        },
        _ => Action::ReportRunning,
    }
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The status a kubelet reports once every container runs.
fn running_status(pod: &Pod, node: &FakeNode, pod_ip: &str) -> Value {
    let now = now_rfc3339();
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    let container = |c: &k8s_openapi::api::core::v1::Container, running: bool| {
        let state = if running {
            json!({"running": {"startedAt": now}})
        } else {
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}})
        };
        json!({
            "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
            "containerID": format!("kox-fake://{uid}-{}", c.name),
            "ready": running, "started": running, "restartCount": 0, "state": state,
        })
    };
    let containers: Vec<Value> = spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| container(c, true))
        .collect();
    let init: Vec<Value> = spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| container(c, c.restart_policy.as_deref() == Some("Always")))
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let mut status = json!({
        "phase": "Running",
        "hostIP": node.ip, "hostIPs": [{"ip": node.ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": pod.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| json!(t)).unwrap_or(json!(now)),
        "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "containerStatuses": containers,
    });
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
    json!({ "status": status })
}

/// The status a kubelet reports once every container exited with `code`.
fn exited_status(pod: &Pod, code: i32) -> Value {
    let now = now_rfc3339();
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let (phase, reason) = if code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .map(|t| json!(t))
        .unwrap_or(json!(now));
    let containers: Vec<Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "containerID": format!("kox-fake://{uid}-{}", c.name),
                "ready": false, "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now}},
            })
        })
        .collect();
    let cond = |t: &str, status: &str| json!({"type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    let mut conditions = vec![
        cond("PodReadyToStartContainers", "False"),
        cond("Initialized", "True"),
        cond("Ready", "False"),
        cond("ContainersReady", "False"),
        cond("PodScheduled", "True"),
    ];
    for c in &mut conditions {
        if c["status"] == "False" && c["type"] != "PodReadyToStartContainers" {
            c["reason"] = json!("PodCompleted");
        }
    }
    json!({"status": {"phase": phase, "conditions": conditions, "containerStatuses": containers}})
}

/// Lets a finite pod run for [`RUN_TIME`], then reports it exited with `code`.
async fn report_exit(api: &Api<Pod>, pod: &Pod, code: i32) -> Result<(), kube::Error> {
    tokio::time::sleep(RUN_TIME).await;
    let name = pod.metadata.name.as_deref().unwrap_or("");
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(exited_status(pod, code)),
    )
    .await
    .map(|_| ())
}

/// Watches all pods and acts for those on simulated nodes, until `stop`.
pub async fn serve(client: Client, nodes: Arc<Nodes>, stop: CancellationToken) {
    let api: Api<Pod> = Api::all(client.clone());
    let book = Arc::new(Mutex::new(Book::default()));
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => ev,
        };
        let pod = match ev {
            None => return,
            Some(Err(e)) => {
                tracing::warn!("fake nodes: pod watch: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => p,
            Some(Ok(watcher::Event::Delete(p))) => {
                let mut b = book.lock().unwrap_or_else(|e| e.into_inner());
                b.ips.remove(&key(&p));
                continue;
            }
            Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => continue,
        };
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| nodes.get(n))
        else {
            continue;
        };
        let action = next_action(&pod);
        if action == Action::Nothing {
            continue;
        }
        let k = key(&pod);
        let ip = {
            let mut b = book.lock().unwrap_or_else(|e| e.into_inner());
            if !b.busy.insert(k.clone()) {
                continue;
            }
            match b.ips.get(&k) {
                Some(ip) => ip.clone(),
                None => {
                    let n = b.next.entry(node.name.clone()).or_insert(0);
                    let ip = format!("{}.{}", node.pod_prefix, 2 + *n % 250);
                    *n += 1;
                    b.ips.insert(k.clone(), ip.clone());
                    ip
                }
            }
        };
        let (client, book, node, limit) =
            (client.clone(), book.clone(), node.clone(), limit.clone());
        tokio::spawn(async move {
            let _permit = limit.acquire().await;
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client, &ns);
            let res = match action {
                Action::ReportRunning => {
                    let ran = api
                        .patch_status(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(running_status(&pod, &node, &ip)),
                        )
                        .await;
                    // A pod meant to finish exits here: the watch event of the Running report
                    // may arrive while this pod is still marked busy, and none follows it.
                    match (ran, exit_code(&pod)) {
                        (Ok(running), Some(code)) => report_exit(&api, &running, code).await,
                        (r, _) => r.map(|_| ()),
                    }
                }
                Action::ReportExit(code) => report_exit(&api, &pod, code).await,
                Action::FinishDeletion => {
                    let dp = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(Preconditions {
                            uid: pod.metadata.uid.clone(),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    match api.delete(&name, &dp).await {
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                        r => r.map(|_| ()),
                    }
                }
                Action::Nothing => Ok(()),
            };
            if let Err(e) = res {
                tracing::debug!(pod = %format!("{ns}/{name}"), "fake node: {action:?}: {e}");
            }
            book.lock()
                .unwrap_or_else(|e| e.into_inner())
                .busy
                .remove(&format!("{ns}/{name}"));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn pods_are_started_once_and_deleted_when_asked() {
        for (p, want) in [
            (json!({"spec": {"containers": []}}), Action::ReportRunning),
            (
                json!({"spec": {"containers": []}, "status": {"phase": "Running", "podIP": "10.0.0.2"}}),
                Action::Nothing,
            ),
            (
                json!({"spec": {"containers": []}, "status": {"phase": "Succeeded"}}),
                Action::Nothing,
            ),
            (
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"containers": []},
                    "status": {"phase": "Running", "podIP": "10.0.0.2"}}),
                Action::FinishDeletion,
            ),
        ] {
            assert_eq!(next_action(&pod(p.clone())), want, "{p}");
        }
    }

    #[test]
    fn finite_pods_exit_as_their_command_says() {
        let job = |policy: &str, cmd: Value| {
            pod(
                json!({"spec": {"restartPolicy": policy, "containers": [{"name": "c", "command": cmd}]},
                "status": {"phase": "Running", "podIP": "10.0.0.2"}}),
            )
        };
        assert_eq!(
            next_action(&job("Never", json!(["sh", "-c", "echo hi"]))),
            Action::ReportExit(0)
        );
        assert_eq!(
            next_action(&job("Never", json!(["sh", "-c", "exit 3"]))),
            Action::ReportExit(3)
        );
        assert_eq!(
            next_action(&job("Never", json!(["false"]))),
            Action::ReportExit(1)
        );
        assert_eq!(
            next_action(&job("OnFailure", json!(["true"]))),
            Action::ReportExit(0)
        );
        // A failing OnFailure pod is restarted in place, not finished.
        assert_eq!(
            next_action(&job("OnFailure", json!(["sh", "-c", "exit 1"]))),
            Action::Nothing
        );
        // Servers (restartPolicy Always) and pods running their image's entrypoint never finish.
        assert_eq!(
            next_action(&job("Always", json!(["true"]))),
            Action::Nothing
        );
        let no_command = pod(
            json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.2"}}),
        );
        assert_eq!(next_action(&no_command), Action::Nothing);
        let s = &exited_status(&job("Never", json!(["false"])), 1)["status"];
        assert_eq!(s["phase"], "Failed");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );
    }

    #[test]
    fn running_status_reports_every_container_ready() {
        let p = pod(
            json!({"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "a", "image": "busybox"}],
            "initContainers": [{"name": "i", "image": "busybox"}]}}),
        );
        let node = FakeNode {
            name: "n".into(),
            ip: "172.16.0.1".into(),
            pod_prefix: "10.0.0".into(),
            uid: String::new(),
            index: 0,
            lease: Default::default(),
        };
        let s = &running_status(&p, &node, "10.0.0.2")["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.0.0.2");
        assert_eq!(s["hostIP"], "172.16.0.1");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let ready = s["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready);
    }
}
