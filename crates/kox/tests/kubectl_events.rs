//! One Event under two APIs, as upstream serves it: core `v1` events and `events.k8s.io/v1`
//! events are the same objects (stored as core events), read, written, selected, watched
//! and deleted through either, with the same name, uid and resourceVersion.

mod common;

use std::time::Duration;

use common::{Cluster, StreamedLines};
use serde_json::Value;

const V1: &str = "events.v1.events.k8s.io";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// An `events.k8s.io/v1` event about deployment `web`, as a manifest.
fn v1_event(name: &str, reason: &str) -> String {
    format!(
        "apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: {name}
eventTime: \"2025-01-10T11:58:00.000000Z\"
reportingController: example.com/tester
reportingInstance: tester-1
action: Testing
reason: {reason}
type: Normal
note: made through events.k8s.io
regarding:
  apiVersion: apps/v1
  kind: Deployment
  name: web
  namespace: default
"
    )
}

/// A legacy core `v1` event about pod `p`, as a manifest.
fn core_event(name: &str, reason: &str) -> String {
    format!(
        "apiVersion: v1
kind: Event
metadata:
  name: {name}
involvedObject:
  apiVersion: v1
  kind: Pod
  name: p
  namespace: default
reason: {reason}
message: made through core v1
type: Warning
count: 3
source:
  component: kubelet
  host: node-1
firstTimestamp: \"2025-01-10T11:00:00Z\"
lastTimestamp: \"2025-01-10T11:30:00Z\"
"
    )
}

#[test]
fn core_and_events_k8s_io_events_are_one_object() {
    let c = Cluster::start();

    // 1. Made through events.k8s.io/v1, read through both.
    c.ok_stdin(&["create", "-f", "-"], &v1_event("v1-made", "MadeV1"));
    let v1_table = c.ok(&["get", V1]);
    assert!(v1_table.contains("MadeV1"), "{v1_table}");
    let core_table = c.ok(&["get", "events"]);
    assert!(
        core_table.contains("MadeV1") && core_table.contains("deployment/web"),
        "{core_table}"
    );
    let core_yaml = c.ok(&["get", "events", "v1-made", "-o", "yaml"]);
    for want in [
        "apiVersion: v1\n",
        "message: made through events.k8s.io",
        "involvedObject:",
        "reportingComponent: example.com/tester",
    ] {
        assert!(core_yaml.contains(want), "{want:?} in {core_yaml}");
    }
    for v1_only in ["note:", "regarding:", "reportingController:"] {
        assert!(!core_yaml.contains(v1_only), "{v1_only:?} in {core_yaml}");
    }
    let core = json(&c.ok(&["get", "events", "v1-made", "-o", "json"]));
    let v1 = json(&c.ok(&["get", V1, "v1-made", "-o", "json"]));
    assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
    assert_eq!(v1["note"], "made through events.k8s.io");
    assert_eq!(core["involvedObject"]["name"], "web");
    for field in [
        "/metadata/name",
        "/metadata/uid",
        "/metadata/resourceVersion",
    ] {
        assert_eq!(core.pointer(field), v1.pointer(field), "{field}");
    }

    // 2. Made through core v1, read as events.k8s.io/v1.
    c.ok_stdin(&["create", "-f", "-"], &core_event("core-made", "MadeCore"));
    let v1_yaml = c.ok(&["get", V1, "core-made", "-o", "yaml"]);
    for want in [
        "apiVersion: events.k8s.io/v1",
        "regarding:",
        "note: made through core v1",
        "deprecatedCount: 3",
        "deprecatedSource:",
        "component: kubelet",
        "deprecatedFirstTimestamp:",
    ] {
        assert!(v1_yaml.contains(want), "{want:?} in {v1_yaml}");
    }
    for core_only in ["message:", "involvedObject:", "\ncount:", "\nsource:"] {
        assert!(!v1_yaml.contains(core_only), "{core_only:?} in {v1_yaml}");
    }
    let listed = json(&c.ok(&["get", V1, "-o", "json"]));
    assert_eq!(listed["apiVersion"], "v1", "kubectl's own List");
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["apiVersion"], "events.k8s.io/v1");
            e["metadata"]["name"].as_str().unwrap()
        })
        .collect();
    assert!(
        names.contains(&"v1-made") && names.contains(&"core-made"),
        "{names:?}"
    );

    // 3. Each API's field labels, each selecting the same events.
    let by_v1 = c.ok(&[
        "get",
        V1,
        "--field-selector",
        "regarding.name=web,reportingController=example.com/tester",
        "-o",
        "name",
    ]);
    assert_eq!(by_v1.trim(), "event.events.k8s.io/v1-made");
    let by_core = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=p,source=kubelet",
        "-o",
        "name",
    ]);
    assert_eq!(by_core.trim(), "event/core-made");
    let err = c.fails(&["get", V1, "--field-selector", "involvedObject.name=web"]);
    assert!(
        err.contains("field label not supported: involvedObject.name"),
        "{err}"
    );

    // 4. Writes are validated as the API they come through says: a legacy event is fine
    //    through core v1, not through events.k8s.io/v1; what a v1 event says is fixed there.
    let legacy_v1 = core_event("legacy", "Legacy")
        .replace("apiVersion: v1\nkind", "apiVersion: events.k8s.io/v1\nkind")
        .replace("involvedObject:", "regarding:")
        .replace("message:", "note:")
        .replace("count: 3\nsource:", "deprecatedSource:")
        .replace("firstTimestamp", "deprecatedFirstTimestamp")
        .replace("lastTimestamp", "deprecatedLastTimestamp");
    let refused = c.kubectl_stdin(&["create", "-f", "-"], &legacy_v1);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a legacy event through v1");
    assert!(err.contains("eventTime: Required value"), "{err}");
    // A body is read as the API it comes through: a core field is unknown to v1.
    let refused = c.kubectl_stdin(
        &["create", "-f", "-"],
        &v1_event("strict", "Strict").replace("note:", "message:"),
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a core field through v1");
    assert!(err.contains(r#"unknown field "message""#), "{err}");
    let err = c.fails(&[
        "patch",
        V1,
        "v1-made",
        "--type=merge",
        "-p",
        r#"{"note":"changed"}"#,
    ]);
    assert!(err.contains("field is immutable"), "{err}");
    c.ok(&[
        "patch",
        V1,
        "v1-made",
        "--type=merge",
        "-p",
        r#"{"series":{"count":2,"lastObservedTime":"2025-01-10T11:59:00.000000Z"}}"#,
    ]);
    let core = json(&c.ok(&["get", "events", "v1-made", "-o", "json"]));
    assert_eq!(core["series"]["count"], 2);
    c.ok(&[
        "patch",
        "events",
        "core-made",
        "--type=merge",
        "-p",
        r#"{"count":4}"#,
    ]);
    let v1 = json(&c.ok(&["get", V1, "core-made", "-o", "json"]));
    assert_eq!(v1["deprecatedCount"], 4);

    // 5. A watch through one API sees what is made through the other.
    let watch = |resource| {
        StreamedLines::spawn(c.kubectl_cmd(&["get", resource, "-w", "--output-watch-events"]))
    };
    let (v1_watch, core_watch) = (watch(V1), watch("events"));
    std::thread::sleep(Duration::from_millis(1500));
    c.ok_stdin(
        &["create", "-f", "-"],
        &core_event("core-watched", "WatchedCore"),
    );
    c.ok_stdin(&["create", "-f", "-"], &v1_event("v1-watched", "WatchedV1"));
    let line = v1_watch.line_with("WatchedCore", 10);
    assert!(line.starts_with("ADDED"), "{line}");
    let line = core_watch.line_with("WatchedV1", 10);
    assert!(line.starts_with("ADDED"), "{line}");
    let raw = c.ok(&[
        "get",
        "--raw",
        "/apis/events.k8s.io/v1/namespaces/default/events?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dcore-watched",
    ]);
    let first = json(raw.lines().next().expect("a watch event"));
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(first["object"]["note"], "made through core v1");

    // 6. Deleted through one API, gone from the other.
    c.ok(&["delete", V1, "core-made"]);
    let err = c.fails(&["get", "events", "core-made"]);
    assert!(err.contains(r#"events "core-made" not found"#), "{err}");
    c.ok(&["delete", "events", "v1-made"]);
    let err = c.fails(&["get", V1, "v1-made"]);
    assert!(
        err.contains(r#"events.events.k8s.io "v1-made" not found"#),
        "{err}"
    );
}
