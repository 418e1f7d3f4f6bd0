//! The words for a body that does not fit its kind's types: upstream's Go decoder's
//! (`json: cannot unmarshal number into Go struct field EnvVar.spec.template.spec.containers.env.value
//! of type string`), never the Rust decoder's.

use kox_proto::go_json::{self, Step};
use serde_json::Value;

use crate::strategy::str_at;

/// Words a decoding failure of `body` as upstream's decoder would, naming the field.
pub fn words(body: &Value, e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let mut steps = Vec::new();
    let mut pointer = String::new();
    let mut fields = Vec::new();
    for segment in e.path() {
        match segment {
            serde_path_to_error::Segment::Map { key } => {
                steps.push(Step::Key(key));
                fields.push(key.as_str());
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            serde_path_to_error::Segment::Seq { index } => {
                steps.push(Step::Index);
                pointer.push_str(&format!("/{index}"));
            }
            _ => {}
        }
    }
    let api_version = str_at(body, "apiVersion").unwrap_or_default();
    let kind = str_at(body, "kind").unwrap_or_default();
    let value = body.pointer(&pointer);
    if let Some(words) = value.and_then(|v| go_json::type_error(api_version, kind, &steps, v)) {
        return words;
    }
    // A kind the tables do not hold: the same sentence, with the type the decoder expected.
    let what = match value {
        None | Some(Value::Null) => "number",
        Some(v) => go_json::json_type(v),
    };
    let inner = e.inner().to_string();
    let expected = inner.split(", expected ").nth(1).map(go_type_of);
    match expected {
        Some(ty) if !fields.is_empty() => format!(
            "json: cannot unmarshal {what} into Go struct field {kind}.{} of type {ty}",
            fields.join(".")
        ),
        _ => format!("{}: {inner}", fields.join(".")),
    }
}

/// A Go type for what the Rust decoder expected (`a string`, `i32`, `a sequence`, `Struct`).
fn go_type_of(expected: &str) -> String {
    let expected = expected.split(" at line").next().unwrap_or(expected);
    match expected {
        "a string" => "string".into(),
        "a boolean" => "bool".into(),
        "i32" | "i64" | "u32" | "u64" => {
            let (sign, bits) = expected.split_at(1);
            format!("{}int{bits}", if sign == "u" { "u" } else { "" })
        }
        "a sequence" => "[]interface {}".into(),
        "a map" => "map[string]interface {}".into(),
        other => format!("v1.{other}"),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use crate::strategy::roundtrip;

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_field() {
        let body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "x", "env": [{"name": "PORT", "value": 8080}]},
            ]}}},
        });
        assert_eq!(
            roundtrip::<Deployment>(&body).unwrap_err(),
            "json: cannot unmarshal number into Go struct field EnvVar.spec.template.spec.containers.env.value of type string"
        );
    }

    #[test]
    fn an_absent_selector_stays_absent_through_the_typed_form() {
        let body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}},
        });
        let out = roundtrip::<Deployment>(&body).unwrap();
        assert!(out["spec"].get("selector").is_none(), "{out}");
        assert!(out.get("metadata").is_some(), "{out}");
    }

    #[test]
    fn kinds_without_field_tables_still_name_the_field_in_go_words() {
        let body = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "w"},
            "webhooks": [{"name": 5}],
        });
        assert_eq!(
            roundtrip::<ValidatingWebhookConfiguration>(&body).unwrap_err(),
            "json: cannot unmarshal number into Go struct field ValidatingWebhookConfiguration.webhooks.name of type string"
        );
    }
}
