//! The core group's namespaces, config maps, secrets, service accounts, nodes and events.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::{
    FieldError, FieldErrors, cluster_meta, immutable, namespaced_meta, object_meta, p, set_default,
};
use crate::strategy::str_at;
use kox_api::field::BadValue;

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

/// A namespace is Terminating exactly while it is being deleted (upstream's
/// `ValidateNamespaceStatusUpdate`, whose path really reads `status.Phase`): nobody marks a
/// live namespace Terminating, which would refuse all new content in it.
pub fn namespace_update(new: &Value, _old: &Value) -> FieldErrors {
    let mut errs = namespace(new);
    let phase = str_at(new, "status.phase").unwrap_or("Active");
    let deleting = new
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    let (want, detail) = if deleting {
        (
            "Terminating",
            "may only be 'Terminating' if `deletionTimestamp` is not empty",
        )
    } else {
        (
            "Active",
            "may only be 'Active' if `deletionTimestamp` is empty",
        )
    };
    if phase != want {
        errs.push(FieldError::invalid(&p("status.Phase"), phase, detail));
    }
    errs
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

// ---- service accounts and nodes -------------------------------------------------------------------

pub fn service_account(v: &Value) -> FieldErrors {
    namespaced_meta(v)
}

pub fn service_account_update(new: &Value, _old: &Value) -> FieldErrors {
    service_account(new)
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{check, with};

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default"})
    }

    #[test]
    fn a_namespace_is_terminating_exactly_while_it_is_deleted() {
        let live = json!({"metadata": {"name": "ns"}, "status": {"phase": "Active"}});
        check(super::namespace_update(&live, &live), &[]);
        let marked = with(&live, json!({"status": {"phase": "Terminating"}}));
        check(
            super::namespace_update(&marked, &live),
            &[
                "status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty",
            ],
        );
        let deleted = with(
            &marked,
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        check(super::namespace_update(&deleted, &live), &[]);
        let revived = with(&deleted, json!({"status": {"phase": "Active"}}));
        check(
            super::namespace_update(&revived, &deleted),
            &[
                "status.Phase: Invalid value: \"Active\": may only be 'Terminating' if `deletionTimestamp` is not empty",
            ],
        );
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
}
