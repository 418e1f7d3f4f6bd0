//! The pod table: upstream's `printPod`, init containers and sidecars included.

use serde_json::{Value, json};

use super::{AGE, NAME, TableDef, age, col, human_duration, items, len_of, name, time_at};
use crate::strategy::str_at;

pub static POD: TableDef = TableDef {
    columns: &[
        NAME,
        col("Ready", "string", 0)
            .about("The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", 0).about("The aggregate status of the containers in this pod."),
        col("Restarts", "string", 0).about("The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        AGE,
        col("IP", "string", 1),
        col("Node", "string", 1),
        col("Nominated Node", "string", 1),
        col("Readiness Gates", "string", 1),
    ],
    row: pod_row,
};

fn condition_true(v: &Value, ty: &str) -> bool {
    items(v, "/status/conditions")
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// The later of `latest` and the `lastState.terminated.finishedAt` of a container status.
fn later_restart(latest: &mut Option<jiff::Timestamp>, status: &Value) {
    if let Some(t) = time_at(status, "/lastState/terminated/finishedAt")
        && latest.is_none_or(|l| l < t)
    {
        *latest = Some(t);
    }
}

fn pod_row(v: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let s = |c: &Value, p: &str| {
        c.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let init_specs: Vec<&Value> = items(v, "/spec/initContainers").collect();
    // Init containers with restartPolicy Always are sidecars: they count as containers.
    let restartable = |name: &str| {
        init_specs.iter().any(|c| {
            c.get("name").and_then(Value::as_str) == Some(name)
                && c.get("restartPolicy").and_then(Value::as_str) == Some("Always")
        })
    };
    let mut total = len_of(v.pointer("/spec/containers"));
    total += init_specs
        .iter()
        .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"))
        .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;

    let phase = str_at(v, "status.phase").unwrap_or("");
    let mut reason = match str_at(v, "status.reason").filter(|r| !r.is_empty()) {
        Some(r) => r.to_string(),
        None => phase.to_string(),
    };
    if items(v, "/status/conditions").any(|c| {
        c.get("type").and_then(Value::as_str) == Some("PodScheduled")
            && c.get("reason").and_then(Value::as_str) == Some("SchedulingGated")
    }) {
        reason = "SchedulingGated".into();
    }

    let mut initializing = false;
    for (i, cs) in items(v, "/status/initContainerStatuses").enumerate() {
        let cname = s(cs, "/name");
        restarts += cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        later_restart(&mut last_restart, cs);
        let sidecar = restartable(&cname);
        if sidecar {
            sidecar_restarts += cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            later_restart(&mut last_sidecar_restart, cs);
        }
        let terminated = cs.pointer("/state/terminated").filter(|t| !t.is_null());
        let exit_code = terminated
            .and_then(|t| t.get("exitCode"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let waiting = s(cs, "/state/waiting/reason");
        if terminated.is_some() && exit_code == 0 {
            continue;
        }
        if sidecar && cs.get("started").and_then(Value::as_bool) == Some(true) {
            if cs.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let r = s(t, "/reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else {
                match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                    Some(sig) => format!("Init:Signal:{sig}"),
                    None => format!("Init:ExitCode:{exit_code}"),
                }
            };
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            reason = format!("Init:{waiting}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(v, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        let statuses: Vec<&Value> = items(v, "/status/containerStatuses").collect();
        for cs in statuses.into_iter().rev() {
            restarts += cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            later_restart(&mut last_restart, cs);
            let waiting = s(cs, "/state/waiting/reason");
            let terminated = cs.pointer("/state/terminated").filter(|t| !t.is_null());
            if !waiting.is_empty() {
                reason = waiting;
            } else if let Some(t) = terminated {
                let r = s(t, "/reason");
                reason = if !r.is_empty() {
                    r
                } else {
                    match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                        Some(sig) => format!("Signal:{sig}"),
                        None => format!(
                            "ExitCode:{}",
                            t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                        ),
                    }
                };
            } else if cs.get("ready").and_then(Value::as_bool) == Some(true)
                && cs.pointer("/state/running").is_some_and(|r| !r.is_null())
            {
                has_running = true;
                ready += 1;
            }
        }
        // Back to Running when a container still runs after another completed.
        if reason == "Completed" && has_running {
            reason = if condition_true(v, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if v.pointer("/metadata/deletionTimestamp").is_some() {
        if str_at(v, "status.reason") == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.as_second() - t.as_second())
        ),
        _ => restarts.to_string(),
    };

    // The internal form's podIPs is filled from podIP when only that is set.
    let ip = v
        .pointer("/status/podIPs/0/ip")
        .and_then(Value::as_str)
        .or(str_at(v, "status.podIP"))
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let none = |s: Option<&str>| json!(s.filter(|s| !s.is_empty()).unwrap_or("<none>"));
    let gates: Vec<&str> = items(v, "/spec/readinessGates")
        .map(|g| g.get("conditionType").and_then(Value::as_str).unwrap_or(""))
        .collect();
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates.iter().filter(|g| condition_true(v, g)).count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name(v),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_text),
        age(v, now),
        json!(ip),
        none(str_at(v, "spec.nodeName")),
        none(str_at(v, "status.nominatedNodeName")),
        json!(readiness_gates),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{ago, check, headers};

    fn pod(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "p", "creationTimestamp": ago(3600)}, "spec": spec, "status": status})
    }

    fn cells(status: &str, ready: &str, restarts: &str) -> Value {
        json!([
            "p", ready, status, restarts, "60m", "<none>", "<none>", "<none>", "<none>"
        ])
    }

    const ONE: &str = r#"{"containers": [{"name": "app", "image": "nginx"}]}"#;

    fn one() -> Value {
        serde_json::from_str(ONE).unwrap()
    }

    #[test]
    fn pod_columns_match_upstream() {
        assert_eq!(
            headers("pods"),
            "NAME READY STATUS RESTARTS AGE IP* NODE* NOMINATED NODE* READINESS GATES*"
        );
    }

    #[test]
    fn running_pod_with_restarts_shows_when_it_last_restarted() {
        check(
            "pods",
            json!({
                "metadata": {"name": "p", "creationTimestamp": ago(3600)},
                "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
                    "readinessGates": [{"conditionType": "example.com/ok"}, {"conditionType": "example.com/other"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                    "conditions": [{"type": "example.com/ok", "status": "True"}, {"type": "Ready", "status": "False"}],
                    "containerStatuses": [
                        {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}},
                        {"name": "b", "ready": false, "restartCount": 1, "state": {"running": {}},
                         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(900)}}}
                    ]}
            }),
            json!([
                "p",
                "1/2",
                "Running",
                "3 (5m ago)",
                "60m",
                "10.0.0.5",
                "n1",
                "<none>",
                "1/2"
            ]),
        );
    }

    #[test]
    fn waiting_and_terminated_containers_name_the_status() {
        check(
            "pods",
            pod(
                one(),
                json!({"phase": "Running", "containerStatuses": [
                    {"name": "app", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
            ),
            cells("CrashLoopBackOff", "0/1", "4"),
        );
        check(
            "pods",
            pod(
                one(),
                json!({"phase": "Succeeded", "containerStatuses": [
                    {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            ),
            cells("Completed", "0/1", "0"),
        );
        check(
            "pods",
            pod(
                one(),
                json!({"phase": "Failed", "containerStatuses": [
                    {"name": "app", "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}),
            ),
            cells("Signal:9", "0/1", "0"),
        );
        check(
            "pods",
            pod(
                one(),
                json!({"phase": "Failed", "containerStatuses": [
                    {"name": "app", "state": {"terminated": {"exitCode": 3}}}]}),
            ),
            cells("ExitCode:3", "0/1", "0"),
        );
        check(
            "pods",
            pod(one(), json!({"phase": "Pending"})),
            cells("Pending", "0/1", "0"),
        );
        check(
            "pods",
            pod(
                one(),
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ),
            cells("SchedulingGated", "0/1", "0"),
        );
    }

    #[test]
    fn completed_container_beside_a_running_one_is_running_or_not_ready() {
        let spec =
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]});
        let statuses = json!([
            {"name": "a", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "b", "ready": true, "state": {"running": {}}}
        ]);
        check(
            "pods",
            pod(
                spec.clone(),
                json!({"phase": "Running", "containerStatuses": statuses, "conditions": [{"type": "Ready", "status": "True"}]}),
            ),
            cells("Running", "1/2", "0"),
        );
        check(
            "pods",
            pod(
                spec,
                json!({"phase": "Running", "containerStatuses": statuses}),
            ),
            cells("NotReady", "1/2", "0"),
        );
    }

    #[test]
    fn init_containers_show_their_progress() {
        let spec = json!({"initContainers": [{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}],
            "containers": [{"name": "app", "image": "nginx"}]});
        check(
            "pods",
            pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "i2", "state": {"running": {}}}],
                    "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
            ),
            cells("Init:1/2", "0/1", "0"),
        );
        check(
            "pods",
            pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i1", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}}]}),
            ),
            cells("Init:CrashLoopBackOff", "0/1", "3 (30s ago)"),
        );
        check(
            "pods",
            pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i1", "state": {"terminated": {"exitCode": 2}}}]}),
            ),
            cells("Init:ExitCode:2", "0/1", "0"),
        );
        check(
            "pods",
            pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
            ),
            cells("Init:Error", "0/1", "0"),
        );
        // All init containers done: the app container is still initializing.
        check(
            "pods",
            pod(
                spec,
                json!({"phase": "Pending", "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [
                        {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "i2", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                    "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
            ),
            cells("PodInitializing", "0/1", "0"),
        );
    }

    #[test]
    fn sidecars_count_as_containers() {
        let spec = json!({"initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "nginx"}]});
        check(
            "pods",
            pod(
                spec,
                json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                        "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120)}}}],
                    "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}]}),
            ),
            cells("Running", "2/2", "1 (2m ago)"),
        );
    }

    #[test]
    fn deleted_pods_are_terminating_unless_finished() {
        let mut p = pod(one(), json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!(ago(1));
        check("pods", p.clone(), cells("Terminating", "0/1", "0"));
        p["status"]["phase"] = json!("Succeeded");
        check("pods", p.clone(), cells("Succeeded", "0/1", "0"));
        p["status"]["reason"] = json!("NodeLost");
        check("pods", p, cells("Unknown", "0/1", "0"));
    }
}
