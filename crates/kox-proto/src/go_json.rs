//! What upstream's Go JSON decoder says when a value does not fit the API type's field, worded
//! from the same field tables that drive protobuf decoding (they mirror the Go structs).
//!
//! Go's `encoding/json` (as forked by `sigs.k8s.io/json`) reports
//! `json: cannot unmarshal <value> into Go struct field <Struct>.<path> of type <type>`: `<Struct>`
//! is the innermost struct holding the field, `<path>` the JSON names from the root (no array
//! indexes, no map keys), `<type>` the Go type of the value being filled (`int32`,
//! `[]v1.Container`, `map[string]string`). Named Go types the tables do not keep (`v1.Protocol`,
//! `v1.ResourceList`) are given as their underlying type.

use serde_json::Value;

use crate::generated::MESSAGES;
use crate::schema::{Card, Field, Go, Scalar, Special, Ty};

/// One step of a JSON path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index,
}

/// Where a walk down the Go types stands: the Go value being filled.
#[derive(Debug, Clone, Copy)]
enum At {
    One(Ty),
    Slice(Ty),
    Map(Ty),
}

/// Upstream's words for `value`, found at `path` in an object of `api_version`/`kind`, that its
/// Go field cannot hold; `None` when the kind or the path is not in the tables or the value fits.
pub fn type_error(
    api_version: &str,
    kind: &str,
    path: &[Step<'_>],
    value: &Value,
) -> Option<String> {
    let root = crate::find_kind(api_version, kind)?;
    let mut at = At::One(Ty::Message(root));
    let mut holder = root;
    let mut fields: Vec<&'static str> = Vec::new();
    for step in path {
        at = match (at, step) {
            (At::One(Ty::Message(m)), Step::Key(key)) => {
                let msg = &MESSAGES[usize::from(m)];
                if msg.special != Special::None {
                    return None;
                }
                let field = find_field(msg.fields, key)?;
                fields.push(field.json);
                holder = m;
                match field.card {
                    Card::Single => At::One(field.ty),
                    Card::Repeated => At::Slice(field.ty),
                    Card::Map(_) => At::Map(field.ty),
                }
            }
            (At::One(Ty::Message(m)), Step::Index)
                if MESSAGES[usize::from(m)].special == Special::List =>
            {
                At::One(MESSAGES[usize::from(m)].fields.first()?.ty)
            }
            (At::Slice(ty), Step::Index) | (At::Map(ty), Step::Key(_)) => At::One(ty),
            _ => return None,
        };
    }
    if let At::One(Ty::Message(m)) = at
        && let Some(words) = custom_unmarshaler(MESSAGES[usize::from(m)].special, value)
    {
        return words;
    }
    if let (At::One(Ty::Scalar(Scalar::Bytes)), Value::String(s)) = (at, value) {
        return base64_error(s);
    }
    let what = go_value(value, at)?;
    let ty = go_type(at);
    Some(if fields.is_empty() {
        format!("json: cannot unmarshal {what} into Go value of type {ty}")
    } else {
        format!(
            "json: cannot unmarshal {what} into Go struct field {}.{} of type {ty}",
            short_name(holder),
            fields.join(".")
        )
    })
}

/// Gives an object of `api_version`/`kind` the shape upstream's Go encoder writes: a struct
/// field that is not a pointer is always written (`status: {}`, `loadBalancer: {}`,
/// `resources: {}`), since `omitempty` never leaves out a struct; a number, boolean or string
/// with `omitempty` is left out at its zero value (`unavailableReplicas: 0`). Kinds the tables
/// do not hold are left as they are.
pub fn shape(api_version: &str, kind: &str, obj: &mut Value) {
    if let (Some(root), Value::Object(map)) = (crate::find_kind(api_version, kind), obj) {
        shape_message(root, map, 0);
    }
}

fn shape_message(m: u16, obj: &mut serde_json::Map<String, Value>, depth: usize) {
    if depth > crate::MAX_DEPTH {
        return;
    }
    for field in MESSAGES[usize::from(m)].fields {
        let sub = match field.ty {
            Ty::Message(sub) if MESSAGES[usize::from(sub)].special == Special::None => Some(sub),
            _ => None,
        };
        match (field.go, field.card, sub) {
            (Go::Inline, _, Some(sub)) => shape_message(sub, obj, depth + 1),
            (Go::Skip, ..) | (Go::Inline, _, None) => {}
            (go, Card::Single, Some(sub)) => {
                if matches!(go, Go::Value { .. }) && !obj.contains_key(field.json) {
                    obj.insert(field.json.into(), Value::Object(Default::default()));
                }
                if let Some(Value::Object(inner)) = obj.get_mut(field.json) {
                    shape_message(sub, inner, depth + 1);
                }
            }
            (_, Card::Repeated, Some(sub)) => {
                if let Some(Value::Array(items)) = obj.get_mut(field.json) {
                    for item in items {
                        if let Value::Object(inner) = item {
                            shape_message(sub, inner, depth + 1);
                        }
                    }
                }
            }
            (_, Card::Map(_), Some(sub)) => {
                if let Some(Value::Object(values)) = obj.get_mut(field.json) {
                    for value in values.values_mut() {
                        if let Value::Object(inner) = value {
                            shape_message(sub, inner, depth + 1);
                        }
                    }
                }
            }
            (Go::Value { omitempty: true }, Card::Single, None)
                if obj.get(field.json).is_some_and(is_zero_scalar) =>
            {
                obj.remove(field.json);
            }
            _ => {}
        }
    }
}

fn is_zero_scalar(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A field by its JSON name, looking into inline (embedded) structs as Go does.
fn find_field(fields: &'static [Field], key: &str) -> Option<&'static Field> {
    fields.iter().find_map(|f| match (f.go, f.ty) {
        (Go::Inline, Ty::Message(m)) => find_field(MESSAGES[usize::from(m)].fields, key),
        (Go::Skip, _) => None,
        _ => (f.json == key).then_some(f),
    })
}

/// The errors of the types with their own `UnmarshalJSON`: `Some(None)` when the value fits.
fn custom_unmarshaler(special: Special, value: &Value) -> Option<Option<String>> {
    let words = match special {
        Special::None | Special::List => return None,
        Special::RawExtension | Special::RawJson => None,
        // `ParseQuantity` of the raw JSON text.
        Special::Quantity => match value {
            Value::String(_) | Value::Number(_) | Value::Null => None,
            _ => Some(
                "quantities must match the regular expression \
                 '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                    .to_string(),
            ),
        },
        // A string, or else `json.Unmarshal` into its int32.
        Special::IntOrString => match value {
            Value::String(_) | Value::Null => None,
            Value::Number(n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => None,
            _ => go_value(value, At::One(Ty::Scalar(Scalar::Int32)))
                .map(|v| format!("json: cannot unmarshal {v} into Go value of type int32")),
        },
        // `json.Unmarshal` into a string, then a time parse.
        Special::Time | Special::MicroTime => match value {
            Value::String(_) | Value::Null => None,
            _ => go_value(value, At::One(Ty::Scalar(Scalar::String)))
                .map(|v| format!("json: cannot unmarshal {v} into Go value of type string")),
        },
    };
    Some(words)
}

/// How Go describes the JSON value it could not store: `number 1.5` for a number that an
/// integer cannot hold, else the JSON type.
fn go_value(value: &Value, at: At) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Number(n) => match at {
            At::One(Ty::Scalar(s)) if is_integer(s) => format!("number {n}"),
            _ => "number".into(),
        },
        other => json_type(other).into(),
    })
}

/// A JSON value's type as Go's decoder names it in its errors (`array`, `object`, …).
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(s: Scalar) -> bool {
    !matches!(
        s,
        Scalar::Bool | Scalar::String | Scalar::Bytes | Scalar::Float | Scalar::Double
    )
}

fn go_type(at: At) -> String {
    match at {
        At::One(ty) => ty_name(ty),
        At::Slice(ty) => format!("[]{}", ty_name(ty)),
        At::Map(ty) => format!("map[string]{}", ty_name(ty)),
    }
}

fn ty_name(ty: Ty) -> String {
    match ty {
        Ty::Message(m) => {
            let mut parts = MESSAGES[usize::from(m)].name.rsplit('.');
            let name = parts.next().unwrap_or_default();
            format!("{}.{name}", parts.next().unwrap_or_default())
        }
        Ty::Scalar(s) => match s {
            Scalar::Bool => "bool",
            Scalar::String => "string",
            Scalar::Bytes => "[]uint8",
            Scalar::Float => "float32",
            Scalar::Double => "float64",
            Scalar::Int32 | Scalar::Sint32 | Scalar::Sfixed32 => "int32",
            Scalar::Int64 | Scalar::Sint64 | Scalar::Sfixed64 => "int64",
            Scalar::Uint32 | Scalar::Fixed32 => "uint32",
            Scalar::Uint64 | Scalar::Fixed64 => "uint64",
        }
        .into(),
    }
}

fn short_name(m: u16) -> &'static str {
    MESSAGES[usize::from(m)]
        .name
        .rsplit('.')
        .next()
        .unwrap_or_default()
}

/// Go's `base64.StdEncoding` error for a `[]byte` field's string (`illegal base64 data at input
/// byte N`), or `None` when it decodes. Newlines are skipped, as Go does.
pub fn base64_error(s: &str) -> Option<String> {
    base64_corrupt_at(s.as_bytes()).map(|at| format!("illegal base64 data at input byte {at}"))
}

/// Go's `decodeQuantum` loop: the offset of the first corrupt byte.
fn base64_corrupt_at(src: &[u8]) -> Option<usize> {
    let valid = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let mut si = 0;
    while si < src.len() {
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                // Padding is required: a short final quantum is corrupt where it began.
                return (j != 0).then(|| si - j);
            }
            let c = src[si];
            si += 1;
            if valid(c) {
                j += 1;
                continue;
            }
            if newline(c) {
                continue;
            }
            if c != b'=' || j < 2 {
                return Some(si - 1);
            }
            if j == 2 {
                while si < src.len() && newline(src[si]) {
                    si += 1;
                }
                if si == src.len() {
                    return Some(src.len());
                }
                if src[si] != b'=' {
                    return Some(si - 1);
                }
                si += 1;
            }
            while si < src.len() && newline(src[si]) {
                si += 1;
            }
            return (si < src.len()).then_some(si);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(kind: (&str, &str), path: &str, value: Value, expect: Option<&str>) {
        let steps: Vec<Step<'_>> = path
            .split('.')
            .filter(|s| !s.is_empty())
            .map(|s| if s == "[]" { Step::Index } else { Step::Key(s) })
            .collect();
        assert_eq!(
            type_error(kind.0, kind.1, &steps, &value).as_deref(),
            expect,
            "{path}"
        );
    }

    const DEPLOYMENT: (&str, &str) = ("apps/v1", "Deployment");

    #[test]
    fn names_the_innermost_struct_the_json_path_and_the_go_type() {
        check(
            DEPLOYMENT,
            "spec.template.spec.containers.[].env.[].value",
            json!(8080),
            Some(
                "json: cannot unmarshal number into Go struct field EnvVar.spec.template.spec.containers.env.value of type string",
            ),
        );
        check(
            DEPLOYMENT,
            "spec.replicas",
            json!("three"),
            Some(
                "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
            ),
        );
        check(
            DEPLOYMENT,
            "spec.template.spec.containers",
            json!({"name": "x"}),
            Some(
                "json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers of type []v1.Container",
            ),
        );
        check(
            DEPLOYMENT,
            "spec.template.spec.containers.[]",
            json!("nginx"),
            Some(
                "json: cannot unmarshal string into Go struct field PodSpec.spec.template.spec.containers of type v1.Container",
            ),
        );
        check(
            DEPLOYMENT,
            "metadata.labels.app",
            json!(true),
            Some(
                "json: cannot unmarshal bool into Go struct field ObjectMeta.metadata.labels of type string",
            ),
        );
        check(
            DEPLOYMENT,
            "spec.replicas",
            json!(1.5),
            Some(
                "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32",
            ),
        );
        check(
            DEPLOYMENT,
            "spec",
            json!([]),
            Some(
                "json: cannot unmarshal array into Go struct field Deployment.spec of type v1.DeploymentSpec",
            ),
        );
    }

    #[test]
    fn inline_fields_belong_to_the_embedding_struct() {
        check(
            ("v1", "Pod"),
            "spec.volumes.[].configMap",
            json!("x"),
            Some(
                "json: cannot unmarshal string into Go struct field Volume.spec.volumes.configMap of type v1.ConfigMapVolumeSource",
            ),
        );
    }

    #[test]
    fn custom_unmarshalers_say_their_own_words() {
        let pod = ("v1", "Pod");
        check(
            pod,
            "spec.containers.[].resources.limits.cpu",
            json!(true),
            Some(
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ),
        );
        check(
            pod,
            "spec.containers.[].ports.[].containerPort",
            json!("80"),
            Some(
                "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32",
            ),
        );
        check(
            ("v1", "Service"),
            "spec.ports.[].targetPort",
            json!(true),
            Some("json: cannot unmarshal bool into Go value of type int32"),
        );
        check(
            ("v1", "Service"),
            "spec.ports.[].targetPort",
            json!("http"),
            None,
        );
        check(
            ("v1", "Secret"),
            "data.key",
            json!("not base64"),
            Some("illegal base64 data at input byte 3"),
        );
        check(("v1", "Secret"), "data.key", json!("aGk="), None);
        check(("v1", "Widget"), "spec", json!(1), None);
    }

    #[test]
    fn shape_writes_struct_fields_and_omits_zero_scalars_as_go_does() {
        let mut svc =
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "nodePort": 0}]}});
        shape("v1", "Service", &mut svc);
        assert_eq!(
            svc,
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}, "status": {"loadBalancer": {}}})
        );
        let mut d = json!({
            "metadata": {"name": "d", "generation": 0},
            "spec": {"replicas": 0, "paused": false, "template": {"spec": {"containers": [{"name": "a"}]}}},
            "status": {"replicas": 0, "unavailableReplicas": 0, "observedGeneration": 2},
        });
        shape("apps/v1", "Deployment", &mut d);
        assert_eq!(
            d,
            json!({
                "metadata": {"name": "d"},
                "spec": {"replicas": 0, "template": {"metadata": {}, "spec": {"containers": [{"name": "a", "resources": {}}]}}, "strategy": {}},
                "status": {"observedGeneration": 2},
            })
        );
        let mut other = json!({"spec": {"x": 0}});
        shape("example.com/v1", "Widget", &mut other);
        assert_eq!(other, json!({"spec": {"x": 0}}));
    }

    #[test]
    fn base64_errors_point_where_go_does() {
        for (input, at) in [
            ("aGk=", None),
            ("aGVsbG8=", None),
            ("aGVs\nbG8=", None),
            ("a", Some(0)),
            ("abc", Some(0)),
            ("abcde", Some(4)),
            ("ab=", Some(3)),
            ("a===", Some(1)),
            ("aGk=x", Some(4)),
            ("ab!d", Some(2)),
        ] {
            assert_eq!(base64_corrupt_at(input.as_bytes()), at, "{input:?}");
        }
    }
}
