//! A container's environment as the kubelet makes it: service links, `envFrom`, then `env`
//! in order (values may refer to earlier ones as `$(VAR)`), from literal values, the pod's
//! fields, its resources, ConfigMaps and Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::Api;

use crate::Agent;

/// Why a container's config cannot be made (`CreateContainerConfigError`).
pub type ConfigError = String;

/// Expands `$(VAR)` with `vars` as upstream's `expansion.Expand`: `$$` is a literal `$`, an
/// unknown `$(VAR)` stays as written.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The pod field `path` (a `fieldRef`), as the downward API gives it.
pub fn pod_field(pod: &Pod, path: &str, host_ip: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let map_entry = |m: &Option<BTreeMap<String, String>>, key: &str| {
        m.as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&meta.labels),
        "metadata.annotations" => format_map(&meta.annotations),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        _ => {
            if let Some(key) = quoted("metadata.labels['") {
                map_entry(&meta.labels, &key)
            } else if let Some(key) = quoted("metadata.annotations['") {
                map_entry(&meta.annotations, &key)
            } else {
                return Err(format!("unsupported fieldPath: {path}"));
            }
        }
    })
}

/// Labels or annotations as the downward API writes them: `key="value"` lines, sorted.
pub fn format_map(m: &Option<BTreeMap<String, String>>) -> String {
    m.iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A container's resource (`resourceFieldRef`), divided by `divisor` and rounded up as
/// upstream; an unset limit is the node's allocatable.
pub fn container_resource(
    agent: &Agent,
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, ConfigError> {
    use kox_api::quantity::Quantity;
    let res = container.resources.as_ref();
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {resource}"))?;
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(format!("unsupported container resource : {resource}")),
    };
    let given = map
        .and_then(|m| m.get(name))
        .and_then(|q| Quantity::try_from(q).ok());
    let nanos: i128 = match (given, name) {
        (Some(q), _) => q.as_nanos(),
        (None, "cpu") if kind == "limits" => agent.machine.cpu_milli as i128 * 1_000_000,
        (None, "memory") if kind == "limits" => agent.machine.memory_bytes as i128 * 1_000_000_000,
        (None, "ephemeral-storage") if kind == "limits" => {
            agent.machine.ephemeral_bytes as i128 * 1_000_000_000
        }
        (None, _) => 0,
    };
    let divisor = match divisor {
        Some(d) => Quantity::parse(d)
            .map_err(|e| format!("invalid divisor {d}: {e}"))?
            .as_nanos(),
        None => 1_000_000_000,
    };
    let divisor = divisor.max(1);
    let value = (nanos + divisor - 1) / divisor;
    Ok(value.to_string())
}

/// Service links for the pod's namespace (`enableServiceLinks`), and the `kubernetes`
/// service's always: `FOO_SERVICE_HOST`, `FOO_SERVICE_PORT`, `FOO_PORT_80_TCP…`.
pub async fn service_env(agent: &Agent, pod: &Pod) -> BTreeMap<String, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut env = BTreeMap::new();
    let master: Api<Service> = Api::namespaced(agent.client.clone(), "default");
    if let Ok(Some(svc)) = master.get_opt("kubernetes").await {
        add_service_env(&mut env, &svc);
    }
    if links {
        let api: Api<Service> = Api::namespaced(agent.client.clone(), &ns);
        if let Ok(list) = api.list(&Default::default()).await {
            for svc in list
                .items
                .iter()
                .filter(|s| ns != "default" || s.metadata.name.as_deref() != Some("kubernetes"))
            {
                add_service_env(&mut env, svc);
            }
        }
    }
    env
}

fn add_service_env(env: &mut BTreeMap<String, String>, svc: &Service) {
    let Some(spec) = &svc.spec else { return };
    let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return;
    };
    let name = svc
        .metadata
        .name
        .as_deref()
        .unwrap_or("")
        .to_uppercase()
        .replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    env.insert(format!("{name}_SERVICE_HOST"), ip.to_string());
    if let Some(first) = ports.first() {
        env.insert(format!("{name}_SERVICE_PORT"), first.port.to_string());
        let proto = first.protocol.as_deref().unwrap_or("TCP").to_lowercase();
        env.insert(
            format!("{name}_PORT"),
            format!("{proto}://{ip}:{}", first.port),
        );
    }
    for p in ports {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        if let Some(pname) = &p.name {
            env.insert(
                format!(
                    "{name}_SERVICE_PORT_{}",
                    pname.to_uppercase().replace('-', "_")
                ),
                p.port.to_string(),
            );
        }
        let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
        env.insert(
            prefix.clone(),
            format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
        );
        env.insert(format!("{prefix}_PROTO"), proto.to_lowercase());
        env.insert(format!("{prefix}_PORT"), p.port.to_string());
        env.insert(format!("{prefix}_ADDR"), ip.to_string());
    }
}

/// Reads ConfigMaps and Secrets once per container start.
pub struct Sources<'a> {
    pub agent: &'a Agent,
    pub namespace: String,
}

impl Sources<'_> {
    pub async fn config_map(&self, name: &str) -> Result<Option<ConfigMap>, ConfigError> {
        let api: Api<ConfigMap> = Api::namespaced(self.agent.client.clone(), &self.namespace);
        api.get_opt(name)
            .await
            .map_err(|e| format!("getting configmap {name:?}: {e}"))
    }
    pub async fn secret(&self, name: &str) -> Result<Option<Secret>, ConfigError> {
        let api: Api<Secret> = Api::namespaced(self.agent.client.clone(), &self.namespace);
        api.get_opt(name)
            .await
            .map_err(|e| format!("getting secret {name:?}: {e}"))
    }
}

/// The data of a ConfigMap (text and binary) or Secret, as strings.
pub fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    data.extend(
        cm.binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    data
}

pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    data.extend(
        s.string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes())),
    );
    data
}

/// One key of a ConfigMap's or Secret's data (`None`: absent and optional), worded as the
/// kubelet's errors: `kind` is the lower-case and the Kind name.
fn key_of(
    data: Option<BTreeMap<String, Vec<u8>>>,
    key: &str,
    optional: Option<bool>,
    (kind, kind_name): (&str, &str),
    ns: &str,
    name: &str,
) -> Result<Option<String>, ConfigError> {
    let optional = optional == Some(true);
    match data.map(|mut d| d.remove(key)) {
        Some(Some(v)) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
        Some(None) if !optional => Err(format!(
            "couldn't find key {key} in {kind_name} {ns}/{name}"
        )),
        None if !optional => Err(format!("{kind} \"{name}\" not found")),
        _ => Ok(None),
    }
}

/// The container's environment, in the order the runtime gets it.
pub async fn container_env(
    agent: &Agent,
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sources = Sources {
        agent,
        namespace: ns.clone(),
    };
    let mut vars: BTreeMap<String, String> = service_env(agent, pod).await;
    let mut order: Vec<String> = vars.keys().cloned().collect();
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            match sources.config_map(&r.name).await? {
                Some(cm) => config_map_data(&cm),
                None if r.optional == Some(true) => continue,
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        } else if let Some(r) = &from.secret_ref {
            match sources.secret(&r.name).await? {
                Some(s) => secret_data(&s),
                None if r.optional == Some(true) => continue,
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            set(
                &mut vars,
                format!("{prefix}{k}"),
                String::from_utf8_lossy(&v).into_owned(),
            );
        }
    }
    let mut status_pod = pod.clone();
    status_pod
        .status
        .get_or_insert_with(Default::default)
        .pod_ip = Some(pod_ip.to_string());
    for e in container.env.iter().flatten() {
        let value = match &e.value_from {
            None => Some(expand(e.value.as_deref().unwrap_or(""), &vars)),
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    Some(pod_field(
                        &status_pod,
                        &f.field_path,
                        &agent.config.node_ip.to_string(),
                    )?)
                } else if let Some(r) = &from.resource_field_ref {
                    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                        Some(n) => pod
                            .spec
                            .iter()
                            .flat_map(|s| s.containers.iter())
                            .find(|c| c.name == n)
                            .unwrap_or(container),
                        None => container,
                    };
                    Some(container_resource(
                        agent,
                        target,
                        &r.resource,
                        r.divisor.as_ref().map(|d| d.0.as_str()),
                    )?)
                } else if let Some(r) = &from.config_map_key_ref {
                    let data = sources
                        .config_map(&r.name)
                        .await?
                        .map(|cm| config_map_data(&cm));
                    key_of(
                        data,
                        &r.key,
                        r.optional,
                        ("configmap", "ConfigMap"),
                        &ns,
                        &r.name,
                    )?
                } else if let Some(r) = &from.secret_key_ref {
                    let data = sources.secret(&r.name).await?.map(|s| secret_data(&s));
                    key_of(data, &r.key, r.optional, ("secret", "Secret"), &ns, &r.name)?
                } else {
                    None
                }
            }
        };
        if let Some(v) = value {
            set(&mut vars, e.name.clone(), v);
        }
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars[&k].clone();
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_upstream() {
        let vars = BTreeMap::from([("A".to_string(), "x".to_string())]);
        for (input, want) in [
            ("$(A)", "x"),
            ("a$(A)b", "axb"),
            ("$$(A)", "$(A)"),
            ("$(B)", "$(B)"),
            ("$A", "$A"),
            ("$(A", "$(A"),
            ("cost $5", "cost $5"),
        ] {
            assert_eq!(expand(input, &vars), want, "{input}");
        }
    }
}
