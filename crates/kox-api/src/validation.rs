//! Name and metadata validators with upstream's exact messages
//! (`k8s.io/apimachinery/pkg/util/validation` and `pkg/api/validation`).
//!
//! The `is_*` functions return the list of problems as plain strings, as upstream does;
//! the `validate_*` functions wrap them into [`FieldError`]s at a [`Path`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::field::{BadValue, ErrorList, FieldError, Path};

/// Maximum length of a DNS-1123 label (and of a DNS-1035 label).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Maximum length of a DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Maximum length of a label value and of the name part of a qualified name.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Maximum total size in bytes of all annotation keys and values of one object (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT_B: usize = 256 * 1024;
/// How many random characters `generateName` appends.
pub const GENERATED_NAME_RANDOM_LENGTH: usize = 5;
/// The longest `generateName` prefix kept before the random suffix (63 − 5).
pub const MAX_GENERATED_NAME_PREFIX_LENGTH: usize = 63 - GENERATED_NAME_RANDOM_LENGTH;
/// The characters upstream draws `generateName` suffixes from (no vowels, no confusables).
pub const GENERATED_NAME_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_NAME_ERR: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";

/// `must be no more than N characters`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Upstream's `RegexError`: the message, examples and the regex used.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push('\'');
        s.push_str(ex);
        s.push_str("', ");
    }
    s.push_str("regex used for validation is '");
    s.push_str(fmt);
    s.push_str("')");
    s
}

/// `must be non-empty`.
pub fn empty_error() -> &'static str {
    "must be non-empty"
}

/// `must be between LO and HI, inclusive`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && edge(b[0]) && edge(b[b.len() - 1]) && b.iter().all(|&c| edge(c) || c == b'-')
}

fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

fn matches_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Checks an RFC 1123 label (namespaces, most service and container names).
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_owned());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Checks an RFC 1123 subdomain (the names of most objects).
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Checks an RFC 1035 label (service names, which must start with a letter).
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Checks a qualified name: a label key, finalizer or annotation key — an optional
/// DNS-subdomain prefix and `/`, then a name part of at most 63 characters.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                for msg in is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {msg}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(LABEL_VALUE_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Checks a label value: empty, or a name part of at most 63 characters.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Checks a ConfigMap or Secret data key.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(
            CONFIG_MAP_KEY_ERR,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(has_chdir_prefix(value));
    errs
}

/// Checks a (strict) environment variable name.
pub fn is_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && (b[0].is_ascii_alphabetic() || matches!(b[0], b'-' | b'.' | b'_'))
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(
            ENV_VAR_NAME_ERR,
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    errs.extend(has_chdir_prefix(value));
    errs
}

fn has_chdir_prefix(value: &str) -> Option<String> {
    match value {
        "." => Some("must not be '.'".into()),
        ".." => Some("must not be '..'".into()),
        v if v.starts_with("..") => Some("must not start with '..'".into()),
        _ => None,
    }
}

/// Checks a port number: 1..=65535.
pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// Checks an IANA service (port) name: at most 15 of `[-a-z0-9]`, at least one letter,
/// no leading, trailing or doubled hyphen.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// How an object's name is checked, given whether it is a `generateName` prefix
/// (upstream `ValidateNameFunc`).
pub type NameValidator = fn(name: &str, prefix: bool) -> Vec<String>;

/// A `generateName` prefix may end in `-`: upstream masks the last two characters with
/// `a` before checking (a quirk kept for identical results).
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let cut = name.len() - 2;
        match name.get(..cut) {
            Some(head) => format!("{head}a"),
            None => name.to_owned(),
        }
    } else {
        name.to_owned()
    }
}

/// Object names that must be DNS-1123 subdomains (most kinds).
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_subdomain(&mask_trailing_dash(name))
    } else {
        is_dns1123_subdomain(name)
    }
}

/// Object names that must be DNS-1123 labels (namespaces, …).
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_label(&mask_trailing_dash(name))
    } else {
        is_dns1123_label(name)
    }
}

/// Object names that must be DNS-1035 labels (services).
pub fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1035_label(&mask_trailing_dash(name))
    } else {
        is_dns1035_label(name)
    }
}

/// Validates one label key (`Invalid value: "key": <why>` per problem).
pub fn validate_label_name(key: &str, path: &Path) -> ErrorList {
    is_qualified_name(key)
        .into_iter()
        .map(|msg| FieldError::invalid(path, key, msg))
        .collect()
}

/// Validates a label map: every key a qualified name, every value a label value. Errors
/// point at `path` itself, as upstream's do.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (k, v) in labels {
        errs.extend(validate_label_name(k, path));
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid(path, v.as_str(), msg));
        }
    }
    errs
}

/// Validates annotations: keys are qualified names (checked lower-cased) and the total
/// size of keys and values is at most [`TOTAL_ANNOTATION_SIZE_LIMIT_B`].
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for k in annotations.keys() {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
    }
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B {
        errs.push(FieldError::too_long(
            path,
            TOTAL_ANNOTATION_SIZE_LIMIT_B as i64,
        ));
    }
    errs
}

/// Validates finalizer names (qualified names) and rejects `orphan` together with
/// `foregroundDeletion`.
pub fn validate_finalizers(finalizers: &[String], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for f in finalizers {
        for msg in is_qualified_name(f) {
            errs.push(FieldError::invalid(path, f.as_str(), msg));
        }
    }
    let orphan = finalizers.iter().any(|f| f == "orphan");
    let foreground = finalizers.iter().any(|f| f == "foregroundDeletion");
    if orphan && foreground {
        errs.push(FieldError::invalid(
            path,
            finalizers.to_vec(),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// Validates owner references: apiVersion with a version, kind, name and uid present, no
/// `v1 Event` owner, at most one controller.
pub fn validate_owner_references(refs: &[OwnerReference], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        let version = r.api_version.rsplit('/').next().unwrap_or("");
        let group = match r.api_version.rsplit_once('/') {
            Some((g, _)) => g,
            None => "",
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("apiVersion"),
                r.api_version.as_str(),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("kind"),
                "",
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("name"),
                "",
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("uid"),
                "",
                "uid must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && r.kind == "Event" {
            errs.push(FieldError::invalid(
                path,
                BadValue::Raw(format!("{r:?}")),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    BadValue::Raw(format!("{refs:?}")),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// Validates the metadata of an object being created (upstream `ValidateObjectMeta`):
/// name or generateName, namespace presence, generation, labels, annotations, owner
/// references and finalizers. `name_fn` is the kind's name rule.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    requires_namespace: bool,
    name_fn: NameValidator,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(generate) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        for msg in name_fn(generate, true) {
            errs.push(FieldError::invalid(
                &path.child("generateName"),
                generate,
                msg,
            ));
        }
    }
    match meta.name.as_deref().filter(|n| !n.is_empty()) {
        None => errs.push(FieldError::required(
            &path.child("name"),
            "name or generateName is required",
        )),
        Some(name) => {
            for msg in name_fn(name, false) {
                errs.push(FieldError::invalid(&path.child("name"), name, msg));
            }
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if requires_namespace {
        if namespace.is_empty() {
            errs.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            for msg in name_is_dns_label(namespace, false) {
                errs.push(FieldError::invalid(
                    &path.child("namespace"),
                    namespace,
                    msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(g) = meta.generation.filter(|g| *g < 0) {
        errs.push(FieldError::invalid(
            &path.child("generation"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, &path.child("labels")));
    }
    if let Some(annotations) = &meta.annotations {
        errs.extend(validate_annotations(
            annotations,
            &path.child("annotations"),
        ));
    }
    if let Some(refs) = &meta.owner_references {
        errs.extend(validate_owner_references(
            refs,
            &path.child("ownerReferences"),
        ));
    }
    if let Some(finalizers) = &meta.finalizers {
        errs.extend(validate_finalizers(finalizers, &path.child("finalizers")));
    }
    errs
}

/// The name a `generateName` create gets: the prefix cut to
/// [`MAX_GENERATED_NAME_PREFIX_LENGTH`] bytes, then `suffix` (pass
/// [`generated_name_suffix`] of a random number; kept as an argument so this stays pure).
pub fn generate_name(base: &str, suffix: &str) -> String {
    let mut cut = base.len().min(MAX_GENERATED_NAME_PREFIX_LENGTH);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &base[..cut], suffix)
}

/// Five characters from [`GENERATED_NAME_ALPHABET`] derived from `random` (each draw is a
/// base-27 digit of it), like upstream's `utilrand.String(5)`.
pub fn generated_name_suffix(random: u64) -> String {
    let alphabet = GENERATED_NAME_ALPHABET.as_bytes();
    let n = alphabet.len() as u64;
    let mut r = random;
    (0..GENERATED_NAME_RANDOM_LENGTH)
        .map(|_| {
            let c = alphabet[(r % n) as usize] as char;
            r /= n;
            c
        })
        .collect()
}

/// Parses a `resourceVersion` as the storage layer does: `""` and `"0"` mean 0 ("any"),
/// anything else must be an unsigned decimal. The error reads
/// `metadata.resourceVersion: Invalid value: "x": strconv.ParseUint: parsing "x": invalid syntax`.
pub fn parse_resource_version(rv: &str) -> Result<u64, FieldError> {
    if rv.is_empty() || rv == "0" {
        return Ok(0);
    }
    let digits_only = rv.bytes().all(|b| b.is_ascii_digit());
    match rv.parse::<u64>() {
        Ok(v) if digits_only => Ok(v),
        Ok(_) | Err(_) => {
            let why = if digits_only {
                "value out of range"
            } else {
                "invalid syntax"
            };
            Err(FieldError::invalid(
                &Path::new("metadata").child("resourceVersion"),
                rv,
                format!(
                    "strconv.ParseUint: parsing {}: {why}",
                    crate::field::go_quote(rv)
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(got: Vec<String>, expect: &[&str]) {
        assert_eq!(got, expect);
    }

    const LABEL_REGEX_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

    #[test]
    fn dns1123_label() {
        check(is_dns1123_label("my-name"), &[]);
        check(is_dns1123_label("0"), &[]);
        check(is_dns1123_label("a.b"), &["must not contain dots"]);
        check(is_dns1123_label("My"), &[LABEL_REGEX_MSG]);
        check(is_dns1123_label("-a"), &[LABEL_REGEX_MSG]);
        check(is_dns1123_label(""), &[LABEL_REGEX_MSG]);
        check(
            is_dns1123_label(&"a".repeat(64)),
            &["must be no more than 63 characters"],
        );
    }

    #[test]
    fn dns1123_subdomain() {
        check(is_dns1123_subdomain("example.com"), &[]);
        check(is_dns1123_subdomain("a..b"), &[SUBDOMAIN_MSG]);
        check(is_dns1123_subdomain("Foo"), &[SUBDOMAIN_MSG]);
        check(is_dns1123_subdomain("a_b"), &[SUBDOMAIN_MSG]);
        let long = "a".repeat(254);
        check(
            is_dns1123_subdomain(&long),
            &["must be no more than 253 characters"],
        );
    }

    #[test]
    fn dns1035_label() {
        check(is_dns1035_label("svc-1"), &[]);
        check(
            is_dns1035_label("1svc"),
            &[
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ],
        );
    }

    #[test]
    fn qualified_names() {
        check(is_qualified_name("app"), &[]);
        check(is_qualified_name("example.com/My_Name.1"), &[]);
        check(is_qualified_name("app:monolith"), &[NAME_PART_MSG]);
        check(is_qualified_name("/a"), &["prefix part must be non-empty"]);
        check(
            is_qualified_name("a/"),
            &["name part must be non-empty", NAME_PART_MSG],
        );
        check(
            is_qualified_name("app.kubernetes_io/name"),
            &[&format!("prefix part {SUBDOMAIN_MSG}")],
        );
        check(
            is_qualified_name("a/b/c"),
            &[
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            ],
        );
        check(
            is_qualified_name(&"a".repeat(64)),
            &["name part must be no more than 63 characters"],
        );
    }

    #[test]
    fn label_values() {
        check(is_valid_label_value(""), &[]);
        check(is_valid_label_value("v1.2_x"), &[]);
        check(
            is_valid_label_value("a b"),
            &[
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ],
        );
    }

    #[test]
    fn generate_name_prefixes_mask_trailing_dash() {
        check(name_is_dns_subdomain("web-", true), &[]);
        check(name_is_dns_subdomain("web-", false), &[SUBDOMAIN_MSG]);
        check(name_is_dns_label("-", true), &[LABEL_REGEX_MSG]);
    }

    #[test]
    fn generate_name_appends_suffix() {
        assert_eq!(generate_name("web-", "x2b4z"), "web-x2b4z");
        let long = "a".repeat(70);
        let name = generate_name(&long, "bcdfg");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("bcdfg"));
        let s = generated_name_suffix(123_456_789);
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| GENERATED_NAME_ALPHABET.contains(c)));
        assert_ne!(generated_name_suffix(1), generated_name_suffix(2));
    }

    #[test]
    fn resource_versions() {
        assert_eq!(parse_resource_version(""), Ok(0));
        assert_eq!(parse_resource_version("0"), Ok(0));
        assert_eq!(parse_resource_version("42"), Ok(42));
        assert_eq!(
            parse_resource_version("abc").unwrap_err().to_string(),
            r#"metadata.resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax"#
        );
        assert_eq!(
            parse_resource_version("-1").unwrap_err().to_string(),
            r#"metadata.resourceVersion: Invalid value: "-1": strconv.ParseUint: parsing "-1": invalid syntax"#
        );
        assert!(
            parse_resource_version("99999999999999999999")
                .unwrap_err()
                .to_string()
                .ends_with("value out of range")
        );
    }

    #[test]
    fn annotations_size_limit() {
        let mut a = BTreeMap::new();
        a.insert("k".to_string(), "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B));
        let errs = validate_annotations(&a, &Path::new("metadata").child("annotations"));
        assert_eq!(
            errs.aggregate().as_deref(),
            Some("metadata.annotations: Too long: may not be more than 262144 bytes")
        );
        a.insert(
            "k".to_string(),
            "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B - 1),
        );
        assert!(validate_annotations(&a, &Path::new("x")).is_empty());
    }

    #[test]
    fn object_meta() {
        let meta = ObjectMeta {
            name: Some("Bad_Name".into()),
            labels: Some(BTreeMap::from([("app".into(), "a b".into())])),
            ..Default::default()
        };
        let errs = validate_object_meta(&meta, true, name_is_dns_subdomain, &Path::new("metadata"));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["metadata.name", "metadata.namespace", "metadata.labels"]
        );
        assert_eq!(errs.0[1].to_string(), "metadata.namespace: Required value");

        let nameless = ObjectMeta::default();
        let errs = validate_object_meta(
            &nameless,
            false,
            name_is_dns_subdomain,
            &Path::new("metadata"),
        );
        assert_eq!(
            errs.aggregate().as_deref(),
            Some("metadata.name: Required value: name or generateName is required")
        );
    }

    #[test]
    fn ports_and_keys() {
        check(is_valid_port_num(80), &[]);
        check(
            is_valid_port_num(0),
            &["must be between 1 and 65535, inclusive"],
        );
        check(is_valid_port_name("http"), &[]);
        check(
            is_valid_port_name("80"),
            &["must contain at least one letter (a-z)"],
        );
        check(is_config_map_key("a.b_C-1"), &[]);
        check(is_config_map_key(".."), &["must not be '..'"]);
        check(is_env_var_name("MY_VAR"), &[]);
        assert_eq!(is_env_var_name("1A").len(), 1);
    }
}
