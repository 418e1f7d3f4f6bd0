//! The other groups: RBAC, networking, discovery, events, policy, scheduling, storage,
//! coordination and autoscaling.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::core::new_style_event_fields;
use super::pods::dns1123_label;
use super::{
    FieldError, FieldErrors, child, cluster_meta, go_value, immutable, name_is_path_segment,
    namespaced_meta, nonnegative, object_meta, p, positive_int_or_percent, selector_at,
    set_default,
};
use crate::strategy::str_at;
use kox_api::field::BadValue;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn items<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

// ---- RBAC -----------------------------------------------------------------------------------------

/// Upstream's `ValidatePolicyRule` for every rule of a role.
fn policy_rules(v: &Value, namespaced: bool, errs: &mut FieldErrors) {
    for (i, rule) in items(v, "/rules").enumerate() {
        let rp = format!("rules[{i}]");
        let len = |k: &str| rule.get(k).and_then(Value::as_array).map_or(0, Vec::len);
        if len("verbs") == 0 {
            errs.push(FieldError::required(
                &p(&format!("{rp}.verbs")),
                "verbs must contain at least one value",
            ));
        }
        if len("nonResourceURLs") > 0 {
            let urls = go_value(rule.get("nonResourceURLs").unwrap_or(&Value::Null));
            if namespaced {
                errs.push(FieldError::invalid(
                    &p(&format!("{rp}.nonResourceURLs")),
                    urls.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if len("apiGroups") > 0 || len("resources") > 0 || len("resourceNames") > 0 {
                errs.push(FieldError::invalid(
                    &p(&format!("{rp}.nonResourceURLs")),
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if len("apiGroups") == 0 {
            errs.push(FieldError::required(
                &p(&format!("{rp}.apiGroups")),
                "resource rules must supply at least one api group",
            ));
        }
        if len("resources") == 0 {
            errs.push(FieldError::required(
                &p(&format!("{rp}.resources")),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

pub fn role(v: &Value) -> FieldErrors {
    let mut errs = object_meta(v, true, name_is_path_segment);
    policy_rules(v, true, &mut errs);
    errs
}

pub fn role_update(new: &Value, _old: &Value) -> FieldErrors {
    role(new)
}

pub fn cluster_role(v: &Value) -> FieldErrors {
    let mut errs = object_meta(v, false, name_is_path_segment);
    policy_rules(v, false, &mut errs);
    for (i, _) in items(v, "/aggregationRule/clusterRoleSelectors").enumerate() {
        selector_at(
            v,
            &format!("/aggregationRule/clusterRoleSelectors/{i}"),
            &format!("aggregationRule.clusterRoleSelectors[{i}]"),
            &mut errs,
        );
    }
    errs
}

pub fn cluster_role_update(new: &Value, _old: &Value) -> FieldErrors {
    cluster_role(new)
}

/// Upstream's RBAC v1 defaults: the role reference's group, and the subjects' groups by kind.
pub fn binding_defaults(v: &mut Value) {
    if let Some(r) = v.get_mut("roleRef").and_then(Value::as_object_mut)
        && r.get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        r.insert("apiGroup".into(), json!(RBAC_GROUP));
    }
    for sub in v
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        if sub
            .get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            match sub.get("kind").and_then(Value::as_str) {
                Some("ServiceAccount") => {
                    sub.insert("apiGroup".into(), json!(""));
                }
                Some("User" | "Group") => {
                    sub.insert("apiGroup".into(), json!(RBAC_GROUP));
                }
                _ => {}
            }
        }
    }
}

fn binding(v: &Value, namespaced: bool, errs: &mut FieldErrors) {
    let group = str_at(v, "roleRef.apiGroup").unwrap_or("");
    if group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            &p("roleRef.apiGroup"),
            group,
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = str_at(v, "roleRef.kind").unwrap_or("");
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported(&p("roleRef.kind"), kind, kinds));
    }
    match str_at(v, "roleRef.name").unwrap_or("") {
        "" => errs.push(FieldError::required(&p("roleRef.name"), "")),
        name => {
            for msg in is_path_segment(name) {
                errs.push(FieldError::invalid(&p("roleRef.name"), name, msg));
            }
        }
    }
    for (i, sub) in items(v, "/subjects").enumerate() {
        let sp = format!("subjects[{i}]");
        let name = s(sub, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&p(&format!("{sp}.name")), ""));
        }
        let group = s(sub, "apiGroup");
        match s(sub, "kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for msg in kox_api::validation::is_dns1123_subdomain(name) {
                        errs.push(FieldError::invalid(&p(&format!("{sp}.name")), name, msg));
                    }
                }
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(
                        &p(&format!("{sp}.apiGroup")),
                        group,
                        &[""],
                    ));
                }
                if !namespaced && s(sub, "namespace").is_empty() {
                    errs.push(FieldError::required(&p(&format!("{sp}.namespace")), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    errs.push(FieldError::not_supported(
                        &p(&format!("{sp}.apiGroup")),
                        group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &p(&format!("{sp}.kind")),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

fn is_path_segment(name: &str) -> Vec<String> {
    name_is_path_segment(name, false)
}

/// The role reference never changes (`rbac.RoleRef{…}` as upstream prints it).
fn role_ref_fixed(new: &Value, old: &Value, errs: &mut FieldErrors) {
    if new.get("roleRef") != old.get("roleRef") {
        let r =
            |k: &str| kox_api::field::go_quote(str_at(new, &format!("roleRef.{k}")).unwrap_or(""));
        errs.push(FieldError::invalid(
            &p("roleRef"),
            BadValue::Raw(format!(
                "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
                r("apiGroup"),
                r("kind"),
                r("name")
            )),
            "cannot change roleRef",
        ));
    }
}

pub fn role_binding(v: &Value) -> FieldErrors {
    let mut errs = object_meta(v, true, name_is_path_segment);
    binding(v, true, &mut errs);
    errs
}

pub fn role_binding_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = role_binding(new);
    role_ref_fixed(new, old, &mut errs);
    errs
}

pub fn cluster_role_binding(v: &Value) -> FieldErrors {
    let mut errs = object_meta(v, false, name_is_path_segment);
    binding(v, false, &mut errs);
    errs
}

pub fn cluster_role_binding_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = cluster_role_binding(new);
    role_ref_fixed(new, old, &mut errs);
    errs
}

// ---- networking ----------------------------------------------------------------------------------

/// Upstream's `IsDomainPrefixedPath` (ingress class controllers).
fn domain_prefixed_path(value: &str, path: &str, errs: &mut FieldErrors) {
    if value.is_empty() {
        errs.push(FieldError::required(&p(path), ""));
        return;
    }
    let Some((host, rest)) = value
        .split_once('/')
        .filter(|(h, r)| !h.is_empty() && !r.is_empty())
    else {
        errs.push(FieldError::invalid(
            &p(path),
            value,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
        return;
    };
    for msg in kox_api::validation::is_dns1123_subdomain(host) {
        errs.push(FieldError::invalid(&p(path), host, msg));
    }
    let ok = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
    if !ok {
        errs.push(FieldError::invalid(
            &p(path),
            rest,
            "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        ));
    }
}

pub fn ingress_class(v: &Value) -> FieldErrors {
    let mut errs = cluster_meta(v);
    let controller = str_at(v, "spec.controller").unwrap_or("");
    if controller.len() > 250 {
        errs.push(FieldError::too_long(&p("spec.controller"), 250));
    }
    domain_prefixed_path(controller, "spec.controller", &mut errs);
    if let Some(params) = v.pointer("/spec/parameters").filter(|x| !x.is_null()) {
        if s(params, "kind").is_empty() {
            errs.push(FieldError::required(&p("spec.parameters.kind"), ""));
        }
        if s(params, "name").is_empty() {
            errs.push(FieldError::required(&p("spec.parameters.name"), ""));
        }
        match params.get("scope").and_then(Value::as_str) {
            Some("Namespace") if s(params, "namespace").is_empty() => {
                errs.push(FieldError::required(
                    &p("spec.parameters.namespace"),
                    "`parameters.scope` is set to 'Namespace'",
                ))
            }
            Some("Cluster") if !s(params, "namespace").is_empty() => {
                errs.push(FieldError::forbidden(
                    &p("spec.parameters.namespace"),
                    "`parameters.scope` is set to 'Cluster'",
                ))
            }
            Some("Namespace" | "Cluster") | None => {}
            Some(other) => errs.push(FieldError::not_supported(
                &p("spec.parameters.scope"),
                other,
                &["Cluster", "Namespace"],
            )),
        }
    }
    errs
}

pub fn ingress_class_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = ingress_class(new);
    immutable(new, old, "/spec/controller", "spec.controller", &mut errs);
    errs
}

/// Upstream's `validateIngressBackend`: a service (name, port name or number) or a resource.
fn ingress_backend(b: &Value, path: &str, errs: &mut FieldErrors) {
    let service = b.get("service").filter(|x| !x.is_null());
    let resource = b.get("resource").filter(|x| !x.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            &p(path),
            "",
            "cannot set both resource and service backends",
        )),
        (None, Some(r)) => {
            if s(r, "kind").is_empty() {
                errs.push(FieldError::required(
                    &p(&format!("{path}.resource.kind")),
                    "",
                ));
            }
            if s(r, "name").is_empty() {
                errs.push(FieldError::required(
                    &p(&format!("{path}.resource.name")),
                    "",
                ));
            }
        }
        (Some(svc), None) => {
            match s(svc, "name") {
                "" => errs.push(FieldError::required(
                    &p(&format!("{path}.service.name")),
                    "",
                )),
                name => {
                    for msg in kox_api::validation::is_dns1035_label(name) {
                        errs.push(FieldError::invalid(
                            &p(&format!("{path}.service.name")),
                            name,
                            msg,
                        ));
                    }
                }
            }
            let port = svc.get("port").cloned().unwrap_or(json!({}));
            let name = s(&port, "name");
            let number = port.get("number").and_then(Value::as_i64).unwrap_or(0);
            match (name.is_empty(), number == 0) {
                (false, false) => errs.push(FieldError::invalid(
                    &p(path),
                    "",
                    "cannot set both port name & port number",
                )),
                (false, true) => {
                    for msg in kox_api::validation::is_valid_port_name(name) {
                        errs.push(FieldError::invalid(
                            &p(&format!("{path}.service.port.name")),
                            name,
                            msg,
                        ));
                    }
                }
                (true, false) => {
                    for msg in kox_api::validation::is_valid_port_num(number) {
                        errs.push(FieldError::invalid(
                            &p(&format!("{path}.service.port.number")),
                            number,
                            msg,
                        ));
                    }
                }
                (true, true) => errs.push(FieldError::required(
                    &p(path),
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            &p(path),
            "",
            "resource or service backend is required",
        )),
    }
}

/// Upstream's ingress host rule: a DNS name (wildcards allowed as the first label), not an IP.
fn ingress_host(host: &str, path: &str, errs: &mut FieldErrors) {
    if host.parse::<IpAddr>().is_ok() {
        errs.push(FieldError::invalid(
            &p(path),
            host,
            "must be a DNS name, not an IP address",
        ));
    }
    if let Some(rest) = host.strip_prefix("*.") {
        for msg in kox_api::validation::is_dns1123_subdomain(rest) {
            errs.push(FieldError::invalid(&p(path), host, msg));
        }
    } else {
        for msg in kox_api::validation::is_dns1123_subdomain(host) {
            errs.push(FieldError::invalid(&p(path), host, msg));
        }
    }
}

/// Upstream's `ValidateIngressSpec`: a default backend or rules, valid hosts, paths and backends.
pub fn ingress(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    let rules: Vec<&Value> = items(v, "/spec/rules").collect();
    let default = v.pointer("/spec/defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default.is_none() {
        errs.push(FieldError::invalid(
            &p("spec"),
            BadValue::Raw("[]networking.IngressRule(nil)".into()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default {
        ingress_backend(b, "spec.defaultBackend", &mut errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = format!("spec.rules[{i}]");
        if let Some(host) = rule
            .get("host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
        {
            ingress_host(host, &format!("{rp}.host"), &mut errs);
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let paths: Vec<&Value> = items(http, "/paths").collect();
        if paths.is_empty() {
            errs.push(FieldError::required(&p(&format!("{rp}.http.paths")), ""));
        }
        for (j, path) in paths.iter().enumerate() {
            let pp = format!("{rp}.http.paths[{j}]");
            let text = s(path, "path");
            match path.get("pathType").and_then(Value::as_str) {
                None => errs.push(FieldError::required(
                    &p(&format!("{pp}.pathType")),
                    "pathType must be specified",
                )),
                Some("Exact" | "Prefix") => {
                    if !text.starts_with('/') {
                        errs.push(FieldError::invalid(
                            &p(&format!("{pp}.path")),
                            text,
                            "must be an absolute path",
                        ));
                    }
                    for bad in ["//", "/./", "/../", "%2f", "%2F"] {
                        if text.contains(bad) {
                            errs.push(FieldError::invalid(
                                &p(&format!("{pp}.path")),
                                text,
                                format!("must not contain '{bad}'"),
                            ));
                        }
                    }
                    for bad in ["/..", "/."] {
                        if text.ends_with(bad) {
                            errs.push(FieldError::invalid(
                                &p(&format!("{pp}.path")),
                                text,
                                format!("cannot end with '{bad}'"),
                            ));
                        }
                    }
                }
                Some("ImplementationSpecific") => {
                    if !text.is_empty() && !text.starts_with('/') {
                        errs.push(FieldError::invalid(
                            &p(&format!("{pp}.path")),
                            text,
                            "must be an absolute path",
                        ));
                    }
                }
                Some(other) => errs.push(FieldError::not_supported(
                    &p(&format!("{pp}.pathType")),
                    other,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            ingress_backend(
                path.get("backend").unwrap_or(&Value::Null),
                &format!("{pp}.backend"),
                &mut errs,
            );
        }
    }
    for (i, tls) in items(v, "/spec/tls").enumerate() {
        for (j, host) in items(tls, "/hosts").enumerate() {
            ingress_host(
                host.as_str().unwrap_or(""),
                &format!("spec.tls[{i}].hosts[{j}]"),
                &mut errs,
            );
        }
    }
    if let Some(class) = str_at(v, "spec.ingressClassName") {
        for msg in kox_api::validation::is_dns1123_subdomain(class) {
            errs.push(FieldError::invalid(&p("spec.ingressClassName"), class, msg));
        }
    }
    errs
}

pub fn ingress_update(new: &Value, _old: &Value) -> FieldErrors {
    ingress(new)
}

/// Upstream's `SetDefaults_NetworkPolicy`: TCP ports, and `Ingress` (plus `Egress` when
/// egress rules are given) as the policy types.
pub fn network_policy_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for dir in ["ingress", "egress"] {
        for rule in spec
            .get_mut(dir)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for port in rule
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object_mut)
            {
                set_default(port, "protocol", json!("TCP"));
            }
        }
    }
    if spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}

/// A CIDR as Go's `net.ParseCIDR` accepts it.
fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max) && !bits.starts_with('+')
}

/// Upstream's `ValidateNetworkPolicySpec`: selectors, ports, peers and policy types.
pub fn network_policy(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    selector_at(v, "/spec/podSelector", "spec.podSelector", &mut errs);
    for (dir, peers_key) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in items(v, &format!("/spec/{dir}")).enumerate() {
            let rp = format!("spec.{dir}[{i}]");
            for (j, port) in items(rule, "/ports").enumerate() {
                let pp = format!("{rp}.ports[{j}]");
                const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
                if let Some(proto) = port.get("protocol").and_then(Value::as_str)
                    && !PROTOCOLS.contains(&proto)
                {
                    errs.push(FieldError::not_supported(
                        &p(&format!("{pp}.protocol")),
                        proto,
                        PROTOCOLS,
                    ));
                }
                match port.get("port") {
                    Some(Value::Number(n)) => {
                        let n = n.as_i64().unwrap_or(0);
                        for msg in kox_api::validation::is_valid_port_num(n) {
                            errs.push(FieldError::invalid(&p(&format!("{pp}.port")), n, msg));
                        }
                        if let Some(end) = port.get("endPort").and_then(Value::as_i64)
                            && end < n
                        {
                            errs.push(FieldError::invalid(
                                &p(&format!("{pp}.endPort")),
                                end,
                                "must be greater than or equal to `port`",
                            ));
                        }
                    }
                    Some(Value::String(name)) => {
                        for msg in kox_api::validation::is_valid_port_name(name) {
                            errs.push(FieldError::invalid(
                                &p(&format!("{pp}.port")),
                                name.as_str(),
                                msg,
                            ));
                        }
                        if port.get("endPort").is_some_and(|e| !e.is_null()) {
                            errs.push(FieldError::forbidden(
                                &p(&format!("{pp}.endPort")),
                                "may not be specified when `port` is non-numeric",
                            ));
                        }
                    }
                    _ => {
                        if port.get("endPort").is_some_and(|e| !e.is_null()) {
                            errs.push(FieldError::required(
                                &p(&format!("{pp}.port")),
                                "must be specified when `endPort` is specified",
                            ));
                        }
                    }
                }
            }
            for (j, peer) in items(rule, &format!("/{peers_key}")).enumerate() {
                let pp = format!("{rp}.{peers_key}[{j}]");
                let has = |k: &str| peer.get(k).is_some_and(|x| !x.is_null());
                let count = ["podSelector", "namespaceSelector", "ipBlock"]
                    .iter()
                    .filter(|k| has(k))
                    .count();
                if count == 0 {
                    errs.push(FieldError::required(&p(&pp), "must specify a peer"));
                } else if has("ipBlock") && count > 1 {
                    errs.push(FieldError::forbidden(
                        &p(&pp),
                        "may not specify both ipBlock and another peer",
                    ));
                }
                for k in ["podSelector", "namespaceSelector"] {
                    selector_at(peer, &format!("/{k}"), &format!("{pp}.{k}"), &mut errs);
                }
                if let Some(block) = peer.get("ipBlock").filter(|b| !b.is_null()) {
                    let cidr = s(block, "cidr");
                    if cidr.is_empty() {
                        errs.push(FieldError::required(&p(&format!("{pp}.ipBlock.cidr")), ""));
                    } else if !is_cidr(cidr) {
                        errs.push(FieldError::invalid(
                            &p(&format!("{pp}.ipBlock.cidr")),
                            cidr,
                            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                        ));
                    }
                    for (k, ex) in items(block, "/except").enumerate() {
                        let ex = ex.as_str().unwrap_or("");
                        if !is_cidr(ex) {
                            errs.push(FieldError::invalid(
                                &p(&format!("{pp}.ipBlock.except[{k}]")),
                                ex,
                                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                            ));
                        }
                    }
                }
            }
        }
    }
    let types: Vec<&str> = items(v, "/spec/policyTypes")
        .filter_map(Value::as_str)
        .collect();
    for (i, t) in types.iter().enumerate() {
        if *t != "Ingress" && *t != "Egress" {
            errs.push(FieldError::not_supported(
                &p(&format!("spec.policyTypes[{i}]")),
                *t,
                &["Ingress", "Egress"],
            ));
        }
    }
    if types.len() > 2 {
        errs.push(FieldError::invalid(
            &p("spec.policyTypes"),
            BadValue::StringList(types.iter().map(|t| t.to_string()).collect()),
            "may not specify more than two policyTypes",
        ));
    }
    errs
}

pub fn network_policy_update(new: &Value, _old: &Value) -> FieldErrors {
    network_policy(new)
}

// ---- discovery -----------------------------------------------------------------------------------

pub fn endpoint_slice_defaults(v: &mut Value) {
    for port in v
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        set_default(port, "name", json!(""));
        set_default(port, "protocol", json!("TCP"));
    }
}

/// Upstream's `ValidateEndpointSlice`: the address type, addresses of that type, ports.
pub fn endpoint_slice(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    const TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    let ty = str_at(v, "addressType").unwrap_or("");
    if ty.is_empty() {
        errs.push(FieldError::required(&p("addressType"), ""));
    } else if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(&p("addressType"), ty, TYPES));
    }
    for (i, ep) in items(v, "/endpoints").enumerate() {
        let ap = format!("endpoints[{i}].addresses");
        let addrs: Vec<&str> = items(ep, "/addresses").filter_map(Value::as_str).collect();
        if addrs.is_empty() {
            errs.push(FieldError::required(
                &p(&ap),
                "must contain at least 1 address",
            ));
        } else if addrs.len() > 100 {
            errs.push(FieldError::too_many(&p(&ap), addrs.len() as i64, 100));
        }
        for (j, a) in addrs.iter().enumerate() {
            let path = p(&format!("{ap}[{j}]"));
            match ty {
                "IPv4" if !a.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv4()) => errs.push(
                    FieldError::invalid(&path, *a, "must be a valid IPv4 address"),
                ),
                "IPv6" if !a.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()) => errs.push(
                    FieldError::invalid(&path, *a, "must be a valid IPv6 address"),
                ),
                "FQDN" => {
                    for msg in kox_api::validation::is_dns1123_subdomain(a) {
                        errs.push(FieldError::invalid(&path, *a, msg));
                    }
                }
                _ => {}
            }
        }
        if let Some(h) = ep.get("hostname").and_then(Value::as_str) {
            dns1123_label(h, &format!("endpoints[{i}].hostname"), &mut errs);
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, port) in items(v, "/ports").enumerate() {
        let pp = format!("ports[{i}]");
        let name = s(port, "name");
        if !name.is_empty() {
            dns1123_label(name, &format!("{pp}.name"), &mut errs);
        }
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&p(&format!("{pp}.name")), name));
        }
        const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
        match port.get("protocol").and_then(Value::as_str) {
            None => errs.push(FieldError::required(&p(&format!("{pp}.protocol")), "")),
            Some(proto) if !PROTOCOLS.contains(&proto) => errs.push(FieldError::not_supported(
                &p(&format!("{pp}.protocol")),
                proto,
                PROTOCOLS,
            )),
            Some(_) => {}
        }
        if let Some(n) = port.get("port").and_then(Value::as_i64) {
            for msg in kox_api::validation::is_valid_port_num(n) {
                errs.push(FieldError::invalid(&p(&format!("{pp}.port")), n, msg));
            }
        }
    }
    errs
}

pub fn endpoint_slice_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = endpoint_slice(new);
    immutable(new, old, "/addressType", "addressType", &mut errs);
    errs
}

// ---- events.k8s.io -------------------------------------------------------------------------------

/// Upstream's `ValidateEventCreate` for `events.k8s.io/v1`: the legacy rules, then the strict
/// ones (event time, type, series; the deprecated fields unset).
pub fn events_v1(v: &Value) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let ns = str_at(v, "metadata.namespace").unwrap_or("");
    let regarding_ns = str_at(v, "regarding.namespace").unwrap_or("");
    if regarding_ns.is_empty() && ns != "default" && ns != "kube-system" {
        errs.push(FieldError::invalid(
            &p("involvedObject.namespace"),
            regarding_ns,
            "does not match event.namespace",
        ));
    }
    new_style_event_fields(v, "reportingController", "note", &mut errs);
    errs.extend(namespaced_meta(v));
    if let Some(series) = v.get("series").filter(|x| !x.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errs.push(FieldError::invalid(
                &p("series.count"),
                "",
                "should be at least 2",
            ));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            errs.push(FieldError::required(&p("series.lastObservedTime"), ""));
        }
    }
    if v.get("eventTime").is_none_or(Value::is_null) {
        errs.push(FieldError::required(&p("eventTime"), ""));
    }
    let ty = str_at(v, "type").unwrap_or("");
    if ty != "Normal" && ty != "Warning" {
        errs.push(FieldError::invalid(
            &p("type"),
            "",
            format!("has invalid value: {ty}"),
        ));
    }
    for (k, path) in [
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
    ] {
        if v.get(k).is_some_and(|x| !x.is_null()) {
            errs.push(FieldError::invalid(&p(path), "", "needs to be unset"));
        }
    }
    if v.get("deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0
    {
        errs.push(FieldError::invalid(&p("count"), "", "needs to be unset"));
    }
    let source = v.get("deprecatedSource");
    if source.is_some_and(|src| !s(src, "component").is_empty() || !s(src, "host").is_empty()) {
        errs.push(FieldError::invalid(&p("source"), "", "needs to be unset"));
    }
    errs
}

/// Upstream's `ValidateEventUpdate` for `events.k8s.io/v1`: what the event says is fixed.
pub fn events_v1_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = events_v1(new);
    for (ptr, path) in [
        ("/regarding", "involvedObject"),
        ("/reason", "reason"),
        ("/note", "message"),
        ("/deprecatedSource", "source"),
        ("/deprecatedFirstTimestamp", "firstTimestamp"),
        ("/action", "action"),
        ("/related", "related"),
        ("/reportingController", "reportingController"),
        ("/reportingInstance", "reportingInstance"),
        ("/type", "type"),
        ("/eventTime", "eventTime"),
    ] {
        immutable(new, old, ptr, path, &mut errs);
    }
    errs
}

// ---- policy --------------------------------------------------------------------------------------

/// Upstream's `ValidatePodDisruptionBudgetSpec`: one bound of the two, each an integer or a
/// percentage up to 100%.
pub fn pdb(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    let min = v.pointer("/spec/minAvailable").filter(|x| !x.is_null());
    let max = v.pointer("/spec/maxUnavailable").filter(|x| !x.is_null());
    if min.is_some() && max.is_some() {
        let show = |x: Option<&Value>| match x {
            Some(Value::String(s)) => format!("{s:?}"),
            Some(other) => other.to_string(),
            None => "nil".into(),
        };
        errs.push(FieldError::invalid(
            &p("spec"),
            BadValue::Raw(format!(
                "policy.PodDisruptionBudgetSpec{{MinAvailable:{}, MaxUnavailable:{}}}",
                show(min),
                show(max)
            )),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    positive_int_or_percent(v, "/spec/minAvailable", "spec.minAvailable", &mut errs);
    positive_int_or_percent(v, "/spec/maxUnavailable", "spec.maxUnavailable", &mut errs);
    selector_at(v, "/spec/selector", "spec.selector", &mut errs);
    if let Some(policy) = str_at(v, "spec.unhealthyPodEvictionPolicy")
        && policy != "AlwaysAllow"
        && policy != "IfHealthyBudget"
    {
        errs.push(FieldError::not_supported(
            &p("spec.unhealthyPodEvictionPolicy"),
            policy,
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
    errs
}

pub fn pdb_update(new: &Value, _old: &Value) -> FieldErrors {
    pdb(new)
}

// ---- scheduling ----------------------------------------------------------------------------------

pub fn priority_class_defaults(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

/// The system priority classes upstream creates: name, value, global default.
const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, bool)] = &[
    ("system-node-critical", 2_000_001_000, false),
    ("system-cluster-critical", 2_000_000_000, false),
];

/// Upstream's `ValidatePriorityClass`: user values up to one billion, `system-` names reserved.
pub fn priority_class(v: &Value) -> FieldErrors {
    let mut errs = cluster_meta(v);
    let name = str_at(v, "metadata.name").unwrap_or("");
    let value = v.get("value").and_then(Value::as_i64).unwrap_or(0);
    let global = v
        .get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if name.starts_with("system-") {
        let problem = match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, ..)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((n, want, _)) if *want != value => {
                Some(format!("value of {n} PriorityClass must be {want}"))
            }
            Some((n, _, want)) if *want != global => {
                Some(format!("globalDefault of {n} PriorityClass must be {want}"))
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            errs.push(FieldError::forbidden(
                &p("metadata.name"),
                format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {problem}"
                ),
            ));
        }
    } else if value > 1_000_000_000 {
        errs.push(FieldError::forbidden(
            &p("value"),
            "maximum allowed value of a user defined priority is 1000000000",
        ));
    }
    if let Some(policy) = str_at(v, "preemptionPolicy")
        && policy != "PreemptLowerPriority"
        && policy != "Never"
    {
        errs.push(FieldError::not_supported(
            &p("preemptionPolicy"),
            policy,
            &["PreemptLowerPriority", "Never"],
        ));
    }
    errs
}

/// Upstream's `ValidatePriorityClassUpdate`: value and preemption policy are fixed.
pub fn priority_class_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = cluster_meta(new);
    if new.get("value") != old.get("value") {
        errs.push(FieldError::forbidden(
            &p("value"),
            "may not be changed in an update.",
        ));
    }
    immutable(new, old, "/preemptionPolicy", "preemptionPolicy", &mut errs);
    errs
}

// ---- storage -------------------------------------------------------------------------------------

pub fn storage_class_defaults(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        set_default(m, "reclaimPolicy", json!("Delete"));
        set_default(m, "volumeBindingMode", json!("Immediate"));
    }
}

/// Upstream's `ValidateStorageClass`: a provisioner, bounded parameters and supported
/// policies.
pub fn storage_class(v: &Value) -> FieldErrors {
    let mut errs = cluster_meta(v);
    match str_at(v, "provisioner").unwrap_or("") {
        "" => errs.push(FieldError::required(&p("provisioner"), "")),
        prov => {
            for msg in kox_api::validation::is_qualified_name(&prov.to_lowercase()) {
                errs.push(FieldError::invalid(&p("provisioner"), prov, msg));
            }
        }
    }
    let params = v.get("parameters").and_then(Value::as_object);
    if params.is_some_and(|m| m.len() > 512) {
        errs.push(FieldError::too_long(&p("parameters"), 512));
    } else {
        let mut total = 0;
        for (k, val) in params.into_iter().flatten() {
            if k.is_empty() {
                errs.push(FieldError::invalid(
                    &p("parameters"),
                    "",
                    "field can not be empty.",
                ));
            }
            total += k.len() + val.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldError::too_long(&p("parameters"), 256 * 1024));
        }
    }
    if let Some(policy) = str_at(v, "reclaimPolicy").filter(|s| !s.is_empty())
        && policy != "Delete"
        && policy != "Retain"
    {
        errs.push(FieldError::not_supported(
            &p("reclaimPolicy"),
            policy,
            &["Delete", "Retain"],
        ));
    }
    match str_at(v, "volumeBindingMode") {
        None => errs.push(FieldError::required(&p("volumeBindingMode"), "")),
        Some("Immediate" | "WaitForFirstConsumer") => {}
        Some(other) => errs.push(FieldError::not_supported(
            &p("volumeBindingMode"),
            other,
            &["Immediate", "WaitForFirstConsumer"],
        )),
    }
    errs
}

/// Upstream's `ValidateStorageClassUpdate`: parameters, provisioner, reclaim policy and binding
/// mode are fixed.
pub fn storage_class_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = cluster_meta(new);
    let params = |v: &Value| {
        v.get("parameters")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .cloned()
    };
    if params(new) != params(old) {
        errs.push(FieldError::forbidden(
            &p("parameters"),
            "updates to parameters are forbidden.",
        ));
    }
    if new.get("provisioner") != old.get("provisioner") {
        errs.push(FieldError::forbidden(
            &p("provisioner"),
            "updates to provisioner are forbidden.",
        ));
    }
    if new.get("reclaimPolicy") != old.get("reclaimPolicy") {
        errs.push(FieldError::forbidden(
            &p("reclaimPolicy"),
            "updates to reclaimPolicy are forbidden.",
        ));
    }
    immutable(
        new,
        old,
        "/volumeBindingMode",
        "volumeBindingMode",
        &mut errs,
    );
    errs
}

// ---- coordination --------------------------------------------------------------------------------

/// Upstream's `ValidateLeaseSpec`.
pub fn lease(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    if let Some(d) = v
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .filter(|d| *d <= 0)
    {
        errs.push(FieldError::invalid(
            &p("spec.leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    nonnegative(
        v,
        "/spec/leaseTransitions",
        "spec.leaseTransitions",
        &mut errs,
    );
    if let Some(strategy) = str_at(v, "spec.strategy")
        && strategy != "OldestEmulationVersion"
    {
        errs.push(FieldError::not_supported(
            &p("spec.strategy"),
            strategy,
            &["OldestEmulationVersion"],
        ));
    }
    if str_at(v, "spec.preferredHolder").is_some_and(|h| !h.is_empty())
        && str_at(v, "spec.strategy").is_none_or(str::is_empty)
    {
        errs.push(FieldError::forbidden(
            &p("spec.preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

pub fn lease_update(new: &Value, _old: &Value) -> FieldErrors {
    lease(new)
}

// ---- autoscaling ---------------------------------------------------------------------------------

/// Upstream's `SetDefaults_HorizontalPodAutoscaler` (v2): one replica at least, 80% CPU when
/// no metric is given, and the scaling rules filled in when a behavior is.
pub fn hpa_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    if spec.get("behavior").is_some_and(|b| !b.is_null())
        && let Some(behavior) = child(spec, "behavior")
    {
        scaling_rules(
            behavior,
            "scaleUp",
            0,
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                   {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
        scaling_rules(
            behavior,
            "scaleDown",
            300,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
}

fn scaling_rules(behavior: &mut Map<String, Value>, key: &str, window: i64, policies: Value) {
    if let Some(rules) = child(behavior, key) {
        set_default(rules, "stabilizationWindowSeconds", json!(window));
        set_default(rules, "selectPolicy", json!("Max"));
        set_default(rules, "policies", policies);
    }
}

/// Upstream's `ValidateHorizontalPodAutoscaler`: the target reference and replica bounds.
pub fn hpa(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    for k in ["kind", "name"] {
        let path = format!("spec.scaleTargetRef.{k}");
        match str_at(v, &path).unwrap_or("") {
            "" => errs.push(FieldError::required(&p(&path), "")),
            value => {
                for msg in name_is_path_segment(value, false) {
                    errs.push(FieldError::invalid(&p(&path), value, msg));
                }
            }
        }
    }
    let max = v
        .pointer("/spec/maxReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(min) = v.pointer("/spec/minReplicas").and_then(Value::as_i64) {
        if min < 1 {
            errs.push(FieldError::invalid(
                &p("spec.minReplicas"),
                min,
                "must be greater than or equal to 1",
            ));
        }
        if max < min {
            errs.push(FieldError::invalid(
                &p("spec.maxReplicas"),
                max,
                "must be greater than or equal to `minReplicas`",
            ));
        }
    }
    if max < 1 {
        errs.push(FieldError::invalid(
            &p("spec.maxReplicas"),
            max,
            "must be greater than 0",
        ));
    }
    const TYPES: &[&str] = &[
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    for (i, m) in items(v, "/spec/metrics").enumerate() {
        let ty = s(m, "type");
        if ty.is_empty() {
            errs.push(FieldError::required(
                &p(&format!("spec.metrics[{i}].type")),
                "",
            ));
        } else if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported(
                &p(&format!("spec.metrics[{i}].type")),
                ty,
                TYPES,
            ));
        }
    }
    errs
}

pub fn hpa_update(new: &Value, _old: &Value) -> FieldErrors {
    hpa(new)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{check, with};

    #[test]
    fn rbac_rules_need_verbs_groups_and_resources() {
        let v = json!({"metadata": {"name": "r", "namespace": "d"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": []},
            {"verbs": ["get"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        check(
            super::role(&v),
            &[
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[1].resources: Required value: resource rules must supply at least one resource",
                "rules[2].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
            ],
        );
        let cr = json!({"metadata": {"name": "system:ok"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        check(super::cluster_role(&cr), &[]);
        check(
            super::cluster_role(&with(&cr, json!({"metadata": {"name": "a/b"}}))),
            &["metadata.name: Invalid value: \"a/b\": may not contain '/'"],
        );
    }

    #[test]
    fn bindings_default_groups_and_keep_their_role() {
        let mut v = json!({"metadata": {"name": "b", "namespace": "d"},
            "roleRef": {"kind": "Role", "name": "edit"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "x"}, {"kind": "Robot", "name": "r"}]});
        super::binding_defaults(&mut v);
        assert_eq!(v["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(v["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(v["subjects"][1]["apiGroup"], "");
        check(
            super::role_binding(&v),
            &[
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ],
        );
        let ok = with(
            &v,
            json!({"subjects": [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]}),
        );
        check(
            super::role_binding_update(&with(&ok, json!({"roleRef": {"name": "view"}})), &ok),
            &[
                "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"view\"}: cannot change roleRef",
            ],
        );
        let crb = json!({"metadata": {"name": "c"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "apiGroup": ""}]});
        check(
            super::cluster_role_binding(&crb),
            &[
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
            ],
        );
    }

    #[test]
    fn ingress_rules_and_backends() {
        let v = json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {"rules": [
            {"host": "10.0.0.1", "http": {"paths": [
                {"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80, "name": "http"}}}},
                {"path": "/", "backend": {"service": {"name": "web", "port": {}}}}]}},
            {"host": "*.example.com", "http": {"paths": []}}]}});
        check(
            super::ingress(&v),
            &[
                "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
                "spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
                "spec.rules[0].http.paths[0].backend: Invalid value: \"\": cannot set both port name & port number",
                "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
                "spec.rules[0].http.paths[1].backend: Required value: port name or number is required",
                "spec.rules[1].http.paths: Required value",
            ],
        );
        check(
            super::ingress(&json!({"metadata": {"name": "e", "namespace": "d"}, "spec": {}})),
            &[
                "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified",
            ],
        );
    }

    #[test]
    fn ingress_class_controllers_are_domain_prefixed_and_fixed() {
        let v = json!({"metadata": {"name": "nginx"}, "spec": {"controller": "nginx"}});
        check(
            super::ingress_class(&v),
            &[
                "spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")",
            ],
        );
        let ok =
            json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}});
        check(super::ingress_class(&ok), &[]);
        check(
            super::ingress_class_update(
                &with(&ok, json!({"spec": {"controller": "example.com/other"}})),
                &ok,
            ),
            &["spec.controller: Invalid value: \"example.com/other\": field is immutable"],
        );
    }

    #[test]
    fn network_policies_default_policy_types_and_check_peers() {
        let mut v = json!({"metadata": {"name": "np", "namespace": "d"}, "spec": {"podSelector": {},
            "egress": [{"to": [{}, {"ipBlock": {"cidr": "10.0.0.0/33"}, "podSelector": {}}], "ports": [{"port": 53}]}]}});
        super::network_policy_defaults(&mut v);
        assert_eq!(v["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(v["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        check(
            super::network_policy(&v),
            &[
                "spec.egress[0].to[0]: Required value: must specify a peer",
                "spec.egress[0].to[1]: Forbidden: may not specify both ipBlock and another peer",
                "spec.egress[0].to[1].ipBlock.cidr: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ],
        );
    }

    #[test]
    fn endpoint_slices_have_a_fixed_address_type() {
        let mut v = json!({"metadata": {"name": "s", "namespace": "d"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1", "fd00::1"]}, {"addresses": []}], "ports": [{"port": 80}]});
        super::endpoint_slice_defaults(&mut v);
        assert_eq!(
            v["ports"][0],
            json!({"port": 80, "name": "", "protocol": "TCP"})
        );
        check(
            super::endpoint_slice(&v),
            &[
                "endpoints[0].addresses[1]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
                "endpoints[1].addresses: Required value: must contain at least 1 address",
            ],
        );
        let ok = with(&v, json!({"endpoints": [{"addresses": ["10.0.0.1"]}]}));
        check(
            super::endpoint_slice_update(
                &with(
                    &ok,
                    json!({"addressType": "IPv6", "endpoints": [{"addresses": ["fd00::1"]}]}),
                ),
                &ok,
            ),
            &["addressType: Invalid value: \"IPv6\": field is immutable"],
        );
        check(
            super::endpoint_slice(&with(&ok, json!({"addressType": "IPX"}))),
            &[
                "addressType: Unsupported value: \"IPX\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
            ],
        );
    }

    #[test]
    fn new_events_need_reporting_fields_and_unset_deprecated_ones() {
        let v = json!({"metadata": {"name": "e", "namespace": "d"}, "eventTime": "2025-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "d"}, "reason": "Started", "action": "Start",
            "reportingController": "kubelet", "reportingInstance": "n1", "type": "Normal"});
        check(super::events_v1(&v), &[]);
        check(
            super::events_v1(&with(
                &v,
                json!({"type": "Info", "deprecatedCount": 3, "series": {"count": 1}}),
            )),
            &[
                "series.count: Invalid value: \"\": should be at least 2",
                "series.lastObservedTime: Required value",
                "type: Invalid value: \"\": has invalid value: Info",
                "count: Invalid value: \"\": needs to be unset",
            ],
        );
        check(
            super::events_v1_update(&with(&v, json!({"note": "changed"})), &v),
            &["message: Invalid value: \"changed\": field is immutable"],
        );
    }

    #[test]
    fn pdb_bounds_are_exclusive_percentages_or_integers() {
        let v = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"minAvailable": 1, "maxUnavailable": "120%"}});
        check(
            super::pdb(&v),
            &[
                "spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:1, MaxUnavailable:\"120%\"}: minAvailable and maxUnavailable cannot be both set",
                "spec.maxUnavailable: Invalid value: 120%: must not be greater than 100%",
            ],
        );
    }

    #[test]
    fn priority_classes_reserve_system_names_and_fix_their_value() {
        let mut v = json!({"metadata": {"name": "high"}, "value": 2_000_000_000i64});
        super::priority_class_defaults(&mut v);
        assert_eq!(v["preemptionPolicy"], "PreemptLowerPriority");
        check(
            super::priority_class(&v),
            &["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"],
        );
        check(
            super::priority_class(&with(&v, json!({"metadata": {"name": "system-high"}}))),
            &[
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-high is not a known system priority class",
            ],
        );
        check(
            super::priority_class(&with(
                &v,
                json!({"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000i64}),
            )),
            &[],
        );
        let ok = with(&v, json!({"value": 100}));
        check(
            super::priority_class_update(
                &with(&ok, json!({"value": 200, "preemptionPolicy": "Never"})),
                &ok,
            ),
            &[
                "value: Forbidden: may not be changed in an update.",
                "preemptionPolicy: Invalid value: \"Never\": field is immutable",
            ],
        );
    }

    #[test]
    fn storage_classes_need_a_provisioner_and_keep_parameters() {
        let mut v =
            json!({"metadata": {"name": "fast"}, "provisioner": "", "reclaimPolicy": "Recycle"});
        super::storage_class_defaults(&mut v);
        assert_eq!(v["volumeBindingMode"], "Immediate");
        check(
            super::storage_class(&v),
            &[
                "provisioner: Required value",
                "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
            ],
        );
        let ok = json!({"metadata": {"name": "fast"}, "provisioner": "example.com/disk", "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate", "parameters": {"type": "ssd"}});
        check(super::storage_class(&ok), &[]);
        check(
            super::storage_class_update(
                &with(
                    &ok,
                    json!({"parameters": {"type": "hdd"}, "allowVolumeExpansion": true}),
                ),
                &ok,
            ),
            &["parameters: Forbidden: updates to parameters are forbidden."],
        );
    }

    #[test]
    fn leases_have_positive_durations() {
        let v = json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0, "preferredHolder": "a"}});
        check(
            super::lease(&v),
            &[
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
            ],
        );
    }

    #[test]
    fn hpa_defaults_and_replica_bounds() {
        let mut v: Value = json!({"metadata": {"name": "h", "namespace": "d"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        super::hpa_defaults(&mut v);
        assert_eq!(v["spec"]["minReplicas"], 1);
        assert_eq!(
            v["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(
            v["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            60
        );
        assert_eq!(v["spec"]["behavior"]["scaleDown"]["selectPolicy"], "Max");
        assert_eq!(v["spec"]["behavior"]["scaleUp"]["policies"][0]["value"], 4);
        check(super::hpa(&v), &[]);
        check(
            super::hpa(&with(
                &v,
                json!({"spec": {"minReplicas": 6, "scaleTargetRef": {"name": ""}}}),
            )),
            &[
                "spec.scaleTargetRef.name: Required value",
                "spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`",
            ],
        );
    }
}
