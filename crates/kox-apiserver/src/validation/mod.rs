//! Per-kind defaulting and validation, as upstream's `pkg/apis/*/validation` and
//! `pkg/apis/*/v1/defaults.go` do, with upstream's messages.
//!
//! Works on the canonical JSON of an object (after the typed round trip), so every field that
//! exists has the right type; only values are checked here. Every kind's metadata goes through
//! kox-api's `validate_object_meta` with the kind's name rule. One file per area: `pods` (pod
//! specs, shared by every template, and the kinds that are mostly one), `core` (namespaces,
//! config maps, secrets, nodes, events), `services` (with endpoints), `storage` (volumes,
//! claims, limits, quotas), `apps`, `batch` (with `cron`, the schedule parser), `rbac`,
//! `networking` (with discovery) and `cluster` (the other groups).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kox_api::field::BadValue;
use kox_api::validation::NameValidator;
use serde_json::{Map, Value};

pub use kox_api::field::{ErrorList as FieldErrors, FieldError, Path};

mod admissionregistration;
mod apps;
mod batch;
mod cluster;
mod core;
mod cron;
mod networking;
pub(crate) mod pods;
mod rbac;
mod services;
mod storage;

pub use admissionregistration::*;
pub use apps::*;
pub use batch::*;
pub use cluster::*;
pub use core::*;
pub use networking::*;
pub use pods::*;
pub use rbac::*;
pub use services::*;
pub use storage::*;

/// A field path from its rendered form (`spec.containers[0].name`).
pub fn p(path: &str) -> Path {
    Path::new(path)
}

/// Sets `key` to `value` when it is absent or null.
fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// The object at `key` of `m`, created empty when absent or null.
fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    set_default(m, key, Value::Object(Map::new()));
    m.get_mut(key).and_then(Value::as_object_mut)
}

// ---- metadata ----------------------------------------------------------------------------------

/// Upstream's `ValidateObjectMeta` of `metadata` with the kind's name rule and scope.
fn object_meta(v: &Value, namespaced: bool, name: NameValidator) -> FieldErrors {
    let meta: ObjectMeta = v
        .get("metadata")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    kox_api::validation::validate_object_meta(&meta, namespaced, name, &p("metadata"))
}

/// Metadata of a namespaced object whose name is a DNS-1123 subdomain (most kinds).
fn namespaced_meta(v: &Value) -> FieldErrors {
    object_meta(v, true, kox_api::validation::name_is_dns_subdomain)
}

/// Metadata of a cluster-scoped object whose name is a DNS-1123 subdomain.
fn cluster_meta(v: &Value) -> FieldErrors {
    object_meta(v, false, kox_api::validation::name_is_dns_subdomain)
}

/// Upstream's `IsValidPathSegmentName` (names that only need to fit in a URL path).
fn is_valid_path_segment_name(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    is_valid_path_segment_prefix(name)
}

fn is_valid_path_segment_prefix(name: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|c| name.contains(*c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// Upstream's `ValidatePathSegmentName` as a name rule (RBAC objects, events, …).
fn name_is_path_segment(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_valid_path_segment_prefix(name)
    } else {
        is_valid_path_segment_name(name)
    }
}

/// The items of the array at a JSON pointer (none when absent).
fn items<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The string field `k` of an object, or empty.
fn field_str<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

// ---- small field rules ---------------------------------------------------------------------------

/// Upstream's `ValidateNonnegativeField` on an integer at `pointer`, if present.
fn nonnegative(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    if let Some(n) = v
        .pointer(pointer)
        .and_then(Value::as_i64)
        .filter(|n| *n < 0)
    {
        errs.push(FieldError::invalid(
            &p(path),
            n,
            "must be greater than or equal to 0",
        ));
    }
}

/// Upstream's `ValidateImmutableField`: `Invalid value: <new>: field is immutable`.
fn immutable(new: &Value, old: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    let (n, o) = (new.pointer(pointer), old.pointer(pointer));
    if n.filter(|x| !x.is_null()) != o.filter(|x| !x.is_null()) {
        errs.push(FieldError::invalid(
            &p(path),
            go_value(n.unwrap_or(&Value::Null)),
            "field is immutable",
        ));
    }
}

/// A JSON value as upstream's field errors print a Go value: scalars plainly, strings
/// quoted, maps of strings as `map[string]string{…}`, anything else as JSON.
fn go_value(v: &Value) -> BadValue {
    match v {
        Value::Object(m) if m.values().all(Value::is_string) => BadValue::Raw(go_string_map(v)),
        Value::Array(a) if a.iter().all(Value::is_string) => BadValue::StringList(
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        ),
        Value::Object(_) | Value::Array(_) => BadValue::Raw(v.to_string()),
        other => BadValue::from(other),
    }
}

/// A string map as Go's `%#v` prints it: `map[string]string{"a":"1", "b":"2"}`.
fn go_string_map(v: &Value) -> String {
    let Some(m) = v.as_object() else {
        return "map[string]string(nil)".into();
    };
    let sorted: BTreeMap<&String, &str> = m
        .iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    let pairs: Vec<String> = sorted
        .iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                kox_api::field::go_quote(k),
                kox_api::field::go_quote(v)
            )
        })
        .collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// A label selector as upstream prints the `metav1.LabelSelector` value of an error.
fn go_label_selector(v: Option<&Value>) -> BadValue {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return BadValue::Null;
    };
    let labels = match v.get("matchLabels").filter(|m| !m.is_null()) {
        Some(m) => go_string_map(m),
        None => "map[string]string(nil)".into(),
    };
    let exprs = match v.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|e| {
                    let s = |k: &str| {
                        kox_api::field::go_quote(e.get(k).and_then(Value::as_str).unwrap_or(""))
                    };
                    let values = match e.get("values").and_then(Value::as_array) {
                        None => "[]string(nil)".to_string(),
                        Some(vs) => format!(
                            "[]string{{{}}}",
                            vs.iter()
                                .map(|x| kox_api::field::go_quote(x.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        s("key"),
                        s("operator")
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    BadValue::Raw(format!(
        "v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}"
    ))
}

/// A string-to-string map from JSON (labels, selectors, node selectors).
fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect()
}

/// Upstream's `ValidateLabels` of the string map at `pointer`.
fn labels_at(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    if let Some(m) = v.pointer(pointer).filter(|m| !m.is_null()) {
        errs.extend(kox_api::validation::validate_labels(
            &string_map(Some(m)),
            &p(path),
        ));
    }
}

/// Upstream's `ValidateAnnotations` of the string map at `pointer`.
fn annotations_at(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    if let Some(m) = v.pointer(pointer).filter(|m| !m.is_null()) {
        errs.extend(kox_api::validation::validate_annotations(
            &string_map(Some(m)),
            &p(path),
        ));
    }
}

/// The `metav1.LabelSelector` at `pointer`, if present.
fn label_selector(v: &Value, pointer: &str) -> Option<LabelSelector> {
    v.pointer(pointer)
        .filter(|s| !s.is_null())
        .and_then(|s| serde_json::from_value(s.clone()).ok())
}

/// Upstream's `ValidateLabelSelector` of the selector at `pointer`, if present.
fn selector_at(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    if let Some(ls) = label_selector(v, pointer) {
        errs.extend(kox_api::label_selector::validate_label_selector(
            &ls,
            &p(path),
        ));
    }
}

/// Whether the selector at `pointer` has neither match labels nor expressions.
fn selector_is_empty(v: &Value, pointer: &str) -> bool {
    label_selector(v, pointer).is_none_or(|ls| {
        ls.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && ls.match_expressions.as_ref().is_none_or(Vec::is_empty)
    })
}

/// Whether a `LabelSelector` (JSON) selects `labels` (JSON map); a nil selector selects
/// nothing, an invalid one nothing either.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let ls: Option<LabelSelector> = match selector {
        Value::Null => None,
        s => match serde_json::from_value(s.clone()) {
            Ok(ls) => Some(ls),
            Err(_) => return false,
        },
    };
    kox_api::label_selector::Selector::from_label_selector(ls.as_ref())
        .is_ok_and(|sel| sel.matches(&string_map(Some(labels))))
}

/// The controllers' common check: a required, non-empty selector that matches the template's
/// labels (`kind` names the controller in the empty-selector message).
fn controller_selector(v: &Value, kind: &str, errs: &mut FieldErrors) {
    match v.pointer("/spec/selector").filter(|s| !s.is_null()) {
        None => errs.push(FieldError::required(&p("spec.selector"), "")),
        Some(_) => {
            selector_at(v, "/spec/selector", "spec.selector", errs);
            if selector_is_empty(v, "/spec/selector") {
                errs.push(FieldError::invalid(
                    &p("spec.selector"),
                    go_label_selector(v.pointer("/spec/selector")),
                    format!("empty selector is invalid for {kind}"),
                ));
            }
        }
    }
    template_matches_selector(v, "/spec/selector", "/spec/template", "spec.template", errs);
}

/// The template's labels must be selected by the selector at `selector`: an empty selector
/// selects everything, a missing one nothing (so upstream reports both a required selector
/// and a mismatch).
fn template_matches_selector(
    v: &Value,
    selector: &str,
    template: &str,
    path: &str,
    errs: &mut FieldErrors,
) {
    let sel = v.pointer(selector).cloned().unwrap_or(Value::Null);
    if !sel.is_null() && selector_is_empty(v, selector) {
        return;
    }
    let labels = v
        .pointer(&format!("{template}/metadata/labels"))
        .cloned()
        .unwrap_or(Value::Null);
    if !selector_matches(&sel, &labels) {
        errs.push(FieldError::invalid(
            &p(&format!("{path}.metadata.labels")),
            BadValue::Raw(go_string_map(&labels)),
            "`selector` does not match template `labels`",
        ));
    }
}

/// The integer or percentage at `pointer`: `(value, is_percent, valid)`.
fn int_or_percent(v: &Value) -> (i64, bool, bool) {
    match v {
        Value::Number(n) => (n.as_i64().unwrap_or(0), false, true),
        Value::String(s) => {
            let digits = s.strip_suffix('%').unwrap_or("");
            match (
                digits.is_empty(),
                digits.bytes().all(|b| b.is_ascii_digit()),
            ) {
                (false, true) => (digits.parse().unwrap_or(i64::MAX), true, true),
                // Upstream's IntValue of a non-percent string: its integer, else 0.
                _ => (s.parse().unwrap_or(0), false, false),
            }
        }
        _ => (0, false, true),
    }
}

/// Upstream's `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent` at `pointer`.
fn positive_int_or_percent(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    let Some(x) = v.pointer(pointer).filter(|x| !x.is_null()) else {
        return;
    };
    let shown = BadValue::Raw(match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let (n, percent, valid) = int_or_percent(x);
    if !valid {
        errs.push(FieldError::invalid(
            &p(path),
            shown.clone(),
            kox_api::validation::regex_error(
                "a valid percent string must be a numeric string followed by an ending '%'",
                "[0-9]+%",
                &["1%", "93%"],
            ),
        ));
    } else if !percent && n < 0 {
        errs.push(FieldError::invalid(
            &p(path),
            n,
            "must be greater than or equal to 0",
        ));
    }
    if percent && n > 100 {
        errs.push(FieldError::invalid(
            &p(path),
            shown,
            "must not be greater than 100%",
        ));
    }
}

/// The integer or percentage value at `pointer` (0 when absent), as upstream's
/// `getIntOrPercentValue`.
fn int_or_percent_value(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).map(|x| int_or_percent(x).0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::FieldErrors;

    /// Renders errors as `path: message` lines, as kubectl shows them.
    pub fn messages(errs: &FieldErrors) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    /// Checks that `errs` are exactly `expected` (`path: message` each).
    pub fn check(errs: FieldErrors, expected: &[&str]) {
        assert_eq!(messages(&errs), expected);
    }

    /// `object` with `patch` merged in (RFC 7386).
    pub fn with(object: &Value, patch: Value) -> Value {
        let mut v = object.clone();
        json_patch::merge(&mut v, &patch);
        v
    }

    #[test]
    fn go_values_render_like_upstream() {
        assert_eq!(
            super::go_string_map(&json!({"b": "2", "a": "1"})),
            r#"map[string]string{"a":"1", "b":"2"}"#
        );
        assert_eq!(super::go_string_map(&Value::Null), "map[string]string(nil)");
        assert_eq!(
            super::go_label_selector(Some(&json!({"matchLabels": {}}))).to_string(),
            "v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
    }

    #[test]
    fn path_segment_names() {
        assert_eq!(super::is_valid_path_segment_name(".."), ["may not be '..'"]);
        assert_eq!(
            super::is_valid_path_segment_name("a/b%c"),
            ["may not contain '/'", "may not contain '%'"]
        );
        assert!(super::is_valid_path_segment_name("system:admin").is_empty());
    }

    #[test]
    fn int_or_percent_rules() {
        let mut errs = FieldErrors::default();
        let v = json!({"a": "150%", "b": -1, "c": "x", "d": "50%", "e": 3});
        for (k, path) in [
            ("/a", "a"),
            ("/b", "b"),
            ("/c", "c"),
            ("/d", "d"),
            ("/e", "e"),
        ] {
            super::positive_int_or_percent(&v, k, path, &mut errs);
        }
        check(
            errs,
            &[
                "a: Invalid value: 150%: must not be greater than 100%",
                "b: Invalid value: -1: must be greater than or equal to 0",
                "c: Invalid value: x: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            ],
        );
    }
}
