//! Label selectors: the `labelSelector` query string and `metav1.LabelSelector`, parsed,
//! matched and printed as upstream's `k8s.io/apimachinery/pkg/labels` does.
//!
//! Grammar (upstream's): comma-separated requirements, each `key`, `!key`, `key=v`,
//! `key==v`, `key!=v`, `key in (a,b)`, `key notin (a)`, `key>1` or `key<1`. Whitespace
//! separates tokens and is otherwise ignored. Parse errors carry upstream's wording
//! (`unable to parse requirement: …`, `found 'x', expected: …`) because the API server
//! returns them verbatim in a 400 Status.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::field::{ErrorList, FieldError, Path};
use crate::validation::{is_qualified_name, is_valid_label_value, validate_labels};

mod parser;
use parser::Parser;

/// A selector that could not be parsed or built; the message is upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// How a requirement relates a label to its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key in (a,b)`: the label exists and has one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key=v`.
    Equals,
    /// `key==v` (same meaning as `=`, kept for printing).
    DoubleEquals,
    /// `key!=v`: the label is absent or differs.
    NotEquals,
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label does not exist.
    DoesNotExist,
    /// `key>n`: the label is an integer greater than n.
    GreaterThan,
    /// `key<n`: the label is an integer less than n.
    LessThan,
}

impl Operator {
    /// Upstream's `selection.Operator` string (`in`, `notin`, `=`, `==`, `!=`, `exists`,
    /// `!`, `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One requirement of a selector: a key, an operator and its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a validated requirement (upstream `NewRequirement`): the key must be a
    /// qualified name, values valid label values, and their number fit the operator.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, ErrorList> {
        let root = Path::nil();
        let mut errs = ErrorList::new();
        let key_msgs = is_qualified_name(key);
        if !key_msgs.is_empty() {
            errs.push(FieldError::invalid(
                &root.child("key"),
                key,
                key_msgs.join("; "),
            ));
        }
        let values_path = root.child("values");
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                errs.push(FieldError::invalid(
                    &values_path,
                    values.clone(),
                    "for 'in', 'notin' operators, values set can't be empty",
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(FieldError::invalid(
                    &values_path,
                    values.clone(),
                    "exact-match compatibility requires one single value",
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                errs.push(FieldError::invalid(
                    &values_path,
                    values.clone(),
                    "values set must be empty for exists and does not exist",
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        &values_path,
                        values.clone(),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(FieldError::invalid(
                            &values_path.index(i),
                            v.as_str(),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = is_valid_label_value(v);
            if !msgs.is_empty() {
                errs.push(FieldError::invalid(
                    &values_path.index(i).key(key),
                    v.as_str(),
                    msgs.join("; "),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Requirement {
                key: key.to_owned(),
                operator,
                values,
            })
        } else {
            Err(errs)
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a set of labels satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        let mut sorted = self.values.clone();
        sorted.sort();
        f.write_str(&sorted.join(","))?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: requirements that must all hold, or the selector that matches
/// nothing (a nil `metav1.LabelSelector`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// The selector that matches every object (the empty string).
    pub fn everything() -> Self {
        Selector::default()
    }

    /// The selector that matches no object (what a nil `LabelSelector` means).
    pub fn nothing() -> Self {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the string form (`labelSelector=` query parameter).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Parser::new(s).parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// A selector requiring each `key=value` of the set, without validation.
    pub fn from_set(set: &BTreeMap<String, String>) -> Self {
        Selector {
            requirements: set
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
            nothing: false,
        }
    }

    /// Converts a `metav1.LabelSelector` as upstream's `LabelSelectorAsSelector` does:
    /// `None` matches nothing, an empty selector everything; invalid keys, values or
    /// operators are errors.
    pub fn from_label_selector(ls: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(ls) = ls else {
            return Ok(Selector::nothing());
        };
        let labels = ls.match_labels.as_ref();
        let exprs = ls.match_expressions.as_deref().unwrap_or(&[]);
        if labels.is_none_or(BTreeMap::is_empty) && exprs.is_empty() {
            return Ok(Selector::everything());
        }
        let mut requirements = Vec::new();
        let aggregate = |e: ErrorList| SelectorError(e.aggregate().unwrap_or_default());
        for (k, v) in labels.into_iter().flatten() {
            requirements
                .push(Requirement::new(k, Operator::Equals, vec![v.clone()]).map_err(aggregate)?);
        }
        for expr in exprs {
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError(format!(
                        "{} is not a valid label selector operator",
                        crate::field::go_quote(other)
                    )));
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(&expr.key, op, values).map_err(aggregate)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Adds a requirement, keeping requirements sorted by key.
    pub fn with_requirement(mut self, r: Requirement) -> Self {
        self.requirements.push(r);
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector does not restrict anything (the nothing-selector is not empty).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is the selector that matches nothing.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The single value a label must have, if the selector pins it (`=`, `==` or a
    /// one-value `in`); lets the server narrow a list by index.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    /// The canonical string form: requirements sorted by key, joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// Validates a `metav1.LabelSelector` field of an object (upstream
/// `ValidateLabelSelector` with default options).
pub fn validate_label_selector(ls: &LabelSelector, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(labels) = &ls.match_labels {
        errs.extend(validate_labels(labels, &path.child("matchLabels")));
    }
    for (i, expr) in ls.match_expressions.iter().flatten().enumerate() {
        errs.extend(validate_requirement(
            expr,
            &path.child("matchExpressions").index(i),
        ));
    }
    errs
}

fn validate_requirement(r: &LabelSelectorRequirement, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(FieldError::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(FieldError::forbidden(
                    &path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        other => errs.push(FieldError::invalid(
            &path.child("operator"),
            other,
            "not a valid selector operator",
        )),
    }
    errs.extend(crate::validation::validate_label_name(
        &r.key,
        &path.child("key"),
    ));
    for (i, v) in values.iter().enumerate() {
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid(
                &path.child("values").index(i),
                v.as_str(),
                msg,
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` and compares its canonical form, or its error message when
    /// `expect` starts with `ERR `.
    fn check(input: &str, expect: &str) {
        let got = match Selector::parse(input) {
            Ok(s) => s.to_string(),
            Err(e) => format!("ERR {e}"),
        };
        assert_eq!(got, expect, "input: {input:?}");
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_valid_selectors_to_canonical_form() {
        check("", "");
        check("x=a,y=b,z=c", "x=a,y=b,z=c");
        check("z=c,x=a", "x=a,z=c");
        check("x==a", "x==a");
        check("x!=a", "x!=a");
        check(" x = a , y != b ", "x=a,y!=b");
        check(
            "x in (foo,,baz),y,z notin ()",
            "x in (,baz,foo),y,z notin ()",
        );
        check("x in (foo, bar)", "x in (bar,foo)");
        check("x notin (b,a,a)", "x notin (a,b)");
        check("!x", "!x");
        check("x", "x");
        check("x>1", "x>1");
        check("x<10", "x<10");
        check("x=", "x=");
        check("x=,z= ", "x=,z=");
        check("x in (in)", "x in (in)");
        check("x=notin", "x=notin");
        check("example.com/app=web", "example.com/app=web");
        check("a=b\tc", "ERR found 'c', expected: ',' or 'end of string'");
    }

    #[test]
    fn reports_upstream_parse_errors() {
        let err = Selector::parse("x=a||y=b").unwrap_err().to_string();
        assert!(
            err.starts_with(
                r#"unable to parse requirement: values[0][x]: Invalid value: "a||y": a valid label"#
            ),
            "{err}"
        );
        check(
            "x==a==b",
            "ERR found '==', expected: ',' or 'end of string'",
        );
        check("x=a,", "ERR found '', expected: identifier after ','");
        check(
            ",x=a",
            "ERR found ',', expected: !, identifier, or 'end of string'",
        );
        check(
            "x in a",
            "ERR unable to parse requirement: found 'a' expected: '('",
        );
        check(
            "x in (a",
            "ERR unable to parse requirement: found '', expected: ',' or ')'",
        );
        check(
            "x=(a)",
            "ERR unable to parse requirement: found '(', expected: identifier",
        );
        check(
            "x ~ a",
            "ERR unable to parse requirement: found '~', expected: in, notin, =, ==, !=, gt, lt",
        );
        check("!x=a", "ERR found '=', expected: ',' or 'end of string'");
        check(
            "x>a",
            r#"ERR unable to parse requirement: values[0]: Invalid value: "a": for 'Gt', 'Lt' operators, the value must be an integer"#,
        );
        check(
            "app:monolith",
            "ERR unable to parse requirement: <nil>: Invalid value: \"app:monolith\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        );
        check("x=a b", "ERR found 'b', expected: ',' or 'end of string'");
        check(
            "x=a_",
            "ERR unable to parse requirement: values[0][x]: Invalid value: \"a_\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        );
    }

    #[test]
    fn matching_follows_operator_semantics() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (db,web)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("missing in (web)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("missing<1", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
        ];
        for (sel, want) in cases {
            assert_eq!(Selector::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn empty_everything_and_nothing() {
        assert!(Selector::parse("").unwrap().is_empty());
        assert!(!Selector::parse("a").unwrap().is_empty());
        let nothing = Selector::nothing();
        assert!(!nothing.is_empty());
        assert!(!nothing.matches(&BTreeMap::new()));
        assert!(Selector::everything().matches(&BTreeMap::new()));
    }

    #[test]
    fn exact_match_introspection() {
        let s = Selector::parse("a=1,b in (2),c in (3,4),d!=5").unwrap();
        assert_eq!(s.requires_exact_match("a"), Some("1"));
        assert_eq!(s.requires_exact_match("b"), Some("2"));
        assert_eq!(s.requires_exact_match("c"), None);
        assert_eq!(s.requires_exact_match("d"), None);
        assert_eq!(s.requires_exact_match("e"), None);
    }

    #[test]
    fn converts_metav1_label_selectors() {
        assert!(
            Selector::from_label_selector(None)
                .unwrap()
                .matches_nothing()
        );
        let empty = LabelSelector::default();
        assert!(
            Selector::from_label_selector(Some(&empty))
                .unwrap()
                .is_empty()
        );
        let ls = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["front".into(), "back".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let s = Selector::from_label_selector(Some(&ls)).unwrap();
        assert_eq!(s.to_string(), "app=web,!canary,tier in (back,front)");
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "back")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "back"),
            ("canary", "1")
        ])));

        let bad_op = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Like".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            Selector::from_label_selector(Some(&bad_op))
                .unwrap_err()
                .to_string(),
            r#""Like" is not a valid label selector operator"#
        );
        let no_values = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "In".into(),
                values: Some(vec![]),
            }]),
            ..Default::default()
        };
        assert_eq!(
            Selector::from_label_selector(Some(&no_values))
                .unwrap_err()
                .to_string(),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
    }

    #[test]
    fn validates_metav1_label_selectors() {
        let ls = LabelSelector {
            match_labels: Some(labels(&[("app", "a b")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "x".into(),
                    operator: "In".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "y".into(),
                    operator: "Exists".into(),
                    values: Some(vec!["v".into()]),
                },
                LabelSelectorRequirement {
                    key: "z".into(),
                    operator: "Bogus".into(),
                    values: None,
                },
            ]),
        };
        let errs = validate_label_selector(&ls, &Path::new("spec").child("selector"));
        let rendered: Vec<String> = errs
            .iter()
            .map(|e| format!("{}: {}", e.field, e.kind.cause_type()))
            .collect();
        assert_eq!(
            rendered,
            [
                "spec.selector.matchLabels: FieldValueInvalid",
                "spec.selector.matchExpressions[0].values: FieldValueRequired",
                "spec.selector.matchExpressions[1].values: FieldValueForbidden",
                "spec.selector.matchExpressions[2].operator: FieldValueInvalid",
            ]
        );
        assert_eq!(
            errs.0[1].to_string(),
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
    }
}
