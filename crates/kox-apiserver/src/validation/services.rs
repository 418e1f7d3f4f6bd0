//! Services and their endpoints.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::pods::dns1123_label;
use super::{FieldError, FieldErrors, namespaced_meta, object_meta, p, set_default, string_map};
use crate::strategy::str_at;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

// ---- services -----------------------------------------------------------------------------------

pub fn service_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "ExternalName" {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
}

/// Upstream's `ValidateService`: DNS-1035 names, type, ports (names, numbers, protocols,
/// target ports, node ports) and what each type requires.
pub fn service(v: &Value) -> FieldErrors {
    let mut errs = object_meta(v, true, kox_api::validation::name_is_dns1035_label);
    let ty = str_at(v, "spec.type").unwrap_or("ClusterIP");
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(&p("spec.type"), ty, TYPES));
    }
    let ports: Vec<&Value> = v
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let headless = str_at(v, "spec.clusterIP") == Some("None");
    if ty != "ExternalName" && !headless && ports.is_empty() {
        errs.push(FieldError::required(&p("spec.ports"), ""));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = port.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(&p(&format!("{pp}.name")), ""));
        } else if !name.is_empty() {
            dns1123_label(name, &format!("{pp}.name"), &mut errs);
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&p(&format!("{pp}.name")), name));
            }
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        for msg in kox_api::validation::is_valid_port_num(number) {
            errs.push(FieldError::invalid(&p(&format!("{pp}.port")), number, msg));
        }
        protocol(port, &format!("{pp}.protocol"), &mut errs);
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                for msg in kox_api::validation::is_valid_port_num(n) {
                    errs.push(FieldError::invalid(&p(&format!("{pp}.targetPort")), n, msg));
                }
            }
            Some(Value::String(s)) => {
                for msg in kox_api::validation::is_valid_port_name(s) {
                    errs.push(FieldError::invalid(
                        &p(&format!("{pp}.targetPort")),
                        s.as_str(),
                        msg,
                    ));
                }
            }
            _ => {}
        }
        let node_port = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 && ty == "ClusterIP" {
            errs.push(FieldError::forbidden(
                &p(&format!("{pp}.nodePort")),
                "may not be used when `type` is 'ClusterIP'",
            ));
        } else if node_port != 0 {
            for msg in kox_api::validation::is_valid_port_num(node_port) {
                errs.push(FieldError::invalid(
                    &p(&format!("{pp}.nodePort")),
                    node_port,
                    msg,
                ));
            }
        }
    }
    if ty == "ExternalName" {
        match str_at(v, "spec.externalName").unwrap_or("") {
            "" => errs.push(FieldError::required(&p("spec.externalName"), "")),
            name => {
                let trimmed = name.strip_suffix('.').unwrap_or(name);
                for msg in kox_api::validation::is_dns1123_subdomain(trimmed) {
                    errs.push(FieldError::invalid(&p("spec.externalName"), name, msg));
                }
            }
        }
    }
    const AFFINITY: &[&str] = &["ClientIP", "None"];
    if let Some(a) = str_at(v, "spec.sessionAffinity")
        && !AFFINITY.contains(&a)
    {
        errs.push(FieldError::not_supported(
            &p("spec.sessionAffinity"),
            a,
            AFFINITY,
        ));
    }
    if let Some(sel) = v.pointer("/spec/selector").filter(|s| !s.is_null()) {
        errs.extend(kox_api::validation::validate_labels(
            &string_map(Some(sel)),
            &p("spec.selector"),
        ));
    }
    errs
}

pub fn service_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = service(new);
    let old_ip = str_at(old, "spec.clusterIP").unwrap_or("");
    let new_ip = str_at(new, "spec.clusterIP").unwrap_or("");
    if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip {
        errs.push(FieldError::invalid(
            &p("spec.clusterIPs[0]"),
            new_ip,
            "may not change once set",
        ));
    }
    errs
}

// ---- endpoints ---------------------------------------------------------------------------------

/// Upstream's `IsValidIPForLegacyField` (without the legacy leading-zero leniency).
fn ip(value: &str, path: &str, errs: &mut FieldErrors) -> Option<IpAddr> {
    match value.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            errs.push(FieldError::invalid(
                &p(path),
                value,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
            None
        }
    }
}

/// Upstream's `ValidateNonSpecialIP` for endpoint addresses.
fn non_special_ip(addr: IpAddr, value: &str, path: &str, errs: &mut FieldErrors) {
    let msg = if addr.is_unspecified() {
        Some("may not be unspecified (0.0.0.0)")
    } else if addr.is_loopback() {
        Some("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    } else if match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    } {
        Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    } else if match addr {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => (a.segments()[0] & 0xff0f) == 0xff02,
    } {
        Some("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    } else {
        None
    };
    if let Some(msg) = msg {
        errs.push(FieldError::invalid(&p(path), value, msg));
    }
}

pub fn endpoints_defaults(v: &mut Value) {
    for ss in v
        .get_mut("subsets")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for port in ss
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

/// Upstream's `ValidateEndpoints`: every subset has addresses, valid IPs and ports.
pub fn endpoints(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    for (i, ss) in v
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let sp = format!("subsets[{i}]");
        let list = |k: &str| -> Vec<&Value> {
            ss.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect()
        };
        if list("addresses").is_empty() && list("notReadyAddresses").is_empty() {
            errs.push(FieldError::required(
                &p(&sp),
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for kind in ["addresses", "notReadyAddresses"] {
            for (j, a) in list(kind).iter().enumerate() {
                let ap = format!("{sp}.{kind}[{j}]");
                let value = a.get("ip").and_then(Value::as_str).unwrap_or("");
                let parsed = ip(value, &format!("{ap}.ip"), &mut errs);
                if let Some(h) = a
                    .get("hostname")
                    .and_then(Value::as_str)
                    .filter(|h| !h.is_empty())
                {
                    dns1123_label(h, &format!("{ap}.hostname"), &mut errs);
                }
                if let Some(n) = a.get("nodeName").and_then(Value::as_str) {
                    for msg in kox_api::validation::is_dns1123_subdomain(n) {
                        errs.push(FieldError::invalid(&p(&format!("{ap}.nodeName")), n, msg));
                    }
                }
                if let Some(addr) = parsed {
                    non_special_ip(addr, value, &format!("{ap}.ip"), &mut errs);
                }
            }
        }
        let ports = list("ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = format!("{sp}.ports[{j}]");
            let name = port.get("name").and_then(Value::as_str).unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(&p(&format!("{pp}.name")), ""));
            } else if !name.is_empty() {
                dns1123_label(name, &format!("{pp}.name"), &mut errs);
            }
            let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            for msg in kox_api::validation::is_valid_port_num(number) {
                errs.push(FieldError::invalid(&p(&format!("{pp}.port")), number, msg));
            }
            protocol(port, &format!("{pp}.protocol"), &mut errs);
        }
    }
    errs
}

pub fn endpoints_update(new: &Value, _old: &Value) -> FieldErrors {
    endpoints(new)
}

/// A port's protocol: required, one of SCTP, TCP, UDP.
fn protocol(port: &Value, path: &str, errs: &mut FieldErrors) {
    match port.get("protocol").and_then(Value::as_str).unwrap_or("") {
        "" => errs.push(FieldError::required(&p(path), "")),
        proto if !PROTOCOLS.contains(&proto) => {
            errs.push(FieldError::not_supported(&p(path), proto, PROTOCOLS))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::check;

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default"})
    }

    #[test]
    fn service_ports_are_checked_like_upstream() {
        let mut v = json!({"metadata": meta("web"), "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "web_port", "nodePort": 30080},
            {"name": "http", "port": 443, "protocol": "HTTP"}]}});
        super::service_defaults(&mut v);
        check(
            super::service(&v),
            &[
                "spec.ports[0].targetPort: Invalid value: \"web_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                "spec.ports[1].name: Duplicate value: \"http\"",
                "spec.ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ],
        );
        check(
            super::service(&json!({"metadata": meta("1web"), "spec": {"type": "ExternalName"}})),
            &[
                "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                "spec.externalName: Required value",
            ],
        );
    }

    #[test]
    fn endpoints_need_addresses_valid_ips_and_named_ports() {
        let mut v = json!({"metadata": meta("e"), "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "127.0.0.1"}, {"ip": "nope"}],
             "ports": [{"port": 80}, {"port": 0, "name": "Bad"}]},
            {"ports": [{"port": 80}]}]});
        super::endpoints_defaults(&mut v);
        check(
            super::endpoints(&v),
            &[
                "subsets[0].addresses[1].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "subsets[0].addresses[2].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[0].ports[0].name: Required value",
                "subsets[0].ports[1].name: Invalid value: \"Bad\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "subsets[0].ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
            ],
        );
    }
}
