//! The core group's kinds other than pods.

use std::net::IpAddr;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::pods::{dns1123_label, pod_spec_defaults, pod_template, template_restarts_always};
use super::{
    FieldError, FieldErrors, cluster_meta, go_string_map, immutable, namespaced_meta, nonnegative,
    object_meta, p, selector_at, set_default, string_map,
};
use crate::strategy::str_at;
use kox_api::field::BadValue;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// Upstream's `MaxSecretSize`: the data of a ConfigMap or Secret (1 MiB).
const MAX_SECRET_SIZE: usize = 1024 * 1024;
const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

// ---- namespaces -----------------------------------------------------------------------------------

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

/// Namespaces are cluster-scoped and named by DNS-1123 labels; their finalizers are qualified
/// names.
pub fn namespace(v: &Value) -> FieldErrors {
    let mut errs = object_meta(v, false, kox_api::validation::name_is_dns_label);
    for (i, f) in v
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = f.as_str().unwrap_or("");
        for msg in kox_api::validation::is_qualified_name(f) {
            errs.push(FieldError::invalid(
                &p(&format!("spec.finalizers[{i}]")),
                f,
                msg,
            ));
        }
    }
    errs
}

pub fn namespace_update(new: &Value, _old: &Value) -> FieldErrors {
    namespace(new)
}

// ---- config maps and secrets -----------------------------------------------------------------------

fn immutable_set(old: &Value) -> bool {
    old.get("immutable").and_then(Value::as_bool) == Some(true)
}

/// Upstream's `ValidateConfigMap`: keys, no key in both `data` and `binaryData`, 1 MiB.
pub fn config_map(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    let data = v.get("data").and_then(Value::as_object);
    let binary = v.get("binaryData").and_then(Value::as_object);
    let mut total = 0;
    for (k, val) in data.into_iter().flatten() {
        let path = format!("data[{k}]");
        for msg in kox_api::validation::is_config_map_key(k) {
            errs.push(FieldError::invalid(&p(&path), k.as_str(), msg));
        }
        if binary.is_some_and(|b| b.contains_key(k)) {
            errs.push(FieldError::invalid(
                &p(&path),
                k.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += val.as_str().map_or(0, str::len);
    }
    for (k, val) in binary.into_iter().flatten() {
        for msg in kox_api::validation::is_config_map_key(k) {
            errs.push(FieldError::invalid(
                &p(&format!("binaryData[{k}]")),
                k.as_str(),
                msg,
            ));
        }
        total += decoded_len(val);
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&p(""), MAX_SECRET_SIZE as i64));
    }
    errs
}

/// Upstream's `ValidateConfigMapUpdate`: an immutable config map keeps its data.
pub fn config_map_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if immutable_set(old) {
        if !immutable_set(new) {
            errs.push(FieldError::forbidden(&p("immutable"), IMMUTABLE_SET));
        }
        for k in ["data", "binaryData"] {
            if non_empty(new.get(k)) != non_empty(old.get(k)) {
                errs.push(FieldError::forbidden(&p(k), IMMUTABLE_SET));
            }
        }
    }
    errs.extend(config_map(new));
    errs
}

/// A map that is absent, null or empty is no map (Go's nil and empty maps compare equal).
fn non_empty(v: Option<&Value>) -> Option<&Value> {
    v.filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
}

fn decoded(v: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str()?)
        .ok()
}

fn decoded_len(v: &Value) -> usize {
    decoded(v).map_or(0, |d| d.len())
}

/// Upstream's secret defaults: type `Opaque`; `stringData` is merged into `data` (it is
/// write-only: upstream never stores it).
pub fn secret_defaults(v: &mut Value) {
    let Some(m) = v.as_object_mut() else {
        return;
    };
    set_default(m, "type", json!("Opaque"));
    if let Some(Value::Object(strings)) = m.remove("stringData") {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if data.is_null() {
            *data = json!({});
        }
        if let Some(d) = data.as_object_mut() {
            for (k, s) in strings {
                let bytes = s.as_str().unwrap_or("").as_bytes().to_vec();
                d.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                );
            }
        }
    }
}

/// Upstream's `ValidateSecret`: keys, size and what each well-known type requires.
pub fn secret(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    let data = v.get("data").and_then(Value::as_object);
    let mut total = 0;
    for (k, val) in data.into_iter().flatten() {
        for msg in kox_api::validation::is_config_map_key(k) {
            errs.push(FieldError::invalid(
                &p(&format!("data[{k}]")),
                k.as_str(),
                msg,
            ));
        }
        total += decoded_len(val);
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&p("data"), MAX_SECRET_SIZE as i64));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let required = |k: &str| FieldError::required(&p(&format!("data[{k}]")), "");
    let json_key = |k: &str, errs: &mut FieldErrors| {
        if !has(k) {
            errs.push(required(k));
            return;
        }
        let bytes = data
            .and_then(|d| d.get(k))
            .and_then(decoded)
            .unwrap_or_default();
        if let Err(e) = serde_json::from_slice::<Map<String, Value>>(&bytes) {
            errs.push(FieldError::invalid(
                &p(&format!("data[{k}]")),
                "<secret contents redacted>",
                e.to_string(),
            ));
        }
    };
    let sa_name = v
        .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ssh_key = data
        .and_then(|d| d.get("ssh-privatekey"))
        .map_or(0, decoded_len);
    match str_at(v, "type").unwrap_or("") {
        "kubernetes.io/service-account-token" if sa_name.is_empty() => {
            errs.push(FieldError::required(
                &p("metadata.annotations[kubernetes.io/service-account.name]"),
                "",
            ));
        }
        "kubernetes.io/dockercfg" => json_key(".dockercfg", &mut errs),
        "kubernetes.io/dockerconfigjson" => json_key(".dockerconfigjson", &mut errs),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required("username"));
            errs.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if ssh_key == 0 => errs.push(required("ssh-privatekey")),
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(required(k));
                }
            }
        }
        _ => {}
    }
    errs
}

/// Upstream's `ValidateSecretUpdate`: the type never changes; an immutable secret keeps its data.
pub fn secret_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = FieldErrors::default();
    immutable(new, old, "/type", "type", &mut errs);
    if immutable_set(old) {
        if !immutable_set(new) {
            errs.push(FieldError::forbidden(&p("immutable"), IMMUTABLE_SET));
        }
        if non_empty(new.get("data")) != non_empty(old.get("data")) {
            errs.push(FieldError::forbidden(&p("data"), IMMUTABLE_SET));
        }
    }
    errs.extend(secret(new));
    errs
}

// ---- service accounts, endpoints, nodes -------------------------------------------------------------

pub fn service_account(v: &Value) -> FieldErrors {
    namespaced_meta(v)
}

pub fn service_account_update(new: &Value, _old: &Value) -> FieldErrors {
    service_account(new)
}

/// Upstream's `IsValidIPForLegacyField` (without the legacy leading-zero leniency).
fn ip(value: &str, path: &str, errs: &mut FieldErrors) -> Option<IpAddr> {
    match value.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            errs.push(FieldError::invalid(
                &p(path),
                value,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
            None
        }
    }
}

/// Upstream's `ValidateNonSpecialIP` for endpoint addresses.
fn non_special_ip(addr: IpAddr, value: &str, path: &str, errs: &mut FieldErrors) {
    let msg = if addr.is_unspecified() {
        Some("may not be unspecified (0.0.0.0)")
    } else if addr.is_loopback() {
        Some("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    } else if match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    } {
        Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    } else if match addr {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => (a.segments()[0] & 0xff0f) == 0xff02,
    } {
        Some("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    } else {
        None
    };
    if let Some(msg) = msg {
        errs.push(FieldError::invalid(&p(path), value, msg));
    }
}

pub fn endpoints_defaults(v: &mut Value) {
    for ss in v
        .get_mut("subsets")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for port in ss
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            set_default(port, "protocol", json!("TCP"));
        }
    }
}

/// Upstream's `ValidateEndpoints`: every subset has addresses, valid IPs and ports.
pub fn endpoints(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    for (i, ss) in v
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let sp = format!("subsets[{i}]");
        let list = |k: &str| -> Vec<&Value> {
            ss.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect()
        };
        if list("addresses").is_empty() && list("notReadyAddresses").is_empty() {
            errs.push(FieldError::required(
                &p(&sp),
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for kind in ["addresses", "notReadyAddresses"] {
            for (j, a) in list(kind).iter().enumerate() {
                let ap = format!("{sp}.{kind}[{j}]");
                let value = a.get("ip").and_then(Value::as_str).unwrap_or("");
                let parsed = ip(value, &format!("{ap}.ip"), &mut errs);
                if let Some(h) = a
                    .get("hostname")
                    .and_then(Value::as_str)
                    .filter(|h| !h.is_empty())
                {
                    dns1123_label(h, &format!("{ap}.hostname"), &mut errs);
                }
                if let Some(n) = a.get("nodeName").and_then(Value::as_str) {
                    for msg in kox_api::validation::is_dns1123_subdomain(n) {
                        errs.push(FieldError::invalid(&p(&format!("{ap}.nodeName")), n, msg));
                    }
                }
                if let Some(addr) = parsed {
                    non_special_ip(addr, value, &format!("{ap}.ip"), &mut errs);
                }
            }
        }
        let ports = list("ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = format!("{sp}.ports[{j}]");
            let name = port.get("name").and_then(Value::as_str).unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(&p(&format!("{pp}.name")), ""));
            } else if !name.is_empty() {
                dns1123_label(name, &format!("{pp}.name"), &mut errs);
            }
            let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            for msg in kox_api::validation::is_valid_port_num(number) {
                errs.push(FieldError::invalid(&p(&format!("{pp}.port")), number, msg));
            }
            protocol(port, &format!("{pp}.protocol"), &mut errs);
        }
    }
    errs
}

pub fn endpoints_update(new: &Value, _old: &Value) -> FieldErrors {
    endpoints(new)
}

/// A port's protocol: required, one of SCTP, TCP, UDP.
fn protocol(port: &Value, path: &str, errs: &mut FieldErrors) {
    match port.get("protocol").and_then(Value::as_str).unwrap_or("") {
        "" => errs.push(FieldError::required(&p(path), "")),
        proto if !PROTOCOLS.contains(&proto) => {
            errs.push(FieldError::not_supported(&p(path), proto, PROTOCOLS))
        }
        _ => {}
    }
}

/// Upstream's node status default: allocatable is the capacity unless reported.
pub fn node_defaults(v: &mut Value) {
    let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    if status.get("allocatable").is_none_or(Value::is_null)
        && let Some(cap) = status.get("capacity").cloned().filter(|c| !c.is_null())
    {
        status.insert("allocatable".into(), cap);
    }
}

/// Upstream's `ValidateNode`: metadata and taints.
pub fn node(v: &Value) -> FieldErrors {
    let mut errs = cluster_meta(v);
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in v
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let tp = format!("spec.taints[{i}]");
        let key = t.get("key").and_then(Value::as_str).unwrap_or("");
        errs.extend(kox_api::validation::validate_label_name(
            key,
            &p(&format!("{tp}.key")),
        ));
        let value = t.get("value").and_then(Value::as_str).unwrap_or("");
        let bad = kox_api::validation::is_valid_label_value(value);
        if !bad.is_empty() {
            errs.push(FieldError::invalid(
                &p(&format!("{tp}.value")),
                value,
                bad.join(";"),
            ));
        }
        const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
        let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
        if effect.is_empty() {
            errs.push(FieldError::required(&p(&format!("{tp}.effect")), ""));
        } else if !EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                &p(&format!("{tp}.effect")),
                effect,
                EFFECTS,
            ));
        }
        if !seen.insert((effect.to_string(), key.to_string())) {
            let quote = kox_api::field::go_quote;
            let shown = format!(
                "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:(*v1.Time)(nil)}}",
                quote(key),
                quote(value),
                quote(effect)
            );
            let mut dup = FieldError::duplicate(&p(&tp), BadValue::Raw(shown));
            dup.detail = "taints must be unique by key and effect pair".into();
            errs.push(dup);
        }
    }
    errs
}

/// Upstream's `ValidateNodeUpdate`: pod CIDRs and the provider ID are set once.
pub fn node_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = node(new);
    let set_once = |ptr: &str| {
        let old = old
            .pointer(ptr)
            .filter(|x| !x.is_null() && *x != "" && *x != &json!([]));
        old.is_some() && new.pointer(ptr) != old
    };
    if set_once("/spec/podCIDRs") || set_once("/spec/podCIDR") {
        errs.push(FieldError::forbidden(
            &p("spec.podCIDRs"),
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    if set_once("/spec/providerID") {
        errs.push(FieldError::forbidden(
            &p("spec.providerID"),
            "node updates may only set providerID except from \"\" to valid",
        ));
    }
    errs
}

// ---- events -----------------------------------------------------------------------------------------

/// Upstream's `legacyValidateEvent` (the rules core/v1 events keep) plus its generic name
/// check: the involved object's namespace agrees with the event's.
pub fn event(v: &Value) -> FieldErrors {
    let mut errs = object_meta(v, true, super::name_is_path_segment);
    let ns = str_at(v, "metadata.namespace").unwrap_or("");
    let involved_ns = str_at(v, "involvedObject.namespace").unwrap_or("");
    let event_time = v.get("eventTime").is_some_and(|t| !t.is_null());
    let mismatch = if !event_time {
        if involved_ns.is_empty() {
            !ns.is_empty() && ns != "default"
        } else {
            ns != involved_ns
        }
    } else {
        involved_ns.is_empty() && ns != "default" && ns != "kube-system"
    };
    if mismatch {
        errs.push(FieldError::invalid(
            &p("involvedObject.namespace"),
            involved_ns,
            "does not match event.namespace",
        ));
    }
    if event_time {
        new_style_event_fields(v, "reportingComponent", "message", &mut errs);
    }
    errs
}

/// The fields an event with `eventTime` must carry (upstream's legacy validation of new
/// events), naming the reporting controller and message fields as the API version does.
pub(super) fn new_style_event_fields(
    v: &Value,
    controller_field: &str,
    message_field: &str,
    errs: &mut FieldErrors,
) {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let controller = s(controller_field);
    if controller.is_empty() {
        errs.push(FieldError::required(&p(controller_field), ""));
    }
    for msg in kox_api::validation::is_qualified_name(controller) {
        errs.push(FieldError::invalid(&p(controller_field), controller, msg));
    }
    let limit = |field: &str, max: usize, errs: &mut FieldErrors| {
        if s(field).len() > max {
            errs.push(FieldError::invalid(
                &p(field),
                "",
                format!("can have at most {max} characters"),
            ));
        }
    };
    if s("reportingInstance").is_empty() {
        errs.push(FieldError::required(&p("reportingInstance"), ""));
    }
    limit("reportingInstance", 128, errs);
    if s("action").is_empty() {
        errs.push(FieldError::required(&p("action"), ""));
    }
    limit("action", 128, errs);
    if s("reason").is_empty() {
        errs.push(FieldError::required(&p("reason"), ""));
    }
    limit("reason", 128, errs);
    limit(message_field, 1024, errs);
}

pub fn event_update(new: &Value, _old: &Value) -> FieldErrors {
    event(new)
}

// ---- persistent volumes and claims ----------------------------------------------------------------

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn access_modes(v: &Value, pointer: &str, path: &str, detail: &str, errs: &mut FieldErrors) {
    let modes: Vec<&str> = v
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if modes.is_empty() {
        errs.push(FieldError::required(&p(path), detail));
    }
    for m in &modes {
        if !ACCESS_MODES.contains(m) {
            errs.push(FieldError::not_supported(&p(path), *m, ACCESS_MODES));
        }
    }
    if modes.contains(&"ReadWriteOncePod") && modes.iter().any(|m| *m != "ReadWriteOncePod") {
        errs.push(FieldError::forbidden(
            &p(path),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// A positive, parseable quantity at `pointer`.
fn positive_quantity(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    let Some(s) = v.pointer(pointer).and_then(Value::as_str) else {
        return;
    };
    match kox_api::quantity::Quantity::parse(s) {
        Err(_) => errs.push(FieldError::invalid(
            &p(path),
            s,
            "must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$",
        )),
        Ok(q) if q.as_nanos() <= 0 => errs.push(FieldError::invalid(
            &p(path),
            q.canonical(),
            "must be greater than zero",
        )),
        Ok(_) => {}
    }
}

pub fn pvc_defaults(v: &mut Value) {
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(m) = v.as_object_mut()
        && let Some(status) = super::child(m, "status")
    {
        set_default(status, "phase", json!("Pending"));
    }
}

/// Upstream's `ValidatePersistentVolumeClaimSpec` at `pointer`/`path` (also used for
/// stateful sets' claim templates).
pub(super) fn pvc_spec(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    access_modes(
        v,
        &format!("{pointer}/accessModes"),
        &format!("{path}.accessModes"),
        "at least 1 access mode is required",
        errs,
    );
    selector_at(
        v,
        &format!("{pointer}/selector"),
        &format!("{path}.selector"),
        errs,
    );
    let storage = format!("{pointer}/resources/requests/storage");
    let storage_path = format!("{path}.resources[storage]");
    if v.pointer(&storage).is_none_or(Value::is_null) {
        errs.push(FieldError::required(&p(&storage_path), ""));
    } else {
        positive_quantity(v, &storage, &storage_path, errs);
    }
    if let Some(class) = v
        .pointer(&format!("{pointer}/storageClassName"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    {
        for msg in kox_api::validation::is_dns1123_subdomain(class) {
            errs.push(FieldError::invalid(
                &p(&format!("{path}.storageClassName")),
                class,
                msg,
            ));
        }
    }
    if let Some(mode) = v
        .pointer(&format!("{pointer}/volumeMode"))
        .and_then(Value::as_str)
        && !["Block", "Filesystem"].contains(&mode)
    {
        errs.push(FieldError::not_supported(
            &p(&format!("{path}.volumeMode")),
            mode,
            &["Block", "Filesystem"],
        ));
    }
}

pub fn pvc(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    pvc_spec(v, "/spec", "spec", &mut errs);
    errs
}

/// Upstream's `ValidatePersistentVolumeClaimUpdate`: the spec is fixed after creation but for
/// binding it once, growing a bound claim and its volume attributes class.
pub fn pvc_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = pvc(new);
    let mut new_spec = new.get("spec").cloned().unwrap_or(json!({}));
    let mut old_spec = old.get("spec").cloned().unwrap_or(json!({}));
    if str_at(old, "spec.volumeName").is_none_or(str::is_empty) {
        old_spec["volumeName"] = new_spec.get("volumeName").cloned().unwrap_or(Value::Null);
    }
    let bound = str_at(new, "status.phase") == Some("Bound");
    for spec in [&mut new_spec, &mut old_spec] {
        if let Some(m) = spec.as_object_mut() {
            m.remove("volumeAttributesClassName");
            if bound && let Some(r) = m.get_mut("resources").and_then(|r| r.get_mut("requests")) {
                r.as_object_mut().map(|r| r.remove("storage"));
            }
            m.retain(|_, v| !v.is_null());
        }
    }
    if new_spec != old_spec {
        errs.push(FieldError::forbidden(
            &p("spec"),
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    } else if bound {
        let size = |v: &Value| {
            v.pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(|s| kox_api::quantity::Quantity::parse(s).ok())
                .map(|q| q.as_nanos())
        };
        if let (Some(n), Some(o)) = (size(new), size(old))
            && n < o
        {
            errs.push(FieldError::forbidden(
                &p("spec.resources.requests.storage"),
                "field can not be less than previous value",
            ));
        }
    }
    errs
}

pub fn pv_defaults(v: &mut Value) {
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(m) = v.as_object_mut()
        && let Some(status) = super::child(m, "status")
    {
        set_default(status, "phase", json!("Pending"));
    }
}

const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
    "iscsi",
];

/// Upstream's `ValidatePersistentVolume`: access modes, a storage capacity, one volume source
/// and a supported reclaim policy.
pub fn pv(v: &Value) -> FieldErrors {
    let mut errs = cluster_meta(v);
    access_modes(v, "/spec/accessModes", "spec.accessModes", "", &mut errs);
    let capacity = v.pointer("/spec/capacity").and_then(Value::as_object);
    if capacity.is_none_or(Map::is_empty) {
        errs.push(FieldError::required(&p("spec.capacity"), ""));
    }
    if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        errs.push(FieldError::not_supported(
            &p("spec.capacity"),
            BadValue::Raw(go_string_map(
                &v.pointer("/spec/capacity").cloned().unwrap_or(Value::Null),
            )),
            &["storage"],
        ));
    }
    for k in capacity.into_iter().flat_map(|c| c.keys()) {
        positive_quantity(
            v,
            &format!("/spec/capacity/{}", k.replace('~', "~0").replace('/', "~1")),
            &format!("spec.capacity[{k}]"),
            &mut errs,
        );
    }
    const RECLAIM: &[&str] = &["Delete", "Recycle", "Retain"];
    if let Some(policy) = str_at(v, "spec.persistentVolumeReclaimPolicy").filter(|s| !s.is_empty())
        && !RECLAIM.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            &p("spec.persistentVolumeReclaimPolicy"),
            policy,
            RECLAIM,
        ));
    }
    let sources: Vec<&&str> = PV_SOURCES
        .iter()
        .filter(|s| {
            v.pointer(&format!("/spec/{s}"))
                .is_some_and(|x| !x.is_null())
        })
        .collect();
    match sources.as_slice() {
        [] => errs.push(FieldError::required(
            &p("spec"),
            "must specify a volume type",
        )),
        [_] => {}
        [_, rest @ ..] => {
            for s in rest {
                errs.push(FieldError::forbidden(
                    &p(&format!("spec.{s}")),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    errs
}

pub fn pv_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = pv(new);
    for s in PV_SOURCES {
        if old
            .pointer(&format!("/spec/{s}"))
            .is_some_and(|x| !x.is_null())
        {
            // The volume source is fixed once created (upstream compares the whole source).
            if new.pointer(&format!("/spec/{s}")) != old.pointer(&format!("/spec/{s}")) {
                errs.push(FieldError::forbidden(
                    &p("spec.persistentvolumesource"),
                    "spec.persistentvolumesource is forbidden.",
                ));
            }
        }
    }
    errs
}

// ---- limit ranges and quotas ---------------------------------------------------------------------------

/// Upstream's `SetDefaults_LimitRangeItem`: a container's default limit is its max, its
/// default request the default limit (or the min).
pub fn limit_range_defaults(v: &mut Value) {
    for item in v
        .pointer_mut("/spec/limits")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let get = |item: &Map<String, Value>, k: &str| {
            item.get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let (max, min) = (get(item, "max"), get(item, "min"));
        let mut default = get(item, "default");
        for (k, q) in &max {
            default.entry(k.clone()).or_insert_with(|| q.clone());
        }
        let mut request = get(item, "defaultRequest");
        for (k, q) in default.iter().chain(min.iter()) {
            request.entry(k.clone()).or_insert_with(|| q.clone());
        }
        if !default.is_empty() {
            item.insert("default".into(), Value::Object(default));
        }
        if !request.is_empty() {
            item.insert("defaultRequest".into(), Value::Object(request));
        }
    }
}

/// Upstream's `ValidateLimitRange`: supported and distinct types, min ≤ max.
pub fn limit_range(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    const TYPES: &[&str] = &["Container", "PersistentVolumeClaim", "Pod"];
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in v
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ip = format!("spec.limits[{i}]");
        let ty = item.get("type").and_then(Value::as_str).unwrap_or("");
        if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported(
                &p(&format!("{ip}.type")),
                ty,
                TYPES,
            ));
        }
        if !seen.insert(ty.to_string()) {
            errs.push(FieldError::duplicate(&p(&format!("{ip}.type")), ty));
        }
        let q = |k: &str, r: &str| {
            item.get(k)
                .and_then(|m| m.get(r))
                .and_then(Value::as_str)
                .and_then(|s| kox_api::quantity::Quantity::parse(s).ok())
        };
        let resources: std::collections::BTreeSet<&String> = ["min", "max"]
            .iter()
            .filter_map(|k| item.get(*k).and_then(Value::as_object))
            .flat_map(|m| m.keys())
            .collect();
        for r in resources {
            if let (Some(min), Some(max)) = (q("min", r), q("max", r))
                && min.as_nanos() > max.as_nanos()
            {
                errs.push(FieldError::invalid(
                    &p(&format!("{ip}.min[{r}]")),
                    min.canonical(),
                    format!(
                        "min value {} is greater than max value {}",
                        min.canonical(),
                        max.canonical()
                    ),
                ));
            }
        }
    }
    errs
}

pub fn limit_range_update(new: &Value, _old: &Value) -> FieldErrors {
    limit_range(new)
}

/// Upstream's `ValidateResourceQuota`: hard limits are valid, non-negative quantities.
pub fn resource_quota(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    for (k, q) in v
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let path = format!("spec.hard[{k}]");
        let s = q.as_str().unwrap_or("");
        match kox_api::quantity::Quantity::parse(s) {
            Err(_) => errs.push(FieldError::invalid(
                &p(&path),
                s,
                "must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$",
            )),
            Ok(q) if q.as_nanos() < 0 => errs.push(FieldError::invalid(
                &p(&path),
                q.canonical(),
                "must be greater than or equal to 0",
            )),
            Ok(_) => {}
        }
    }
    const SCOPES: &[&str] = &[
        "BestEffort",
        "CrossNamespacePodAffinity",
        "NotBestEffort",
        "NotTerminating",
        "PriorityClass",
        "Terminating",
    ];
    for (i, s) in v
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let s = s.as_str().unwrap_or("");
        if !SCOPES.contains(&s) {
            errs.push(FieldError::not_supported(
                &p(&format!("spec.scopes[{i}]")),
                s,
                SCOPES,
            ));
        }
    }
    errs
}

pub fn resource_quota_update(new: &Value, _old: &Value) -> FieldErrors {
    resource_quota(new)
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

/// Upstream's `ValidateService`: DNS-1035 names, type, ports (names, numbers, protocols,
/// target ports, node ports) and what each type requires.
pub fn service(v: &Value) -> FieldErrors {
    let mut errs = object_meta(v, true, kox_api::validation::name_is_dns1035_label);
    let ty = str_at(v, "spec.type").unwrap_or("ClusterIP");
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(&p("spec.type"), ty, TYPES));
    }
    let ports: Vec<&Value> = v
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let headless = str_at(v, "spec.clusterIP") == Some("None");
    if ty != "ExternalName" && !headless && ports.is_empty() {
        errs.push(FieldError::required(&p("spec.ports"), ""));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = port.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(&p(&format!("{pp}.name")), ""));
        } else if !name.is_empty() {
            dns1123_label(name, &format!("{pp}.name"), &mut errs);
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&p(&format!("{pp}.name")), name));
            }
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        for msg in kox_api::validation::is_valid_port_num(number) {
            errs.push(FieldError::invalid(&p(&format!("{pp}.port")), number, msg));
        }
        protocol(port, &format!("{pp}.protocol"), &mut errs);
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                for msg in kox_api::validation::is_valid_port_num(n) {
                    errs.push(FieldError::invalid(&p(&format!("{pp}.targetPort")), n, msg));
                }
            }
            Some(Value::String(s)) => {
                for msg in kox_api::validation::is_valid_port_name(s) {
                    errs.push(FieldError::invalid(
                        &p(&format!("{pp}.targetPort")),
                        s.as_str(),
                        msg,
                    ));
                }
            }
            _ => {}
        }
        let node_port = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 && ty == "ClusterIP" {
            errs.push(FieldError::forbidden(
                &p(&format!("{pp}.nodePort")),
                "may not be used when `type` is 'ClusterIP'",
            ));
        } else if node_port != 0 {
            for msg in kox_api::validation::is_valid_port_num(node_port) {
                errs.push(FieldError::invalid(
                    &p(&format!("{pp}.nodePort")),
                    node_port,
                    msg,
                ));
            }
        }
    }
    if ty == "ExternalName" {
        match str_at(v, "spec.externalName").unwrap_or("") {
            "" => errs.push(FieldError::required(&p("spec.externalName"), "")),
            name => {
                let trimmed = name.strip_suffix('.').unwrap_or(name);
                for msg in kox_api::validation::is_dns1123_subdomain(trimmed) {
                    errs.push(FieldError::invalid(&p("spec.externalName"), name, msg));
                }
            }
        }
    }
    const AFFINITY: &[&str] = &["ClientIP", "None"];
    if let Some(a) = str_at(v, "spec.sessionAffinity")
        && !AFFINITY.contains(&a)
    {
        errs.push(FieldError::not_supported(
            &p("spec.sessionAffinity"),
            a,
            AFFINITY,
        ));
    }
    if let Some(sel) = v.pointer("/spec/selector").filter(|s| !s.is_null()) {
        errs.extend(kox_api::validation::validate_labels(
            &string_map(Some(sel)),
            &p("spec.selector"),
        ));
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{check, with};

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default"})
    }

    #[test]
    fn namespaces_are_dns_labels() {
        check(
            super::namespace(&json!({"metadata": {"name": "a.b"}})),
            &["metadata.name: Invalid value: \"a.b\": must not contain dots"],
        );
        check(
            super::namespace(&json!({"metadata": {"name": "ok", "namespace": "x"}})),
            &["metadata.namespace: Forbidden: not allowed on this type"],
        );
    }

    #[test]
    fn config_map_keys_must_be_valid_and_unique() {
        check(
            super::config_map(&json!({"metadata": meta("c"),
                "data": {"a b": "1", "k": "v"}, "binaryData": {"k": "AA=="}})),
            &[
                "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                "data[k]: Invalid value: \"k\": duplicate of key present in binaryData",
            ],
        );
    }

    #[test]
    fn immutable_config_maps_keep_their_data() {
        let old = json!({"metadata": meta("c"), "immutable": true, "data": {"a": "1"}});
        check(super::config_map_update(&old, &old), &[]);
        check(
            super::config_map_update(&with(&old, json!({"data": {"a": "2"}})), &old),
            &["data: Forbidden: field is immutable when `immutable` is set"],
        );
        check(
            super::config_map_update(&with(&old, json!({"immutable": false})), &old),
            &["immutable: Forbidden: field is immutable when `immutable` is set"],
        );
        let mutable = with(&old, json!({"immutable": null}));
        check(
            super::config_map_update(&with(&mutable, json!({"data": {"a": "2"}})), &mutable),
            &[],
        );
    }

    #[test]
    fn secret_types_require_their_keys() {
        let s = |ty: &str, data: Value| json!({"metadata": meta("s"), "type": ty, "data": data});
        check(
            super::secret(&s("kubernetes.io/tls", json!({"tls.crt": "AA=="}))),
            &["data[tls.key]: Required value"],
        );
        check(
            super::secret(&s("kubernetes.io/dockerconfigjson", json!({}))),
            &["data[.dockerconfigjson]: Required value"],
        );
        let errs = super::secret(&s(
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": "bm90IGpzb24="}),
        ));
        assert_eq!(errs.len(), 1);
        assert!(errs.0[0].to_string().starts_with(
            "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": "
        ));
        check(
            super::secret(&s("kubernetes.io/basic-auth", json!({}))),
            &[
                "data[username]: Required value",
                "data[password]: Required value",
            ],
        );
        check(
            super::secret(&s("kubernetes.io/ssh-auth", json!({"ssh-privatekey": ""}))),
            &["data[ssh-privatekey]: Required value"],
        );
        check(
            super::secret(&s("kubernetes.io/service-account-token", json!({}))),
            &["metadata.annotations[kubernetes.io/service-account.name]: Required value"],
        );
        check(
            super::secret(&s("example.com/custom", json!({"x": "AA=="}))),
            &[],
        );
    }

    #[test]
    fn secret_string_data_is_merged_into_data() {
        let mut v =
            json!({"metadata": meta("s"), "data": {"a": "MQ=="}, "stringData": {"b": "two"}});
        super::secret_defaults(&mut v);
        assert_eq!(
            v,
            json!({"metadata": meta("s"), "data": {"a": "MQ==", "b": "dHdv"}, "type": "Opaque"})
        );
    }

    #[test]
    fn secret_type_is_immutable_and_immutable_secrets_keep_data() {
        let old = json!({"metadata": meta("s"), "type": "Opaque", "immutable": true, "data": {"a": "MQ=="}});
        check(
            super::secret_update(
                &with(
                    &old,
                    json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
                ),
                &old,
            ),
            &[
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
                "data: Forbidden: field is immutable when `immutable` is set",
            ],
        );
    }

    #[test]
    fn endpoints_need_addresses_valid_ips_and_named_ports() {
        let mut v = json!({"metadata": meta("e"), "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "127.0.0.1"}, {"ip": "nope"}],
             "ports": [{"port": 80}, {"port": 0, "name": "Bad"}]},
            {"ports": [{"port": 80}]}]});
        super::endpoints_defaults(&mut v);
        check(
            super::endpoints(&v),
            &[
                "subsets[0].addresses[1].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "subsets[0].addresses[2].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[0].ports[0].name: Required value",
                "subsets[0].ports[1].name: Invalid value: \"Bad\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "subsets[0].ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
            ],
        );
    }

    #[test]
    fn node_taints_and_set_once_fields() {
        let v = json!({"metadata": {"name": "n1"}, "spec": {"taints": [
            {"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "Sometimes"}]}});
        check(
            super::node(&v),
            &[
                "spec.taints[1]: Duplicate value: core.Taint{Key:\"a\", Value:\"\", Effect:\"NoSchedule\", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair",
                "spec.taints[2].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
            ],
        );
        let old = json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.0.0/24", "providerID": "kind://a"}});
        check(
            super::node_update(
                &with(
                    &old,
                    json!({"spec": {"podCIDR": "10.244.1.0/24", "providerID": "kind://b"}}),
                ),
                &old,
            ),
            &[
                "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid",
                "spec.providerID: Forbidden: node updates may only set providerID except from \"\" to valid",
            ],
        );
        let fresh = json!({"metadata": {"name": "n1"}, "spec": {}});
        check(super::node_update(&old, &fresh), &[]);
        let mut with_capacity =
            json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "2"}}});
        super::node_defaults(&mut with_capacity);
        assert_eq!(with_capacity["status"]["allocatable"], json!({"cpu": "2"}));
    }

    #[test]
    fn events_must_match_their_objects_namespace() {
        let ev = json!({"metadata": {"name": "x.1", "namespace": "dev"},
            "involvedObject": {"kind": "Pod", "name": "x", "namespace": "dev"}, "reason": "Started"});
        check(super::event(&ev), &[]);
        check(
            super::event(&with(&ev, json!({"involvedObject": {"namespace": "prod"}}))),
            &["involvedObject.namespace: Invalid value: \"prod\": does not match event.namespace"],
        );
        check(
            super::event(&with(
                &ev,
                json!({"eventTime": "2025-01-01T00:00:00.000000Z"}),
            )),
            &[
                "reportingComponent: Required value",
                "reportingComponent: Invalid value: \"\": name part must be non-empty",
                "reportingComponent: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "reportingInstance: Required value",
                "action: Required value",
            ],
        );
    }

    #[test]
    fn claims_need_access_modes_and_storage() {
        let mut v = json!({"metadata": meta("data"), "spec": {}});
        super::pvc_defaults(&mut v);
        assert_eq!(v["status"]["phase"], "Pending");
        check(
            super::pvc(&v),
            &[
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ],
        );
        let v = with(
            &v,
            json!({"spec": {"accessModes": ["ReadWriteOncePod", "ReadOnlyMany", "Sometimes"],
                "resources": {"requests": {"storage": "0"}}}}),
        );
        check(
            super::pvc(&v),
            &[
                "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
                "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
            ],
        );
    }

    #[test]
    fn bound_claims_may_only_grow() {
        let old = json!({"metadata": meta("data"), "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv1", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        check(
            super::pvc_update(
                &with(
                    &old,
                    json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}),
                ),
                &old,
            ),
            &[],
        );
        check(
            super::pvc_update(
                &with(
                    &old,
                    json!({"spec": {"resources": {"requests": {"storage": "512Mi"}}}}),
                ),
                &old,
            ),
            &[
                "spec.resources.requests.storage: Forbidden: field can not be less than previous value",
            ],
        );
        check(
            super::pvc_update(
                &with(&old, json!({"spec": {"accessModes": ["ReadWriteMany"]}})),
                &old,
            ),
            &[
                "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ],
        );
    }

    #[test]
    fn volumes_need_one_source_and_a_storage_capacity() {
        let mut v = json!({"metadata": {"name": "pv1"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data"}}});
        super::pv_defaults(&mut v);
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        check(super::pv(&v), &[]);
        check(
            super::pv(&with(
                &v,
                json!({"spec": {"hostPath": null, "capacity": {"storage": null, "cpu": "1"}}}),
            )),
            &[
                "spec.capacity: Unsupported value: map[string]string{\"cpu\":\"1\"}: supported values: \"storage\"",
                "spec: Required value: must specify a volume type",
            ],
        );
    }

    #[test]
    fn limit_ranges_and_quotas() {
        let mut v = json!({"metadata": meta("l"), "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "2", "memory": "1Mi"}},
            {"type": "Container"}, {"type": "Node"}]}});
        super::limit_range_defaults(&mut v);
        assert_eq!(v["spec"]["limits"][0]["default"], json!({"cpu": "1"}));
        assert_eq!(
            v["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "1", "memory": "1Mi"})
        );
        check(
            super::limit_range(&v),
            &[
                "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
                "spec.limits[1].type: Duplicate value: \"Container\"",
                "spec.limits[2].type: Unsupported value: \"Node\": supported values: \"Container\", \"PersistentVolumeClaim\", \"Pod\"",
            ],
        );
        check(
            super::resource_quota(
                &json!({"metadata": meta("q"), "spec": {"hard": {"pods": "-1", "cpu": "lots"}}}),
            ),
            &[
                "spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.hard[cpu]: Invalid value: \"lots\": must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$",
            ],
        );
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

    #[test]
    fn service_ports_are_checked_like_upstream() {
        let mut v = json!({"metadata": meta("web"), "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "web_port", "nodePort": 30080},
            {"name": "http", "port": 443, "protocol": "HTTP"}]}});
        super::service_defaults(&mut v);
        check(
            super::service(&v),
            &[
                "spec.ports[0].targetPort: Invalid value: \"web_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                "spec.ports[1].name: Duplicate value: \"http\"",
                "spec.ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ],
        );
        check(
            super::service(&json!({"metadata": meta("1web"), "spec": {"type": "ExternalName"}})),
            &[
                "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                "spec.externalName: Required value",
            ],
        );
    }
}
