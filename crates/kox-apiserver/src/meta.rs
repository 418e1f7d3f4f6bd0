//! Object metadata the server owns: uid, timestamps, names from `generateName`, resource
//! versions, and detection of fields the kind does not know.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kox_api::field::{ErrorList as FieldErrors, FieldError, Path};
use rand::Rng;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// Now, as upstream's RFC 3339 seconds (`2026-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A name from `generateName`: the prefix plus five characters from upstream's alphabet.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    // Upstream trims the prefix so the whole name stays within 63 characters.
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

/// The object's `metadata` map, created if missing.
pub fn metadata_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, rv: i64) {
    metadata_mut(obj).insert("resourceVersion".into(), json!(rv.to_string()));
}

/// Parses a `resourceVersion` given by a client.
pub fn parse_resource_version(rv: &str) -> Option<i64> {
    rv.parse::<i64>().ok().filter(|v| *v >= 0)
}

/// The `resourceVersion` a list or watch asks for: `None` for any (absent, empty or "0"), else
/// a revision, which is never negative (upstream parses it as an unsigned integer).
pub fn requested_resource_version(rv: Option<&str>) -> ApiResult<Option<i64>> {
    match rv {
        None | Some("" | "0") => Ok(None),
        Some(rv) => rv
            .parse::<u64>()
            .ok()
            .and_then(|v| i64::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"
                ))
            }),
    }
}

/// Upstream's `path.ValidatePathSegmentName`: the name rule every kind's metadata must pass,
/// whatever stricter rule the kind adds, since names become URL path segments.
pub fn path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if !prefix && let Some(bad) = [".", ".."].into_iter().find(|b| name == *b) {
        return vec![format!("may not be '{bad}'")];
    }
    ["/", "%"]
        .into_iter()
        .filter(|c| name.contains(c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// The metadata checks `rest.BeforeCreate` and `BeforeUpdate` run for every kind
/// (`ValidateObjectMetaAccessor` with path-segment names): name, namespace, labels,
/// annotations, owner references, finalizers.
pub fn validate_common(obj: &Value, namespaced: bool) -> FieldErrors {
    let meta: ObjectMeta = obj
        .get("metadata")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    kox_api::validation::validate_object_meta(
        &meta,
        namespaced,
        path_segment_name,
        &Path::new("metadata"),
    )
}

/// [`validate_common`] plus what `ValidateObjectMetaAccessorUpdate` adds that the registry does
/// not already restore from the stored object: no finalizer may be added once the object is
/// being deleted.
pub fn validate_common_update(new: &Value, old: &Value, namespaced: bool) -> FieldErrors {
    let mut errs = validate_common(new, namespaced);
    let uid = |v: &Value| {
        v.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if let Some(new_uid) = uid(new).filter(|u| Some(u) != uid(old).as_ref()) {
        errs.push(FieldError::invalid(
            &Path::new("metadata.uid"),
            new_uid,
            "field is immutable",
        ));
    }
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let finalizers = |v: &Value| -> BTreeSet<String> {
            v.pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        };
        let added: Vec<String> = finalizers(new)
            .difference(&finalizers(old))
            .cloned()
            .collect();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            errs.push(FieldError::forbidden(
                &Path::new("metadata.finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    errs
}

/// Fields present (non-null) in `input` but absent from its typed round trip `normalized`:
/// the unknown fields, as upstream's strict decoding names them (`spec.foo`, `a.b[0].c`).
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(input, normalized, String::new(), &mut out);
    out
}

fn walk(input: &Value, normalized: &Value, path: String, out: &mut Vec<String>) {
    match (input, normalized) {
        (Value::Object(i), Value::Object(n)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match n.get(k) {
                    Some(nv) => walk(v, nv, p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(n)) => {
            for (idx, (iv, nv)) in i.iter().zip(n).enumerate() {
                walk(iv, nv, format!("{path}[{idx}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_uid_is_immutable_and_a_missing_one_is_not_checked() {
        let old = json!({"metadata": {"name": "a", "uid": "u1"}});
        let changed = json!({"metadata": {"name": "a", "uid": "u2"}});
        let errs = validate_common_update(&changed, &old, false);
        assert_eq!(
            errs.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["metadata.uid: Invalid value: \"u2\": field is immutable".to_string()]
        );
        assert!(validate_common_update(&old, &old, false).is_empty());
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let input = json!({"spec": {"containers": [{"name": "a", "bogus": 1}], "extra": {"x": 1}, "gone": null}});
        let normalized = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            unknown_fields(&input, &normalized),
            vec!["spec.containers[0].bogus", "spec.extra"]
        );
    }

    #[test]
    fn path_segment_names_refuse_dots_slashes_and_percents() {
        assert!(path_segment_name("web-1", false).is_empty());
        assert_eq!(path_segment_name("..", false), vec!["may not be '..'"]);
        assert!(path_segment_name("..", true).is_empty());
        assert_eq!(
            path_segment_name("a/b%c", false),
            vec!["may not contain '/'", "may not contain '%'"]
        );
    }

    #[test]
    fn finalizers_cannot_be_added_to_an_object_being_deleted() {
        let old = json!({"metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["a.io/x"]}});
        let new = json!({"metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["a.io/x", "b.io/y"]}});
        let errs = validate_common_update(&new, &old, false);
        assert_eq!(
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            vec![
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b.io/y\"}"
            ]
        );
        assert!(validate_common_update(&old, &new, false).is_empty());
    }

    #[test]
    fn generated_names_keep_the_prefix_and_add_five_characters() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-"));
        assert_eq!(n.len(), 9);
    }
}
