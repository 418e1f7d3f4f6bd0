//! A pod's status as the kubelet reports it, from what the runtime says of its containers:
//! container states (with last state, restart count, image and ids), the phase by upstream's
//! rules, and the conditions.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};

use crate::cri::api;

/// What the worker knows about one container beyond the runtime: why it is waiting.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// RFC 3339 of a CRI timestamp (nanoseconds since the epoch).
pub fn time_of(nanos: i64) -> Option<String> {
    (nanos > 0)
        .then(|| jiff::Timestamp::from_nanosecond(nanos as i128).ok())
        .flatten()
        .and_then(|t| t.round(jiff::Unit::Second).ok())
        .map(|t| t.to_string())
}

/// `containerd://<id>`.
pub fn container_id(runtime: &str, id: &str) -> String {
    format!("{runtime}://{id}")
}

/// The `terminated` state of an exited container.
pub fn terminated(s: &api::ContainerStatus, runtime: &str, message: Option<&str>) -> Value {
    let reason = if s.reason.is_empty() {
        if s.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    } else {
        s.reason.as_str()
    };
    let mut t = json!({
        "exitCode": s.exit_code,
        "reason": reason,
        "startedAt": time_of(s.started_at),
        "finishedAt": time_of(s.finished_at),
        "containerID": container_id(runtime, &s.id),
    });
    let message = message
        .filter(|m| !m.is_empty())
        .or((!s.message.is_empty()).then_some(s.message.as_str()));
    if let Some(m) = message {
        t["message"] = json!(m);
    }
    json!({"terminated": t})
}

/// The status of one container from its instances (newest first) and what the worker says.
pub struct ContainerView<'a> {
    pub spec: &'a Container,
    pub instances: &'a [api::ContainerStatus],
    pub waiting: Option<&'a Waiting>,
    pub runtime: &'a str,
    pub messages: &'a HashMap<String, String>,
    /// What the probes say of the running instance: (started, ready).
    pub probed: (bool, bool),
}

pub fn container_status(v: &ContainerView<'_>) -> Value {
    let latest = v.instances.first();
    let previous = v.instances.get(1);
    let term = |s: &api::ContainerStatus| {
        terminated(s, v.runtime, v.messages.get(&s.id).map(String::as_str))
    };
    let waiting = |w: &Waiting| {
        let mut s = json!({"reason": w.reason});
        if !w.message.is_empty() {
            s["message"] = json!(w.message);
        }
        json!({"waiting": s})
    };
    let running = api::ContainerState::ContainerRunning as i32;
    let exited = api::ContainerState::ContainerExited as i32;
    let (state, last) = match latest {
        Some(s) if s.state == running => (
            json!({"running": {"startedAt": time_of(s.started_at)}}),
            previous.map(term),
        ),
        Some(s) if s.state == exited => match v.waiting {
            Some(w) => (waiting(w), Some(term(s))),
            None => (term(s), previous.map(term)),
        },
        Some(_) => (
            waiting(v.waiting.unwrap_or(&Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            })),
            previous.map(term),
        ),
        None => (
            waiting(v.waiting.unwrap_or(&Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            })),
            None,
        ),
    };
    let is_running = latest.is_some_and(|s| s.state == running);
    let mut status = json!({
        "name": v.spec.name,
        "state": state,
        "lastState": last.unwrap_or_else(|| json!({})),
        "ready": is_running && v.probed.0 && v.probed.1,
        "restartCount": latest.map_or(0, |s| s.metadata.as_ref().map_or(0, |m| m.attempt)),
        "image": v.spec.image.clone().unwrap_or_default(),
        "imageID": latest.map(|s| s.image_ref.clone()).unwrap_or_default(),
        "started": is_running && v.probed.0,
    });
    if let Some(s) = latest {
        status["containerID"] = json!(container_id(v.runtime, &s.id));
    }
    status
}

/// Counts of app container states, as upstream's `getPhase` tallies them.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    pub running: usize,
    pub waiting: usize,
    pub stopped: usize,
    pub succeeded: usize,
}

pub fn tally(statuses: &[Value]) -> Tally {
    let mut t = Tally::default();
    for s in statuses {
        let state = &s["state"];
        if state.get("running").is_some() {
            t.running += 1;
        } else if let Some(term) = state.get("terminated") {
            t.stopped += 1;
            if term["exitCode"] == 0 {
                t.succeeded += 1;
            }
        } else if s["lastState"].get("terminated").is_some() {
            t.stopped += 1;
        } else {
            t.waiting += 1;
        }
    }
    t
}

/// Upstream's `getPhase` for a pod whose init containers are done (`initialized`) or not
/// (`init_failed`: one failed for good).
pub fn phase(
    restart_policy: &str,
    initialized: bool,
    init_failed: bool,
    t: &Tally,
) -> &'static str {
    if init_failed {
        return "Failed";
    }
    if !initialized || t.waiting > 0 {
        return "Pending";
    }
    if t.running > 0 {
        return "Running";
    }
    if t.stopped > 0 {
        return match restart_policy {
            "Always" => "Running",
            _ if t.stopped == t.succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

/// A condition, keeping `lastTransitionTime` from `old` while its status is unchanged.
pub fn condition(
    old: &Pod,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let previous = old
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let since = match previous {
        Some(p) if p.status == status => p.last_transition_time.as_ref().map(|t| t.0.to_string()),
        _ => None,
    };
    let mut c = json!({"type": type_, "status": status, "lastProbeTime": null,
                       "lastTransitionTime": since.unwrap_or_else(|| now.to_string())});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// The names of `statuses` that are not ready, as `[a b]`.
pub fn not_ready(statuses: &[Value]) -> Vec<String> {
    statuses
        .iter()
        .filter(|s| s["ready"] != true)
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(running: usize, waiting: usize, stopped: usize, succeeded: usize) -> Tally {
        Tally {
            running,
            waiting,
            stopped,
            succeeded,
        }
    }

    #[test]
    fn phase_follows_upstream() {
        assert_eq!(phase("Always", false, false, &t(0, 1, 0, 0)), "Pending");
        assert_eq!(phase("Always", true, false, &t(1, 0, 0, 0)), "Running");
        assert_eq!(phase("Always", true, false, &t(0, 0, 1, 1)), "Running");
        assert_eq!(phase("Never", true, false, &t(0, 0, 2, 2)), "Succeeded");
        assert_eq!(phase("Never", true, false, &t(0, 0, 2, 1)), "Failed");
        assert_eq!(phase("OnFailure", true, false, &t(0, 0, 1, 0)), "Running");
        assert_eq!(phase("OnFailure", true, false, &t(0, 0, 1, 1)), "Succeeded");
        assert_eq!(phase("Never", false, true, &t(0, 1, 0, 0)), "Failed");
    }
}
