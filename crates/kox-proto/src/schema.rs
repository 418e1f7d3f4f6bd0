//! The shape of the generated field tables (`generated.rs`).

/// A protobuf scalar type.
#[allow(
    dead_code,
    reason = "the table format covers every protobuf scalar; today's schema uses five of them"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Float,
    Double,
    String,
    Bytes,
}

/// A field's element type: a scalar, or a message by its index in `MESSAGES`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Scalar(Scalar),
    Message(u16),
}

/// How often a field occurs: once (proto2 `optional`), `repeated`, or `map<key, ty>`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Card {
    Single,
    Repeated,
    Map(Scalar),
}

/// How the Go API type holds the field, which decides its JSON form.
#[allow(dead_code, reason = "no field of today's schema is `json:\"-\"`")]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Go {
    /// A pointer (or a field of a special message): written whenever it is on the wire, zero or not.
    Pointer,
    /// A plain value: unset means its zero value; `omitempty` leaves zero values out.
    Value { omitempty: bool },
    /// An embedded struct with `json:",inline"`: its fields are written into the parent object.
    Inline,
    /// `json:"-"`: not part of the JSON form.
    Skip,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub number: u32,
    pub json: &'static str,
    pub ty: Ty,
    pub card: Card,
    pub go: Go,
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    None,
    /// meta/v1 Time {seconds, nanos}: RFC 3339 in UTC, whole seconds.
    Time,
    /// meta/v1 MicroTime {seconds, nanos}: RFC 3339 in UTC with microseconds.
    MicroTime,
    /// resource.Quantity {string}: the string.
    Quantity,
    /// intstr.IntOrString {type, intVal, strVal}: a number or a string.
    IntOrString,
    /// runtime.RawExtension {raw}: the embedded object (JSON, or a nested protobuf object).
    RawExtension,
    /// meta/v1 FieldsV1 {Raw}: raw JSON.
    RawJson,
    /// A Go named slice type (`type ExtraValue []string`) wrapped as {repeated items = 1}.
    List,
}

/// One message of the schema; `fields` are in the Go struct's (that is, the JSON form's) order.
#[derive(Debug)]
pub(crate) struct Message {
    /// The fully qualified protobuf name (for readers of the tables, and the tests).
    #[allow(dead_code, reason = "read by the tests only")]
    pub name: &'static str,
    pub special: Special,
    pub fields: &'static [Field],
}

/// A top-level kind; `api_version` `*` matches any group-version (meta/v1 DeleteOptions).
#[derive(Debug)]
pub(crate) struct Kind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub message: u16,
}
