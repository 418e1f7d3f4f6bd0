//! The OpenAPI v2 (Swagger 2.0) document at `/openapi/v2`: every served kind in one document,
//! converted from the v3 schemas and paths. kubectl downloads it as gnostic protobuf whenever v3
//! does not settle a question — validating the items of a `kind: List`, or a kind of a version
//! the server does not serve — and kubectl ≤ 1.28 reads it for `apply`, `create` and `explain`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ring::digest::{SHA512, digest};
use serde_json::{Map, Value, json};

use super::{gnostic, v3};
use crate::resources::{CONVERTED, RESOURCES, ResourceDef};

/// What upstream answers a protobuf request with (also for the older `@v1.0` spelling).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
const PROTOBUF_SUBTYPES: [&str; 2] = [
    "com.github.proto-openapi.spec.v2.v1.0+protobuf",
    // What client-go's discovery client asks for.
    "com.github.proto-openapi.spec.v2@v1.0+protobuf",
];

/// The document in both of its served forms, built on first use.
#[derive(Debug)]
pub struct Spec {
    /// The document as JSON.
    pub json: Vec<u8>,
    /// The document as gnostic's `openapi.v2.Document` message.
    pub protobuf: Vec<u8>,
    /// The quoted entity tag both forms share: the SHA-512 of the JSON in hex, as upstream.
    pub etag: String,
}

/// The representations `/openapi/v2` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

impl Spec {
    /// The body and Content-Type of `format`.
    pub fn body(&self, format: Format) -> (&[u8], &'static str) {
        match format {
            Format::Json => (&self.json, "application/json"),
            Format::Protobuf => (&self.protobuf, PROTOBUF),
        }
    }
}

/// The document, computed once.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let doc = build();
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        let hash: String = digest(&SHA512, &json)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        Spec {
            protobuf: gnostic::document(&doc),
            json,
            etag: format!("\"{hash}\""),
        }
    })
}

/// Picks the representation as upstream's handler does: the clauses of `Accept` by falling
/// quality, concrete types before wildcards, the first one served wins; `None` means 406.
pub fn negotiate(accept: &str) -> Option<Format> {
    let accept = if accept.trim().is_empty() {
        "*/*"
    } else {
        accept
    };
    let mut clauses: Vec<(f32, &str, &str)> = accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';');
            let (kind, sub) = parts.next()?.trim().split_once('/')?;
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse().ok())
                .unwrap_or(1.0);
            Some((q, kind, sub))
        })
        .filter(|(q, ..)| *q > 0.0)
        .collect();
    clauses.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then((a.1 == "*").cmp(&(b.1 == "*")))
            .then((a.2 == "*").cmp(&(b.2 == "*")))
    });
    clauses.into_iter().find_map(|(_, kind, sub)| {
        if kind != "application" && kind != "*" {
            None
        } else if sub == "json" || sub == "*" {
            Some(Format::Json)
        } else if PROTOBUF_SUBTYPES.contains(&sub) {
            Some(Format::Protobuf)
        } else {
            None
        }
    })
}

/// Whether an `If-None-Match` header names `etag` (weak comparison, as `http.ServeContent`).
pub fn matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag.trim_start_matches("W/")
    })
}

fn build() -> Value {
    let defs: Vec<&ResourceDef> = RESOURCES.iter().chain(CONVERTED).collect();
    let definitions: BTreeMap<String, Value> = v3::schemas(&defs)
        .0
        .into_iter()
        .map(|(name, s)| (name, schema(&s)))
        .collect();
    let mut paths = BTreeMap::new();
    for (doc, _) in v3::documents().values() {
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            paths.insert(path.clone(), path_item(path, item));
        }
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": crate::KUBERNETES_VERSION },
        "paths": paths,
        "definitions": definitions,
    })
}

/// A v3 schema in Swagger 2 terms: references into `#/definitions/`, a lone `allOf` reference
/// (how schemars keeps a field's description beside a `$ref`) back to a plain `$ref`, and
/// int-or-string as upstream's `type: string, format: int-or-string`. kubectl's v2 parser
/// refuses a `$ref` with a `type` and arrays without `items`, and v3's `nullable`, `oneOf`
/// and `anyOf` have no v2 equivalent.
fn schema(v3: &Value) -> Value {
    let Some(fields) = v3.as_object() else {
        return v3.clone();
    };
    let mut out = Map::new();
    for (key, value) in fields {
        let converted = match key.as_str() {
            "$ref" => json!(definition_ref(value)),
            "allOf" => match lone_ref(value) {
                Some(reference) => {
                    out.insert("$ref".into(), json!(definition_ref(reference)));
                    continue;
                }
                None => value.as_array().map_or(json!([]), |all| {
                    all.iter().map(schema).collect::<Vec<_>>().into()
                }),
            },
            "properties" => value.as_object().map_or(json!({}), |props| {
                props
                    .iter()
                    .map(|(name, s)| (name.clone(), schema(s)))
                    .collect::<Map<_, _>>()
                    .into()
            }),
            "items" | "additionalProperties" => schema(value),
            "nullable" | "oneOf" | "anyOf" | "not" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if out.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        && !out.contains_key("type")
    {
        out.insert("type".into(), json!("string"));
        out.insert("format".into(), json!("int-or-string"));
    }
    Value::Object(out)
}

fn definition_ref(reference: &Value) -> String {
    let reference = reference.as_str().unwrap_or("");
    match reference.strip_prefix("#/components/schemas/") {
        Some(name) => format!("#/definitions/{name}"),
        None => reference.to_string(),
    }
}

/// The reference of an `allOf` that holds nothing but one `$ref`.
fn lone_ref(all_of: &Value) -> Option<&Value> {
    match all_of.as_array()?.as_slice() {
        [only] if only.as_object()?.len() == 1 => only.get("$ref"),
        _ => None,
    }
}

/// A v3 path item with v2 operations, plus the path parameters upstream declares.
fn path_item(path: &str, v3: &Value) -> Value {
    let mut out: Map<String, Value> = v3
        .as_object()
        .into_iter()
        .flatten()
        .map(|(method, op)| (method.clone(), operation(op)))
        .collect();
    let params: Vec<Value> = [
        ("name", "name of the object"),
        (
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ),
    ]
    .into_iter()
    .filter(|(name, _)| path.contains(&format!("{{{name}}}")))
    .map(|(name, description)| {
        json!({
            "description": description, "in": "path", "name": name,
            "required": true, "type": "string", "uniqueItems": true,
        })
    })
    .collect();
    if !params.is_empty() {
        out.insert("parameters".into(), params.into());
    }
    Value::Object(out)
}

/// A v3 operation in v2 terms: the request body becomes a `body` parameter and `consumes`,
/// the responses' content types `produces`.
fn operation(v3: &Value) -> Value {
    let mut out = Map::new();
    let mut parameters = Vec::new();
    if let Some(content) = v3["requestBody"]["content"].as_object() {
        out.insert("consumes".into(), json!(content.keys().collect::<Vec<_>>()));
        if let Some(media) = content.values().next() {
            parameters.push(json!({
                "in": "body", "name": "body", "required": true, "schema": schema(&media["schema"]),
            }));
        }
    }
    for (key, value) in v3.as_object().into_iter().flatten() {
        if matches!(
            key.as_str(),
            "operationId" | "description" | "summary" | "tags"
        ) || key.starts_with("x-")
        {
            out.insert(key.clone(), value.clone());
        }
    }
    parameters.extend(
        v3["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(parameter),
    );
    out.insert("parameters".into(), parameters.into());
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    for (code, response) in v3["responses"].as_object().into_iter().flatten() {
        let mut converted = json!({ "description": response["description"] });
        if let Some(content) = response["content"].as_object() {
            for media in content.keys() {
                if !produces.contains(media) {
                    produces.push(media.clone());
                }
            }
            if let Some(media) = content.values().next() {
                converted["schema"] = schema(&media["schema"]);
            }
        }
        responses.insert(code.clone(), converted);
    }
    out.insert("produces".into(), json!(produces));
    out.insert("responses".into(), responses.into());
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

/// A v3 parameter in v2 terms: its schema's keywords move onto the parameter.
fn parameter(v3: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in v3.as_object().into_iter().flatten() {
        match (key.as_str(), value.as_object()) {
            ("schema", Some(s)) => out.extend(s.iter().map(|(k, v)| (k.clone(), v.clone()))),
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::from_slice(&spec().json).expect("the document is JSON")
    }

    #[test]
    fn enum_types_list_their_values_in_both_versions() {
        let v3 = v3::document("api/v1").expect("core v1");
        let spec = &v3["components"]["schemas"]["io.k8s.api.core.v1.ServiceSpec"];
        assert_eq!(
            spec["properties"]["type"]["enum"],
            json!(["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"])
        );
        let d = doc();
        let defs = &d["definitions"];
        assert_eq!(
            defs["io.k8s.api.core.v1.PodSpec"]["properties"]["restartPolicy"]["enum"],
            json!(["Always", "Never", "OnFailure"])
        );
        assert_eq!(
            defs["io.k8s.api.core.v1.PersistentVolumeClaimSpec"]["properties"]["accessModes"]["items"]
                ["enum"][2],
            "ReadWriteOnce"
        );
        assert_eq!(
            defs["io.k8s.api.apps.v1.DeploymentStrategy"]["properties"]["type"]["enum"],
            json!(["Recreate", "RollingUpdate"])
        );
        assert_eq!(
            defs["io.k8s.api.core.v1.Container"]["properties"]["imagePullPolicy"]["enum"],
            json!(["Always", "IfNotPresent", "Never"])
        );
        for (schema, property, items, values) in v3::ENUMS {
            let mut p = &defs[*schema]["properties"][*property];
            if *items {
                p = &p["items"];
            }
            assert_eq!(p["enum"], json!(values), "{schema}.{property}");
        }
    }

    /// Calls `f` on every schema of the document: definitions, their properties, items,
    /// additional properties and `allOf`s, and the operations' body and response schemas.
    fn each_schema(doc: &Value, f: &mut impl FnMut(&str, &Value)) {
        fn walk(at: &str, s: &Value, f: &mut impl FnMut(&str, &Value)) {
            f(at, s);
            for (name, p) in s["properties"].as_object().into_iter().flatten() {
                walk(&format!("{at}.{name}"), p, f);
            }
            for key in ["items", "additionalProperties"] {
                if s[key].is_object() {
                    walk(&format!("{at}[{key}]"), &s[key], f);
                }
            }
            for s in s["allOf"].as_array().into_iter().flatten() {
                walk(&format!("{at}[allOf]"), s, f);
            }
        }
        for (name, s) in doc["definitions"].as_object().expect("definitions") {
            walk(name, s, f);
        }
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "body" {
                        walk(&format!("{path} {method} body"), &p["schema"], f);
                    }
                }
                for (code, r) in op["responses"].as_object().into_iter().flatten() {
                    if r["schema"].is_object() {
                        walk(&format!("{path} {method} {code}"), &r["schema"], f);
                    }
                }
            }
        }
    }

    #[test]
    fn every_schema_parses_as_kubectl_reads_v2() {
        let doc = doc();
        let definitions = doc["definitions"].as_object().expect("definitions");
        let mut problems = Vec::new();
        each_schema(&doc, &mut |at, s| {
            if let Some(reference) = s.get("$ref") {
                let name = reference
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/definitions/"));
                if !name.is_some_and(|n| definitions.contains_key(n)) {
                    problems.push(format!("{at}: dangling reference {reference}"));
                }
                if s.get("type").is_some() || s.get("properties").is_some() {
                    problems.push(format!("{at}: a reference with a type or properties"));
                }
            }
            if !s["type"].is_string() && !s["type"].is_null() {
                problems.push(format!("{at}: type {}", s["type"]));
            }
            if s["type"] == "array" && !s["items"].is_object() {
                problems.push(format!("{at}: an array without one items schema"));
            }
            for v3_only in ["nullable", "oneOf", "anyOf"] {
                if s.get(v3_only).is_some() {
                    problems.push(format!("{at}: {v3_only}"));
                }
            }
        });
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn kinds_carry_their_group_version_kind() {
        let doc = doc();
        let cm = &doc["definitions"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(
            cm["x-kubernetes-group-version-kind"],
            json!([{ "group": "", "version": "v1", "kind": "ConfigMap" }])
        );
        let deploy = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deploy["x-kubernetes-group-version-kind"][0]["group"],
            "apps"
        );
        let containers =
            &doc["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(
            containers["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Container"
        );
    }

    #[test]
    fn patch_operations_declare_field_validation() {
        let doc = doc();
        let item = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"];
        let patch = &item["patch"];
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({ "group": "", "version": "v1", "kind": "ConfigMap" })
        );
        let params = patch["parameters"].as_array().expect("parameters");
        assert_eq!(params[0]["in"], "body");
        let validation = params
            .iter()
            .find(|p| p["name"] == "fieldValidation")
            .expect("fieldValidation");
        assert_eq!(validation["in"], "query");
        assert_eq!(validation["type"], "string");
        assert!(
            patch["consumes"]
                .as_array()
                .expect("consumes")
                .contains(&json!("application/strategic-merge-patch+json"))
        );
        let path_params: Vec<&Value> = item["parameters"]
            .as_array()
            .expect("path parameters")
            .iter()
            .map(|p| &p["name"])
            .collect();
        assert_eq!(path_params, [&json!("name"), &json!("namespace")]);
        assert_eq!(
            item["get"]["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.ConfigMap"
        );
    }

    #[test]
    fn int_or_string_is_upstreams_string_format() {
        let s = schema(&json!({ "description": "d", "x-kubernetes-int-or-string": true }));
        assert_eq!(s["type"], "string");
        assert_eq!(s["format"], "int-or-string");
    }

    #[test]
    fn a_lone_all_of_reference_becomes_a_reference() {
        let s = schema(&json!({
            "description": "Standard object's metadata.",
            "allOf": [{ "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" }],
        }));
        assert_eq!(
            s,
            json!({
                "description": "Standard object's metadata.",
                "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            })
        );
    }

    #[test]
    fn negotiation_follows_upstream() {
        let check = |accept: &str, want: Option<Format>| {
            assert_eq!(negotiate(accept), want, "Accept: {accept}");
        };
        check(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            Some(Format::Protobuf),
        );
        check(
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            Some(Format::Protobuf),
        );
        check("application/json", Some(Format::Json));
        check("", Some(Format::Json));
        check("*/*", Some(Format::Json));
        check(
            "application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            Some(Format::Protobuf),
        );
        check(
            "*/*;q=0.8, application/com.github.proto-openapi.spec.v2@v1.0+protobuf;q=0.9",
            Some(Format::Protobuf),
        );
        check("application/yaml", None);
        check("text/html, application/vnd.kubernetes.protobuf", None);
    }

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(matches("\"AB\"", "\"AB\""));
        assert!(matches("W/\"AB\"", "\"AB\""));
        assert!(matches("\"x\", \"AB\"", "\"AB\""));
        assert!(matches("*", "\"AB\""));
        assert!(!matches("\"AC\"", "\"AB\""));
    }

    #[test]
    fn the_etag_is_the_json_digest_and_both_forms_are_served() {
        let spec = spec();
        assert_eq!(spec.etag.len(), 2 + 128);
        assert!(spec.etag.starts_with('"') && spec.etag.ends_with('"'));
        assert!(!spec.protobuf.is_empty());
        assert_eq!(spec.body(Format::Protobuf).1, PROTOBUF);
        assert_eq!(spec.body(Format::Json).0, &spec.json[..]);
    }
}
