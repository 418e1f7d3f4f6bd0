//! End to end: everyday kubectl workflows beyond CRUD — edit, describe, cluster-info, and
//! watches that resume across a server restart.

mod common;

use common::{Cluster, table};

const DEPLOYMENT: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#;

#[test]
fn edit_with_a_scripted_editor_changes_the_object() {
    let c = Cluster::start();
    c.ok_stdin(&["create", "-f", "-"], DEPLOYMENT);
    let out = c
        .kubectl_cmd(&["edit", "deployment", "web"])
        .env("KUBE_EDITOR", "sed -i -e s/replicas:\\ 2/replicas:\\ 5/")
        .output()
        .expect("kubectl edit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "deployment.apps/web edited"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );

    // An edit that breaks validation is refused and changes nothing.
    let out = c
        .kubectl_cmd(&["edit", "deployment", "web"])
        .env("KUBE_EDITOR", "sed -i -e s/replicas:\\ 5/replicas:\\ -1/")
        .output()
        .expect("kubectl edit");
    assert!(!out.status.success());
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
}

#[test]
fn describe_shows_the_object_and_its_events() {
    let c = Cluster::start();
    c.ok(&[
        "run",
        "p",
        "--image=busybox:1.36",
        "--restart=Never",
        "--labels=app=demo",
    ]);
    let uid = c.ok(&["get", "pod", "p", "-o", "jsonpath={.metadata.uid}"]);
    let event = serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "p.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": uid, "apiVersion": "v1"},
        "reason": "Scheduled", "message": "Successfully assigned default/p to node-1",
        "type": "Normal", "source": {"component": "default-scheduler"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1,
    });
    c.ok_stdin(&["create", "-f", "-"], &event.to_string());
    let out = c.ok(&["describe", "pod", "p"]);
    for want in [
        "Name:",
        "Namespace:",
        "default",
        "Labels:",
        "app=demo",
        "busybox:1.36",
        "Events:",
        "Scheduled",
        "Successfully assigned default/p to node-1",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let events = table(&c.ok(&["get", "events", "--field-selector", "involvedObject.name=p"]));
    assert_eq!(events[0][..4], ["LAST", "SEEN", "TYPE", "REASON"]);
    assert!(events[1].contains(&"Scheduled".to_string()), "{events:?}");
}

#[test]
fn cluster_info_names_the_control_plane() {
    let c = Cluster::start();
    let out = c.ok(&["cluster-info"]);
    assert!(
        out.contains(&format!(
            "Kubernetes control plane is running at https://127.0.0.1:{}",
            c.port
        )),
        "{out}"
    );
}

#[test]
fn watches_resume_from_their_resource_version_after_a_restart() {
    let mut c = Cluster::start();
    c.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"before"}}"#,
    );
    let list: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]))
            .expect("a list");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_string();
    c.restart();
    c.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"after"}}"#,
    );
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=2"
    );
    let out = c.ok(&["get", "--raw", &path]);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["object"]["metadata"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("ADDED", "after")],
        "only what happened after {rv}: {out}"
    );
}

#[test]
fn old_resource_versions_replay_history_and_future_ones_are_refused() {
    let c = Cluster::start();
    let out = c.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces?watch=true&resourceVersion=1&timeoutSeconds=1",
    ]);
    // Revision 1 precedes every write, so it is still in the store's history: the watch replays
    // everything. A revision far in the future instead is refused.
    assert!(out.contains("\"ADDED\""), "{out}");
    let err = c.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces?resourceVersion=999999999&resourceVersionMatch=NotOlderThan&limit=1",
    ]);
    assert!(err.contains("Too large resource version"), "{err}");
}

#[test]
fn strict_field_validation_refuses_duplicate_fields() {
    let c = Cluster::start();
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup2"},"data":{"a":"1"}}"#;
    let out = c.kubectl_stdin(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            "-f",
            "-",
        ],
        body,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(r#"strict decoding error: duplicate field \"metadata.name\""#)
            || err.contains(r#"duplicate field "metadata.name""#),
        "{err}"
    );
    assert!(
        c.fails(&["get", "cm", "dup2"]).contains("NotFound"),
        "nothing was written"
    );
    // Under Warn the object is created (last value wins) and kubectl shows the warning.
    let out = c.kubectl_stdin(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Warn",
            "-f",
            "-",
        ],
        body,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("duplicate field"),
        "warning shown"
    );
    c.ok(&["get", "cm", "dup2"]);
}
