//! A Swagger 2 document (JSON) encoded as gnostic's `openapi.v2.Document` protobuf message
//! (`openapiv2/OpenAPIv2.proto` in google/gnostic-models), what client-go's `OpenAPISchema`
//! decodes. Only the parts of the message a Kubernetes document uses are written; keys the
//! message has no field for are skipped. Values without a field of their own — vendor
//! extensions, `default`, `enum`, `example` — travel as gnostic's `Any` with their YAML text;
//! JSON is YAML, so that text is the value's JSON.

use serde_json::Value;

/// Encodes `doc` as an `openapi.v2.Document`.
pub fn document(doc: &Value) -> Vec<u8> {
    let mut m = Message::default();
    for (key, v) in entries(doc) {
        match key {
            "swagger" => m.string(1, v),
            "info" => m.message(2, info(v)),
            "host" => m.string(3, v),
            "basePath" => m.string(4, v),
            "schemes" => m.strings(5, v),
            "consumes" => m.strings(6, v),
            "produces" => m.strings(7, v),
            "paths" => m.message(8, paths(v)),
            "definitions" => m.message(9, named(v, schema)),
            "parameters" => m.message(10, named(v, parameter)),
            _ => m.extension(16, key, v),
        }
    }
    m.0
}

fn info(v: &Value) -> Message {
    let mut m = Message::default();
    for (key, v) in entries(v) {
        match key {
            "title" => m.string(1, v),
            "version" => m.string(2, v),
            "description" => m.string(3, v),
            "termsOfService" => m.string(4, v),
            _ => m.extension(7, key, v),
        }
    }
    m
}

fn paths(v: &Value) -> Message {
    let mut m = Message::default();
    for (key, v) in entries(v) {
        if key.starts_with("x-") {
            m.extension(1, key, v);
        } else {
            m.message(2, pair(key, path_item(v)));
        }
    }
    m
}

fn path_item(v: &Value) -> Message {
    let mut m = Message::default();
    for (key, v) in entries(v) {
        match key {
            "$ref" => m.string(1, v),
            "get" => m.message(2, operation(v)),
            "put" => m.message(3, operation(v)),
            "post" => m.message(4, operation(v)),
            "delete" => m.message(5, operation(v)),
            "options" => m.message(6, operation(v)),
            "head" => m.message(7, operation(v)),
            "patch" => m.message(8, operation(v)),
            "parameters" => m.messages(9, v, parameters_item),
            _ => m.extension(10, key, v),
        }
    }
    m
}

fn operation(v: &Value) -> Message {
    let mut m = Message::default();
    for (key, v) in entries(v) {
        match key {
            "tags" => m.strings(1, v),
            "summary" => m.string(2, v),
            "description" => m.string(3, v),
            "operationId" => m.string(5, v),
            "produces" => m.strings(6, v),
            "consumes" => m.strings(7, v),
            "parameters" => m.messages(8, v, parameters_item),
            "responses" => m.message(9, responses(v)),
            "schemes" => m.strings(10, v),
            "deprecated" => m.bool(11, v),
            _ => m.extension(13, key, v),
        }
    }
    m
}

/// `ParametersItem`: a parameter or a `$ref` to one.
fn parameters_item(v: &Value) -> Message {
    let mut m = Message::default();
    if v.get("$ref").is_some() {
        m.message(2, json_reference(v));
    } else {
        m.message(1, parameter(v));
    }
    m
}

fn json_reference(v: &Value) -> Message {
    let mut m = Message::default();
    m.string(1, &v["$ref"]);
    m.string(2, &v["description"]);
    m
}

/// `Parameter`: a body parameter, or one of the four kinds of `NonBodyParameter`.
fn parameter(v: &Value) -> Message {
    let mut m = Message::default();
    let mut sub = Message::default();
    match v["in"].as_str() {
        Some("body") => {
            for (key, v) in entries(v) {
                match key {
                    "description" => sub.string(1, v),
                    "name" => sub.string(2, v),
                    "in" => sub.string(3, v),
                    "required" => sub.bool(4, v),
                    "schema" => sub.message(5, schema(v)),
                    _ => sub.extension(6, key, v),
                }
            }
            m.message(1, sub);
        }
        location => {
            let (variant, query_like) = match location {
                Some("header") => (1, false),
                Some("formData") => (2, true),
                Some("path") => (4, false),
                _ => (3, true),
            };
            let mut non_body = Message::default();
            non_body.message(variant, parameter_sub_schema(v, query_like));
            m.message(2, non_body);
        }
    }
    m
}

/// The `*ParameterSubSchema` messages: the query and form-data ones have `allow_empty_value`
/// as field 5, which shifts every later field by one against the path and header ones.
fn parameter_sub_schema(v: &Value, query_like: bool) -> Message {
    let mut m = Message::default();
    let shift = u32::from(query_like);
    for (key, v) in entries(v) {
        match key {
            "required" => m.bool(1, v),
            "in" => m.string(2, v),
            "description" => m.string(3, v),
            "name" => m.string(4, v),
            "allowEmptyValue" if query_like => m.bool(5, v),
            "type" => m.string(5 + shift, v),
            "format" => m.string(6 + shift, v),
            "collectionFormat" => m.string(8 + shift, v),
            "default" => m.message(9 + shift, any(v)),
            "maximum" => m.double(10 + shift, v),
            "exclusiveMaximum" => m.bool(11 + shift, v),
            "minimum" => m.double(12 + shift, v),
            "exclusiveMinimum" => m.bool(13 + shift, v),
            "maxLength" => m.int64(14 + shift, v),
            "minLength" => m.int64(15 + shift, v),
            "pattern" => m.string(16 + shift, v),
            "maxItems" => m.int64(17 + shift, v),
            "minItems" => m.int64(18 + shift, v),
            "uniqueItems" => m.bool(19 + shift, v),
            "enum" => m.messages(20 + shift, v, any),
            "multipleOf" => m.double(21 + shift, v),
            _ => m.extension(22 + shift, key, v),
        }
    }
    m
}

fn responses(v: &Value) -> Message {
    let mut m = Message::default();
    for (key, v) in entries(v) {
        if key.starts_with("x-") {
            m.extension(2, key, v);
        } else {
            m.message(1, pair(key, response_value(v)));
        }
    }
    m
}

/// `ResponseValue`: a response or a `$ref` to one.
fn response_value(v: &Value) -> Message {
    let mut m = Message::default();
    if v.get("$ref").is_some() {
        m.message(2, json_reference(v));
        return m;
    }
    let mut response = Message::default();
    for (key, v) in entries(v) {
        match key {
            "description" => response.string(1, v),
            "schema" => {
                let mut item = Message::default();
                item.message(1, schema(v));
                response.message(2, item);
            }
            _ => response.extension(5, key, v),
        }
    }
    m.message(1, response);
    m
}

fn schema(v: &Value) -> Message {
    let mut m = Message::default();
    for (key, v) in entries(v) {
        match key {
            "$ref" => m.string(1, v),
            "format" => m.string(2, v),
            "title" => m.string(3, v),
            "description" => m.string(4, v),
            "default" => m.message(5, any(v)),
            "multipleOf" => m.double(6, v),
            "maximum" => m.double(7, v),
            "exclusiveMaximum" => m.bool(8, v),
            "minimum" => m.double(9, v),
            "exclusiveMinimum" => m.bool(10, v),
            "maxLength" => m.int64(11, v),
            "minLength" => m.int64(12, v),
            "pattern" => m.string(13, v),
            "maxItems" => m.int64(14, v),
            "minItems" => m.int64(15, v),
            "uniqueItems" => m.bool(16, v),
            "maxProperties" => m.int64(17, v),
            "minProperties" => m.int64(18, v),
            "required" => m.strings(19, v),
            "enum" => m.messages(20, v, any),
            "additionalProperties" => m.message(21, additional_properties(v)),
            "type" => m.message(22, type_item(v)),
            "items" => m.message(23, items(v)),
            "allOf" => m.messages(24, v, schema),
            "properties" => m.message(25, named(v, schema)),
            "discriminator" => m.string(26, v),
            "readOnly" => m.bool(27, v),
            "example" => m.message(30, any(v)),
            _ => m.extension(31, key, v),
        }
    }
    m
}

/// `AdditionalPropertiesItem`: a schema or a boolean.
fn additional_properties(v: &Value) -> Message {
    let mut m = Message::default();
    match v {
        Value::Bool(b) => m.raw_bool(2, *b),
        _ => m.message(1, schema(v)),
    }
    m
}

/// `TypeItem`: one type name or several.
fn type_item(v: &Value) -> Message {
    let mut m = Message::default();
    match v {
        Value::String(_) => m.string(1, v),
        _ => m.strings(1, v),
    }
    m
}

/// `ItemsItem`: one schema, or a list of them.
fn items(v: &Value) -> Message {
    let mut m = Message::default();
    match v {
        Value::Array(_) => m.messages(1, v, schema),
        _ => m.message(1, schema(v)),
    }
    m
}

/// The `Named*` lists gnostic keeps maps in (`Definitions`, `Properties`,
/// `ParameterDefinitions`): field 1 repeats `{name = 1, value = 2}`.
fn named(v: &Value, value: fn(&Value) -> Message) -> Message {
    let mut m = Message::default();
    for (key, v) in entries(v) {
        m.message(1, pair(key, value(v)));
    }
    m
}

fn pair(name: &str, value: Message) -> Message {
    let mut m = Message::default();
    m.raw_string(1, name);
    m.message(2, value);
    m
}

/// gnostic's `Any`: the value's YAML text in field 2.
fn any(v: &Value) -> Message {
    let mut m = Message::default();
    m.raw_string(2, &v.to_string());
    m
}

fn entries(v: &Value) -> impl Iterator<Item = (&str, &Value)> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v))
}

/// One message's bytes. Scalars at their proto3 default are left out, as Go's encoder does;
/// nested messages are always written, since kubectl tells an empty `properties` from none.
#[derive(Debug, Default)]
struct Message(Vec<u8>);

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LENGTH_DELIMITED: u32 = 2;

impl Message {
    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn raw_string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn raw_bool(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, VARINT);
            self.varint(1);
        }
    }

    fn string(&mut self, field: u32, v: &Value) {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            self.raw_string(field, s);
        }
    }

    /// A repeated string field: every element is written, empty ones too.
    fn strings(&mut self, field: u32, v: &Value) {
        for s in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
            self.raw_string(field, s);
        }
    }

    fn bool(&mut self, field: u32, v: &Value) {
        self.raw_bool(field, v.as_bool().unwrap_or(false));
    }

    fn int64(&mut self, field: u32, v: &Value) {
        if let Some(n) = v.as_i64().filter(|n| *n != 0) {
            self.key(field, VARINT);
            self.varint(n as u64);
        }
    }

    fn double(&mut self, field: u32, v: &Value) {
        if let Some(x) = v.as_f64().filter(|x| *x != 0.0) {
            self.key(field, FIXED64);
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }

    fn message(&mut self, field: u32, m: Message) {
        self.bytes(field, &m.0);
    }

    /// A repeated message field, one element per item of the array `v`.
    fn messages(&mut self, field: u32, v: &Value, each: fn(&Value) -> Message) {
        for item in v.as_array().into_iter().flatten() {
            self.message(field, each(item));
        }
    }

    /// A vendor extension (`x-…`) as a `NamedAny`; other unknown keys are not part of the
    /// message and are dropped.
    fn extension(&mut self, field: u32, key: &str, v: &Value) {
        if key.starts_with("x-") {
            self.message(field, pair(key, any(v)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A decoded field: its number and its varint, fixed64 or length-delimited bytes.
    #[derive(Debug, PartialEq)]
    enum Field<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
    }

    fn varint(buf: &mut &[u8]) -> u64 {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first().expect("truncated varint");
            *buf = rest;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return n;
            }
        }
        panic!("varint too long")
    }

    fn fields(mut buf: &[u8]) -> Vec<(u32, Field<'_>)> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let key = varint(&mut buf);
            let field = (key >> 3) as u32;
            let value = match key & 7 {
                0 => Field::Varint(varint(&mut buf)),
                1 => {
                    let (n, rest) = buf.split_at(8);
                    buf = rest;
                    Field::Fixed64(u64::from_le_bytes(n.try_into().expect("8 bytes")))
                }
                2 => {
                    let len = varint(&mut buf) as usize;
                    let (b, rest) = buf.split_at(len);
                    buf = rest;
                    Field::Bytes(b)
                }
                wire => panic!("unexpected wire type {wire}"),
            };
            out.push((field, value));
        }
        out
    }

    /// The bytes of every occurrence of length-delimited `field`.
    fn all(buf: &[u8], field: u32) -> Vec<&[u8]> {
        fields(buf)
            .into_iter()
            .filter_map(|(f, v)| match v {
                Field::Bytes(b) if f == field => Some(b),
                _ => None,
            })
            .collect()
    }

    fn one(buf: &[u8], field: u32) -> &[u8] {
        match all(buf, field).as_slice() {
            [b] => b,
            other => panic!("field {field}: {} occurrences", other.len()),
        }
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).expect("UTF-8")
    }

    /// The `(name, value)` of a `Named*` pair.
    fn named_pair(b: &[u8]) -> (&str, &[u8]) {
        (text(one(b, 1)), one(b, 2))
    }

    #[test]
    fn a_string_type_is_a_type_item_in_field_22() {
        let bytes = schema(&json!({ "type": "string" })).0;
        let mut want = vec![0xb2, 0x01, 8, 0x0a, 6];
        want.extend_from_slice(b"string");
        assert_eq!(bytes, want);
    }

    #[test]
    fn scalars_at_their_default_are_left_out_and_messages_are_not() {
        let bytes = schema(&json!({
            "description": "", "uniqueItems": false, "minLength": 0, "properties": {},
        }))
        .0;
        assert_eq!(fields(&bytes), vec![(25, Field::Bytes(&[]))]);
    }

    #[test]
    fn numbers_booleans_and_negative_integers() {
        let bytes = schema(&json!({
            "maximum": 1.5, "uniqueItems": true, "minLength": -1, "maxLength": 300,
        }))
        .0;
        assert_eq!(
            fields(&bytes),
            vec![
                (7, Field::Fixed64(1.5f64.to_bits())),
                (16, Field::Varint(1)),
                (12, Field::Varint(u64::MAX)),
                (11, Field::Varint(300)),
            ]
        );
    }

    #[test]
    fn vendor_extensions_carry_their_value_as_yaml_text() {
        let bytes = schema(&json!({
            "x-kubernetes-group-version-kind": [{ "group": "", "kind": "ConfigMap", "version": "v1" }],
            "nullable": true,
        }))
        .0;
        let (name, any) = named_pair(one(&bytes, 31));
        assert_eq!(name, "x-kubernetes-group-version-kind");
        assert_eq!(
            text(one(any, 2)),
            r#"[{"group":"","kind":"ConfigMap","version":"v1"}]"#
        );
        assert_eq!(
            fields(&bytes).len(),
            1,
            "non-extension unknown keys are dropped"
        );
    }

    #[test]
    fn schemas_nest_properties_items_and_references() {
        let bytes = schema(&json!({
            "type": "object",
            "required": ["metadata", "spec"],
            "properties": {
                "spec": { "$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec", "description": "d" },
                "ports": { "type": "array", "items": { "type": "integer", "format": "int32" } },
                "labels": { "type": "object", "additionalProperties": { "type": "string" } },
            },
        }))
        .0;
        let required: Vec<&str> = all(&bytes, 19).into_iter().map(text).collect();
        assert_eq!(required, ["metadata", "spec"]);
        let props = all(one(&bytes, 25), 1);
        assert_eq!(props.len(), 3);
        let (name, spec) = named_pair(props[0]);
        assert_eq!(name, "spec");
        assert_eq!(
            text(one(spec, 1)),
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        assert_eq!(text(one(spec, 4)), "d");
        let (_, ports) = named_pair(props[1]);
        let item = one(one(ports, 23), 1);
        assert_eq!(text(one(item, 2)), "int32");
        let (_, labels) = named_pair(props[2]);
        let additional = one(one(labels, 21), 1);
        assert_eq!(text(one(one(additional, 22), 1)), "string");
    }

    #[test]
    fn parameters_take_their_kinds_field_numbers() {
        let op = operation(&json!({
            "operationId": "patchConfigMap",
            "parameters": [
                { "in": "body", "name": "body", "required": true, "schema": { "type": "object" } },
                { "in": "query", "name": "fieldValidation", "type": "string", "uniqueItems": true },
                { "in": "path", "name": "name", "required": true, "type": "string" },
                { "$ref": "#/parameters/pretty" },
            ],
            "responses": { "200": { "description": "OK", "schema": { "$ref": "#/definitions/x" } } },
            "x-kubernetes-action": "patch",
        }))
        .0;
        assert_eq!(text(one(&op, 5)), "patchConfigMap");
        let params = all(&op, 8);
        assert_eq!(params.len(), 4);
        let body = one(one(params[0], 1), 1);
        assert_eq!(text(one(body, 2)), "body");
        assert_eq!(text(one(body, 3)), "body");
        assert!(fields(body).contains(&(4, Field::Varint(1))));
        let query = one(one(one(params[1], 1), 2), 3);
        assert_eq!(text(one(query, 4)), "fieldValidation");
        assert_eq!(text(one(query, 6)), "string");
        assert!(fields(query).contains(&(20, Field::Varint(1))));
        let path = one(one(one(params[2], 1), 2), 4);
        assert_eq!(text(one(path, 5)), "string");
        let reference = one(params[3], 2);
        assert_eq!(text(one(reference, 1)), "#/parameters/pretty");
        let (code, value) = named_pair(one(one(&op, 9), 1));
        assert_eq!(code, "200");
        let response = one(value, 1);
        assert_eq!(text(one(response, 1)), "OK");
        assert_eq!(text(one(one(one(response, 2), 1), 1)), "#/definitions/x");
        let (ext, any) = named_pair(one(&op, 13));
        assert_eq!(
            (ext, text(one(any, 2))),
            ("x-kubernetes-action", "\"patch\"")
        );
    }

    #[test]
    fn a_document_has_its_paths_and_definitions() {
        let doc = document(&json!({
            "swagger": "2.0",
            "info": { "title": "Kubernetes", "version": "v1.32.0" },
            "paths": { "/api/v1/pods": { "get": { "operationId": "listPods" } } },
            "definitions": { "io.k8s.api.core.v1.Pod": { "type": "object" } },
        }));
        assert_eq!(text(one(&doc, 1)), "2.0");
        assert_eq!(text(one(one(&doc, 2), 2)), "v1.32.0");
        let (path, item) = named_pair(one(one(&doc, 8), 2));
        assert_eq!(path, "/api/v1/pods");
        assert_eq!(text(one(one(item, 2), 5)), "listPods");
        let (name, _) = named_pair(one(one(&doc, 9), 1));
        assert_eq!(name, "io.k8s.api.core.v1.Pod");
    }
}
