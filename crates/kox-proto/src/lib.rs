//! Decodes Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into the
//! object's JSON form, the same `serde_json::Value` its JSON manifest would be.
//!
//! The wire format (upstream `runtime/serializer/protobuf`): the 4-byte magic `k8s\0`, then a
//! `runtime.Unknown` message {1: TypeMeta {1: apiVersion, 2: kind}, 2: raw (the object's own
//! message), 3: contentEncoding, 4: contentType}.
//!
//! The object's message is decoded by a small generic protobuf decoder (`decode.rs`, `wire.rs`)
//! driven by field tables (`generated.rs`) that `gen/gen_schema.py` derives from upstream's
//! `generated.proto` files and the Go struct tags of the API types. Each field's JSON form
//! follows Go's encoding of the decoded struct:
//!
//! - names are the Go JSON names (camelCase); fields are in the Go struct's order;
//! - a pointer field is written whenever it is on the wire, even with a zero value
//!   (`replicas: 0`); a plain field is left out when it has `omitempty` and a zero value
//!   (upstream's encoder writes every non-pointer field, so zero there means "unset");
//! - an all-zero struct with `omitempty` is left out (`status: {}`); an inline struct's fields
//!   are written into its parent (`Volume.volumeSource`, `IngressRule.ingressRuleValue`);
//! - `IntOrString` is a number or a string, `Quantity` its string, `Time` RFC 3339 in whole
//!   seconds, `MicroTime` RFC 3339 with microseconds, `bytes` base64, maps objects,
//!   `RawExtension`/`FieldsV1` the embedded JSON (or a nested protobuf object);
//! - empty lists and maps are left out; unknown fields are skipped, as upstream does.
//!
//! The same tables word JSON decoding errors as upstream's Go decoder does (`go_json`).
//!
//! The crate is pure: no IO, no async.

mod decode;
mod generated;
pub mod go_json;
mod schema;
mod time;
mod wire;

use serde_json::{Map, Value};

use crate::decode::{DecodeError, MAX_DEPTH};
use crate::wire::{Reader, WireType};

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\x00";

/// Why a protobuf body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The body does not start with `k8s\0`.
    #[error("the protobuf body does not start with the Kubernetes magic number \"k8s\\x00\"")]
    BadMagic,
    /// The envelope names a kind this decoder has no schema for.
    #[error(
        "protobuf is not supported for apiVersion {api_version:?}, kind {kind:?}: send the object as JSON or YAML"
    )]
    UnknownKind { api_version: String, kind: String },
    /// The envelope asks for a content encoding (compression) that is not supported.
    #[error("protobuf content encoding {0:?} is not supported")]
    UnsupportedEncoding(String),
    /// The wire data does not fit the schema.
    #[error("{}", malformed(.what, .path, .detail))]
    Malformed {
        /// `apps/v1 Deployment`, or `the runtime.Unknown envelope`.
        what: String,
        /// Where in the object, as a JSON path (`spec.template.spec.containers[0]`).
        path: String,
        detail: String,
    },
}

fn malformed(what: &str, path: &str, detail: &str) -> String {
    if path.is_empty() {
        format!("malformed protobuf {what}: {detail}")
    } else {
        format!("malformed protobuf {what} at {path}: {detail}")
    }
}

impl ProtoError {
    /// Whether the body is well-formed but not decodable here (an HTTP 415 rather than a 400).
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            ProtoError::UnknownKind { .. } | ProtoError::UnsupportedEncoding(_)
        )
    }
}

/// Whether a Content-Type header value names the Kubernetes protobuf media type.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// Decodes a Kubernetes protobuf body (`k8s\0` + `runtime.Unknown`) into the object's JSON form,
/// `kind` and `apiVersion` first.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtoError> {
    decode_object_at(body, 0)
}

/// The (apiVersion, kind) pairs this decoder knows; apiVersion `*` stands for any group-version.
pub fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    generated::KINDS.iter().map(|k| (k.api_version, k.kind))
}

/// Whether objects of `api_version` / `kind` can be decoded.
pub fn supports(api_version: &str, kind: &str) -> bool {
    find_kind(api_version, kind).is_some()
}

fn find_kind(api_version: &str, kind: &str) -> Option<u16> {
    let all = generated::KINDS;
    all.iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
        .or_else(|| all.iter().find(|k| k.api_version == "*" && k.kind == kind))
        .map(|k| k.message)
}

/// The envelope's parts.
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

fn read_unknown(body: &[u8]) -> Result<Unknown<'_>, String> {
    let mut out = Unknown {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
    };
    let mut r = Reader::new(body);
    while let Some((number, wire)) = r.key()? {
        match (number, wire) {
            (1, WireType::Len) => {
                let mut tm = Reader::new(r.bytes()?);
                while let Some((n, w)) = tm.key()? {
                    match (n, w) {
                        (1, WireType::Len) => out.api_version = utf8(tm.bytes()?),
                        (2, WireType::Len) => out.kind = utf8(tm.bytes()?),
                        _ => tm.skip(w)?,
                    }
                }
            }
            (2, WireType::Len) => out.raw = r.bytes()?,
            (3, WireType::Len) => out.content_encoding = utf8(r.bytes()?),
            // contentType: the raw bytes are always protobuf here.
            (4, WireType::Len) => drop(r.bytes()?),
            (1..=4, w) => return Err(format!("field {number} has wire type {}", w.name())),
            _ => r.skip(wire)?,
        }
    }
    Ok(out)
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn decode_object_at(body: &[u8], depth: usize) -> Result<Value, ProtoError> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        return Err(ProtoError::BadMagic);
    };
    if depth > MAX_DEPTH {
        return Err(ProtoError::Malformed {
            what: "object".into(),
            path: String::new(),
            detail: format!("objects nested more than {MAX_DEPTH} deep"),
        });
    }
    let unknown = read_unknown(envelope).map_err(|detail| ProtoError::Malformed {
        what: "runtime.Unknown envelope".into(),
        path: String::new(),
        detail,
    })?;
    if !unknown.content_encoding.is_empty() {
        return Err(ProtoError::UnsupportedEncoding(unknown.content_encoding));
    }
    let Some(message) = find_kind(&unknown.api_version, &unknown.kind) else {
        return Err(ProtoError::UnknownKind {
            api_version: unknown.api_version,
            kind: unknown.kind,
        });
    };
    let what = format!("{} {}", unknown.api_version, unknown.kind);
    let decoded =
        decode::decode_message(message, &[unknown.raw], depth).map_err(|e: DecodeError| {
            ProtoError::Malformed {
                what,
                path: e.path_string(),
                detail: e.detail,
            }
        })?;
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(unknown.kind));
    out.insert("apiVersion".into(), Value::String(unknown.api_version));
    if let Some(Value::Object(fields)) = decoded {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests;
