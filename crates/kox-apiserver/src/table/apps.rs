//! Tables of the `apps` group.

use serde_json::{Value, json};

use super::{
    AGE, CONTAINERS, IMAGES, NAME, TableDef, age, col, containers_and_images,
    format_label_selector, format_labels, i64_at, items, name, selector_string,
};

fn template_containers(v: &Value) -> (Value, Value) {
    containers_and_images(v.pointer("/spec/template/spec/containers"))
}

pub static DEPLOYMENT: TableDef = TableDef {
    columns: &[
        NAME,
        col("Ready", "string", 0).about("Number of the pod with ready state"),
        col("Up-to-date", "string", 0),
        col("Available", "string", 0),
        AGE,
        CONTAINERS,
        IMAGES,
        col("Selector", "string", 1),
    ],
    row: |v, now| {
        let (c, i) = template_containers(v);
        // Deployments print the bare selector string (empty, not `<none>`).
        let selector =
            selector_string(v.pointer("/spec/selector")).unwrap_or_else(|| "<invalid>".into());
        vec![
            name(v),
            json!(format!(
                "{}/{}",
                i64_at(v, "/status/readyReplicas"),
                i64_at(v, "/spec/replicas")
            )),
            json!(i64_at(v, "/status/updatedReplicas")),
            json!(i64_at(v, "/status/availableReplicas")),
            age(v, now),
            c,
            i,
            json!(selector),
        ]
    },
};

pub static REPLICA_SET: TableDef = TableDef {
    columns: &[
        NAME,
        col("Desired", "integer", 0),
        col("Current", "integer", 0),
        col("Ready", "integer", 0),
        AGE,
        CONTAINERS,
        IMAGES,
        col("Selector", "string", 1),
    ],
    row: |v, now| {
        let (c, i) = template_containers(v);
        vec![
            name(v),
            json!(i64_at(v, "/spec/replicas")),
            json!(i64_at(v, "/status/replicas")),
            json!(i64_at(v, "/status/readyReplicas")),
            age(v, now),
            c,
            i,
            json!(format_label_selector(v.pointer("/spec/selector"))),
        ]
    },
};

pub static STATEFUL_SET: TableDef = TableDef {
    columns: &[
        NAME,
        col("Ready", "string", 0).about("Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    row: |v, now| {
        let (c, i) = template_containers(v);
        vec![
            name(v),
            json!(format!(
                "{}/{}",
                i64_at(v, "/status/readyReplicas"),
                i64_at(v, "/spec/replicas")
            )),
            age(v, now),
            c,
            i,
        ]
    },
};

pub static DAEMON_SET: TableDef = TableDef {
    columns: &[
        NAME,
        col("Desired", "integer", 0),
        col("Current", "integer", 0),
        col("Ready", "integer", 0),
        col("Up-to-date", "integer", 0),
        col("Available", "integer", 0),
        col("Node Selector", "string", 0),
        AGE,
        CONTAINERS,
        IMAGES,
        col("Selector", "string", 1),
    ],
    row: |v, now| {
        let (c, i) = template_containers(v);
        vec![
            name(v),
            json!(i64_at(v, "/status/desiredNumberScheduled")),
            json!(i64_at(v, "/status/currentNumberScheduled")),
            json!(i64_at(v, "/status/numberReady")),
            json!(i64_at(v, "/status/updatedNumberScheduled")),
            json!(i64_at(v, "/status/numberAvailable")),
            json!(format_labels(v.pointer("/spec/template/spec/nodeSelector"))),
            age(v, now),
            c,
            i,
            json!(format_label_selector(v.pointer("/spec/selector"))),
        ]
    },
};

pub static CONTROLLER_REVISION: TableDef = TableDef {
    columns: &[
        NAME,
        col("Controller", "string", 0).about("Controller of the object"),
        col("Revision", "string", 0),
        AGE,
    ],
    row: |v, now| {
        let controller = items(v, "/metadata/ownerReferences")
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .map(|r| {
                let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
                let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
                let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                let gk = if group.is_empty() {
                    kind.to_string()
                } else {
                    format!("{kind}.{group}")
                };
                let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                if gk.is_empty() {
                    name.to_string()
                } else {
                    format!("{}/{name}", gk.to_lowercase())
                }
            })
            .unwrap_or_else(|| "<none>".into());
        vec![
            name(v),
            json!(controller),
            json!(i64_at(v, "/revision")),
            age(v, now),
        ]
    },
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{ago, check, headers};

    fn template() -> serde_json::Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
    }

    #[test]
    fn deployments_show_ready_over_desired() {
        check(
            "deployments.apps",
            json!({"metadata": {"name": "web", "creationTimestamp": ago(45)},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
            json!([
                "web",
                "2/3",
                3,
                2,
                "45s",
                "nginx,log",
                "nginx:1.27,busybox",
                "app=web"
            ]),
        );
    }

    #[test]
    fn replicasets_show_desired_current_ready() {
        check(
            "replicasets.apps",
            json!({"metadata": {"name": "web-1"},
                "spec": {"replicas": 3, "selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}, "template": template()},
                "status": {"replicas": 3, "readyReplicas": 1}}),
            json!([
                "web-1",
                3,
                3,
                1,
                "<unknown>",
                "nginx,log",
                "nginx:1.27,busybox",
                "app"
            ]),
        );
    }

    #[test]
    fn statefulsets_show_ready_over_replicas() {
        assert_eq!(
            headers("statefulsets.apps"),
            "NAME READY AGE CONTAINERS* IMAGES*"
        );
        check(
            "statefulsets.apps",
            json!({"metadata": {"name": "db", "creationTimestamp": ago(600)},
                "spec": {"replicas": 3, "template": template()}, "status": {"readyReplicas": 1}}),
            json!(["db", "1/3", "10m", "nginx,log", "nginx:1.27,busybox"]),
        );
    }

    #[test]
    fn daemonsets_show_scheduling_counts_and_node_selector() {
        assert_eq!(
            headers("daemonsets.apps"),
            "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE CONTAINERS* IMAGES* SELECTOR*"
        );
        let mut t = template();
        t["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        check(
            "daemonsets.apps",
            json!({"metadata": {"name": "agent"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": t},
                "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                    "updatedNumberScheduled": 3, "numberAvailable": 2}}),
            json!([
                "agent",
                3,
                3,
                2,
                3,
                2,
                "kubernetes.io/os=linux",
                "<unknown>",
                "nginx,log",
                "nginx:1.27,busybox",
                "app=web"
            ]),
        );
        check(
            "daemonsets.apps",
            json!({"metadata": {"name": "bare"}}),
            json!([
                "bare",
                0,
                0,
                0,
                0,
                0,
                "<none>",
                "<unknown>",
                "",
                "",
                "<none>"
            ]),
        );
    }

    #[test]
    fn controller_revisions_name_their_controller() {
        check(
            "controllerrevisions.apps",
            json!({"metadata": {"name": "agent-7f9", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u", "controller": true}]},
                "revision": 2}),
            json!(["agent-7f9", "daemonset.apps/agent", 2, "<unknown>"]),
        );
        check(
            "controllerrevisions.apps",
            json!({"metadata": {"name": "orphan"}, "revision": 1}),
            json!(["orphan", "<none>", 1, "<unknown>"]),
        );
    }
}
