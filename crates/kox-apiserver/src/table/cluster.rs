//! Tables of the networking, discovery, RBAC, scheduling, storage, coordination, policy and
//! autoscaling groups.

use serde_json::{Value, json};

use super::{
    AGE, NAME, TableDef, age, col, format_label_selector, i64_at, int_or_string, items,
    list_with_more, name, quantity, str_ptr,
};
use crate::strategy::str_at;

pub static INGRESS: TableDef = TableDef {
    columns: &[
        NAME,
        col("Class", "string", 0).about(
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        col("Hosts", "string", 0)
            .about("Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", "string", 0)
            .about("Address is a list containing ingress points for the load-balancer"),
        col("Ports", "string", 0).about("Ports of TLS configurations that open"),
        AGE,
    ],
    row: |v, now| {
        // Upstream's formatHosts: the first three hosts, `*` when no rule names one.
        let rules: Vec<&Value> = items(v, "/spec/rules").collect();
        let mut hosts = Vec::new();
        let mut more = false;
        for r in &rules {
            if hosts.len() == 3 {
                more = true;
            }
            if let Some(h) = r.get("host").and_then(Value::as_str).filter(|h| !h.is_empty())
                && !more
            {
                hosts.push(h);
            }
        }
        let hosts = if hosts.is_empty() {
            "*".to_string()
        } else if more {
            format!("{} + {} more...", hosts.join(","), rules.len() - 3)
        } else {
            hosts.join(",")
        };
        let ports = if items(v, "/spec/tls").next().is_some() {
            "80, 443"
        } else {
            "80"
        };
        vec![
            name(v),
            json!(str_at(v, "spec.ingressClassName").unwrap_or("<none>")),
            json!(hosts),
            json!(super::core::load_balancer_addresses(v).join(",")),
            json!(ports),
            age(v, now),
        ]
    },
};

pub static INGRESS_CLASS: TableDef = TableDef {
    columns: &[
        NAME,
        col("Controller", "string", 0)
            .about("Controller that is responsible for handling this class"),
        col("Parameters", "string", 0)
            .about("A reference to a resource with additional parameters"),
        AGE,
    ],
    row: |v, now| {
        let parameters = match v.pointer("/spec/parameters").filter(|p| !p.is_null()) {
            None => "<none>".to_string(),
            Some(p) => {
                let mut s = str_ptr(p, "/kind").unwrap_or("").to_string();
                if let Some(g) = str_ptr(p, "/apiGroup") {
                    s = format!("{s}.{g}");
                }
                format!("{s}/{}", str_ptr(p, "/name").unwrap_or(""))
            }
        };
        vec![
            name(v),
            json!(str_at(v, "spec.controller").unwrap_or("")),
            json!(parameters),
            age(v, now),
        ]
    },
};

pub static NETWORK_POLICY: TableDef = TableDef {
    columns: &[NAME, col("Pod-Selector", "string", 0), AGE],
    row: |v, now| {
        // The pod selector is a value, not a pointer, upstream: absent means empty.
        let sel = v.pointer("/spec/podSelector").cloned().unwrap_or(json!({}));
        vec![
            name(v),
            json!(format_label_selector(Some(&sel))),
            age(v, now),
        ]
    },
};

pub static ENDPOINT_SLICE: TableDef = TableDef {
    columns: &[
        NAME,
        col("AddressType", "string", 0),
        col("Ports", "string", 0),
        col("Endpoints", "string", 0),
        AGE,
    ],
    row: |v, now| {
        let ports: Vec<String> = items(v, "/ports")
            .map(
                |p| match (p.get("port").and_then(Value::as_i64), str_ptr(p, "/name")) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(n)) => n.to_string(),
                    (None, None) => "*".to_string(),
                },
            )
            .collect();
        let addrs: Vec<String> = items(v, "/endpoints")
            .flat_map(|e| items(e, "/addresses"))
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        vec![
            name(v),
            json!(str_at(v, "addressType").unwrap_or("")),
            json!(list_with_more(&ports, 3)),
            json!(list_with_more(&addrs, 3)),
            age(v, now),
        ]
    },
};

/// Upstream's `SubjectsStrings`: users, groups and `namespace/name` service accounts.
fn subjects(v: &Value) -> (String, String, String) {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in items(v, "/subjects") {
        let name = str_ptr(s, "/name").unwrap_or("").to_string();
        match str_ptr(s, "/kind").unwrap_or("") {
            "ServiceAccount" => {
                sas.push(format!("{}/{name}", str_ptr(s, "/namespace").unwrap_or("")))
            }
            "User" => users.push(name),
            "Group" => groups.push(name),
            _ => {}
        }
    }
    (users.join(", "), groups.join(", "), sas.join(", "))
}

fn binding_row(v: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (users, groups, sas) = subjects(v);
    vec![
        name(v),
        json!(format!(
            "{}/{}",
            str_at(v, "roleRef.kind").unwrap_or(""),
            str_at(v, "roleRef.name").unwrap_or("")
        )),
        age(v, now),
        json!(users),
        json!(groups),
        json!(sas),
    ]
}

pub static ROLE_BINDING: TableDef = TableDef {
    columns: &[
        NAME,
        col("Role", "string", 0),
        AGE,
        col("Users", "string", 1).about("Users in the roleBinding"),
        col("Groups", "string", 1).about("Groups in the roleBinding"),
        col("ServiceAccounts", "string", 1).about("ServiceAccounts in the roleBinding"),
    ],
    row: binding_row,
};

pub static CLUSTER_ROLE_BINDING: TableDef = TableDef {
    columns: &[
        NAME,
        col("Role", "string", 0),
        AGE,
        col("Users", "string", 1).about("Users in the clusterRoleBinding"),
        col("Groups", "string", 1).about("Groups in the clusterRoleBinding"),
        col("ServiceAccounts", "string", 1).about("ServiceAccounts in the clusterRoleBinding"),
    ],
    row: binding_row,
};

/// Mutating- and ValidatingWebhookConfigurations: NAME WEBHOOKS AGE.
pub static WEBHOOK_CONFIGURATION: TableDef = TableDef {
    columns: &[NAME, col("Webhooks", "integer", 0), AGE],
    row: |v, now| {
        let hooks = v
            .get("webhooks")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        vec![name(v), json!(hooks), age(v, now)]
    },
};

pub static PRIORITY_CLASS: TableDef = TableDef {
    columns: &[
        NAME,
        col("Value", "integer", 0),
        col("Global-Default", "boolean", 0),
        AGE,
        col("PreemptionPolicy", "string", 1),
    ],
    row: |v, now| {
        vec![
            name(v),
            json!(i64_at(v, "/value")),
            json!(
                v.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age(v, now),
            json!(str_at(v, "preemptionPolicy").unwrap_or("")),
        ]
    },
};

pub static STORAGE_CLASS: TableDef = TableDef {
    columns: &[
        NAME,
        col("Provisioner", "string", 0),
        col("ReclaimPolicy", "string", 0),
        col("VolumeBindingMode", "string", 0),
        col("AllowVolumeExpansion", "string", 0),
        AGE,
    ],
    row: |v, now| {
        let annotation = |k: &str| {
            v.pointer("/metadata/annotations")
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
        };
        let default = annotation("storageclass.kubernetes.io/is-default-class") == Some("true")
            || annotation("storageclass.beta.kubernetes.io/is-default-class") == Some("true");
        let mut n = str_at(v, "metadata.name").unwrap_or("").to_string();
        if default {
            n.push_str(" (default)");
        }
        vec![
            json!(n),
            json!(str_at(v, "provisioner").unwrap_or("")),
            json!(str_at(v, "reclaimPolicy").unwrap_or("Delete")),
            json!(str_at(v, "volumeBindingMode").unwrap_or("Immediate")),
            json!(
                v.get("allowVolumeExpansion")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age(v, now),
        ]
    },
};

pub static LEASE: TableDef = TableDef {
    columns: &[NAME, col("Holder", "string", 0), AGE],
    row: |v, now| {
        vec![
            name(v),
            json!(str_at(v, "spec.holderIdentity").unwrap_or("")),
            age(v, now),
        ]
    },
};

pub static PDB: TableDef = TableDef {
    columns: &[
        NAME,
        col("Min Available", "string", 0)
            .about("The minimum number of pods that must be available."),
        col("Max Unavailable", "string", 0)
            .about("The maximum number of pods that may be unavailable."),
        col("Allowed Disruptions", "integer", 0)
            .about("Calculated number of pods that may be disrupted at this time."),
        AGE,
    ],
    row: |v, now| {
        let bound = |p: &str| match v.pointer(p).filter(|x| !x.is_null()) {
            Some(x) => int_or_string(x),
            None => "N/A".into(),
        };
        vec![
            name(v),
            json!(bound("/spec/minAvailable")),
            json!(bound("/spec/maxUnavailable")),
            json!(i64_at(v, "/status/disruptionsAllowed")),
            age(v, now),
        ]
    },
};

pub static HPA: TableDef = TableDef {
    columns: &[
        NAME,
        col("Reference", "string", 0),
        col("Targets", "string", 0),
        col("MinPods", "string", 0),
        col("MaxPods", "string", 0),
        col("Replicas", "string", 0),
        AGE,
    ],
    row: |v, now| {
        let reference = format!(
            "{}/{}",
            str_at(v, "spec.scaleTargetRef.kind").unwrap_or(""),
            str_at(v, "spec.scaleTargetRef.name").unwrap_or("")
        );
        let min = match v.pointer("/spec/minReplicas").and_then(Value::as_i64) {
            Some(m) => m.to_string(),
            None => "<unset>".into(),
        };
        vec![
            name(v),
            json!(reference),
            json!(hpa_metrics(v)),
            json!(min),
            json!(i64_at(v, "/spec/maxReplicas")),
            json!(i64_at(v, "/status/currentReplicas")),
            age(v, now),
        ]
    },
};

/// Upstream's `formatHPAMetrics`: `current/target` per metric, two at most.
fn hpa_metrics(v: &Value) -> String {
    let specs: Vec<&Value> = items(v, "/spec/metrics").collect();
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses: Vec<&Value> = items(v, "/status/currentMetrics").collect();
    let mut list = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i).copied();
        // The status of the same metric type at the same index, if any.
        let current = |kind: &str| status.and_then(|s| s.get(kind)).filter(|c| !c.is_null());
        let target = |kind: &str, field: &str| spec.pointer(&format!("/{kind}/target/{field}"));
        let entry = match str_ptr(spec, "/type").unwrap_or("") {
            "External" | "Object" => {
                let kind = if str_ptr(spec, "/type") == Some("External") {
                    "external"
                } else {
                    "object"
                };
                if let Some(avg) = target(kind, "averageValue").filter(|x| !x.is_null()) {
                    let cur = current(kind)
                        .and_then(|c| c.pointer("/current/averageValue"))
                        .map(|x| quantity(Some(x)))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{cur}/{} (avg)", quantity(Some(avg)))
                } else {
                    let cur = current(kind)
                        .map(|c| quantity(c.pointer("/current/value")))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{cur}/{}", quantity(target(kind, "value")))
                }
            }
            "Pods" => {
                let cur = current("pods")
                    .map(|c| quantity(c.pointer("/current/averageValue")))
                    .unwrap_or_else(|| "<unknown>".into());
                format!("{cur}/{}", quantity(target("pods", "averageValue")))
            }
            t @ ("Resource" | "ContainerResource") => {
                let kind = if t == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let metric = spec
                    .pointer(&format!("/{kind}/name"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if let Some(avg) = target(kind, "averageValue").filter(|x| !x.is_null()) {
                    let cur = current(kind)
                        .map(|c| quantity(c.pointer("/current/averageValue")))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{metric}: {cur}/{}", quantity(Some(avg)))
                } else {
                    let cur = current(kind)
                        .and_then(|c| c.pointer("/current/averageUtilization"))
                        .and_then(Value::as_i64)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<unknown>".into());
                    let goal = target(kind, "averageUtilization")
                        .and_then(Value::as_i64)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<auto>".into());
                    format!("{metric}: {cur}/{goal}")
                }
            }
            _ => "<unknown type>".into(),
        };
        list.push(entry);
    }
    if list.len() > 2 {
        let n = list.len();
        return format!("{} + {} more...", list[..2].join(", "), n - 2);
    }
    list.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{ago, check, headers};

    #[test]
    fn ingresses_show_class_hosts_address_and_ports() {
        assert_eq!(
            headers("ingresses.networking.k8s.io"),
            "NAME CLASS HOSTS ADDRESS PORTS AGE"
        );
        check(
            "ingresses.networking.k8s.io",
            json!({"metadata": {"name": "web", "creationTimestamp": ago(5)},
                "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example"]}],
                    "rules": [{"host": "a.example"}, {}, {"host": "b.example"}, {"host": "c.example"}, {"host": "d.example"}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.example"}]}}}),
            json!([
                "web",
                "nginx",
                "a.example,b.example,c.example + 2 more...",
                "10.0.0.2,lb.example",
                "80, 443",
                "5s"
            ]),
        );
        check(
            "ingresses.networking.k8s.io",
            json!({"metadata": {"name": "any"}, "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}}),
            json!(["any", "<none>", "*", "", "80", "<unknown>"]),
        );
    }

    #[test]
    fn ingress_classes_show_controller_and_parameters() {
        check(
            "ingressclasses.networking.k8s.io",
            json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}),
            json!([
                "nginx",
                "k8s.io/ingress-nginx",
                "IngressParameters.k8s.example.com/external-lb",
                "<unknown>"
            ]),
        );
        check(
            "ingressclasses.networking.k8s.io",
            json!({"metadata": {"name": "plain"}, "spec": {"controller": "c"}}),
            json!(["plain", "c", "<none>", "<unknown>"]),
        );
    }

    #[test]
    fn network_policies_show_the_pod_selector() {
        check(
            "networkpolicies.networking.k8s.io",
            json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}}),
            json!(["deny", "<none>", "<unknown>"]),
        );
        check(
            "networkpolicies.networking.k8s.io",
            json!({"metadata": {"name": "db"}, "spec": {"podSelector": {"matchLabels": {"role": "db"}}}}),
            json!(["db", "role=db", "<unknown>"]),
        );
    }

    #[test]
    fn endpoint_slices_show_ports_and_addresses() {
        check(
            "endpointslices.discovery.k8s.io",
            json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
                "ports": [{"port": 80}, {"name": "metrics"}, {}, {"port": 9}],
                "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"]}, {"addresses": ["10.0.0.3"]}]}),
            json!([
                "web-abc",
                "IPv4",
                "80,metrics,* + 1 more...",
                "10.0.0.1,10.0.0.2,10.0.0.3",
                "<unknown>"
            ]),
        );
        check(
            "endpointslices.discovery.k8s.io",
            json!({"metadata": {"name": "empty"}, "addressType": "IPv6"}),
            json!(["empty", "IPv6", "<unset>", "<unset>", "<unknown>"]),
        );
    }

    #[test]
    fn bindings_show_role_and_subjects_when_wide() {
        assert_eq!(
            headers("rolebindings.rbac.authorization.k8s.io"),
            "NAME ROLE AGE USERS* GROUPS* SERVICEACCOUNTS*"
        );
        let subjects = json!([
            {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}]);
        check(
            "rolebindings.rbac.authorization.k8s.io",
            json!({"metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "edit"}, "subjects": subjects}),
            json!([
                "rb",
                "Role/edit",
                "<unknown>",
                "alice, bob",
                "devs",
                "ci/builder"
            ]),
        );
        check(
            "clusterrolebindings.rbac.authorization.k8s.io",
            json!({"metadata": {"name": "crb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}}),
            json!(["crb", "ClusterRole/view", "<unknown>", "", "", ""]),
        );
    }

    #[test]
    fn priority_and_storage_classes() {
        assert_eq!(
            headers("priorityclasses.scheduling.k8s.io"),
            "NAME VALUE GLOBAL-DEFAULT AGE PREEMPTIONPOLICY*"
        );
        check(
            "priorityclasses.scheduling.k8s.io",
            json!({"metadata": {"name": "high"}, "value": 1000000, "globalDefault": true, "preemptionPolicy": "PreemptLowerPriority"}),
            json!(["high", 1000000, true, "<unknown>", "PreemptLowerPriority"]),
        );
        assert_eq!(
            headers("storageclasses.storage.k8s.io"),
            "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE"
        );
        check(
            "storageclasses.storage.k8s.io",
            json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}),
            json!([
                "standard (default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                false,
                "<unknown>"
            ]),
        );
    }

    #[test]
    fn leases_show_their_holder() {
        check(
            "leases.coordination.k8s.io",
            json!({"metadata": {"name": "kube-scheduler"}, "spec": {"holderIdentity": "node1_abc"}}),
            json!(["kube-scheduler", "node1_abc", "<unknown>"]),
        );
    }

    #[test]
    fn pod_disruption_budgets_show_bounds() {
        assert_eq!(
            headers("poddisruptionbudgets.policy"),
            "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE"
        );
        check(
            "poddisruptionbudgets.policy",
            json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}}),
            json!(["web", "2", "N/A", 1, "<unknown>"]),
        );
        check(
            "poddisruptionbudgets.policy",
            json!({"metadata": {"name": "db"}, "spec": {"maxUnavailable": "25%"}}),
            json!(["db", "N/A", "25%", 0, "<unknown>"]),
        );
    }

    #[test]
    fn horizontal_pod_autoscalers_show_targets() {
        assert_eq!(
            headers("horizontalpodautoscalers.autoscaling"),
            "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE"
        );
        check(
            "horizontalpodautoscalers.autoscaling",
            json!({"metadata": {"name": "web"}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 10,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1024Mi"}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}
            ]},
            "status": {"currentReplicas": 3, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "100m"}}}
            ]}}),
            json!([
                "web",
                "Deployment/web",
                "cpu: 45%/80%, memory: <unknown>/1Gi + 1 more...",
                "1",
                10,
                3,
                "<unknown>"
            ]),
        );
        check(
            "horizontalpodautoscalers.autoscaling",
            json!({"metadata": {"name": "bare"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 2}}),
            json!([
                "bare",
                "Deployment/x",
                "<none>",
                "<unset>",
                2,
                0,
                "<unknown>"
            ]),
        );
    }
}
