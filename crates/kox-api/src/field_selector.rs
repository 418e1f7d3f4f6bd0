//! Field selectors (`fieldSelector=metadata.name=x,status.phase!=Running`), parsed and
//! matched as upstream's `k8s.io/apimachinery/pkg/fields` does.
//!
//! Terms are separated by `,`; each is `field=value`, `field==value` or `field!=value`.
//! Values may escape `\,`, `\=` and `\\`; the field part is taken up to the first
//! operator. Which fields a kind supports is the server's business: it asks
//! [`FieldSelector::fields`] or [`FieldSelector::check_supported`] and answers 400 with
//! upstream's `field label not supported: <field>`.

use std::fmt;
use std::str::FromStr;

/// A field selector that could not be parsed, or names an unsupported field; the message
/// is upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldSelectorError(pub String);

/// The comparison of one term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`: the field equals the value (a missing field counts as `""`).
    Equals,
    /// `!=`: the field differs from the value.
    NotEquals,
}

/// One `field<op>value` term, with its value unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path as written (`metadata.name`, `spec.nodeName`, …).
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The literal value to compare with.
    pub value: String,
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{}{}", self.field, op, escape_value(&self.value))
    }
}

/// A parsed field selector: every term must hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// A selector with the single term `field=value`.
    pub fn one_term_equal(field: &str, value: &str) -> Self {
        FieldSelector {
            terms: vec![FieldRequirement {
                field: field.to_owned(),
                operator: FieldOperator::Equals,
                value: value.to_owned(),
            }],
        }
    }

    /// Parses the string form. Terms are kept sorted by their text, as upstream sorts them.
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut parts = split_terms(selector);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, rhs)) = split_term(part) else {
                return Err(FieldSelectorError(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                )));
            };
            terms.push(FieldRequirement {
                field: field.to_owned(),
                operator: op,
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in upstream's (sorted) order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// The distinct fields the selector mentions, in term order.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for t in &self.terms {
            if !out.contains(&t.field.as_str()) {
                out.push(&t.field);
            }
        }
        out
    }

    /// Fails with `field label not supported: <field>` for the first term whose field is
    /// not in `supported` (what upstream's field-label conversion answers).
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), FieldSelectorError> {
        match self
            .terms
            .iter()
            .find(|t| !supported.contains(&t.field.as_str()))
        {
            Some(t) => Err(FieldSelectorError(format!(
                "field label not supported: {}",
                t.field
            ))),
            None => Ok(()),
        }
    }

    /// The selector with each field renamed by `convert`, as upstream's field-label
    /// conversion maps one API version's names to the stored version's; fails with
    /// `field label not supported: <field>` for a field `convert` does not know.
    pub fn convert_fields<'a>(
        &self,
        convert: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Self, FieldSelectorError> {
        let terms = self
            .terms
            .iter()
            .map(|t| match convert(&t.field) {
                Some(field) => Ok(FieldRequirement {
                    field: field.to_owned(),
                    ..t.clone()
                }),
                None => Err(FieldSelectorError(format!(
                    "field label not supported: {}",
                    t.field
                ))),
            })
            .collect::<Result<_, _>>()?;
        Ok(FieldSelector { terms })
    }

    /// Whether an object matches, given a lookup of its field values. A field the lookup
    /// does not know counts as the empty string, as upstream's `fields.Set` does.
    pub fn matches(&self, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let have = lookup(&t.field).unwrap_or_default();
            match t.operator {
                FieldOperator::Equals => have == t.value,
                FieldOperator::NotEquals => have != t.value,
            }
        })
    }

    /// The value a field must equal, if an `=` term pins it; lets the server narrow a list
    /// (e.g. by `metadata.name` or `spec.nodeName`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical form: terms joined by `,`, `==` printed as `=`, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = FieldSelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

/// Escapes `\`, `,` and `=` in a value so it can be put in a field selector.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_value`]; an unknown escape or an unescaped `,`/`=` is an error worded
/// as upstream's (the unescaped character is printed as its code point number).
pub fn unescape_value(s: &str) -> Result<String, FieldSelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(FieldSelectorError(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(FieldSelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError(
            "invalid field selector: invalid escape sequence: \\".to_owned(),
        ));
    }
    Ok(out)
}

/// Splits on commas not preceded by a backslash escape; escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at its first operator, trying `!=`, then `==`, then `=` at each position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if rest.starts_with(op) {
                return Some((&term[..i], kind, &term[i + op.len()..]));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` and compares the canonical form, or the error when `expect` starts
    /// with `ERR `.
    fn check(input: &str, expect: &str) {
        let got = match FieldSelector::parse(input) {
            Ok(s) => s.to_string(),
            Err(e) => format!("ERR {e}"),
        };
        assert_eq!(got, expect, "input: {input:?}");
    }

    #[test]
    fn fields_convert_to_another_versions_names() {
        let sel = FieldSelector::parse("regarding.name=web,type!=Normal").unwrap();
        let names = [("regarding.name", "involvedObject.name"), ("type", "type")];
        let convert = |f: &str| names.iter().find(|(a, _)| *a == f).map(|(_, b)| *b);
        let converted = sel.convert_fields(convert).unwrap();
        assert_eq!(
            converted.to_string(),
            "involvedObject.name=web,type!=Normal"
        );
        let err = FieldSelector::parse("involvedObject.name=web")
            .unwrap()
            .convert_fields(convert)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field label not supported: involvedObject.name"
        );
    }

    #[test]
    fn parses_like_upstream() {
        check("", "");
        check("metadata.name=x", "metadata.name=x");
        check("b=1,a==2", "a=2,b=1");
        check("status.phase!=Running", "status.phase!=Running");
        check("a=b,,c=d", "a=b,c=d");
        check("a=", "a=");
        check(r"a=x\,y,b=\=\\", r"a=x\,y,b=\=\\");
        check("x", "ERR invalid selector: 'x'; can't understand 'x'");
        check(
            "a=b,x",
            "ERR invalid selector: 'a=b,x'; can't understand 'x'",
        );
        check(
            "a=b=c",
            "ERR invalid field selector: unescaped character in value: 61",
        );
        check(
            r"a=b\n",
            r"ERR invalid field selector: invalid escape sequence: \n",
        );
        check(
            r"a=b\",
            r"ERR invalid field selector: invalid escape sequence: \",
        );
        check(
            "a!=b==c",
            "ERR invalid field selector: unescaped character in value: 61",
        );
    }

    #[test]
    fn values_are_unescaped() {
        let s = FieldSelector::parse(r"spec.nodeName=a\,b\=c\\d").unwrap();
        assert_eq!(s.requirements()[0].value, r"a,b=c\d");
        assert_eq!(escape_value(r"a,b=c\d"), r"a\,b\=c\\d");
    }

    #[test]
    fn matches_with_lookup() {
        let lookup = |f: &str| match f {
            "metadata.name" => Some("web".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        let cases = [
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name=db", false),
            ("status.phase!=Running", false),
            ("status.phase!=Pending", true),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("metadata.name=web,status.phase=Running", true),
            ("metadata.name=web,status.phase=Failed", false),
        ];
        for (sel, want) in cases {
            assert_eq!(
                FieldSelector::parse(sel).unwrap().matches(&lookup),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn reports_unsupported_fields() {
        let s = FieldSelector::parse("metadata.name=a,spec.foo=b,metadata.name!=c").unwrap();
        assert_eq!(s.fields(), ["metadata.name", "spec.foo"]);
        assert_eq!(
            s.check_supported(&["metadata.name", "metadata.namespace"])
                .unwrap_err()
                .to_string(),
            "field label not supported: spec.foo"
        );
        assert!(s.check_supported(&["metadata.name", "spec.foo"]).is_ok());
    }

    #[test]
    fn exact_match_introspection() {
        let s = FieldSelector::parse("spec.nodeName=n1,metadata.name!=x").unwrap();
        assert_eq!(s.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(s.requires_exact_match("metadata.name"), None);
        assert_eq!(
            FieldSelector::one_term_equal("metadata.name", "a=b").to_string(),
            r"metadata.name=a\=b"
        );
    }
}
