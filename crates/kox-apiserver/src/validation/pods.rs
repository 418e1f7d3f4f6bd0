//! Pods and pod specs: the defaults and checks every pod template shares, and the two core
//! kinds that are little more than a pod template (pod templates, replication controllers).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{
    FieldError, FieldErrors, annotations_at, go_string_map, labels_at, namespaced_meta,
    nonnegative, p, set_default, string_map,
};
use crate::strategy::str_at;
use kox_api::field::BadValue;

/// Upstream's pod spec defaults (`SetDefaults_PodSpec`, `_Container`, `_Probe`, `_Volume`).
pub fn pod_spec_defaults(spec: &mut Value) {
    service_account_alias(spec);
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
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    if let Some(pr) = c.get_mut(probe).and_then(Value::as_object_mut) {
                        set_default(pr, "timeoutSeconds", json!(1));
                        set_default(pr, "periodSeconds", json!(10));
                        set_default(pr, "successThreshold", json!(1));
                        set_default(pr, "failureThreshold", json!(3));
                        if let Some(h) = pr.get_mut("httpGet").and_then(Value::as_object_mut) {
                            set_default(h, "path", json!("/"));
                            set_default(h, "scheme", json!("HTTP"));
                        }
                    }
                }
            }
        }
    }
    if let Some(vols) = m.get_mut("volumes").and_then(Value::as_array_mut) {
        for vol in vols.iter_mut().filter_map(Value::as_object_mut) {
            for source in ["configMap", "secret", "downwardAPI", "projected"] {
                if let Some(s) = vol.get_mut(source).and_then(Value::as_object_mut) {
                    set_default(s, "defaultMode", json!(420));
                }
            }
            if vol.len() == 1 {
                // Only a name: upstream makes it an emptyDir.
                vol.insert("emptyDir".into(), json!({}));
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

/// v1's `serviceAccount` is the deprecated alias of `serviceAccountName` (upstream's PodSpec
/// conversion): read when the name is empty, and always written as the name.
pub fn service_account_alias(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    let named = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let name = named(m.get("serviceAccountName")).or_else(|| named(m.get("serviceAccount")));
    match name {
        Some(name) => {
            m.insert("serviceAccountName".into(), json!(name));
            m.insert("serviceAccount".into(), json!(name));
        }
        None => {
            m.remove("serviceAccount");
        }
    }
}

/// Sets `status.qosClass` as upstream's `GetPodQOS` computes it on create, after mutating
/// admission (so LimitRange defaults count): BestEffort without any cpu/memory request or limit;
/// Guaranteed when every container limits both cpu and memory and requests exactly that;
/// otherwise Burstable.
pub fn set_qos_class(pod: &mut Value) {
    let class = qos_class(pod);
    if let Some(status) = pod.as_object_mut().and_then(|m| {
        m.entry("status")
            .or_insert_with(|| json!({}))
            .as_object_mut()
    }) {
        status.insert("qosClass".into(), json!(class));
    }
}

fn qos_class(pod: &Value) -> &'static str {
    const COMPUTE: [&str; 2] = ["cpu", "memory"];
    let quantity = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| kox_api::quantity::Quantity::parse(s).ok())
            .map(|q| q.as_nanos())
    };
    let containers = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten();
    let (mut any, mut guaranteed) = (false, true);
    for c in containers {
        for res in COMPUTE {
            let request = quantity(c.pointer(&format!("/resources/requests/{res}")));
            let limit = quantity(c.pointer(&format!("/resources/limits/{res}")));
            let nonzero = |q: Option<i128>| q.is_some_and(|q| q != 0);
            any |= nonzero(request) || nonzero(limit);
            // A missing request defaults to the limit.
            guaranteed &= limit.is_some_and(|l| l != 0) && request.is_none_or(|r| Some(r) == limit);
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Upstream's `ValidateDNS1123Label` at `path`.
pub(super) fn dns1123_label(value: &str, path: &str, errs: &mut FieldErrors) {
    for msg in kox_api::validation::is_dns1123_label(value) {
        errs.push(FieldError::invalid(&p(path), value, msg));
    }
}

/// Validates a pod spec at `path` (also used for templates), in upstream's order: volumes,
/// containers, init containers, restart and DNS policies.
pub fn pod_spec(spec: Option<&Value>, path: &str, errs: &mut FieldErrors) {
    let list = |k: &str| -> Vec<&Value> {
        spec.and_then(|s| s.get(k))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect()
    };
    let mut volumes = BTreeSet::new();
    for (i, vol) in list("volumes").iter().enumerate() {
        let vpath = format!("{path}.volumes[{i}].name");
        match vol.get("name").and_then(Value::as_str).unwrap_or("") {
            "" => errs.push(FieldError::required(&p(&vpath), "")),
            name => {
                dns1123_label(name, &vpath, errs);
                if !volumes.insert(name.to_string()) {
                    errs.push(FieldError::duplicate(&p(&vpath), name));
                }
            }
        }
    }
    let containers = list("containers");
    if containers.is_empty() {
        errs.push(FieldError::required(&p(&format!("{path}.containers")), ""));
    }
    let mut names = BTreeSet::new();
    for (list_name, items) in [
        ("containers", containers),
        ("initContainers", list("initContainers")),
    ] {
        for (i, c) in items.iter().enumerate() {
            container(
                c,
                &format!("{path}.{list_name}[{i}]"),
                &volumes,
                &mut names,
                errs,
            );
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
    if let Some(spec) = spec {
        windows_host_process(spec, path, errs);
    }
    const DNS: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
    if let Some(policy) = spec
        .and_then(|s| s.get("dnsPolicy"))
        .and_then(Value::as_str)
        && !DNS.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            &p(&format!("{path}.dnsPolicy")),
            policy,
            DNS,
        ));
    }
}

/// Upstream's `validateWindowsHostProcessPod`: a pod with any host-process container (set on
/// it or inherited from the pod) has only such containers and shares the host's network, and
/// a container and its pod do not disagree.
fn windows_host_process(spec: &Value, path: &str, errs: &mut FieldErrors) {
    let host_process = |sc: Option<&Value>| {
        sc.and_then(|s| s.pointer("/windowsOptions/hostProcess"))
            .and_then(Value::as_bool)
    };
    let pod = host_process(spec.get("securityContext"));
    let (mut containers, mut host) = (0, 0);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let items = spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for (i, c) in items.enumerate() {
            containers += 1;
            let own = host_process(c.get("securityContext"));
            if let (Some(pod), Some(own)) = (pod, own)
                && pod != own
            {
                errs.push(FieldError::invalid(
                    &p(&format!(
                        "{path}.{list}[{i}].securityContext.windowsOptions.hostProcess"
                    )),
                    own,
                    format!(
                        "pod hostProcess value must be identical if both are specified, was {pod}"
                    ),
                ));
            }
            if own.or(pod) == Some(true) {
                host += 1;
            }
        }
    }
    if host == 0 {
        return;
    }
    if host != containers {
        errs.push(FieldError::invalid(
            &p(path),
            "",
            "If pod contains any hostProcess containers then all containers must be HostProcess containers",
        ));
    }
    if spec.get("hostNetwork").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::invalid(
            &p(&format!("{path}.hostNetwork")),
            false,
            "hostNetwork must be true if pod contains any hostProcess containers",
        ));
    }
}

/// One container: name, image, ports, env names and volume mounts.
fn container(
    c: &Value,
    cpath: &str,
    volumes: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
    errs: &mut FieldErrors,
) {
    match c.get("name").and_then(Value::as_str) {
        None | Some("") => errs.push(FieldError::required(&p(&format!("{cpath}.name")), "")),
        Some(name) => {
            dns1123_label(name, &format!("{cpath}.name"), errs);
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&p(&format!("{cpath}.name")), name));
            }
        }
    }
    match c.get("image").and_then(Value::as_str).unwrap_or("") {
        i if i.trim().is_empty() => {
            errs.push(FieldError::required(&p(&format!("{cpath}.image")), ""))
        }
        i if i != i.trim() => errs.push(FieldError::invalid(
            &p(&format!("{cpath}.image")),
            i,
            "must not have leading or trailing whitespace",
        )),
        _ => {}
    }
    let mut port_names = BTreeSet::new();
    for (i, port) in c
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let pp = format!("{cpath}.ports[{i}]");
        if let Some(name) = port
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            for msg in kox_api::validation::is_valid_port_name(name) {
                errs.push(FieldError::invalid(&p(&format!("{pp}.name")), name, msg));
            }
            if !port_names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&p(&format!("{pp}.name")), name));
            }
        }
        let number = port
            .get("containerPort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if number == 0 {
            errs.push(FieldError::required(&p(&format!("{pp}.containerPort")), ""));
        } else {
            for msg in kox_api::validation::is_valid_port_num(number) {
                errs.push(FieldError::invalid(
                    &p(&format!("{pp}.containerPort")),
                    number,
                    msg,
                ));
            }
        }
        if let Some(host) = port
            .get("hostPort")
            .and_then(Value::as_i64)
            .filter(|h| *h != 0)
        {
            for msg in kox_api::validation::is_valid_port_num(host) {
                errs.push(FieldError::invalid(
                    &p(&format!("{pp}.hostPort")),
                    host,
                    msg,
                ));
            }
        }
        match port.get("protocol").and_then(Value::as_str).unwrap_or("") {
            "" => errs.push(FieldError::required(&p(&format!("{pp}.protocol")), "")),
            proto if !PROTOCOLS.contains(&proto) => errs.push(FieldError::not_supported(
                &p(&format!("{pp}.protocol")),
                proto,
                PROTOCOLS,
            )),
            _ => {}
        }
    }
    for (i, env) in c
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let epath = format!("{cpath}.env[{i}].name");
        match env.get("name").and_then(Value::as_str).unwrap_or("") {
            "" => errs.push(FieldError::required(&p(&epath), "")),
            name => {
                for msg in kox_api::validation::is_env_var_name(name) {
                    errs.push(FieldError::invalid(&p(&epath), name, msg));
                }
            }
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mpath = format!("{cpath}.volumeMounts[{i}]");
        match m.get("name").and_then(Value::as_str).unwrap_or("") {
            "" => errs.push(FieldError::required(&p(&format!("{mpath}.name")), "")),
            name if !volumes.contains(name) => {
                errs.push(FieldError::not_found(&p(&format!("{mpath}.name")), name))
            }
            _ => {}
        }
        match m.get("mountPath").and_then(Value::as_str).unwrap_or("") {
            "" => errs.push(FieldError::required(&p(&format!("{mpath}.mountPath")), "")),
            path if !mount_paths.insert(path.to_string()) => errs.push(FieldError::invalid(
                &p(&format!("{mpath}.mountPath")),
                path,
                "must be unique",
            )),
            _ => {}
        }
    }
}

/// Upstream's `ValidatePodTemplateSpec` of the template at `pointer`: labels, annotations
/// and the pod spec. (Upstream reports template labels at `<path>.labels`.)
pub fn pod_template(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    labels_at(
        v,
        &format!("{pointer}/metadata/labels"),
        &format!("{path}.labels"),
        errs,
    );
    annotations_at(
        v,
        &format!("{pointer}/metadata/annotations"),
        &format!("{path}.annotations"),
        errs,
    );
    pod_spec(
        v.pointer(&format!("{pointer}/spec")),
        &format!("{path}.spec"),
        errs,
    );
}

/// The template's restart policy must be `Always` and it may have no active deadline
/// (replica sets, deployments, daemon sets, replication controllers, stateful sets).
pub(super) fn template_restarts_always(v: &Value, path: &str, kind: &str, errs: &mut FieldErrors) {
    let policy = str_at(v, "spec.template.spec.restartPolicy").unwrap_or("");
    if policy != "Always" {
        errs.push(FieldError::not_supported(
            &p(&format!("{path}.spec.restartPolicy")),
            policy,
            &["Always"],
        ));
    }
    if v.pointer("/spec/template/spec/activeDeadlineSeconds")
        .is_some_and(|a| !a.is_null())
    {
        errs.push(FieldError::forbidden(
            &p(&format!("{path}.spec.activeDeadlineSeconds")),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

pub fn pod(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
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
    mirror_annotation_update(new, old, &mut errs);
    let old_node = str_at(old, "spec.nodeName").unwrap_or("");
    if !old_node.is_empty() && str_at(new, "spec.nodeName").unwrap_or("") != old_node {
        errs.push(FieldError::forbidden(
            &p("spec.nodeName"),
            "field is immutable once set",
        ));
    }
    errs
}

/// The `ephemeralcontainers` subresource: ephemeral containers are added, never changed or
/// removed, and have only what an ephemeral container may have (upstream's
/// ValidatePodEphemeralContainersUpdate and validateEphemeralContainers).
pub fn ephemeral_containers_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let list = |v: &Value| {
        v.pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (new_list, old_list) = (list(new), list(old));
    for (i, o) in old_list.iter().enumerate() {
        let name = o["name"].as_str().unwrap_or("");
        match new_list.iter().find(|n| n["name"] == o["name"]) {
            None => errs.push(FieldError::forbidden(
                &p("spec"),
                format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(n) if n != o => errs.push(FieldError::forbidden(
                &p(&format!("spec.ephemeralContainers[{i}]")),
                format!("existing ephemeral containers {name:?} may not be changed\n"),
            )),
            _ => {}
        }
    }
    let spec = new.get("spec").cloned().unwrap_or_default();
    let names_in = |list: &str| -> BTreeSet<String> {
        spec.get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let targets: BTreeSet<String> = names_in("containers")
        .into_iter()
        .chain(names_in("initContainers"))
        .collect();
    let volumes = names_in("volumes");
    let mut names = targets.clone();
    for (i, c) in new_list.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        container(c, &path, &volumes, &mut names, &mut errs);
        ephemeral_only(c, &path, &targets, &mut errs);
    }
    errs
}

/// What an ephemeral container may not have, and the container it targets.
fn ephemeral_only(c: &Value, path: &str, targets: &BTreeSet<String>, errs: &mut FieldErrors) {
    let set = |v: &Value| match v {
        Value::Null => false,
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    };
    for field in [
        "ports",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
        "resources",
        "resizePolicy",
        "restartPolicy",
    ] {
        if c.get(field).is_some_and(set) {
            errs.push(FieldError::forbidden(
                &p(&format!("{path}.{field}")),
                "cannot be set for an Ephemeral Container",
            ));
        }
    }
    if let Some(target) = c.get("targetContainerName").and_then(Value::as_str)
        && !target.is_empty()
        && !targets.contains(target)
    {
        errs.push(FieldError::not_found(
            &p(&format!("{path}.targetContainerName")),
            target,
        ));
    }
}

/// Nobody turns a pod into a mirror pod or back (upstream's
/// `ValidatePodSpecificAnnotationUpdates`): what a mirror pod may refer to is checked only
/// when it is created, and the Node authorizer trusts the annotation.
fn mirror_annotation_update(new: &Value, old: &Value, errs: &mut FieldErrors) {
    let key = kox_api::pod_refs::MIRROR_ANNOTATION;
    let value = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .cloned()
    };
    let path = p("metadata.annotations").key(key);
    match (value(old), value(new)) {
        (Some(o), n) if Some(&o) != n.as_ref() => errs.push(FieldError::forbidden(
            &path,
            "may not remove or update mirror pod annotation",
        )),
        (None, Some(_)) => errs.push(FieldError::forbidden(
            &path,
            "may not add mirror pod annotation",
        )),
        _ => {}
    }
}

// ---- pod templates and replication controllers ----------------------------------------------------

pub fn pod_template_defaults(v: &mut Value) {
    if let Some(spec) = v.pointer_mut("/template/spec") {
        pod_spec_defaults(spec);
    }
}

pub fn pod_template_object(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    pod_template(v, "/template", "template", &mut errs);
    errs
}

pub fn pod_template_object_update(new: &Value, _old: &Value) -> FieldErrors {
    pod_template_object(new)
}

/// Upstream's `SetDefaults_ReplicationController`: selector and labels from the template,
/// one replica.
pub fn replication_controller_defaults(v: &mut Value) {
    let labels = v
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let Some(labels) = labels {
        if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut)
            && spec
                .get("selector")
                .is_none_or(|s| s.as_object().is_none_or(Map::is_empty))
        {
            spec.insert("selector".into(), labels.clone());
        }
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
            && meta
                .get("labels")
                .is_none_or(|s| s.as_object().is_none_or(Map::is_empty))
        {
            meta.insert("labels".into(), labels);
        }
    }
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "replicas", json!(1));
        if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
            pod_spec_defaults(t);
        }
    }
}

/// Upstream's `ValidateReplicationControllerSpec`: a non-empty selector matching a template
/// that restarts always.
pub fn replication_controller(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    nonnegative(v, "/spec/replicas", "spec.replicas", &mut errs);
    nonnegative(
        v,
        "/spec/minReadySeconds",
        "spec.minReadySeconds",
        &mut errs,
    );
    let selector = string_map(v.pointer("/spec/selector"));
    if selector.is_empty() {
        errs.push(FieldError::required(&p("spec.selector"), ""));
    } else {
        errs.extend(kox_api::validation::validate_labels(
            &selector,
            &p("spec.selector"),
        ));
    }
    match v.pointer("/spec/template").filter(|t| !t.is_null()) {
        None => errs.push(FieldError::required(&p("spec.template"), "")),
        Some(_) => {
            let labels = string_map(v.pointer("/spec/template/metadata/labels"));
            if !selector.is_empty() && !selector.iter().all(|(k, val)| labels.get(k) == Some(val)) {
                errs.push(FieldError::invalid(
                    &p("spec.template.metadata.labels"),
                    BadValue::Raw(go_string_map(
                        v.pointer("/spec/template/metadata/labels")
                            .unwrap_or(&Value::Null),
                    )),
                    "`selector` does not match template `labels`",
                ));
            }
            pod_template(v, "/spec/template", "spec.template", &mut errs);
            template_restarts_always(v, "spec.template", "ReplicationController", &mut errs);
        }
    }
    errs
}

pub fn replication_controller_update(new: &Value, _old: &Value) -> FieldErrors {
    replication_controller(new)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{check, with};

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default"})
    }

    fn pod() -> Value {
        let mut v = json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
        super::pod_defaults(&mut v);
        v
    }

    #[test]
    fn a_defaulted_pod_is_valid() {
        let v = pod();
        assert_eq!(v["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(v["spec"]["restartPolicy"], "Always");
        check(super::pod(&v), &[]);
    }

    #[test]
    fn pod_metadata_is_checked_with_subdomain_names() {
        let v = with(
            &pod(),
            json!({"metadata": {"name": "Bad_Name", "labels": {"a/b/c": "x"}}}),
        );
        check(
            super::pod(&v),
            &[
                "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            ],
        );
    }

    #[test]
    fn containers_need_names_images_and_valid_ports() {
        let v = with(
            &pod(),
            json!({"spec": {"containers": [
                {"name": "app", "image": "", "ports": [{"containerPort": 70000, "protocol": "HTTP", "name": "web_port"}],
                 "env": [{"name": "1BAD"}], "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
                {"name": "app", "image": "x"}]}}),
        );
        check(
            super::pod(&v),
            &[
                "spec.containers[0].image: Required value",
                "spec.containers[0].ports[0].name: Invalid value: \"web_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].env[0].name: Invalid value: \"1BAD\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
                "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
                "spec.containers[1].name: Duplicate value: \"app\"",
            ],
        );
    }

    #[test]
    fn an_empty_pod_needs_containers() {
        check(
            super::pod(&json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {}})),
            &["spec.containers: Required value"],
        );
    }

    #[test]
    fn a_name_only_volume_becomes_an_empty_dir() {
        let mut v = json!({"metadata": {"name": "p"}, "spec": {"volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}],
            "containers": [{"name": "a", "image": "x"}]}});
        super::pod_defaults(&mut v);
        assert_eq!(v["spec"]["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(v["spec"]["volumes"][1]["configMap"]["defaultMode"], 420);
    }

    #[test]
    fn host_process_pods_share_the_host_network_and_all_their_containers_are_host_processes() {
        let spec = json!({
            "securityContext": {"windowsOptions": {"hostProcess": true}},
            "containers": [
                {"name": "a", "image": "i"},
                {"name": "b", "image": "i", "securityContext": {"windowsOptions": {"hostProcess": false}}},
            ],
        });
        let mut errs = super::FieldErrors::default();
        super::windows_host_process(&spec, "spec", &mut errs);
        let rendered: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "spec.containers[1].securityContext.windowsOptions.hostProcess: Invalid value: false: pod hostProcess value must be identical if both are specified, was true",
                "spec: Invalid value: \"\": If pod contains any hostProcess containers then all containers must be HostProcess containers",
                "spec.hostNetwork: Invalid value: false: hostNetwork must be true if pod contains any hostProcess containers",
            ]
        );
        let mut fine = super::FieldErrors::default();
        super::windows_host_process(&json!({"containers": [{"name": "a"}]}), "spec", &mut fine);
        assert!(fine.is_empty());
    }

    #[test]
    fn pod_spec_updates_are_limited() {
        let old = pod();
        let new = with(&old, json!({"spec": {"dnsPolicy": "Default"}}));
        let errs = super::pod_update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert!(
            errs.0[0]
                .detail
                .starts_with("pod updates may not change fields")
        );
        let new = with(
            &old,
            json!({"spec": {"containers": [{"name": "app", "image": "nginx:2", "imagePullPolicy": "Always",
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}]}}),
        );
        check(super::pod_update(&new, &old), &[]);
    }

    #[test]
    fn replication_controllers_default_their_selector_from_the_template() {
        let mut v = json!({"metadata": meta("rc"), "spec": {"template": {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        super::replication_controller_defaults(&mut v);
        assert_eq!(v["spec"]["selector"], json!({"app": "a"}));
        assert_eq!(v["metadata"]["labels"], json!({"app": "a"}));
        assert_eq!(v["spec"]["replicas"], 1);
        check(super::replication_controller(&v), &[]);
        check(
            super::replication_controller(&with(
                &v,
                json!({"spec": {"selector": {"app": "b"},
                "template": {"spec": {"restartPolicy": "Never"}}}}),
            )),
            &[
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"a\"}: `selector` does not match template `labels`",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
        );
    }
}

#[cfg(test)]
mod qos_tests {
    use super::*;

    #[test]
    fn service_account_is_the_alias_of_service_account_name() {
        for (given, want) in [
            (
                json!({"serviceAccountName": "a"}),
                json!({"serviceAccountName": "a", "serviceAccount": "a"}),
            ),
            (
                json!({"serviceAccount": "b"}),
                json!({"serviceAccountName": "b", "serviceAccount": "b"}),
            ),
            (
                json!({"serviceAccountName": "a", "serviceAccount": "b"}),
                json!({"serviceAccountName": "a", "serviceAccount": "a"}),
            ),
            (json!({"serviceAccount": ""}), json!({})),
        ] {
            let mut spec = given.clone();
            service_account_alias(&mut spec);
            assert_eq!(spec, want, "{given}");
        }
    }

    fn pod(resources: &[Value]) -> Value {
        let containers: Vec<Value> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"name": format!("c{i}"), "image": "x", "resources": r}))
            .collect();
        json!({"spec": {"containers": containers}})
    }

    #[test]
    fn qos_class_follows_upstream() {
        assert_eq!(qos_class(&pod(&[json!({})])), "BestEffort");
        assert_eq!(
            qos_class(&pod(&[json!({"limits": {"cpu": "1", "memory": "1Gi"}})])),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(&[
                json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            ])),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(&[
                json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            ])),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(&[
                json!({"limits": {"cpu": "1", "memory": "1Gi"}}),
                json!({})
            ])),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(&[json!({"requests": {"memory": "10Mi"}})])),
            "Burstable"
        );
        let mut p = pod(&[json!({"limits": {"cpu": "1", "memory": "1Gi"}})]);
        p["status"] = json!({"qosClass": "BestEffort", "phase": "Pending"});
        set_qos_class(&mut p);
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
        assert_eq!(p["status"]["phase"], "Pending");
    }
}
