//! Per-kind defaulting and validation, as upstream's `pkg/apis/*/validation` and defaults do.
//!
//! Works on the canonical JSON of an object (after the typed round trip), so every field that
//! exists has the right type; only values are checked here.

use serde_json::{Map, Value, json};

use crate::strategy::str_at;
pub use kox_api::field::{ErrorList as FieldErrors, FieldError, Path};

/// A field path from its rendered form (`spec.containers[0].name`).
pub fn p(path: &str) -> Path {
    Path::new(path)
}

// ---- shared metadata checks -------------------------------------------------------------------

/// Validates `metadata.name` with `check` (one of kox-api's name validators).
pub fn object_name(v: &Value, check: fn(&str) -> Vec<String>) -> FieldErrors {
    let mut errs = FieldErrors::default();
    match str_at(v, "metadata.name") {
        None | Some("") => errs.push(FieldError::required(
            &p("metadata.name"),
            "name or generateName is required",
        )),
        Some(name) => {
            for msg in check(name) {
                errs.push(FieldError::invalid(&p("metadata.name"), name, &msg));
            }
        }
    }
    errs
}

// ---- pods ---------------------------------------------------------------------------------------

/// Upstream's pod spec defaults (SetDefaults_PodSpec, SetDefaults_Container).
pub fn pod_spec_defaults(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "schedulerName", json!("default-scheduler"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let policy = if image_tag_is_latest(&image) {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                set_default(c, "imagePullPolicy", json!(policy));
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

fn image_tag_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

pub fn pod_defaults(v: &mut Value) {
    if let Some(spec) = v.get_mut("spec") {
        pod_spec_defaults(spec);
        if let Some(m) = spec.as_object_mut() {
            set_default(m, "enableServiceLinks", json!(true));
            set_default(m, "priority", json!(0));
        }
    }
    if let Some(m) = v.as_object_mut() {
        let status = m.entry("status").or_insert_with(|| json!({}));
        if let Some(s) = status.as_object_mut() {
            set_default(s, "phase", json!("Pending"));
            set_default(s, "qosClass", json!("BestEffort"));
        }
    }
}

/// Validates a pod spec at `path` (also used for templates).
pub fn pod_spec(spec: Option<&Value>, path: &str, errs: &mut FieldErrors) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        None => errs.push(FieldError::required(&p(&format!("{path}.containers")), "")),
        Some(cs) if cs.is_empty() => {
            errs.push(FieldError::required(&p(&format!("{path}.containers")), ""))
        }
        Some(_) => {}
    }
    let mut seen = std::collections::BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .and_then(|s| s.get(list))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let cpath = format!("{path}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => {
                    errs.push(FieldError::required(&p(&format!("{cpath}.name")), ""))
                }
                Some(name) => {
                    for msg in kox_api::validation::is_dns1123_label(name) {
                        errs.push(FieldError::invalid(
                            &p(&format!("{cpath}.name")),
                            name,
                            &msg,
                        ));
                    }
                    if !seen.insert(name.to_string()) {
                        errs.push(FieldError::duplicate(&p(&format!("{cpath}.name")), name));
                    }
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
            {
                errs.push(FieldError::required(&p(&format!("{cpath}.image")), ""));
            }
        }
    }
    if let Some(policy) = spec
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        errs.push(FieldError::not_supported(
            &p(&format!("{path}.restartPolicy")),
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
}

pub fn pod(v: &Value) -> FieldErrors {
    let mut errs = object_name(v, kox_api::validation::is_dns1123_subdomain);
    pod_spec(v.get("spec"), "spec", &mut errs);
    errs
}

/// Pod specs are immutable but for a few fields (upstream's ValidatePodUpdate).
pub fn pod_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = pod(new);
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
        if let Some(m) = spec.as_object_mut() {
            for k in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
                "nodeName",
                "schedulingGates",
            ] {
                m.remove(k);
            }
        }
        spec
    };
    if strip(new) != strip(old) {
        errs.push(FieldError::forbidden(&p("spec"),
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    let old_node = str_at(old, "spec.nodeName").unwrap_or("");
    if !old_node.is_empty() && str_at(new, "spec.nodeName").unwrap_or("") != old_node {
        errs.push(FieldError::forbidden(
            &p("spec.nodeName"),
            "field is immutable once set",
        ));
    }
    errs
}

// ---- services -----------------------------------------------------------------------------------

pub fn service_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "ExternalName" {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
}

pub fn service(v: &Value) -> FieldErrors {
    let mut errs = object_name(v, kox_api::validation::is_dns1035_label);
    let ty = str_at(v, "spec.type").unwrap_or("ClusterIP");
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(&p("spec.type"), ty, TYPES));
    }
    let ports = v.pointer("/spec/ports").and_then(Value::as_array);
    let headless = str_at(v, "spec.clusterIP") == Some("None");
    if ty != "ExternalName" && !headless && ports.is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(&p("spec.ports"), ""));
    }
    let many = ports.is_some_and(|p| p.len() > 1);
    let mut names = std::collections::BTreeSet::new();
    for (i, port_spec) in ports.into_iter().flatten().enumerate() {
        let port = port_spec.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid(
                &p(&format!("spec.ports[{i}].port")),
                port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        let name = port_spec.get("name").and_then(Value::as_str).unwrap_or("");
        if many && name.is_empty() {
            errs.push(FieldError::required(
                &p(&format!("spec.ports[{i}].name")),
                "",
            ));
        } else if !name.is_empty() && !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(
                &p(&format!("spec.ports[{i}].name")),
                name,
            ));
        }
    }
    if ty == "ExternalName" && str_at(v, "spec.externalName").is_none_or(str::is_empty) {
        errs.push(FieldError::required(&p("spec.externalName"), ""));
    }
    errs
}

pub fn service_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = service(new);
    let old_ip = str_at(old, "spec.clusterIP").unwrap_or("");
    let new_ip = str_at(new, "spec.clusterIP").unwrap_or("");
    if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip {
        errs.push(FieldError::invalid(
            &p("spec.clusterIPs[0]"),
            new_ip,
            "may not change once set",
        ));
    }
    errs
}

// ---- deployments ---------------------------------------------------------------------------------

pub fn deployment_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(s) = strategy.as_object_mut() {
        set_default(s, "type", json!("RollingUpdate"));
        if s.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(ru) = ru.as_object_mut() {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    if let Some(tspec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec_defaults(tspec);
    }
}

pub fn deployment(v: &Value) -> FieldErrors {
    let mut errs = object_name(v, kox_api::validation::is_dns1123_subdomain);
    match v.pointer("/spec/selector") {
        None => errs.push(FieldError::required(&p("spec.selector"), "")),
        Some(sel) => {
            let labels = v
                .pointer("/spec/template/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            if !selector_matches(sel, &labels) {
                errs.push(FieldError::invalid(
                    &p("spec.template.metadata.labels"),
                    labels_text(&labels),
                    "`selector` does not match template `labels`",
                ));
            }
            if sel
                .get("matchLabels")
                .is_none_or(|m| m.as_object().is_none_or(Map::is_empty))
                && sel
                    .get("matchExpressions")
                    .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty))
            {
                errs.push(FieldError::invalid(
                    &p("spec.selector"),
                    "{}",
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    if let Some(r) = v
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r < 0)
    {
        errs.push(FieldError::invalid(
            &p("spec.replicas"),
            r,
            "must be greater than or equal to 0",
        ));
    }
    pod_spec(
        v.pointer("/spec/template/spec"),
        "spec.template.spec",
        &mut errs,
    );
    errs
}

pub fn deployment_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = deployment(new);
    if new.pointer("/spec/selector") != old.pointer("/spec/selector") {
        errs.push(FieldError::invalid(
            &p("spec.selector"),
            new.pointer("/spec/selector")
                .map(Value::to_string)
                .unwrap_or_default(),
            "field is immutable",
        ));
    }
    errs
}

fn labels_text(labels: &Value) -> String {
    let mut parts: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or("")))
        .collect();
    parts.sort();
    format!("map[{}]", parts.join(" "))
}

/// Whether a `LabelSelector` (JSON) selects `labels` (JSON map).
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    for (k, want) in selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if get(k) != want.as_str() {
            return false;
        }
    }
    for e in selector
        .get("matchExpressions")
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
        let ok = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

// ---- namespaces and secrets ----------------------------------------------------------------------

pub fn namespace_defaults(v: &mut Value) {
    let name = str_at(v, "metadata.name").unwrap_or("").to_string();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    if let Some(m) = v.as_object_mut() {
        let spec = m.entry("spec").or_insert_with(|| json!({}));
        if let Some(s) = spec.as_object_mut() {
            set_default(s, "finalizers", json!(["kubernetes"]));
        }
        let status = m.entry("status").or_insert_with(|| json!({}));
        if let Some(s) = status.as_object_mut() {
            set_default(s, "phase", json!("Active"));
        }
    }
}

pub fn namespace(v: &Value) -> FieldErrors {
    object_name(v, kox_api::validation::is_dns1123_label)
}

pub fn secret_defaults(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        set_default(m, "type", json!("Opaque"));
    }
}
