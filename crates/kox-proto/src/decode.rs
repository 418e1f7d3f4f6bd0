//! Decodes one message of the schema into its JSON form, driven by the generated field tables.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value};

use crate::generated::MESSAGES;
use crate::schema::{Card, Field, Go, Message, Scalar, Special, Ty};
use crate::wire::{Reader, WireType};

/// The deepest nesting of messages (and embedded objects) a body may have.
pub(crate) const MAX_DEPTH: usize = 100;

/// A decoding failure and where it happened (JSON path segments, innermost last).
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub path: Vec<String>,
    pub detail: String,
}

impl DecodeError {
    fn new(detail: impl Into<String>) -> Self {
        DecodeError {
            path: Vec::new(),
            detail: detail.into(),
        }
    }

    fn within(mut self, segment: String) -> Self {
        self.path.insert(0, segment);
        self
    }

    /// The path as `spec.template.spec.containers[0]`.
    pub(crate) fn path_string(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            if !out.is_empty() && !seg.starts_with('[') {
                out.push('.');
            }
            out.push_str(seg);
        }
        out
    }
}

impl From<String> for DecodeError {
    fn from(detail: String) -> Self {
        DecodeError::new(detail)
    }
}

type Result<T> = std::result::Result<T, DecodeError>;

/// A field's values as read off the wire.
#[derive(Debug)]
enum Slot<'a> {
    Unset,
    /// A single scalar (bytes kept raw: RawExtension and FieldsV1 need them unencoded).
    Scalar(Value),
    Raw(&'a [u8]),
    /// A single message: every occurrence, merged in order as protobuf specifies.
    Chunks(Vec<&'a [u8]>),
    List(Vec<Value>),
    Map(Map<String, Value>),
}

/// Decodes message `index` from its occurrences `chunks` (their concatenation, as protobuf merges
/// repeated occurrences of a message field). `None` stands for the JSON `null` (a zero Time, …).
pub(crate) fn decode_message(index: u16, chunks: &[&[u8]], depth: usize) -> Result<Option<Value>> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::new(format!(
            "objects nested more than {MAX_DEPTH} deep"
        )));
    }
    let msg = &MESSAGES[usize::from(index)];
    let slots = read_fields(msg, chunks, depth)?;
    match msg.special {
        Special::None => build_object(msg, slots, depth).map(|m| Some(Value::Object(m))),
        Special::Time | Special::MicroTime => {
            let seconds = int_slot(msg, &slots, "seconds");
            let nanos = int_slot(msg, &slots, "nanos");
            if seconds.is_none() && nanos.is_none() {
                return Ok(None);
            }
            let micro = msg.special == Special::MicroTime;
            crate::time::format(seconds.unwrap_or(0), nanos.unwrap_or(0), micro)
                .map_err(DecodeError::new)
        }
        Special::Quantity => Ok(match slot(msg, &slots, "string") {
            Some(Slot::Scalar(Value::String(s))) if !s.is_empty() => Some(Value::String(s.clone())),
            _ => None,
        }),
        Special::IntOrString => {
            if int_slot(msg, &slots, "type") == Some(1) {
                Ok(Some(match slot(msg, &slots, "strVal") {
                    Some(Slot::Scalar(v @ Value::String(_))) => v.clone(),
                    _ => Value::String(String::new()),
                }))
            } else {
                Ok(Some(Value::from(
                    int_slot(msg, &slots, "intVal").unwrap_or(0),
                )))
            }
        }
        Special::RawExtension | Special::RawJson => {
            let raw = match msg.fields.first().map(|_| &slots[0]) {
                Some(Slot::Raw(raw)) => *raw,
                _ => return Ok(None),
            };
            embedded(raw, depth)
        }
        Special::List => Ok(Some(match slots.into_iter().next() {
            Some(Slot::List(items)) => Value::Array(items),
            _ => Value::Array(Vec::new()),
        })),
    }
}

/// An embedded object (RawExtension, FieldsV1): JSON, or a nested Kubernetes protobuf object.
fn embedded(raw: &[u8], depth: usize) -> Result<Option<Value>> {
    let trimmed = raw.trim_ascii_start();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if raw.starts_with(crate::MAGIC) {
        return crate::decode_object_at(raw, depth + 1)
            .map(Some)
            .map_err(|e| DecodeError::new(format!("embedded object: {e}")));
    }
    serde_json::from_slice::<Value>(raw)
        .map(|v| (!v.is_null()).then_some(v))
        .map_err(|e| DecodeError::new(format!("embedded object is not JSON: {e}")))
}

fn field_index(msg: &Message, json: &str) -> Option<usize> {
    msg.fields.iter().position(|f| f.json == json)
}

fn slot<'s, 'a>(msg: &Message, slots: &'s [Slot<'a>], json: &str) -> Option<&'s Slot<'a>> {
    field_index(msg, json).map(|i| &slots[i])
}

fn int_slot(msg: &Message, slots: &[Slot<'_>], json: &str) -> Option<i64> {
    match slot(msg, slots, json) {
        Some(Slot::Scalar(Value::Number(n))) => n.as_i64(),
        _ => None,
    }
}

/// Reads every field of every chunk into per-field slots (unknown fields are skipped).
fn read_fields<'a>(msg: &Message, chunks: &[&'a [u8]], depth: usize) -> Result<Vec<Slot<'a>>> {
    let mut slots: Vec<Slot<'a>> = msg.fields.iter().map(|_| Slot::Unset).collect();
    for chunk in chunks {
        let mut r = Reader::new(chunk);
        while let Some((number, wire)) = r.key()? {
            let Some(i) = msg.fields.iter().position(|f| f.number == number) else {
                r.skip(wire)?;
                continue;
            };
            let f = &msg.fields[i];
            read_field(f, &mut slots[i], &mut r, wire, depth)
                .map_err(|e| e.within(f.json.to_string()))?;
        }
    }
    Ok(slots)
}

fn read_field<'a>(
    f: &Field,
    slot: &mut Slot<'a>,
    r: &mut Reader<'a>,
    wire: WireType,
    depth: usize,
) -> Result<()> {
    match (f.card, f.ty) {
        (Card::Single, Ty::Scalar(Scalar::Bytes)) => {
            expect_wire(wire, WireType::Len)?;
            *slot = Slot::Raw(r.bytes()?);
        }
        (Card::Single, Ty::Scalar(s)) => *slot = Slot::Scalar(read_scalar(r, s, wire)?),
        (Card::Single, Ty::Message(_)) => {
            expect_wire(wire, WireType::Len)?;
            let bytes = r.bytes()?;
            match slot {
                Slot::Chunks(chunks) => chunks.push(bytes),
                _ => *slot = Slot::Chunks(vec![bytes]),
            }
        }
        (Card::Repeated, ty) => {
            if !matches!(slot, Slot::List(_)) {
                *slot = Slot::List(Vec::new());
            }
            let Slot::List(items) = slot else {
                unreachable!()
            };
            match ty {
                Ty::Scalar(s) if wire == WireType::Len && packable(s) => {
                    let mut packed = Reader::new(r.bytes()?);
                    while !packed.is_empty() {
                        items.push(read_scalar(&mut packed, s, scalar_wire(s))?);
                    }
                }
                Ty::Scalar(s) => items.push(read_scalar(r, s, wire)?),
                Ty::Message(m) => {
                    expect_wire(wire, WireType::Len)?;
                    let bytes = r.bytes()?;
                    let at = items.len();
                    let v = decode_message(m, &[bytes], depth + 1)
                        .map_err(|e| e.within(format!("[{at}]")))?;
                    items.push(v.unwrap_or(Value::Null));
                }
            }
        }
        (Card::Map(key_type), value_type) => {
            expect_wire(wire, WireType::Len)?;
            let entry = r.bytes()?;
            let (key, value) = read_map_entry(entry, key_type, value_type, depth)?;
            if !matches!(slot, Slot::Map(_)) {
                *slot = Slot::Map(Map::new());
            }
            if let Slot::Map(map) = slot {
                map.insert(key, value);
            }
        }
    }
    Ok(())
}

/// A map entry message {1: key, 2: value}; missing parts are their zero values.
fn read_map_entry(
    entry: &[u8],
    key_type: Scalar,
    value_type: Ty,
    depth: usize,
) -> Result<(String, Value)> {
    let mut r = Reader::new(entry);
    let mut key = None;
    let mut value = None;
    let mut value_chunks = Vec::new();
    while let Some((number, wire)) = r.key()? {
        match number {
            1 => key = Some(read_scalar(&mut r, key_type, wire)?),
            2 => match value_type {
                Ty::Scalar(s) => value = Some(read_scalar(&mut r, s, wire)?),
                Ty::Message(_) => {
                    expect_wire(wire, WireType::Len)?;
                    value_chunks.push(r.bytes()?);
                }
            },
            _ => r.skip(wire)?,
        }
    }
    let key = match key.unwrap_or_else(|| scalar_zero(key_type)) {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let value = match value_type {
        Ty::Scalar(s) => value.unwrap_or_else(|| scalar_zero(s)),
        Ty::Message(m) => decode_message(m, &value_chunks, depth + 1)
            .map_err(|e| e.within(format!("[{key:?}]")))?
            .unwrap_or(Value::Null),
    };
    Ok((key, value))
}

fn expect_wire(got: WireType, want: WireType) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(DecodeError::new(format!(
            "wire type {} where {} was expected",
            got.name(),
            want.name()
        )))
    }
}

fn scalar_wire(s: Scalar) -> WireType {
    match s {
        Scalar::Bool
        | Scalar::Int32
        | Scalar::Int64
        | Scalar::Uint32
        | Scalar::Uint64
        | Scalar::Sint32
        | Scalar::Sint64 => WireType::Varint,
        Scalar::Fixed32 | Scalar::Sfixed32 | Scalar::Float => WireType::Fixed32,
        Scalar::Fixed64 | Scalar::Sfixed64 | Scalar::Double => WireType::Fixed64,
        Scalar::String | Scalar::Bytes => WireType::Len,
    }
}

fn packable(s: Scalar) -> bool {
    scalar_wire(s) != WireType::Len
}

/// Reads one scalar as its JSON value (bytes as base64, strings lossily as Go's JSON does).
fn read_scalar(r: &mut Reader<'_>, s: Scalar, wire: WireType) -> Result<Value> {
    expect_wire(wire, scalar_wire(s))?;
    Ok(match s {
        Scalar::Bool => Value::Bool(r.varint()? != 0),
        Scalar::Int32 => Value::from(r.varint()? as i32),
        Scalar::Int64 => Value::from(r.varint()? as i64),
        Scalar::Uint32 => Value::from(r.varint()? as u32),
        Scalar::Uint64 => Value::from(r.varint()?),
        Scalar::Sint32 => {
            let v = r.varint()? as u32;
            Value::from(((v >> 1) as i32) ^ -((v & 1) as i32))
        }
        Scalar::Sint64 => {
            let v = r.varint()?;
            Value::from(((v >> 1) as i64) ^ -((v & 1) as i64))
        }
        Scalar::Fixed32 => Value::from(r.fixed32()?),
        Scalar::Sfixed32 => Value::from(r.fixed32()? as i32),
        Scalar::Fixed64 => Value::from(r.fixed64()?),
        Scalar::Sfixed64 => Value::from(r.fixed64()? as i64),
        Scalar::Float => float(f64::from(f32::from_bits(r.fixed32()?)))?,
        Scalar::Double => float(f64::from_bits(r.fixed64()?))?,
        Scalar::String => Value::String(String::from_utf8_lossy(r.bytes()?).into_owned()),
        Scalar::Bytes => Value::String(BASE64.encode(r.bytes()?)),
    })
}

fn float(v: f64) -> Result<Value> {
    Number::from_f64(v)
        .map(Value::Number)
        .ok_or_else(|| DecodeError::new(format!("{v} has no JSON form")))
}

fn scalar_zero(s: Scalar) -> Value {
    match s {
        Scalar::Bool => Value::Bool(false),
        Scalar::String => Value::String(String::new()),
        Scalar::Bytes => Value::Null,
        Scalar::Float | Scalar::Double => Value::from(0.0),
        _ => Value::from(0),
    }
}

/// Whether a JSON value is its Go type's zero value (what `omitempty` leaves out).
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Writes a message's fields as a JSON object, in the Go struct's order, following Go's JSON
/// encoding: pointers when set, values unless `omitempty` and zero (an all-zero embedded struct
/// counts as zero), inline structs merged in, empty lists and maps left out.
fn build_object(msg: &Message, slots: Vec<Slot<'_>>, depth: usize) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for (f, slot) in msg.fields.iter().zip(slots) {
        let value = field_value(f, slot, depth).map_err(|e| e.within(f.json.to_string()))?;
        match (f.go, value) {
            (Go::Skip, _) | (_, None) => {}
            (Go::Inline, Some(Value::Object(inner))) => out.extend(inner),
            (Go::Inline, Some(_)) => {}
            (_, Some(v)) => {
                out.insert(f.json.to_string(), v);
            }
        }
    }
    Ok(out)
}

/// The JSON value a field contributes, or `None` to leave it out.
fn field_value(f: &Field, slot: Slot<'_>, depth: usize) -> Result<Option<Value>> {
    let present = !matches!(slot, Slot::Unset);
    let value = match slot {
        Slot::List(items) => return Ok((!items.is_empty()).then_some(Value::Array(items))),
        Slot::Map(map) => return Ok((!map.is_empty()).then_some(Value::Object(map))),
        Slot::Scalar(v) => Some(v),
        Slot::Raw(raw) => Some(Value::String(BASE64.encode(raw))),
        Slot::Chunks(chunks) => match f.ty {
            Ty::Message(m) => decode_message(m, &chunks, depth + 1)?,
            Ty::Scalar(_) => unreachable!("message chunks for a scalar field"),
        },
        Slot::Unset => match (f.card, f.go, f.ty) {
            (Card::Repeated | Card::Map(_), _, _) => return Ok(None),
            (_, Go::Pointer | Go::Skip | Go::Value { omitempty: true }, _) => return Ok(None),
            (_, Go::Inline | Go::Value { omitempty: false }, Ty::Message(m)) => {
                decode_message(m, &[], depth + 1)?
            }
            (_, _, Ty::Scalar(s)) => Some(scalar_zero(s)),
        },
    };
    let Some(value) = value else {
        return Ok(None);
    };
    Ok(match f.go {
        Go::Pointer => present.then_some(value),
        Go::Value { omitempty: true } if is_zero(&value) => None,
        _ if value.is_null() => None,
        _ => Some(value),
    })
}
