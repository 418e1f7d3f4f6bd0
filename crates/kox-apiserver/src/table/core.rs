//! Tables of the core group's kinds other than pods, events and storage.

use serde_json::{Value, json};

use super::{
    AGE, CONTAINERS, IMAGES, NAME, TableDef, age, col, containers_and_images, format_labels,
    i64_at, items, len_of, name, or_none, str_ptr,
};
use crate::strategy::str_at;

pub static NAMESPACE: TableDef = TableDef {
    columns: &[
        NAME,
        col("Status", "string", 0).about("The status of the namespace"),
        AGE,
    ],
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
        col("Status", "string", 0).about("Status of the component conditions"),
        col("Message", "string", 0).about("Message of the component conditions"),
        col("Error", "string", 0).about("Error of the component conditions"),
    ],
    row: |v, _| {
        let healthy = items(v, "/conditions")
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Healthy"));
        let (status, message, error) = match healthy {
            None => ("Unknown", "", ""),
            Some(c) => (
                if c.get("status").and_then(Value::as_str) == Some("True") {
                    "Healthy"
                } else {
                    "Unhealthy"
                },
                c.get("message").and_then(Value::as_str).unwrap_or(""),
                c.get("error").and_then(Value::as_str).unwrap_or(""),
            ),
        };
        vec![name(v), json!(status), json!(message), json!(error)]
    },
};

/// `ip:port`, bracketing IPv6 addresses (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub static ENDPOINTS: TableDef = TableDef {
    columns: &[NAME, col("Endpoints", "string", 0), AGE],
    row: |v, now| vec![name(v), json!(format_endpoints(v)), age(v, now)],
};

/// Upstream's `formatEndpoints`: up to three ready `ip:port` pairs and how many more there are.
fn format_endpoints(v: &Value) -> String {
    const MAX: usize = 3;
    if len_of(v.get("subsets")) == 0 {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut count = 0;
    let mut more = false;
    for ss in items(v, "/subsets") {
        let addrs: Vec<&str> = items(ss, "/addresses")
            .map(|a| a.get("ip").and_then(Value::as_str).unwrap_or(""))
            .collect();
        let ports: Vec<i64> = items(ss, "/ports")
            .map(|p| p.get("port").and_then(Value::as_i64).unwrap_or(0))
            .collect();
        if ports.is_empty() {
            count += addrs.len();
            for ip in &addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(ip.to_string());
            }
            continue;
        }
        for port in ports {
            count += addrs.len();
            for ip in &addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(ip, port));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

pub static NODE: TableDef = TableDef {
    columns: &[
        NAME,
        col("Status", "string", 0).about("The status of the node"),
        col("Roles", "string", 0).about("The roles of the node"),
        AGE,
        col("Version", "string", 0),
        col("Internal-IP", "string", 1),
        col("External-IP", "string", 1),
        col("OS-Image", "string", 1),
        col("Kernel-Version", "string", 1),
        col("Container-Runtime", "string", 1),
    ],
    row: |v, now| {
        let mut status: Vec<&str> = Vec::new();
        // Only the Ready condition is shown; the last one of its type wins, as in upstream's map.
        if let Some(c) = items(v, "/status/conditions")
            .filter(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
            .last()
        {
            status.push(if c.get("status").and_then(Value::as_str) == Some("True") {
                "Ready"
            } else {
                "NotReady"
            });
        }
        if status.is_empty() {
            status.push("Unknown");
        }
        if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
            status.push("SchedulingDisabled");
        }
        let mut roles = std::collections::BTreeSet::new();
        for (k, val) in v
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let role = match k.strip_prefix("node-role.kubernetes.io/") {
                Some(role) => Some(role),
                None if k == "kubernetes.io/role" => val.as_str(),
                None => None,
            };
            if let Some(role) = role.filter(|r| !r.is_empty()) {
                roles.insert(role.to_string());
            }
        }
        let addr = |t: &str| {
            items(v, "/status/addresses")
                .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
                .and_then(|a| a.get("address").and_then(Value::as_str))
                .unwrap_or("<none>")
                .to_string()
        };
        let info = |k: &str| str_ptr(v, &format!("/status/nodeInfo/{k}")).unwrap_or("");
        let unknown = |s: &str| {
            if s.is_empty() {
                "<unknown>".to_string()
            } else {
                s.to_string()
            }
        };
        vec![
            name(v),
            json!(status.join(",")),
            json!(or_none(&roles.into_iter().collect::<Vec<_>>().join(","))),
            age(v, now),
            json!(info("kubeletVersion")),
            json!(addr("InternalIP")),
            json!(addr("ExternalIP")),
            json!(unknown(info("osImage"))),
            json!(unknown(info("kernelVersion"))),
            json!(unknown(info("containerRuntimeVersion"))),
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
        let ty = str_at(v, "spec.type").unwrap_or("");
        // The internal form's clusterIPs is filled from clusterIP when only that is set.
        let cluster_ip = str_ptr(v, "/spec/clusterIPs/0")
            .or(str_at(v, "spec.clusterIP"))
            .filter(|s| !s.is_empty())
            .unwrap_or("<none>");
        let ports: Vec<String> = items(v, "/spec/ports")
            .map(|p| {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("");
                match p.get("nodePort").and_then(Value::as_i64) {
                    Some(np) if np > 0 => format!("{port}:{np}/{proto}"),
                    _ => format!("{port}/{proto}"),
                }
            })
            .collect();
        vec![
            name(v),
            json!(ty),
            json!(cluster_ip),
            json!(service_external_ip(v, ty)),
            json!(or_none(&ports.join(","))),
            age(v, now),
            json!(format_labels(v.pointer("/spec/selector"))),
        ]
    },
};

/// Upstream's `getServiceExternalIP` (wide: load-balancer addresses are not clipped).
fn service_external_ip(v: &Value, ty: &str) -> String {
    let external: Vec<&str> = items(v, "/spec/externalIPs")
        .filter_map(Value::as_str)
        .collect();
    match ty {
        "ClusterIP" | "NodePort" => or_none(&external.join(",")),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(v);
            if !external.is_empty() {
                let mut all: Vec<&str> = lb.iter().map(String::as_str).collect();
                all.extend(external);
                return all.join(",");
            }
            if lb.is_empty() {
                "<pending>".into()
            } else {
                lb.join(",")
            }
        }
        "ExternalName" => str_at(v, "spec.externalName").unwrap_or("").into(),
        _ => "<unknown>".into(),
    }
}

/// The sorted, distinct IPs (or else hostnames) of `status.loadBalancer.ingress`.
pub(super) fn load_balancer_addresses(v: &Value) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = items(v, "/status/loadBalancer/ingress")
        .filter_map(|i| {
            let ip = i
                .get("ip")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let host = i
                .get("hostname")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            ip.or(host).map(str::to_string)
        })
        .collect();
    set.into_iter().collect()
}

pub static REPLICATION_CONTROLLER: TableDef = TableDef {
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
        let (c, i) = containers_and_images(v.pointer("/spec/template/spec/containers"));
        vec![
            name(v),
            json!(i64_at(v, "/spec/replicas")),
            json!(i64_at(v, "/status/replicas")),
            json!(i64_at(v, "/status/readyReplicas")),
            age(v, now),
            c,
            i,
            json!(format_labels(v.pointer("/spec/selector"))),
        ]
    },
};

pub static POD_TEMPLATE: TableDef = TableDef {
    columns: &[
        NAME,
        col("Containers", "string", 0).about("Names of each container in the template."),
        col("Images", "string", 0).about("Images referenced by each container in the template."),
        col("Pod Labels", "string", 0).about("The labels for the pod template."),
    ],
    row: |v, _| {
        let (c, i) = containers_and_images(v.pointer("/template/spec/containers"));
        vec![
            name(v),
            c,
            i,
            json!(format_labels(v.pointer("/template/metadata/labels"))),
        ]
    },
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{ago, check, headers};

    #[test]
    fn namespaces_configmaps_secrets_and_serviceaccounts() {
        check(
            "namespaces",
            json!({"metadata": {"name": "dev", "creationTimestamp": ago(30)}, "status": {"phase": "Active"}}),
            json!(["dev", "Active", "30s"]),
        );
        check(
            "configmaps",
            json!({"metadata": {"name": "c", "creationTimestamp": ago(300)}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}}),
            json!(["c", 2, "5m"]),
        );
        check(
            "secrets",
            json!({"metadata": {"name": "s", "creationTimestamp": ago(7200)}, "type": "Opaque", "data": {"a": "MQ=="}}),
            json!(["s", "Opaque", 1, "120m"]),
        );
        check(
            "serviceaccounts",
            json!({"metadata": {"name": "default"}}),
            json!(["default", 0, "<unknown>"]),
        );
    }

    #[test]
    fn componentstatuses_show_the_healthy_condition() {
        check(
            "componentstatuses",
            json!({"metadata": {"name": "etcd-0"}, "conditions": [{"type": "Healthy", "status": "False", "message": "m", "error": "e"}]}),
            json!(["etcd-0", "Unhealthy", "m", "e"]),
        );
        check(
            "componentstatuses",
            json!({"metadata": {"name": "x"}}),
            json!(["x", "Unknown", "", ""]),
        );
    }

    #[test]
    fn endpoints_list_three_addresses_and_count_the_rest() {
        check(
            "endpoints",
            json!({"metadata": {"name": "web"}, "subsets": [
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
                {"addresses": [{"ip": "fd00::1"}]}
            ]}),
            json!([
                "web",
                "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...",
                "<unknown>"
            ]),
        );
        check(
            "endpoints",
            json!({"metadata": {"name": "v6"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]}),
            json!(["v6", "[fd00::1]:53", "<unknown>"]),
        );
        check(
            "endpoints",
            json!({"metadata": {"name": "none"}}),
            json!(["none", "<none>", "<unknown>"]),
        );
        check(
            "endpoints",
            json!({"metadata": {"name": "notready"}, "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]}),
            json!(["notready", "", "<unknown>"]),
        );
    }

    #[test]
    fn nodes_show_readiness_roles_and_versions() {
        assert_eq!(
            headers("nodes"),
            "NAME STATUS ROLES AGE VERSION INTERNAL-IP* EXTERNAL-IP* OS-IMAGE* KERNEL-VERSION* CONTAINER-RUNTIME*"
        );
        check(
            "nodes",
            json!({
                "metadata": {"name": "n1", "creationTimestamp": ago(86400 * 3), "labels": {
                    "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "",
                    "kubernetes.io/role": "worker"}},
                "spec": {"unschedulable": true},
                "status": {
                    "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "n1"}],
                    "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "containerd://1.7"}
                }
            }),
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,worker",
                "3d",
                "v1.32.0",
                "192.168.1.10",
                "<none>",
                "Debian",
                "6.1",
                "containerd://1.7"
            ]),
        );
        check(
            "nodes",
            json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            json!([
                "n2",
                "NotReady",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]),
        );
        check(
            "nodes",
            json!({"metadata": {"name": "n3"}}),
            json!([
                "n3",
                "Unknown",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]),
        );
    }

    #[test]
    fn services_show_addresses_ports_and_selector() {
        check(
            "services",
            json!({"metadata": {"name": "web", "creationTimestamp": ago(60)}, "spec": {
                "type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
                "selector": {"tier": "web", "app": "x"}}}),
            json!([
                "web",
                "NodePort",
                "10.96.0.10",
                "<none>",
                "80:30080/TCP,53/UDP",
                "60s",
                "app=x,tier=web"
            ]),
        );
        check(
            "services",
            json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11",
                "externalIPs": ["1.1.1.1"], "ports": [{"port": 443, "protocol": "TCP", "nodePort": 31443}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "5.5.5.5"}, {"hostname": "a.example"}, {"ip": "2.2.2.2"}]}}}),
            json!([
                "lb",
                "LoadBalancer",
                "10.96.0.11",
                "2.2.2.2,5.5.5.5,a.example,1.1.1.1",
                "443:31443/TCP",
                "<unknown>",
                "<none>"
            ]),
        );
        check(
            "services",
            json!({"metadata": {"name": "pending"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 80, "protocol": "TCP"}]}}),
            json!([
                "pending",
                "LoadBalancer",
                "10.96.0.12",
                "<pending>",
                "80/TCP",
                "<unknown>",
                "<none>"
            ]),
        );
        check(
            "services",
            json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
            json!([
                "ext",
                "ExternalName",
                "<none>",
                "db.example.com",
                "<none>",
                "<unknown>",
                "<none>"
            ]),
        );
        check(
            "services",
            json!({"metadata": {"name": "headless"}, "spec": {"type": "ClusterIP", "clusterIP": "None"}}),
            json!([
                "headless",
                "ClusterIP",
                "None",
                "<none>",
                "<none>",
                "<unknown>",
                "<none>"
            ]),
        );
    }

    #[test]
    fn replication_controllers_and_pod_templates() {
        check(
            "replicationcontrollers",
            json!({"metadata": {"name": "rc"}, "spec": {"replicas": 3, "selector": {"app": "a"},
                "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}]}}},
                "status": {"replicas": 2, "readyReplicas": 1}}),
            json!(["rc", 3, 2, 1, "<unknown>", "a,b", "nginx,busybox", "app=a"]),
        );
        assert_eq!(headers("podtemplates"), "NAME CONTAINERS IMAGES POD LABELS");
        check(
            "podtemplates",
            json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"run": "t"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}),
            json!(["t", "c", "i", "run=t"]),
        );
    }
}
