//! Networking and discovery: ingresses, ingress classes, network policies, endpoint slices.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::pods::dns1123_label;
use super::{
    FieldError, FieldErrors, cluster_meta, field_str, immutable, items, namespaced_meta, p,
    selector_at, set_default,
};
use crate::strategy::str_at;
use kox_api::field::BadValue;

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
        if field_str(params, "kind").is_empty() {
            errs.push(FieldError::required(&p("spec.parameters.kind"), ""));
        }
        if field_str(params, "name").is_empty() {
            errs.push(FieldError::required(&p("spec.parameters.name"), ""));
        }
        match params.get("scope").and_then(Value::as_str) {
            Some("Namespace") if field_str(params, "namespace").is_empty() => {
                errs.push(FieldError::required(
                    &p("spec.parameters.namespace"),
                    "`parameters.scope` is set to 'Namespace'",
                ))
            }
            Some("Cluster") if !field_str(params, "namespace").is_empty() => {
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
            if field_str(r, "kind").is_empty() {
                errs.push(FieldError::required(
                    &p(&format!("{path}.resource.kind")),
                    "",
                ));
            }
            if field_str(r, "name").is_empty() {
                errs.push(FieldError::required(
                    &p(&format!("{path}.resource.name")),
                    "",
                ));
            }
        }
        (Some(svc), None) => {
            match field_str(svc, "name") {
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
            let name = field_str(&port, "name");
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
            let text = field_str(path, "path");
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
                    let cidr = field_str(block, "cidr");
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
        let name = field_str(port, "name");
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{check, with};

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
}
