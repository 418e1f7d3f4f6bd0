//! Server-side printing: the `Table` columns and rows `kubectl get` shows, as upstream prints them.
//!
//! Each kind's columns and cells follow upstream's `pkg/printers/internalversion/printers.go`.
//! The server always fills the wide (`priority: 1`) cells too; kubectl hides them unless asked
//! for `-o wide`. Kinds upstream has no printer for get its default table: NAME and CREATED AT.
//! One file per area: `core` (most of the core group), `pods`, `events`, `storage` (volumes,
//! claims, quotas), `apps`, `batch` and `cluster` (networking, RBAC, storage classes,
//! scheduling, policy, autoscaling, coordination).

use serde_json::{Value, json};

use crate::strategy::str_at;

mod apps;
mod batch;
mod cluster;
mod core;
mod events;
mod pods;
mod storage;

pub use apps::{CONTROLLER_REVISION, DAEMON_SET, DEPLOYMENT, REPLICA_SET, STATEFUL_SET};
pub use batch::{CRON_JOB, JOB};
pub use cluster::{
    CLUSTER_ROLE_BINDING, ENDPOINT_SLICE, HPA, INGRESS, INGRESS_CLASS, LEASE, NETWORK_POLICY, PDB,
    PRIORITY_CLASS, ROLE_BINDING, STORAGE_CLASS, WEBHOOK_CONFIGURATION,
};
pub use core::{
    COMPONENT_STATUS, CONFIG_MAP, ENDPOINTS, NAMESPACE, NODE, POD_TEMPLATE, REPLICATION_CONTROLLER,
    SECRET, SERVICE, SERVICE_ACCOUNT,
};
pub use events::EVENT;
pub use pods::POD;
pub use storage::{PV, PVC, RESOURCE_QUOTA};

/// One column of a table.
pub struct Column {
    pub name: &'static str,
    pub kind: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// 0 = always shown; 1 = only with `-o wide`.
    pub priority: u8,
}

impl Column {
    /// The same column with upstream's description.
    const fn about(self, description: &'static str) -> Column {
        Column {
            description,
            ..self
        }
    }
}

/// A kind's table: its columns and how one object fills a row.
pub struct TableDef {
    pub columns: &'static [Column],
    pub row: fn(&Value, jiff::Timestamp) -> Vec<Value>,
}

impl TableDef {
    pub fn column_definitions(&self) -> Value {
        Value::Array(
            self.columns
                .iter()
                .map(|c| {
                    json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
                })
                .collect(),
        )
    }
}

/// A plain column (`type` is `string`, `integer`, `boolean` or `date`).
const fn col(name: &'static str, kind: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind,
        format: "",
        description: "",
        priority,
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    priority: 0,
};
const CREATION_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const AGE: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    description: CREATION_DOC,
    priority: 0,
};
const CONTAINERS: Column =
    col("Containers", "string", 1).about("Names of each container in the template.");
const IMAGES: Column =
    col("Images", "string", 1).about("Images referenced by each container in the template.");

fn name(v: &Value) -> Value {
    json!(str_at(v, "metadata.name").unwrap_or(""))
}

/// Upstream's `duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The timestamp at a JSON pointer, if set and valid.
fn time_at(v: &Value, pointer: &str) -> Option<jiff::Timestamp> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
}

/// Upstream's `translateTimestampSince`: the age of a timestamp, or `<unknown>` when unset.
fn since_time(t: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    match t {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

/// Age of the timestamp at a JSON pointer, or `<unknown>`.
fn since(v: &Value, pointer: &str, now: jiff::Timestamp) -> String {
    since_time(time_at(v, pointer), now)
}

fn age(v: &Value, now: jiff::Timestamp) -> Value {
    json!(since(v, "/metadata/creationTimestamp", now))
}

fn len_of(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

fn i64_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn str_ptr<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The items of the array at a JSON pointer (none when absent).
fn items<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// `s`, or `<none>` when empty.
fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.into()
    }
}

/// Upstream's `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
fn format_labels(map: Option<&Value>) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    or_none(&pairs.join(","))
}

/// A `metav1.LabelSelector` as upstream's `LabelSelectorAsSelector(..).String()`: `None` for
/// a selector that does not convert.
fn selector_string(sel: Option<&Value>) -> Option<String> {
    let ls = match sel {
        None | Some(Value::Null) => None,
        Some(s) => Some(serde_json::from_value(s.clone()).ok()?),
    };
    kox_api::label_selector::Selector::from_label_selector(ls.as_ref())
        .ok()
        .map(|s| s.to_string())
}

/// Upstream's `metav1.FormatLabelSelector`: the selector string, `<none>` or `<error>`.
fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Some(s) => or_none(&s),
        None => "<error>".into(),
    }
}

/// Upstream's `layoutContainerCells`: container names and images, comma-separated.
fn containers_and_images(containers: Option<&Value>) -> (Value, Value) {
    let cs: Vec<&Value> = containers
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let field = |k: &str| {
        cs.iter()
            .map(|c| c.get(k).and_then(Value::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(",")
    };
    (json!(field("name")), json!(field("image")))
}

/// A quantity in its canonical form, as upstream's `Quantity.String()` prints it after decoding.
fn quantity(q: Option<&Value>) -> String {
    let Some(s) = q.and_then(Value::as_str) else {
        return "0".into();
    };
    kox_api::quantity::Quantity::parse(s)
        .map(|q| q.canonical())
        .unwrap_or_else(|_| s.to_string())
}

/// An `IntOrString` as upstream's `String()` prints it.
fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Upstream's `printBoolPtr`: `True`, `False` or `<unset>`.
fn bool_ptr(v: Option<&Value>) -> String {
    match v.and_then(Value::as_bool) {
        Some(true) => "True".into(),
        Some(false) => "False".into(),
        None => "<unset>".into(),
    }
}

/// Upstream's `listWithMoreString`: the first `max` items, `+ N more...`, or `<unset>`.
fn list_with_more(all: &[String], max: usize) -> String {
    if all.len() > max {
        return format!("{} + {} more...", all[..max].join(","), all.len() - max);
    }
    if all.is_empty() {
        return "<unset>".into();
    }
    all.join(",")
}

/// The table of kinds upstream has no printer for (its default table convertor).
pub static DEFAULT: TableDef = TableDef {
    columns: &[NAME, col("Created At", "date", 0).about(CREATION_DOC)],
    row: |v, _| {
        let created = time_at(v, "/metadata/creationTimestamp")
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        vec![name(v), json!(created)]
    },
};

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::human_duration;

    /// The fixed "now" every table test renders at.
    pub const NOW: &str = "2025-01-10T12:00:00Z";

    /// A timestamp `secs` seconds before [`NOW`].
    pub fn ago(secs: i64) -> String {
        let now: jiff::Timestamp = NOW.parse().unwrap();
        (now - jiff::SignedDuration::from_secs(secs))
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    /// Renders `object` with the table of `resource` (`pods`, `events.events.k8s.io`, …) and
    /// checks every cell, wide ones included, and that the row is as long as the header.
    pub fn check(resource: &str, object: Value, expected: Value) {
        let def = crate::resources::RESOURCES
            .iter()
            .find(|r| r.qualified() == resource)
            .unwrap_or_else(|| panic!("no resource {resource}"));
        let t = def.strategy.table;
        let cells = (t.row)(&object, NOW.parse().unwrap());
        assert_eq!(Value::Array(cells.clone()), expected, "{resource}");
        assert_eq!(
            cells.len(),
            t.columns.len(),
            "{resource}: one cell per column"
        );
    }

    /// The column headers of `resource` as kubectl prints them, wide ones marked with `*`.
    pub fn headers(resource: &str) -> String {
        let def = crate::resources::RESOURCES
            .iter()
            .find(|r| r.qualified() == resource)
            .unwrap();
        def.strategy
            .table
            .columns
            .iter()
            .map(|c| {
                let h = c.name.to_uppercase();
                if c.priority > 0 { format!("{h}*") } else { h }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn human_duration_matches_upstream() {
        for (secs, want) in [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (3 * 365 * 86400, "3y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn kinds_without_an_upstream_printer_show_name_and_creation_time() {
        for r in [
            "roles.rbac.authorization.k8s.io",
            "clusterroles.rbac.authorization.k8s.io",
            "limitranges",
        ] {
            assert_eq!(headers(r), "NAME CREATED AT", "{r}");
            check(
                r,
                json!({"metadata": {"name": "x", "creationTimestamp": "2025-01-02T03:04:05Z"}}),
                json!(["x", "2025-01-02T03:04:05Z"]),
            );
        }
    }

    #[test]
    fn every_served_kind_has_a_table_with_a_name_column() {
        for r in crate::resources::RESOURCES {
            let t = r.strategy.table;
            assert!(
                t.columns.iter().any(|c| c.format == "name"),
                "{}",
                r.qualified()
            );
            let cells = (t.row)(&json!({}), NOW.parse().unwrap());
            assert_eq!(cells.len(), t.columns.len(), "{}", r.qualified());
        }
    }

    #[test]
    fn selectors_print_like_upstream() {
        assert_eq!(super::format_label_selector(None), "<none>");
        assert_eq!(super::format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(
            super::format_label_selector(Some(&json!({
                "matchLabels": {"b": "2", "a": "1"},
                "matchExpressions": [{"key": "t", "operator": "In", "values": ["y", "x"]}]
            }))),
            "a=1,b=2,t in (x,y)"
        );
        assert_eq!(
            super::format_labels(Some(&json!({"z": "1", "a": "2"}))),
            "a=2,z=1"
        );
        assert_eq!(super::format_labels(None), "<none>");
    }
}
