//! Strategic merge patch (`application/strategic-merge-patch+json`) over
//! `serde_json::Value`, applied as upstream's `strategicpatch.StrategicMergeMapPatch`.
//!
//! Objects merge recursively and `null` deletes a key. Lists tagged `merge` in the
//! [`schema`] table merge by their merge key (lists of objects) or as a set (lists of
//! scalars); other lists are replaced. Directives: `$patch: replace|delete` on an object,
//! `$patch: delete|replace` items in a merged list, `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`. New items are placed
//! the way upstream places them (new list items ahead of live-only ones unless
//! `$setElementOrder` says otherwise), because clients observe that order.
//!
//! Deliberate differences from upstream, each where upstream would store a patch
//! directive or otherwise corrupt the object: values inserted where the live object had
//! nothing are cleaned of directives and `null`s (as RFC 7386 merge patch would), and a
//! `$deleteFromPrimitiveList` for a missing or non-merge list only deletes.

pub mod schema;

use serde_json::{Map, Value};

use crate::status::{self, Status};
pub use schema::{
    FieldPatch, GENERIC_OBJECT, Strategy, TypeSchema, schema_for_kind, schema_for_object,
};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Why a patch could not be applied; messages are upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch or the object is not a JSON object.
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// A list contains lists.
    #[error("lists of lists are not supported")]
    NoListOfLists,
    /// A `$deleteFromPrimitiveList` directive is malformed.
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    /// A `$retainKeys` directive is malformed or contradicts the patch.
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    /// A `$setElementOrder` directive is malformed.
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    /// Any other failure (missing merge key, unknown directive, mixed item types, …).
    #[error("{0}")]
    Other(String),
}

impl PatchError {
    /// The Status the API server answers with, as upstream maps these errors: malformed
    /// directives are 400 `BadRequest`, lists of lists 422, anything else a 500 without
    /// a reason (kubectl prints `Error from server: <message>`).
    pub fn to_status(&self) -> Status {
        match self {
            PatchError::BadJsonDoc
            | PatchError::BadPatchFormatForPrimitiveList
            | PatchError::BadPatchFormatForRetainKeys
            | PatchError::BadPatchFormatForSetElementOrderList => {
                status::bad_request(&self.to_string())
            }
            PatchError::NoListOfLists => {
                let mut s = status::unknown(
                    422,
                    "the server rejected our request due to an error in our request",
                );
                s.reason = status::reason::INVALID.to_owned();
                s.details = Some(status::StatusDetails::default());
                s
            }
            PatchError::Other(m) => status::unknown(500, m),
        }
    }
}

type Result<T, E = PatchError> = std::result::Result<T, E>;

/// Applies `patch` to `original` using the patch metadata of `schema` (see
/// [`schema_for_object`]; [`TypeSchema::EMPTY`] merges objects and replaces every list).
/// Both must be JSON objects; `null` as `original` counts as `{}`.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: &TypeSchema,
) -> Result<Value> {
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::BadJsonDoc),
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadJsonDoc);
    };
    merge_map(original, patch.clone(), schema).map(Value::Object)
}

/// The merge metadata of a field: strategy, merge key and value schema.
#[derive(Clone, Copy)]
struct Meta {
    strategy: Strategy,
    merge_key: Option<&'static str>,
    schema: &'static TypeSchema,
}

fn lookup(schema: &TypeSchema, field: &str) -> Meta {
    match schema.field(field) {
        Some(f) => Meta {
            strategy: f.strategy,
            merge_key: f.merge_key,
            schema: f.schema.unwrap_or(&TypeSchema::EMPTY),
        },
        None => Meta {
            strategy: Strategy::Default,
            merge_key: None,
            schema: &TypeSchema::EMPTY,
        },
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: &TypeSchema,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(DIRECTIVE);
                merge_map(Map::new(), patch, schema)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, schema)?;

    for (key, patch_value) in patch {
        let (key, is_delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(rest) => match rest.strip_prefix('/') {
                Some(k) => (k.to_owned(), true),
                None => return Err(PatchError::BadPatchFormatForPrimitiveList),
            },
            None => (key, false),
        };
        if patch_value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let meta = lookup(schema, &key);
        if is_delete_list {
            // Deleting from a list that is not there leaves nothing to do.
            if let (Some(Value::Array(live)), Value::Array(gone)) =
                (original.get_mut(&key), &patch_value)
            {
                live.retain(|v| !gone.contains(v));
            }
            continue;
        }
        // Merge in place so the object keeps its key order.
        match original.get_mut(&key) {
            None => {
                let value = clean(patch_value, meta)?;
                original.insert(key, value);
            }
            Some(slot) => {
                let live = std::mem::take(slot);
                *slot = merge_value(live, patch_value, meta)?;
            }
        }
    }
    Ok(original)
}

/// Combines a live value with a patch value of the same field.
fn merge_value(live: Value, patch: Value, meta: Meta) -> Result<Value> {
    match (live, patch) {
        (Value::Object(live), Value::Object(patch)) => {
            if meta.strategy == Strategy::Replace {
                clean(Value::Object(patch), meta)
            } else {
                merge_map(live, patch, meta.schema).map(Value::Object)
            }
        }
        (Value::Array(live), Value::Array(patch)) => {
            if meta.strategy == Strategy::Merge {
                merge_list(live, patch, meta).map(Value::Array)
            } else {
                Ok(Value::Array(patch))
            }
        }
        (_, patch @ Value::Object(_)) => clean(patch, meta),
        (_, patch) => Ok(patch),
    }
}

/// A patch value placed where the live object has nothing: directives are applied
/// against emptiness so none of them is stored (upstream would store the raw value).
fn clean(value: Value, meta: Meta) -> Result<Value> {
    match value {
        Value::Object(m) => merge_map(Map::new(), m, meta.schema).map(Value::Object),
        Value::Array(items) if meta.strategy == Strategy::Merge => {
            clean_list(items, meta).map(Value::Array)
        }
        other => Ok(other),
    }
}

/// A merge list with no live counterpart: deletions have nothing to delete and a
/// `$patch: replace` marker nothing to replace, so both are dropped; items are cleaned.
fn clean_list(items: Vec<Value>, meta: Meta) -> Result<Vec<Value>> {
    let item_meta = Meta {
        strategy: Strategy::Default,
        ..meta
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Value::Object(m) = &item {
            if let Some(d) = m.get(DIRECTIVE) {
                match d.as_str() {
                    Some("delete" | "replace") => continue,
                    Some("merge") => {
                        return Err(PatchError::Other(
                            "merging lists cannot yet be specified in the patch".to_owned(),
                        ));
                    }
                    _ => return Err(bad_patch_type(d, m)),
                }
            }
            out.push(clean(item, item_meta)?);
        } else {
            out.push(item);
        }
    }
    Ok(out)
}

fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<()> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadPatchFormatForRetainKeys);
    };
    let kept = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !kept(k) {
            return Err(PatchError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|k, _| kept(k));
    Ok(())
}

/// Processes every `$setElementOrder/<field>` directive together with its list.
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: &TypeSchema,
) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive_key in keys {
        let order = patch.shift_remove(&directive_key).unwrap_or(Value::Null);
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let field = match directive_key.split_once('/') {
            Some((SET_ELEMENT_ORDER, field)) => field.to_owned(),
            _ => return Err(PatchError::BadPatchFormatForSetElementOrderList),
        };
        let live = match original.get(&field) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let patch_list = match patch.shift_remove(&field) {
            None => None,
            Some(Value::Array(items)) => Some(items),
            Some(other) => return Err(bad_arg_type("[]interface {}", &other)),
        };
        let meta = lookup(schema, &field);
        validate_against_set_order(patch_list.as_deref().unwrap_or(&[]), &order, meta.merge_key)?;

        let live_items = live.clone().unwrap_or_default();
        let merged = match (live, patch_list) {
            (None, None) => continue,
            (Some(live), None) => live,
            (live, Some(patch_items)) => {
                let live = live.unwrap_or_default();
                if meta.strategy == Strategy::Merge {
                    merge_list(live, patch_items, meta)?
                } else {
                    patch_items
                }
            }
        };
        if merged.is_empty() {
            original.insert(field, Value::Array(merged));
            continue;
        }
        let (in_order, server_only) = partition(merged, &order, meta.merge_key)?;
        let both =
            normalize_element_order(in_order, server_only, &order, &live_items, meta.merge_key)?;
        original.insert(field, Value::Array(both));
    }
    Ok(())
}

/// Upstream's check that the patch list's items appear in `$setElementOrder` in the same
/// relative order (deletions and other directives aside).
fn validate_against_set_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_some() {
        let mut out = Vec::new();
        for item in patch_list {
            let Value::Object(m) = item else {
                return Err(bad_arg_type("map[string]interface {}", item));
            };
            if m.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
                out.push(item);
            }
        }
        out
    } else {
        patch_list.iter().collect()
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if non_delete[pi]
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE))
        {
            pi += 1;
            continue;
        }
        if merge_key_equal(non_delete[pi], &order[oi], merge_key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(PatchError::Other(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_v(&Value::Array(patch_list.to_vec())),
            go_v(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn merge_key_equal(left: &Value, right: &Value, merge_key: Option<&str>) -> Result<bool> {
    let Some(key) = merge_key else {
        return Ok(left == right);
    };
    let l = left
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", left))?;
    let r = right
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", right))?;
    let lv = l.get(key).ok_or_else(|| no_merge_key(l, key))?;
    let rv = r.get(key).ok_or_else(|| no_merge_key(r, key))?;
    Ok(lv == rv)
}

/// The kind of the items of a list, which must all be alike and not lists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ItemKind {
    Object,
    Scalar,
}

fn item_kind(lists: &[&[Value]]) -> Result<Option<ItemKind>> {
    let mut seen: Option<&'static str> = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let t = go_type(v);
        match seen {
            None if v.is_array() => return Err(PatchError::NoListOfLists),
            None => seen = Some(t),
            Some(prev) if prev != t => {
                let all: Vec<Value> = lists.iter().map(|l| Value::Array(l.to_vec())).collect();
                return Err(PatchError::Other(format!(
                    "list element types are not identical: {}",
                    go_v(&Value::Array(all))
                )));
            }
            Some(_) => {}
        }
    }
    Ok(seen.map(|t| {
        if t == "map[string]interface {}" {
            ItemKind::Object
        } else {
            ItemKind::Scalar
        }
    }))
}

/// Merges two lists of a `merge`-strategy field (upstream `mergeSlice`).
fn merge_list(original: Vec<Value>, patch: Vec<Value>, meta: Meta) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(kind) = item_kind(&[&original, &patch])? else {
        return Ok(original);
    };
    let (original, patch, merged) = if kind == ItemKind::Scalar {
        let mut merged: Vec<Value> = Vec::new();
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        (original, patch, merged)
    } else {
        let Some(key) = meta.merge_key else {
            return Err(PatchError::Other(
                "cannot merge lists without merge key for type string".to_owned(),
            ));
        };
        let (original, patch) = apply_list_directives(original, patch, key, meta)?;
        let mut merged = original.clone();
        for item in &patch {
            let Value::Object(item_map) = item else {
                return Err(bad_arg_type("map[string]interface {}", item));
            };
            let wanted = item_map
                .get(key)
                .ok_or_else(|| no_merge_key(item_map, key))?;
            match find_by_key(&merged, key, wanted)? {
                Some(i) => {
                    let Value::Object(live) = std::mem::take(&mut merged[i]) else {
                        unreachable!("find_by_key only returns objects");
                    };
                    merged[i] = Value::Object(merge_map(live, item_map.clone(), meta.schema)?);
                }
                None => merged.push(clean(
                    item.clone(),
                    Meta {
                        strategy: Strategy::Default,
                        ..meta
                    },
                )?),
            }
        }
        (original, patch, merged)
    };
    let (in_patch, server_only) = partition(
        merged,
        &patch,
        meta.merge_key.filter(|_| kind == ItemKind::Object),
    )?;
    normalize_element_order(
        in_patch,
        server_only,
        &patch,
        &original,
        meta.merge_key.filter(|_| kind == ItemKind::Object),
    )
}

/// Applies `$patch: delete` and `$patch: replace` items of a patch list
/// (upstream `mergeSliceWithSpecialElements`); returns the new original and the patch
/// without directive items.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    meta: Meta,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        let Value::Object(m) = &item else {
            return Err(bad_arg_type("map[string]interface {}", &item));
        };
        match m.get(DIRECTIVE) {
            None => plain.push(item),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                    while let Some(i) = find_by_key(&original, key, value)? {
                        original.remove(i);
                    }
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(PatchError::Other(
                        "merging lists cannot yet be specified in the patch".to_owned(),
                    ));
                }
                _ => return Err(bad_patch_type(d, m)),
            },
        }
    }
    if replace {
        let cleaned = plain
            .into_iter()
            .map(|v| {
                clean(
                    v,
                    Meta {
                        strategy: Strategy::Default,
                        ..meta
                    },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok((cleaned, Vec::new()));
    }
    Ok((original, plain))
}

/// The index of the first object whose `key` equals `value`.
fn find_by_key(items: &[Value], key: &str, value: &Value) -> Result<Option<usize>> {
    for (i, v) in items.iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(PatchError::Other(format!(
                "value for key {i} is not a map."
            )));
        };
        if m.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Splits `items` into those present in `by` (by merge key, or by value for scalars) and
/// the rest, keeping order.
fn partition(
    items: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut rest = Vec::new();
    for v in items {
        let found = match merge_key {
            None => by.contains(&v),
            Some(key) => {
                let m = v
                    .as_object()
                    .ok_or_else(|| bad_arg_type("map[string]interface {}", &v))?;
                let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                find_by_key(by, key, value)?.is_some()
            }
        };
        if found {
            present.push(v);
        } else {
            rest.push(v);
        }
    }
    Ok((present, rest))
}

/// Position of `item` in `order` (by merge key for objects).
fn index_in(order: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    let pick = |v: &Value| -> Option<Value> {
        match merge_key {
            Some(k) => v.as_object().and_then(|m| m.get(k)).cloned(),
            None => Some(v.clone()),
        }
    };
    let wanted = pick(item);
    order.iter().position(|v| pick(v) == wanted)
}

/// Sorts patch items by `patch_order` and live-only items by `server_order`, then
/// interleaves them (upstream `normalizeElementOrder` + `mergeSortedSlice`): a live-only
/// item goes first only when both it and the next patch item are live and it came
/// first there.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Result<Vec<Value>> {
    let patch = normalize_slice_order(patch, patch_order, merge_key)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key)?;
    let mut out = Vec::with_capacity(patch.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        patch.into_iter().peekable(),
    );
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (Some(l), Some(r)) => {
                let li = index_in(server_order, l, merge_key);
                let ri = index_in(server_order, r, merge_key);
                match (li, ri) {
                    (Some(li), Some(ri)) if li < ri => out.extend(left.next()),
                    _ => out.extend(right.next()),
                }
            }
        }
    }
    Ok(out)
}

/// Stable-sorts `items` by their position in `order`; `$patch: delete` items go last.
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<Vec<Value>> {
    let mut deletes = Vec::new();
    let mut keep = Vec::new();
    if let Some(key) = merge_key {
        for v in items.iter().chain(order.iter()) {
            let m = v
                .as_object()
                .ok_or_else(|| bad_arg_type("map[string]interface {}", v))?;
            if !m.contains_key(key) {
                return Err(no_merge_key(m, key));
            }
        }
        for v in items {
            if v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                deletes.push(v);
            } else {
                keep.push(v);
            }
        }
    } else {
        keep = items;
    }
    keep.sort_by_key(|v| index_in(order, v, merge_key).unwrap_or(usize::MAX));
    keep.extend(deletes);
    Ok(keep)
}

fn no_merge_key(m: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::Other(format!(
        "map: {} does not contain declared merge key: {key}",
        go_v(&Value::Object(m.clone()))
    ))
}

fn bad_patch_type(directive: &Value, m: &Map<String, Value>) -> PatchError {
    PatchError::Other(format!(
        "unknown patch type: {} in map: {}",
        go_v(directive),
        go_v(&Value::Object(m.clone()))
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    let actual = if actual.is_null() {
        "%!s(<nil>)"
    } else {
        go_type(actual)
    };
    PatchError::Other(format!("expected a {expected}, but received a {actual}"))
}

/// The Go type a JSON value decodes to in apimachinery (integral numbers are `int64`).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Formats a value as Go's `%v` does for decoded JSON (`map[a:1 b:[x y]]`).
fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(go_v).collect::<Vec<_>>().join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_v(&m[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests;
