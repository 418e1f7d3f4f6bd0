//! admissionregistration.k8s.io/v1: defaults and validation of Mutating- and
//! ValidatingWebhookConfigurations, as upstream's `admissionregistration/v1/defaults.go` and
//! `validation.go`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{FieldError, FieldErrors, cluster_meta, items, p, set_default};

fn webhook_defaults(v: &mut Value, mutating: bool) {
    let Some(hooks) = v.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for h in hooks {
        let Some(m) = h.as_object_mut() else { continue };
        set_default(m, "failurePolicy", json!("Fail"));
        set_default(m, "matchPolicy", json!("Equivalent"));
        set_default(m, "namespaceSelector", json!({}));
        set_default(m, "objectSelector", json!({}));
        set_default(m, "timeoutSeconds", json!(10));
        if mutating {
            set_default(m, "reinvocationPolicy", json!("Never"));
        }
        if let Some(svc) = m
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            set_default(svc, "port", json!(443));
        }
        if let Some(rules) = m.get_mut("rules").and_then(Value::as_array_mut) {
            for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                set_default(r, "scope", json!("*"));
            }
        }
    }
}

pub fn mutating_webhook_configuration_defaults(v: &mut Value) {
    webhook_defaults(v, true);
}

pub fn validating_webhook_configuration_defaults(v: &mut Value) {
    webhook_defaults(v, false);
}

fn not_supported(path: &str, value: &str, supported: &[&str]) -> FieldError {
    FieldError::not_supported(&p(path), value, supported)
}

/// Upstream's `validateWebhook` for one entry of `webhooks`.
fn webhook(h: &Value, path: &str, mutating: bool, errs: &mut FieldErrors) {
    let name = h.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(&p(&format!("{path}.name")), ""));
    } else {
        for msg in kox_api::validation::is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid(&p(&format!("{path}.name")), name, msg));
        }
        if name.split('.').count() < 3 {
            errs.push(FieldError::invalid(
                &p(&format!("{path}.name")),
                name,
                "should be a domain with at least three segments separated by dots",
            ));
        }
    }
    for (j, rule) in items(h, "/rules").enumerate() {
        let rpath = format!("{path}.rules[{j}]");
        for field in ["operations", "apiGroups", "apiVersions", "resources"] {
            if rule
                .get(field)
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                errs.push(FieldError::required(&p(&format!("{rpath}.{field}")), ""));
            }
        }
        for (k, op) in items(rule, "/operations").enumerate() {
            let op = op.as_str().unwrap_or("");
            if !matches!(op, "*" | "CREATE" | "UPDATE" | "DELETE" | "CONNECT") {
                errs.push(not_supported(
                    &format!("{rpath}.operations[{k}]"),
                    op,
                    &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"],
                ));
            }
        }
        if let Some(scope) = rule.get("scope").and_then(Value::as_str)
            && !matches!(scope, "*" | "Cluster" | "Namespaced")
        {
            errs.push(not_supported(
                &format!("{rpath}.scope"),
                scope,
                &["*", "Cluster", "Namespaced"],
            ));
        }
    }
    match h.get("failurePolicy").and_then(Value::as_str) {
        Some("Fail" | "Ignore") | None => {}
        Some(other) => errs.push(not_supported(
            &format!("{path}.failurePolicy"),
            other,
            &["Fail", "Ignore"],
        )),
    }
    match h.get("matchPolicy").and_then(Value::as_str) {
        Some("Exact" | "Equivalent") | None => {}
        Some(other) => errs.push(not_supported(
            &format!("{path}.matchPolicy"),
            other,
            &["Equivalent", "Exact"],
        )),
    }
    match h.get("sideEffects").and_then(Value::as_str) {
        Some("None" | "NoneOnDryRun") => {}
        None | Some("") => errs.push(FieldError::required(
            &p(&format!("{path}.sideEffects")),
            "must specify one of None, NoneOnDryRun",
        )),
        Some(other) => errs.push(not_supported(
            &format!("{path}.sideEffects"),
            other,
            &["None", "NoneOnDryRun"],
        )),
    }
    if mutating {
        match h.get("reinvocationPolicy").and_then(Value::as_str) {
            Some("Never" | "IfNeeded") | None => {}
            Some(other) => errs.push(not_supported(
                &format!("{path}.reinvocationPolicy"),
                other,
                &["IfNeeded", "Never"],
            )),
        }
    }
    if let Some(t) = h.get("timeoutSeconds").and_then(Value::as_i64)
        && !(1..=30).contains(&t)
    {
        errs.push(FieldError::invalid(
            &p(&format!("{path}.timeoutSeconds")),
            t,
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    let versions: Vec<&str> = items(h, "/admissionReviewVersions")
        .filter_map(Value::as_str)
        .collect();
    if versions.is_empty() {
        errs.push(FieldError::required(
            &p(&format!("{path}.admissionReviewVersions")),
            "must specify one of v1, v1beta1",
        ));
    } else if !versions.iter().any(|v| matches!(*v, "v1" | "v1beta1")) {
        errs.push(FieldError::invalid(
            &p(&format!("{path}.admissionReviewVersions")),
            versions
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<String>>(),
            "must include at least one of v1, v1beta1",
        ));
    }
    let cc = h.get("clientConfig").cloned().unwrap_or(json!({}));
    let cpath = format!("{path}.clientConfig");
    match (cc.get("url").and_then(Value::as_str), cc.get("service")) {
        (Some(_), Some(_)) | (None, None) => errs.push(FieldError::required(
            &p(&cpath),
            "exactly one of url or service is required",
        )),
        (Some(url), None) => {
            let upath = format!("{cpath}.url");
            match url.split_once("://") {
                Some(("https", rest)) if !rest.is_empty() => {
                    if url.contains('#') {
                        errs.push(FieldError::invalid(
                            &p(&upath),
                            url,
                            "fragments are not permitted in the URL",
                        ));
                    }
                }
                Some(("https", _)) => errs.push(FieldError::invalid(
                    &p(&upath),
                    url,
                    "host must be specified",
                )),
                _ => errs.push(FieldError::invalid(
                    &p(&upath),
                    url,
                    "'https' is the only allowed URL scheme",
                )),
            }
        }
        (None, Some(svc)) => {
            let spath = format!("{cpath}.service");
            for field in ["name", "namespace"] {
                if svc
                    .get(field)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errs.push(FieldError::required(&p(&format!("{spath}.{field}")), ""));
                }
            }
            if let Some(port) = svc.get("port").and_then(Value::as_i64)
                && !(1..=65535).contains(&port)
            {
                errs.push(FieldError::invalid(
                    &p(&format!("{spath}.port")),
                    port,
                    "port is not valid: must be between 1 and 65535, inclusive",
                ));
            }
            if let Some(path) = svc.get("path").and_then(Value::as_str)
                && !path.starts_with('/')
            {
                errs.push(FieldError::invalid(
                    &p(&format!("{spath}.path")),
                    path,
                    "must start with a '/'",
                ));
            }
        }
    }
}

fn configuration(v: &Value, mutating: bool) -> FieldErrors {
    let mut errs = cluster_meta(v);
    let mut names = BTreeSet::new();
    for (i, h) in items(v, "/webhooks").enumerate() {
        let path = format!("webhooks[{i}]");
        let name = h.get("name").and_then(Value::as_str).unwrap_or("");
        if !name.is_empty() && !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&p(&format!("{path}.name")), name));
        }
        webhook(h, &path, mutating, &mut errs);
    }
    errs
}

pub fn mutating_webhook_configuration(v: &Value) -> FieldErrors {
    configuration(v, true)
}

pub fn mutating_webhook_configuration_update(new: &Value, _old: &Value) -> FieldErrors {
    configuration(new, true)
}

pub fn validating_webhook_configuration(v: &Value) -> FieldErrors {
    configuration(v, false)
}

pub fn validating_webhook_configuration_update(new: &Value, _old: &Value) -> FieldErrors {
    configuration(new, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(errs: &FieldErrors) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn defaults_fill_policies_selectors_timeout_and_port() {
        let mut v = json!({"webhooks": [{"name": "a.b.c", "clientConfig": {"service": {"name": "s", "namespace": "n"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}]});
        mutating_webhook_configuration_defaults(&mut v);
        let h = &v["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
        assert_eq!(h["rules"][0]["scope"], "*");
    }

    #[test]
    fn invalid_webhooks_are_reported_with_upstreams_paths() {
        let v = json!({"metadata": {"name": "cfg"}, "webhooks": [
            {"name": "short", "clientConfig": {"url": "http://x"}, "timeoutSeconds": 31},
            {"name": "short", "clientConfig": {}, "sideEffects": "Some", "admissionReviewVersions": ["v1"]},
        ]});
        let got = messages(&validating_webhook_configuration(&v));
        for want in [
            "webhooks[0].name: Invalid value: \"short\": should be a domain with at least three segments separated by dots",
            "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
            "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
            "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
            "webhooks[0].clientConfig.url: Invalid value: \"http://x\": 'https' is the only allowed URL scheme",
            "webhooks[1].name: Duplicate value: \"short\"",
            "webhooks[1].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
            "webhooks[1].clientConfig: Required value: exactly one of url or service is required",
        ] {
            assert!(
                got.iter().any(|g| g == want),
                "missing {want:?} in {got:#?}"
            );
        }
    }
}
