//! Field-level validation errors, rendered exactly like upstream's
//! `k8s.io/apimachinery/pkg/util/validation/field` package.
//!
//! Validation code builds an [`ErrorList`]; the API server turns it into a 422 `Invalid`
//! [`Status`](crate::status::Status) with one cause per error. The text of every error
//! (`spec.containers[0].name: Required value`) is what kubectl prints, so it follows
//! upstream byte for byte, including Go's quoting of bad values.

use std::fmt;

/// A path to a field inside an object, rendered as upstream does:
/// `spec.containers[0].env[FOO]`.
///
/// Paths are cheap values built left to right with [`Path::child`], [`Path::index`] and
/// [`Path::key`]. [`Path::nil`] renders as `<nil>`, as an absent Go path does (label
/// selector parse errors show it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path {
    rendered: Option<String>,
}

impl Path {
    /// A path starting at the named root field (`Path::new("metadata")`).
    pub fn new(root: &str) -> Path {
        Path {
            rendered: Some(root.to_owned()),
        }
    }

    /// The absent path: renders as `<nil>`; its children start a fresh path.
    pub fn nil() -> Path {
        Path { rendered: None }
    }

    /// This path followed by the named field (`.name`).
    pub fn child(&self, name: &str) -> Path {
        let rendered = match &self.rendered {
            None => name.to_owned(),
            Some(p) if p.is_empty() => name.to_owned(),
            Some(p) => format!("{p}.{name}"),
        };
        Path {
            rendered: Some(rendered),
        }
    }

    /// This path followed by a list index (`[3]`).
    pub fn index(&self, i: usize) -> Path {
        self.subscript(&i.to_string())
    }

    /// This path followed by a map key (`[key]`).
    pub fn key(&self, k: &str) -> Path {
        self.subscript(k)
    }

    fn subscript(&self, s: &str) -> Path {
        let base = self.rendered.as_deref().unwrap_or("");
        Path {
            rendered: Some(format!("{base}[{s}]")),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rendered.as_deref().unwrap_or("<nil>"))
    }
}

/// The machine-readable kind of a field error; `cause_type` is what a Status cause carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// `FieldValueNotFound`: a referenced value does not exist.
    NotFound,
    /// `FieldValueRequired`: a required value is missing.
    Required,
    /// `FieldValueDuplicate`: a value that must be unique is repeated.
    Duplicate,
    /// `FieldValueInvalid`: a malformed value.
    Invalid,
    /// `FieldValueNotSupported`: a value outside an enumeration.
    NotSupported,
    /// `FieldValueForbidden`: a well-formed value not allowed here.
    Forbidden,
    /// `FieldValueTooLong`: a value longer than allowed (the value is not echoed).
    TooLong,
    /// `FieldValueTooMany`: a list with too many items.
    TooMany,
    /// `InternalError`: a failure not caused by the input.
    Internal,
    /// `FieldValueTypeInvalid`: a value of the wrong JSON type.
    TypeInvalid,
}

impl ErrorType {
    /// The Status cause type (`FieldValueRequired`, …).
    pub fn cause_type(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human text that starts the message (`Required value`, …).
    pub fn text(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }
}

/// The offending value of a field error, printed the way Go's `%v`/`%q`/`%#v` would.
#[derive(Clone, Debug, PartialEq)]
pub enum BadValue {
    /// No value is shown.
    Omitted,
    /// Printed as `null`.
    Null,
    /// Printed Go-quoted: `"x"`.
    String(String),
    /// Printed as a plain number.
    Int(i64),
    /// Printed as a plain number (Go `%v` of a float64).
    Float(f64),
    /// Printed as `true`/`false`.
    Bool(bool),
    /// Printed as Go source: `[]string{"a", "b"}`.
    StringList(Vec<String>),
    /// Printed verbatim (for values with no Go rendering of their own).
    Raw(String),
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::String(s.to_owned())
    }
}

impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::String(s)
    }
}

impl From<i64> for BadValue {
    fn from(v: i64) -> Self {
        BadValue::Int(v)
    }
}

impl From<i32> for BadValue {
    fn from(v: i32) -> Self {
        BadValue::Int(v.into())
    }
}

impl From<bool> for BadValue {
    fn from(v: bool) -> Self {
        BadValue::Bool(v)
    }
}

impl From<Vec<String>> for BadValue {
    fn from(v: Vec<String>) -> Self {
        BadValue::StringList(v)
    }
}

impl From<&serde_json::Value> for BadValue {
    fn from(v: &serde_json::Value) -> Self {
        use serde_json::Value;
        match v {
            Value::Null => BadValue::Null,
            Value::Bool(b) => BadValue::Bool(*b),
            Value::String(s) => BadValue::String(s.clone()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => BadValue::Int(i),
                None => BadValue::Float(n.as_f64().unwrap_or(0.0)),
            },
            other => BadValue::Raw(other.to_string()),
        }
    }
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Omitted => Ok(()),
            BadValue::Null => f.write_str("null"),
            BadValue::String(s) => f.write_str(&go_quote(s)),
            BadValue::Int(i) => write!(f, "{i}"),
            BadValue::Float(x) => f.write_str(&go_float(*x)),
            BadValue::Bool(b) => write!(f, "{b}"),
            BadValue::StringList(items) => {
                let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
                write!(f, "[]string{{{}}}", quoted.join(", "))
            }
            BadValue::Raw(s) => f.write_str(s),
        }
    }
}

/// One field-level validation error (upstream `field.Error`).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What went wrong.
    pub kind: ErrorType,
    /// The rendered path of the field (`spec.containers[0].name`).
    pub field: String,
    /// The offending value, echoed in the message for most kinds.
    pub value: BadValue,
    /// Extra explanation appended after the value.
    pub detail: String,
}

impl FieldError {
    fn new(kind: ErrorType, path: &Path, value: BadValue, detail: impl Into<String>) -> Self {
        FieldError {
            kind,
            field: path.to_string(),
            value,
            detail: detail.into(),
        }
    }

    /// `Required value[: detail]`.
    pub fn required(path: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Required, path, BadValue::Omitted, detail)
    }

    /// `Invalid value: <value>[: detail]`.
    pub fn invalid(path: &Path, value: impl Into<BadValue>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, path, value.into(), detail)
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported<S: AsRef<str>>(
        path: &Path,
        value: impl Into<BadValue>,
        valid: &[S],
    ) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v.as_ref())).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorType::NotSupported, path, value.into(), detail)
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(path: &Path, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorType::Duplicate, path, value.into(), "")
    }

    /// `Not found: <value>`.
    pub fn not_found(path: &Path, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorType::NotFound, path, value.into(), "")
    }

    /// `Forbidden[: detail]`.
    pub fn forbidden(path: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, path, BadValue::Omitted, detail)
    }

    /// `Too long: may not be more than N bytes` (the Kubernetes 1.32 wording; the value is
    /// never echoed). A negative `max` gives `Too long: value is too long`.
    pub fn too_long(path: &Path, max: i64) -> Self {
        let detail = if max >= 0 {
            format!("may not be more than {max} bytes")
        } else {
            "value is too long".to_owned()
        };
        Self::new(ErrorType::TooLong, path, BadValue::Omitted, detail)
    }

    /// `Too many: <actual>: must have at most N items`; a negative `actual` is not shown,
    /// a negative `max` gives `has too many items`.
    pub fn too_many(path: &Path, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!("must have at most {max} items")
        } else {
            "has too many items".to_owned()
        };
        let value = if actual >= 0 {
            BadValue::Int(actual)
        } else {
            BadValue::Omitted
        };
        Self::new(ErrorType::TooMany, path, value, detail)
    }

    /// `Internal error: detail`.
    pub fn internal(path: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, path, BadValue::Omitted, detail)
    }

    /// `Invalid value: <value>: detail` with cause type `FieldValueTypeInvalid`.
    pub fn type_invalid(
        path: &Path,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(ErrorType::TypeInvalid, path, value.into(), detail)
    }

    /// The message without the field name (upstream `ErrorBody`), used as a Status cause
    /// message: `Invalid value: "x": must be …`.
    pub fn body(&self) -> String {
        let mut s = String::from(self.kind.text());
        let shows_value = !matches!(
            self.kind,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
        ) && self.value != BadValue::Omitted;
        if shows_value {
            s.push_str(": ");
            s.push_str(&self.value.to_string());
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// An ordered list of field errors (upstream `field.ErrorList`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorList(pub Vec<FieldError>);

impl ErrorList {
    /// An empty list.
    pub fn new() -> Self {
        ErrorList(Vec::new())
    }

    /// Appends one error.
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    /// Appends every error of `other`.
    pub fn extend(&mut self, other: ErrorList) {
        self.0.extend(other.0);
    }

    /// Whether there are no errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }

    /// The aggregated message as upstream's `ToAggregate().Error()` renders it: duplicate
    /// messages dropped, one error alone, several as `[a, b]`; `None` when empty.
    pub fn aggregate(&self) -> Option<String> {
        let messages: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        aggregate_messages(&messages)
    }
}

impl FromIterator<FieldError> for ErrorList {
    fn from_iter<I: IntoIterator<Item = FieldError>>(iter: I) -> Self {
        ErrorList(iter.into_iter().collect())
    }
}

impl IntoIterator for ErrorList {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl From<FieldError> for ErrorList {
    fn from(e: FieldError) -> Self {
        ErrorList(vec![e])
    }
}

impl fmt::Display for ErrorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.aggregate().unwrap_or_default())
    }
}

impl std::error::Error for ErrorList {}

/// Joins messages the way upstream's `utilerrors.Aggregate` does: duplicates dropped, a
/// single message alone, several as `[a, b]`; `None` for none.
pub fn aggregate_messages(messages: &[String]) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for m in messages {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    match seen.len() {
        0 => None,
        1 => Some(seen[0].to_owned()),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

/// Quotes a string as Go's `strconv.Quote` (and `%q`) does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || c == '\u{feff}' => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Formats a float as Go's `%v` does for float64 (shortest repr, exponent for large or
/// tiny magnitudes).
fn go_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        // Go prints e.g. 1e+21 and 1e-05.
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let s = format!("{x}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(err: FieldError, expect: &str) {
        assert_eq!(err.to_string(), expect);
    }

    #[test]
    fn paths_render_like_upstream() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("env")
            .key("FOO");
        assert_eq!(p.to_string(), "spec.containers[0].env[FOO]");
        assert_eq!(Path::nil().to_string(), "<nil>");
        assert_eq!(
            Path::nil().child("values").index(0).key("a").to_string(),
            "values[0][a]"
        );
    }

    #[test]
    fn messages_render_like_upstream() {
        let p = Path::new("metadata").child("name");
        check(
            FieldError::required(&p, ""),
            "metadata.name: Required value",
        );
        check(
            FieldError::required(&p, "name or generateName is required"),
            "metadata.name: Required value: name or generateName is required",
        );
        check(
            FieldError::invalid(&p, "x_y", "bad"),
            r#"metadata.name: Invalid value: "x_y": bad"#,
        );
        check(
            FieldError::not_supported(&p, "Foo", &["Always", "Never"]),
            r#"metadata.name: Unsupported value: "Foo": supported values: "Always", "Never""#,
        );
        check(
            FieldError::duplicate(&p, "a"),
            r#"metadata.name: Duplicate value: "a""#,
        );
        check(
            FieldError::forbidden(&p, "not allowed"),
            "metadata.name: Forbidden: not allowed",
        );
        check(
            FieldError::too_long(&p, 63),
            "metadata.name: Too long: may not be more than 63 bytes",
        );
        check(
            FieldError::too_many(&p, 5, 3),
            "metadata.name: Too many: 5: must have at most 3 items",
        );
        check(
            FieldError::invalid(&p, -1i64, "must be greater than or equal to 0"),
            "metadata.name: Invalid value: -1: must be greater than or equal to 0",
        );
        check(
            FieldError::invalid(&p, Vec::<String>::new(), "empty"),
            "metadata.name: Invalid value: []string{}: empty",
        );
        check(
            FieldError::invalid(&p, vec!["a".to_string(), "b".to_string()], "x"),
            r#"metadata.name: Invalid value: []string{"a", "b"}: x"#,
        );
        check(
            FieldError::invalid(&p, BadValue::Null, "x"),
            "metadata.name: Invalid value: null: x",
        );
    }

    #[test]
    fn go_quote_escapes_like_strconv() {
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("tab\there\n"), r#""tab\there\n""#);
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        assert_eq!(go_quote("héllo"), "\"héllo\"");
    }

    #[test]
    fn go_float_matches_percent_v() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(2.0), "2");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.00001), "1e-05");
    }

    #[test]
    fn aggregate_dedups_and_brackets() {
        let p = Path::new("a");
        let one: ErrorList = vec![FieldError::required(&p, "")].into_iter().collect();
        assert_eq!(one.aggregate().as_deref(), Some("a: Required value"));
        let two: ErrorList = vec![
            FieldError::required(&p, ""),
            FieldError::required(&p, ""),
            FieldError::forbidden(&Path::new("b"), "no"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            two.aggregate().as_deref(),
            Some("[a: Required value, b: Forbidden: no]")
        );
        assert_eq!(ErrorList::new().aggregate(), None);
    }
}
