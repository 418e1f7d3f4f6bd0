//! From the pod spec to CRI: the sandbox config (hostname, namespaces, DNS, ports, security)
//! and each container's config (command, env, mounts, resources, security context).

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};
use kox_api::quantity::Quantity;

use super::env::{ConfigError, expand};
use super::volumes::Prepared;
use super::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID};
use crate::Agent;
use crate::cri::api;

fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(
        POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        POD_NAMESPACE.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    labels.insert(POD_UID.into(), pod.metadata.uid.clone().unwrap_or_default());
    labels
}

fn namespaces(pod: &Pod) -> api::NamespaceOption {
    let spec = pod.spec.as_ref();
    let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| {
        spec.and_then(f).unwrap_or(false)
    };
    let node = api::NamespaceMode::Node as i32;
    api::NamespaceOption {
        network: if flag(|s| s.host_network) {
            node
        } else {
            api::NamespaceMode::Pod as i32
        },
        pid: if flag(|s| s.host_pid) {
            node
        } else if flag(|s| s.share_process_namespace) {
            api::NamespaceMode::Pod as i32
        } else {
            api::NamespaceMode::Container as i32
        },
        ipc: if flag(|s| s.host_ipc) {
            node
        } else {
            api::NamespaceMode::Pod as i32
        },
        ..Default::default()
    }
}

/// The host's resolvers without loopback ones (a stub like 127.0.0.53 does not answer inside
/// a pod); systemd-resolved's upstream list when that is all there is.
fn host_dns() -> api::DnsConfig {
    let parse = |path: &str| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut dns = api::DnsConfig::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => dns.servers.extend(words.next().map(str::to_string)),
                Some("search") => dns.searches = words.map(str::to_string).collect(),
                Some("options") => dns.options = words.map(str::to_string).collect(),
                _ => {}
            }
        }
        dns.servers.retain(|s| !s.starts_with("127.") && s != "::1");
        dns
    };
    let dns = parse("/etc/resolv.conf");
    if dns.servers.is_empty() {
        let resolved = parse("/run/systemd/resolve/resolv.conf");
        if !resolved.servers.is_empty() {
            return resolved;
        }
    }
    dns
}

fn dns_config(pod: &Pod) -> Option<api::DnsConfig> {
    let spec = pod.spec.as_ref()?;
    if spec.dns_policy.as_deref() == Some("None") {
        let c = spec.dns_config.clone().unwrap_or_default();
        return Some(api::DnsConfig {
            servers: c.nameservers.unwrap_or_default(),
            searches: c.searches.unwrap_or_default(),
            options: options(c.options.as_deref()),
        });
    }
    // Until cluster DNS is deployed, ClusterFirst behaves as Default (as the kubelet without a
    // cluster DNS address does).
    let mut dns = host_dns();
    if let Some(c) = &spec.dns_config {
        dns.servers
            .extend(c.nameservers.clone().unwrap_or_default());
        dns.searches.extend(c.searches.clone().unwrap_or_default());
        dns.options.extend(options(c.options.as_deref()));
    }
    Some(dns)
}

fn options(opts: Option<&[k8s_openapi::api::core::v1::PodDNSConfigOption]>) -> Vec<String> {
    opts.unwrap_or_default()
        .iter()
        .filter_map(|o| {
            let name = o.name.clone()?;
            Some(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            })
        })
        .collect()
}

fn port_mappings(pod: &Pod) -> Vec<api::PortMapping> {
    let spec = pod.spec.as_ref();
    spec.iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| api::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp as i32,
                Some("SCTP") => api::Protocol::Sctp as i32,
                _ => api::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

fn id(v: Option<i64>) -> Option<api::Int64Value> {
    v.map(|value| api::Int64Value { value })
}

/// The hostname a pod's containers see: `spec.hostname` or the pod's name (at most 63
/// characters), or the node's own with host networking.
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.host_network).unwrap_or(false) {
        return std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_string();
    }
    let name = spec
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The kubelet's managed `/etc/hosts`: localhost entries, the pod's address with its name
/// (and `<hostname>.<subdomain>.<ns>.svc.<domain>` with a subdomain), then `hostAliases`.
pub fn hosts_file(pod: &Pod, pod_ip: &str) -> String {
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let name = hostname(pod);
    let spec = pod.spec.as_ref();
    match spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        Some(sub) => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            text.push_str(&format!(
                "{pod_ip}\t{name}.{sub}.{ns}.svc.{CLUSTER_DOMAIN}\t{name}\n"
            ));
        }
        None => text.push_str(&format!("{pod_ip}\t{name}\n")),
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if aliases.is_some_and(|a| !a.is_empty()) {
        text.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases.into_iter().flatten() {
            let names = a.hostnames.clone().unwrap_or_default().join("\t");
            text.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    text
}

/// The sandbox config of `pod`, the `attempt`-th sandbox of it.
pub fn sandbox_config(pod: &Pod, attempt: u32, log_dir: &Path) -> api::PodSandboxConfig {
    let psc: PodSecurityContext = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sysctls = psc
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname: hostname(pod),
        log_directory: log_dir.display().to_string(),
        dns_config: dns_config(pod),
        port_mappings: port_mappings(pod),
        labels: pod_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces(pod)),
                run_as_user: id(psc.run_as_user),
                run_as_group: id(psc.run_as_group),
                supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
                seccomp: seccomp(psc.seccomp_profile.as_ref()),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn seccomp(
    profile: Option<&k8s_openapi::api::core::v1::SeccompProfile>,
) -> Option<api::SecurityProfile> {
    let p = profile?;
    let profile_type = match p.type_.as_str() {
        "RuntimeDefault" => api::security_profile::ProfileType::RuntimeDefault,
        "Localhost" => api::security_profile::ProfileType::Localhost,
        _ => api::security_profile::ProfileType::Unconfined,
    };
    Some(api::SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: p.localhost_profile.clone().unwrap_or_default(),
    })
}

fn quantity(c: &Container, kind: &str, name: &str) -> Option<Quantity> {
    let r = c.resources.as_ref()?;
    let m = if kind == "limits" {
        r.limits.as_ref()?
    } else {
        r.requests.as_ref()?
    };
    m.get(name).and_then(|q| Quantity::try_from(q).ok())
}

/// cgroup limits from the container's resources, as the kubelet computes them.
fn resources(c: &Container) -> api::LinuxContainerResources {
    let cpu_request = quantity(c, "requests", "cpu").or_else(|| quantity(c, "limits", "cpu"));
    let cpu_limit = quantity(c, "limits", "cpu");
    let memory_limit = quantity(c, "limits", "memory");
    const PERIOD: i64 = 100_000;
    api::LinuxContainerResources {
        cpu_period: cpu_limit.as_ref().map_or(0, |_| PERIOD),
        cpu_quota: cpu_limit
            .as_ref()
            .map_or(0, |q| (q.milli_value() * PERIOD / 1000).max(1000)),
        cpu_shares: cpu_request
            .as_ref()
            .map_or(2, |q| (q.milli_value() * 1024 / 1000).max(2)),
        memory_limit_in_bytes: memory_limit.as_ref().map_or(0, |q| q.value()),
        ..Default::default()
    }
}

fn security(c: &Container, pod: &Pod) -> api::LinuxContainerSecurityContext {
    let sc: SecurityContext = c.security_context.clone().unwrap_or_default();
    let psc: PodSecurityContext = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let privileged = sc.privileged.unwrap_or(false);
    let caps = sc.capabilities.clone().unwrap_or_default();
    let add: Vec<String> = caps
        .add
        .unwrap_or_default()
        .into_iter()
        .map(|c| cap_name(&c))
        .collect();
    let has_sys_admin = add.iter().any(|c| c == "CAP_SYS_ADMIN");
    let mut groups = psc.supplemental_groups.clone().unwrap_or_default();
    groups.extend(psc.fs_group);
    api::LinuxContainerSecurityContext {
        capabilities: Some(api::Capability {
            add_capabilities: add,
            drop_capabilities: caps
                .drop
                .unwrap_or_default()
                .into_iter()
                .map(|c| cap_name(&c))
                .collect(),
            ..Default::default()
        }),
        privileged,
        namespace_options: Some(namespaces(pod)),
        run_as_user: id(sc.run_as_user.or(psc.run_as_user)),
        run_as_group: id(sc.run_as_group.or(psc.run_as_group)),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: groups,
        no_new_privs: !sc
            .allow_privilege_escalation
            .unwrap_or(privileged || has_sys_admin),
        seccomp: seccomp(sc.seccomp_profile.as_ref().or(psc.seccomp_profile.as_ref())),
        ..Default::default()
    }
}

/// `NET_ADMIN` → `CAP_NET_ADMIN`; `ALL` stays.
fn cap_name(c: &str) -> String {
    if c == "ALL" || c.starts_with("CAP_") {
        c.to_string()
    } else {
        format!("CAP_{c}")
    }
}

/// The mounts of a container: its volumeMounts (with subPath and readOnly), and the file its
/// termination message is written to.
pub fn mounts(
    c: &Container,
    volumes: &Prepared,
    termination_file: &Path,
) -> Result<Vec<api::Mount>, ConfigError> {
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let base = volumes.get(&m.name).ok_or_else(|| {
            format!(
                "cannot find volume \"{}\" to mount into container \"{}\"",
                m.name, c.name
            )
        })?;
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                if sub.split('/').any(|part| part == "..") || sub.starts_with('/') {
                    return Err(format!(
                        "invalid subpath \"{sub}\": must not contain '..' or be absolute"
                    ));
                }
                let p = base.join(sub);
                if std::fs::symlink_metadata(&p).is_err() {
                    std::fs::create_dir_all(&p)
                        .map_err(|e| format!("creating subpath {sub}: {e}"))?;
                }
                p
            }
            None => base.clone(),
        };
        mounts.push(api::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: m.read_only.unwrap_or(false),
            ..Default::default()
        });
    }
    let path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    if !path.is_empty() {
        mounts.push(api::Mount {
            container_path: path,
            host_path: termination_file.display().to_string(),
            ..Default::default()
        });
    }
    Ok(mounts)
}

/// The container config of `c`, its `attempt`-th start.
pub struct ContainerInputs<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub attempt: u32,
    pub image: String,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<api::Mount>,
}

/// The pod's ephemeral containers as containers (the fields they share), with the container
/// each one targets, if any.
pub fn ephemeral_containers(pod: &Pod) -> Vec<(Container, Option<String>)> {
    let ephemeral = pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.clone())
        .unwrap_or_default();
    ephemeral
        .into_iter()
        .filter_map(|e| {
            let target = e.target_container_name.clone().filter(|t| !t.is_empty());
            let mut v = serde_json::to_value(e).ok()?;
            v.as_object_mut()?.remove("targetContainerName");
            Some((serde_json::from_value(v).ok()?, target))
        })
        .collect()
}

/// Puts the container in `target`'s process namespace (`kubectl debug --target`).
pub fn share_processes_with(config: &mut api::ContainerConfig, target: &str) {
    let ns = config
        .linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options
        .get_or_insert_with(Default::default);
    ns.pid = api::NamespaceMode::Target as i32;
    ns.target_id = target.to_string();
}

pub fn container_config(agent: &Agent, i: ContainerInputs<'_>) -> api::ContainerConfig {
    let c = i.container;
    let vars: std::collections::BTreeMap<String, String> = i.env.iter().cloned().collect();
    let expand_all =
        |v: &Option<Vec<String>>| v.iter().flatten().map(|s| expand(s, &vars)).collect();
    let mut labels = pod_labels(i.pod);
    labels.retain(|k, _| k.starts_with("io.kubernetes."));
    labels.insert(CONTAINER_NAME.into(), c.name.clone());
    let annotations = HashMap::from([
        (
            "io.kubernetes.container.restartCount".to_string(),
            i.attempt.to_string(),
        ),
        (
            "io.kubernetes.container.terminationMessagePath".to_string(),
            c.termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
    ]);
    let _ = agent;
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: i.attempt,
        }),
        image: Some(api::ImageSpec {
            image: i.image,
            ..Default::default()
        }),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: i
            .env
            .into_iter()
            .map(|(key, value)| api::KeyValue { key, value })
            .collect(),
        mounts: i.mounts,
        labels,
        annotations,
        log_path: format!("{}/{}.log", c.name, i.attempt),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(resources(c)),
            security_context: Some(security(c, i.pod)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names_the_pod_as_the_kubelet_does() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"containers": [], "subdomain": "web",
                     "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["a.example", "b"]}]},
        }))
        .unwrap();
        let text = hosts_file(&pod, "10.42.0.9");
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            text.contains("10.42.0.9\tweb-0.web.shop.svc.cluster.local\tweb-0\n"),
            "{text}"
        );
        assert!(
            text.ends_with("# Entries added by HostAliases.\n10.1.2.3\ta.example\tb\n"),
            "{text}"
        );
    }

    #[test]
    fn cpu_and_memory_become_cgroup_limits() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}},
        }))
        .unwrap();
        let r = resources(&c);
        assert_eq!(
            (r.cpu_period, r.cpu_quota, r.cpu_shares),
            (100_000, 50_000, 256)
        );
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
    }
}
