//! Server-side printing: the `Table` columns and rows `kubectl get` shows, as upstream prints them.

use serde_json::{Value, json};

use crate::strategy::str_at;

/// One column of a table.
pub struct Column {
    pub name: &'static str,
    pub kind: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// 0 = always shown; 1 = only with `-o wide`.
    pub priority: u8,
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
const AGE: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    priority: 0,
};

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

/// Age of the timestamp at `path`, or `<unknown>`.
fn since(v: &Value, path: &str, now: jiff::Timestamp) -> String {
    match str_at(v, path).and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn age(v: &Value, now: jiff::Timestamp) -> Value {
    json!(since(v, "metadata.creationTimestamp", now))
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

/// NAME and AGE, for kinds with nothing else worth a column.
pub static DEFAULT: TableDef = TableDef {
    columns: &[NAME, AGE],
    row: |v, now| vec![name(v), age(v, now)],
};

pub static NAMESPACE: TableDef = TableDef {
    columns: &[NAME, col("Status", "string", 0), AGE],
    row: |v, now| {
        vec![
            name(v),
            json!(str_at(v, "status.phase").unwrap_or("")),
            age(v, now),
        ]
    },
};

pub static CONFIG_MAP: TableDef = TableDef {
    columns: &[NAME, col("Data", "string", 0), AGE],
    row: |v, now| {
        let n = len_of(v.get("data")) + len_of(v.get("binaryData"));
        vec![name(v), json!(n), age(v, now)]
    },
};

pub static SECRET: TableDef = TableDef {
    columns: &[
        NAME,
        col("Type", "string", 0),
        col("Data", "string", 0),
        AGE,
    ],
    row: |v, now| {
        vec![
            name(v),
            json!(str_at(v, "type").unwrap_or("")),
            json!(len_of(v.get("data"))),
            age(v, now),
        ]
    },
};

pub static SERVICE_ACCOUNT: TableDef = TableDef {
    columns: &[NAME, col("Secrets", "string", 0), AGE],
    row: |v, now| vec![name(v), json!(len_of(v.get("secrets"))), age(v, now)],
};

pub static COMPONENT_STATUS: TableDef = TableDef {
    columns: &[
        NAME,
        col("Status", "string", 0),
        col("Message", "string", 0),
        col("Error", "string", 0),
    ],
    row: |v, _| {
        let mut status = "Unknown";
        let mut message = "";
        let mut error = "";
        for c in v
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if c.get("type").and_then(Value::as_str) == Some("Healthy") {
                status = match c.get("status").and_then(Value::as_str) {
                    Some("True") => "Healthy",
                    Some("False") => "Unhealthy",
                    _ => "Unknown",
                };
                message = c.get("message").and_then(Value::as_str).unwrap_or("");
                error = c.get("error").and_then(Value::as_str).unwrap_or("");
            }
        }
        vec![name(v), json!(status), json!(message), json!(error)]
    },
};

pub static ENDPOINTS: TableDef = TableDef {
    columns: &[NAME, col("Endpoints", "string", 0), AGE],
    row: |v, now| {
        let mut eps = Vec::new();
        for subset in v
            .get("subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ports: Vec<i64> = subset
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("port").and_then(Value::as_i64))
                .collect();
            for addr in subset
                .get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ip = addr.get("ip").and_then(Value::as_str).unwrap_or("");
                if ports.is_empty() {
                    eps.push(ip.to_string());
                }
                for p in &ports {
                    eps.push(format!("{ip}:{p}"));
                }
            }
        }
        let text = if eps.is_empty() {
            "<none>".to_string()
        } else if eps.len() > 3 {
            format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
        } else {
            eps.join(",")
        };
        vec![name(v), json!(text), age(v, now)]
    },
};

pub static POD: TableDef = TableDef {
    columns: &[
        NAME,
        col("Ready", "string", 0),
        col("Status", "string", 0),
        col("Restarts", "string", 0),
        AGE,
        col("IP", "string", 1),
        col("Node", "string", 1),
        col("Nominated Node", "string", 1),
        col("Readiness Gates", "string", 1),
    ],
    row: pod_row,
};

fn pod_row(v: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let containers = len_of(v.pointer("/spec/containers"));
    let mut reason = str_at(v, "status.phase").unwrap_or("").to_string();
    if let Some(r) = str_at(v, "status.reason").filter(|r| !r.is_empty()) {
        reason = r.to_string();
    }
    let mut ready = 0;
    let mut restarts = 0;
    for cs in v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        restarts += cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if let Some(r) = cs
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        } else if let Some(t) = cs.pointer("/state/terminated") {
            reason = match t
                .get("reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                Some(r) => r.to_string(),
                None => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                    Some(s) => format!("Signal:{s}"),
                    None => format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    ),
                },
            };
        } else if cs.get("ready").and_then(Value::as_bool) == Some(true)
            && cs.pointer("/state/running").is_some()
        {
            ready += 1;
        }
    }
    if v.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if str_at(v, "status.reason") == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let none = |s: Option<&str>| json!(s.filter(|s| !s.is_empty()).unwrap_or("<none>"));
    let gates = v
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .map(|g| g.len())
        .unwrap_or(0);
    vec![
        name(v),
        json!(format!("{ready}/{containers}")),
        json!(reason),
        json!(restarts.to_string()),
        age(v, now),
        none(str_at(v, "status.podIP")),
        none(str_at(v, "spec.nodeName")),
        none(str_at(v, "status.nominatedNodeName")),
        json!(if gates == 0 {
            "<none>".to_string()
        } else {
            format!("0/{gates}")
        }),
    ]
}

pub static NODE: TableDef = TableDef {
    columns: &[
        NAME,
        col("Status", "string", 0),
        col("Roles", "string", 0),
        AGE,
        col("Version", "string", 0),
        col("Internal-IP", "string", 1),
        col("External-IP", "string", 1),
        col("OS-Image", "string", 1),
        col("Kernel-Version", "string", 1),
        col("Container-Runtime", "string", 1),
    ],
    row: |v, now| {
        let mut status = "Unknown".to_string();
        for c in v
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if c.get("type").and_then(Value::as_str) == Some("Ready") {
                status = if c.get("status").and_then(Value::as_str) == Some("True") {
                    "Ready"
                } else {
                    "NotReady"
                }
                .into();
            }
        }
        if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
            status.push_str(",SchedulingDisabled");
        }
        let mut roles: Vec<String> = v
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| {
                k.strip_prefix("node-role.kubernetes.io/")
                    .map(str::to_string)
            })
            .collect();
        roles.sort();
        let addr = |t: &str| {
            v.pointer("/status/addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
                .and_then(|a| a.get("address").and_then(Value::as_str))
                .unwrap_or("<none>")
                .to_string()
        };
        let info = |k: &str| {
            json!(
                v.pointer(&format!("/status/nodeInfo/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )
        };
        vec![
            name(v),
            json!(status),
            json!(if roles.is_empty() {
                "<none>".into()
            } else {
                roles.join(",")
            }),
            age(v, now),
            info("kubeletVersion"),
            json!(addr("InternalIP")),
            json!(addr("ExternalIP")),
            info("osImage"),
            info("kernelVersion"),
            info("containerRuntimeVersion"),
        ]
    },
};

pub static SERVICE: TableDef = TableDef {
    columns: &[
        NAME,
        col("Type", "string", 0),
        col("Cluster-IP", "string", 0),
        col("External-IP", "string", 0),
        col("Port(s)", "string", 0),
        AGE,
        col("Selector", "string", 1),
    ],
    row: |v, now| {
        let ty = str_at(v, "spec.type").unwrap_or("ClusterIP");
        let cluster_ip = str_at(v, "spec.clusterIP")
            .filter(|s| !s.is_empty())
            .unwrap_or("<none>");
        let mut external: Vec<String> = v
            .pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        if ty == "LoadBalancer" {
            for ing in v
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(ip) = ing
                    .get("ip")
                    .or(ing.get("hostname"))
                    .and_then(Value::as_str)
                {
                    external.push(ip.into());
                }
            }
        }
        let external = match (ty, external.is_empty()) {
            ("ExternalName", _) => str_at(v, "spec.externalName").unwrap_or("").to_string(),
            ("LoadBalancer", true) => "<pending>".into(),
            (_, true) => "<none>".into(),
            _ => external.join(","),
        };
        let ports: Vec<String> = v
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                match p.get("nodePort").and_then(Value::as_i64) {
                    Some(np) if np != 0 => format!("{port}:{np}/{proto}"),
                    _ => format!("{port}/{proto}"),
                }
            })
            .collect();
        let selector = selector_text(v.pointer("/spec/selector"));
        vec![
            name(v),
            json!(ty),
            json!(cluster_ip),
            json!(external),
            json!(if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(",")
            }),
            age(v, now),
            json!(selector),
        ]
    },
};

fn selector_text(sel: Option<&Value>) -> String {
    match sel.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => {
            let mut parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            parts.sort();
            parts.join(",")
        }
        _ => "<none>".into(),
    }
}

fn label_selector_text(sel: Option<&Value>) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object)
    {
        let mut ls: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        ls.sort();
        parts.extend(ls);
    }
    for e in sel
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn containers_and_images(v: &Value) -> (String, String) {
    let cs = v
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array);
    let names: Vec<&str> = cs
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = cs
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    (names.join(","), images.join(","))
}

pub static DEPLOYMENT: TableDef = TableDef {
    columns: &[
        NAME,
        col("Ready", "string", 0),
        col("Up-to-date", "integer", 0),
        col("Available", "integer", 0),
        AGE,
        col("Containers", "string", 1),
        col("Images", "string", 1),
        col("Selector", "string", 1),
    ],
    row: |v, now| {
        let (c, i) = containers_and_images(v);
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
            json!(c),
            json!(i),
            json!(label_selector_text(v.pointer("/spec/selector"))),
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
        col("Containers", "string", 1),
        col("Images", "string", 1),
        col("Selector", "string", 1),
    ],
    row: |v, now| {
        let (c, i) = containers_and_images(v);
        vec![
            name(v),
            json!(i64_at(v, "/spec/replicas")),
            json!(i64_at(v, "/status/replicas")),
            json!(i64_at(v, "/status/readyReplicas")),
            age(v, now),
            json!(c),
            json!(i),
            json!(label_selector_text(v.pointer("/spec/selector"))),
        ]
    },
};

pub static EVENT: TableDef = TableDef {
    columns: &[
        col("Last Seen", "string", 0),
        col("Type", "string", 0),
        col("Reason", "string", 0),
        col("Object", "string", 0),
        col("Subobject", "string", 1),
        col("Source", "string", 1),
        col("Message", "string", 0),
        col("First Seen", "string", 1),
        col("Count", "string", 1),
        NAME,
    ],
    row: |v, now| {
        let last = if str_at(v, "lastTimestamp").is_some() {
            since(v, "lastTimestamp", now)
        } else {
            since(v, "eventTime", now)
        };
        let object = format!(
            "{}/{}",
            str_at(v, "involvedObject.kind")
                .unwrap_or("")
                .to_lowercase(),
            str_at(v, "involvedObject.name").unwrap_or("")
        );
        vec![
            json!(last),
            json!(str_at(v, "type").unwrap_or("")),
            json!(str_at(v, "reason").unwrap_or("")),
            json!(object),
            json!(str_at(v, "involvedObject.fieldPath").unwrap_or("")),
            json!(str_at(v, "source.component").unwrap_or("")),
            json!(str_at(v, "message").unwrap_or("")),
            json!(since(v, "firstTimestamp", now)),
            json!(
                v.get("count")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
                    .to_string()
            ),
            name(v),
        ]
    },
};

#[cfg(test)]
mod tests {
    use super::human_duration;

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
}
