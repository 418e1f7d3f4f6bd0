//! PodSecurity: the Pod Security Standards (privileged, baseline, restricted) a namespace's
//! `pod-security.kubernetes.io/enforce|warn|audit` labels choose, with upstream's checks and
//! wording. `enforce` refuses a pod (`violates PodSecurity "restricted:latest": …`); `warn`
//! admits it with a `Warning` header (`would violate PodSecurity …`). Workload objects with pod
//! templates get the warnings of both levels, as upstream (enforcement applies to pods only).
//! `audit` records violations on the request's audit event
//! (`pod-security.kubernetes.io/audit-violations`). Upstream's `PodSecurityConfiguration`
//! (given to `kox server --admission-control-config-file`) sets the levels of namespaces without
//! labels and exempts usernames, runtime classes and namespaces.

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, Operation, Plugin, forbidden};
use crate::error::{ApiError, ApiResult};
use crate::registry::{ObjectRef, Registry};

/// The PodSecurity plugin.
#[derive(Default)]
pub struct PodSecurity {
    config: PodSecurityConfig,
}

impl PodSecurity {
    pub fn new(config: PodSecurityConfig) -> Self {
        Self { config }
    }
}

const AUDIT_VIOLATIONS: &str = "pod-security.kubernetes.io/audit-violations";
const ENFORCE_POLICY: &str = "pod-security.kubernetes.io/enforce-policy";
const EXEMPT: &str = "pod-security.kubernetes.io/exempt";

/// Upstream's `PodSecurityConfiguration` (`pod-security.admission.config.k8s.io/v1`): the
/// policy of namespaces without labels, and who is exempt.
#[derive(Debug, Default, Clone)]
pub struct PodSecurityConfig {
    /// Each mode's level when a namespace has no label for it (default: privileged).
    pub defaults: Policy,
    pub exempt_usernames: Vec<String>,
    pub exempt_runtime_classes: Vec<String>,
    pub exempt_namespaces: Vec<String>,
}

impl PodSecurityConfig {
    /// The PodSecurity configuration of an `AdmissionConfiguration`
    /// (`apiserver.config.k8s.io/v1`, as `--admission-control-config-file` takes it): the
    /// `PodSecurity` plugin's inline `configuration`, or the file its `path` names, which
    /// `read` returns. No PodSecurity entry: the defaults.
    pub fn from_admission_configuration(
        text: &str,
        read: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Self, String> {
        let doc: Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if kind != "AdmissionConfiguration"
            || !matches!(
                api_version,
                "apiserver.config.k8s.io/v1" | "apiserver.k8s.io/v1alpha1"
            )
        {
            return Err(format!(
                "expected kind AdmissionConfiguration of apiserver.config.k8s.io/v1, got {kind:?} of {api_version:?}"
            ));
        }
        let plugins = doc.get("plugins").and_then(Value::as_array);
        let Some(plugin) = plugins
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str) == Some("PodSecurity"))
        else {
            return Ok(Self::default());
        };
        let config = match (plugin.get("configuration"), plugin.get("path")) {
            (Some(c), _) if !c.is_null() => c.clone(),
            (_, Some(Value::String(path))) => {
                serde_saphyr::from_str(&read(path)?).map_err(|e| format!("{path}: {e}"))?
            }
            _ => return Ok(Self::default()),
        };
        Self::from_configuration(&config)
    }

    /// A `PodSecurityConfiguration` object.
    pub fn from_configuration(config: &Value) -> Result<Self, String> {
        let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = config
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if kind != "PodSecurityConfiguration"
            || !api_version.starts_with("pod-security.admission.config.k8s.io/")
        {
            return Err(format!(
                "expected kind PodSecurityConfiguration of pod-security.admission.config.k8s.io/v1, got {kind:?} of {api_version:?}"
            ));
        }
        let defaults = config.get("defaults").cloned().unwrap_or(Value::Null);
        let mut labels = std::collections::BTreeMap::new();
        for mode in ["enforce", "warn", "audit"] {
            for key in [mode.to_string(), format!("{mode}-version")] {
                if let Some(v) = defaults.get(&key) {
                    let v = v
                        .as_str()
                        .ok_or_else(|| format!("defaults.{key} must be a string"))?;
                    labels.insert(format!("{LABEL_PREFIX}{key}"), v.to_string());
                }
            }
        }
        let errs = check_labels(&labels);
        if !errs.is_empty() {
            return Err(errs.join("; ").replace("metadata.labels", "defaults"));
        }
        let list = |key: &str| -> Vec<String> {
            config
                .pointer(&format!("/exemptions/{key}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        Ok(Self {
            defaults: Policy::from_labels(&labels),
            exempt_usernames: list("usernames"),
            exempt_runtime_classes: list("runtimeClasses"),
            exempt_namespaces: list("namespaces"),
        })
    }
}

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standard level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// One failed check: upstream's reason and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

/// A container with where it sits (init, app, ephemeral), as upstream visits them.
struct Container<'v> {
    name: &'v str,
    v: &'v Value,
}

fn containers(spec: &Value) -> Vec<Container<'_>> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| {
            spec.get(*list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .map(|c| Container {
            name: c.get("name").and_then(Value::as_str).unwrap_or(""),
            v: c,
        })
        .collect()
}

fn quote_join(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pluralize<'s>(n: usize, one: &'s str, many: &'s str) -> &'s str {
    if n == 1 { one } else { many }
}

/// `container "a"` / `containers "a", "b"`.
fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize(names.len(), "container", "containers"),
        quote_join(names)
    )
}

fn sc<'v>(c: &'v Value, field: &str) -> Option<&'v Value> {
    c.get("securityContext").and_then(|s| s.get(field))
}

/// Capabilities baseline allows to be added.
const BASELINE_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls baseline allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Volume types restricted allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn caps(c: &Value, which: &str) -> Vec<String> {
    sc(c, "capabilities")
        .and_then(|cap| cap.get(which))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// One check: its ID (upstream orders checks by it), the level it belongs to, the baseline
/// check it replaces at restricted, and the function.
type CheckFn = fn(&Value, &Value) -> Option<Violation>;
struct Check {
    id: &'static str,
    level: Level,
    overrides: Option<&'static str>,
    run: CheckFn,
}

const CHECKS: &[Check] = &[
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        overrides: None,
        run: allow_privilege_escalation,
    },
    Check {
        id: "appArmorProfile",
        level: Level::Baseline,
        overrides: None,
        run: app_armor,
    },
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        overrides: None,
        run: capabilities_baseline,
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        overrides: Some("capabilities_baseline"),
        run: capabilities_restricted,
    },
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        overrides: None,
        run: host_namespaces,
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        overrides: None,
        run: host_path_volumes,
    },
    Check {
        id: "hostPorts",
        level: Level::Baseline,
        overrides: None,
        run: host_ports,
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        overrides: None,
        run: privileged,
    },
    Check {
        id: "procMount",
        level: Level::Baseline,
        overrides: None,
        run: proc_mount,
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        overrides: Some("hostPathVolumes"),
        run: restricted_volumes,
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        overrides: None,
        run: run_as_non_root,
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        overrides: None,
        run: run_as_user,
    },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        overrides: None,
        run: se_linux,
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        overrides: None,
        run: seccomp_baseline,
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        overrides: Some("seccompProfile_baseline"),
        run: seccomp_restricted,
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        overrides: None,
        run: sysctls,
    },
    Check {
        id: "windowsHostProcess",
        level: Level::Baseline,
        overrides: None,
        run: windows_host_process,
    },
];

/// Every violation of `level` by a pod (its metadata and spec), in upstream's order.
pub fn evaluate(level: Level, meta: &Value, spec: &Value) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let overridden: Vec<&str> = CHECKS
        .iter()
        .filter(|c| c.level <= level)
        .filter_map(|c| c.overrides)
        .collect();
    CHECKS
        .iter()
        .filter(|c| c.level <= level && !overridden.contains(&c.id))
        .filter_map(|c| (c.run)(meta, spec))
        .collect()
}

/// `privileged (container "a" must …), runAsNonRoot != true (…)`.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn violation(reason: &str, details: Vec<String>) -> Option<Violation> {
    (!details.is_empty()).then(|| Violation {
        reason: reason.to_string(),
        detail: details.join("; "),
    })
}

fn allow_privilege_escalation(_m: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<&str> = containers(spec)
        .iter()
        .filter(|c| sc(c.v, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false))
        .map(|c| c.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        vec![format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        )],
    )
}

fn app_armor(meta: &Value, spec: &Value) -> Option<Violation> {
    let bad_type = |v: Option<&Value>| {
        v.and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .filter(|t| !matches!(*t, "RuntimeDefault" | "Localhost"))
            .map(str::to_string)
    };
    let mut details = Vec::new();
    if let Some(t) = bad_type(spec.pointer("/securityContext/appArmorProfile")) {
        details.push(format!("pod must not set appArmorProfile.type to {t:?}"));
    }
    for c in containers(spec) {
        if let Some(t) = bad_type(sc(c.v, "appArmorProfile")) {
            details.push(format!(
                "container {:?} must not set appArmorProfile.type to {t:?}",
                c.name
            ));
        }
    }
    if let Some(anns) = meta.get("annotations").and_then(Value::as_object) {
        for (k, v) in anns {
            let val = v.as_str().unwrap_or("");
            if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
                && !(val == "runtime/default" || val.starts_with("localhost/"))
            {
                details.push(format!("{k}={val:?}"));
            }
        }
    }
    violation("forbidden AppArmor profile", details)
}

fn capabilities_baseline(_m: &Value, spec: &Value) -> Option<Violation> {
    let mut details = Vec::new();
    for c in containers(spec) {
        let bad: Vec<String> = caps(c.v, "add")
            .into_iter()
            .filter(|cap| !BASELINE_CAPS.contains(&cap.as_str()))
            .collect();
        if !bad.is_empty() {
            let refs: Vec<&str> = bad.iter().map(String::as_str).collect();
            details.push(format!(
                "container {:?} must not include {} in securityContext.capabilities.add",
                c.name,
                quote_join(&refs)
            ));
        }
    }
    violation("non-default capabilities", details)
}

fn capabilities_restricted(_m: &Value, spec: &Value) -> Option<Violation> {
    let all = containers(spec);
    let no_drop: Vec<&str> = all
        .iter()
        .filter(|c| !caps(c.v, "drop").iter().any(|d| d == "ALL"))
        .map(|c| c.name)
        .collect();
    let mut details = Vec::new();
    if !no_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&no_drop)
        ));
    }
    for c in &all {
        let bad: Vec<String> = caps(c.v, "add")
            .into_iter()
            .filter(|cap| cap != "NET_BIND_SERVICE")
            .collect();
        if !bad.is_empty() {
            let refs: Vec<&str> = bad.iter().map(String::as_str).collect();
            details.push(format!(
                "container {:?} must not include {} in securityContext.capabilities.add",
                c.name,
                quote_join(&refs)
            ));
        }
    }
    violation("unrestricted capabilities", details)
}

fn host_namespaces(_m: &Value, spec: &Value) -> Option<Violation> {
    let set: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| spec.get(**f).and_then(Value::as_bool) == Some(true))
        .map(|f| format!("{f}=true"))
        .collect();
    (!set.is_empty()).then(|| Violation {
        reason: "host namespaces".into(),
        detail: set.join(", "),
    })
}

fn volumes(spec: &Value) -> Vec<&Value> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect()
}

fn host_path_volumes(_m: &Value, spec: &Value) -> Option<Violation> {
    let names: Vec<&str> = volumes(spec)
        .into_iter()
        .filter(|v| v.get("hostPath").is_some())
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    (!names.is_empty()).then(|| Violation {
        reason: "hostPath volumes".into(),
        detail: format!(
            "{} {}",
            pluralize(names.len(), "volume", "volumes"),
            quote_join(&names)
        ),
    })
}

fn host_ports(_m: &Value, spec: &Value) -> Option<Violation> {
    let mut names = Vec::new();
    let mut ports = Vec::new();
    for c in containers(spec) {
        let mut found = false;
        for p in
            c.v.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        {
            if let Some(hp) = p
                .get("hostPort")
                .and_then(Value::as_i64)
                .filter(|h| *h != 0)
            {
                found = true;
                if !ports.contains(&hp) {
                    ports.push(hp);
                }
            }
        }
        if found {
            names.push(c.name);
        }
    }
    if names.is_empty() {
        return None;
    }
    let list: Vec<String> = ports.iter().map(i64::to_string).collect();
    Some(Violation {
        reason: "hostPort".into(),
        detail: format!(
            "{} {} {} {}",
            containers_phrase(&names),
            pluralize(names.len(), "uses", "use"),
            pluralize(ports.len(), "hostPort", "hostPorts"),
            list.join(", ")
        ),
    })
}

fn privileged(_m: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<&str> = containers(spec)
        .iter()
        .filter(|c| sc(c.v, "privileged").and_then(Value::as_bool) == Some(true))
        .map(|c| c.name)
        .collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "privileged".into(),
        detail: format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    })
}

/// Host-process containers run on the host with its rights: not below privileged.
fn windows_host_process(_m: &Value, spec: &Value) -> Option<Violation> {
    let host_process = |sc: Option<&Value>| {
        sc.and_then(|s| s.pointer("/windowsOptions/hostProcess"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let bad: Vec<&str> = containers(spec)
        .iter()
        .filter(|c| host_process(c.v.get("securityContext")))
        .map(|c| c.name)
        .collect();
    let mut setters = Vec::new();
    if host_process(spec.get("securityContext")) {
        setters.push("pod".to_string());
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    (!setters.is_empty()).then(|| Violation {
        reason: "hostProcess".into(),
        detail: format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    })
}

fn proc_mount(_m: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<&str> = containers(spec)
        .iter()
        .filter(|c| {
            sc(c.v, "procMount")
                .and_then(Value::as_str)
                .is_some_and(|p| p != "Default")
        })
        .map(|c| c.name)
        .collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "procMount".into(),
        detail: format!(
            "{} must not set securityContext.procMount to \"Unmasked\"",
            containers_phrase(&bad)
        ),
    })
}

fn restricted_volumes(_m: &Value, spec: &Value) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types: Vec<String> = Vec::new();
    for v in volumes(spec) {
        let Some(m) = v.as_object() else { continue };
        let bad: Vec<&String> = m
            .keys()
            .filter(|k| *k != "name" && !RESTRICTED_VOLUMES.contains(&k.as_str()))
            .collect();
        if !bad.is_empty() {
            names.push(m.get("name").and_then(Value::as_str).unwrap_or(""));
            for t in bad {
                if !types.contains(t) {
                    types.push(t.clone());
                }
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    let trefs: Vec<&str> = types.iter().map(String::as_str).collect();
    Some(Violation {
        reason: "restricted volume types".into(),
        detail: format!(
            "{} {} {} {}",
            pluralize(names.len(), "volume", "volumes"),
            quote_join(&names),
            pluralize(
                names.len(),
                "uses restricted volume type",
                "use restricted volume types"
            ),
            quote_join(&trefs)
        ),
    })
}

fn run_as_non_root(_m: &Value, spec: &Value) -> Option<Violation> {
    let pod = spec
        .pointer("/securityContext/runAsNonRoot")
        .and_then(Value::as_bool);
    let mut details = Vec::new();
    if pod == Some(false) {
        details.push("pod must not set securityContext.runAsNonRoot=false".to_string());
    }
    let all = containers(spec);
    let explicit_false: Vec<&str> = all
        .iter()
        .filter(|c| sc(c.v, "runAsNonRoot").and_then(Value::as_bool) == Some(false))
        .map(|c| c.name)
        .collect();
    if !explicit_false.is_empty() {
        details.push(format!(
            "{} must not set securityContext.runAsNonRoot=false",
            containers_phrase(&explicit_false)
        ));
    }
    if pod.is_none() {
        let unset: Vec<&str> = all
            .iter()
            .filter(|c| sc(c.v, "runAsNonRoot").and_then(Value::as_bool).is_none())
            .map(|c| c.name)
            .collect();
        if !unset.is_empty() {
            details.push(format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&unset)
            ));
        }
    }
    violation("runAsNonRoot != true", details)
}

fn run_as_user(_m: &Value, spec: &Value) -> Option<Violation> {
    let mut details = Vec::new();
    if spec
        .pointer("/securityContext/runAsUser")
        .and_then(Value::as_i64)
        == Some(0)
    {
        details.push("pod must not set runAsUser=0".to_string());
    }
    let bad: Vec<&str> = containers(spec)
        .iter()
        .filter(|c| sc(c.v, "runAsUser").and_then(Value::as_i64) == Some(0))
        .map(|c| c.name)
        .collect();
    if !bad.is_empty() {
        details.push(format!(
            "{} must not set runAsUser=0",
            containers_phrase(&bad)
        ));
    }
    violation("runAsUser=0", details)
}

fn se_linux(_m: &Value, spec: &Value) -> Option<Violation> {
    let bad = |o: Option<&Value>| -> Vec<String> {
        let Some(o) = o else { return Vec::new() };
        let mut out = Vec::new();
        if let Some(t) = o.get("type").and_then(Value::as_str).filter(|t| {
            !t.is_empty()
                && !matches!(
                    *t,
                    "container_t" | "container_init_t" | "container_kvm_t" | "container_engine_t"
                )
        }) {
            out.push(format!("type {t:?}"));
        }
        for f in ["user", "role"] {
            if let Some(v) = o.get(f).and_then(Value::as_str).filter(|v| !v.is_empty()) {
                out.push(format!("{f} {v:?}"));
            }
        }
        out
    };
    let mut details = Vec::new();
    let pod = bad(spec.pointer("/securityContext/seLinuxOptions"));
    if !pod.is_empty() {
        details.push(format!(
            "pod set forbidden securityContext.seLinuxOptions: {}",
            pod.join("; ")
        ));
    }
    for c in containers(spec) {
        let b = bad(sc(c.v, "seLinuxOptions"));
        if !b.is_empty() {
            details.push(format!(
                "container {:?} set forbidden securityContext.seLinuxOptions: {}",
                c.name,
                b.join("; ")
            ));
        }
    }
    violation("seLinuxOptions", details)
}

fn seccomp_type(v: Option<&Value>) -> Option<&str> {
    v.and_then(|p| p.get("type")).and_then(Value::as_str)
}

fn seccomp_baseline(_m: &Value, spec: &Value) -> Option<Violation> {
    let mut details = Vec::new();
    if seccomp_type(spec.pointer("/securityContext/seccompProfile")) == Some("Unconfined") {
        details.push(
            "pod must not set securityContext.seccompProfile.type to \"Unconfined\"".to_string(),
        );
    }
    let bad: Vec<&str> = containers(spec)
        .iter()
        .filter(|c| seccomp_type(sc(c.v, "seccompProfile")) == Some("Unconfined"))
        .map(|c| c.name)
        .collect();
    if !bad.is_empty() {
        details.push(format!(
            "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
            containers_phrase(&bad)
        ));
    }
    violation("seccompProfile", details)
}

fn seccomp_restricted(_m: &Value, spec: &Value) -> Option<Violation> {
    let valid = |t: Option<&str>| matches!(t, Some("RuntimeDefault" | "Localhost"));
    let pod = seccomp_type(spec.pointer("/securityContext/seccompProfile"));
    let mut details = Vec::new();
    if let Some(t) = pod.filter(|t| !valid(Some(t))) {
        details.push(format!(
            "pod must not set securityContext.seccompProfile.type to {t:?}"
        ));
    }
    let all = containers(spec);
    let mut explicit_bad: Vec<(&str, &str)> = Vec::new();
    let mut unset = Vec::new();
    for c in &all {
        match seccomp_type(sc(c.v, "seccompProfile")) {
            Some(t) if !valid(Some(t)) => explicit_bad.push((c.name, t)),
            Some(_) => {}
            None => unset.push(c.name),
        }
    }
    for (name, t) in explicit_bad {
        details.push(format!(
            "container {name:?} must not set securityContext.seccompProfile.type to {t:?}"
        ));
    }
    if pod.is_none() && !unset.is_empty() {
        details.push(format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&unset)
        ));
    }
    violation("seccompProfile", details)
}

fn sysctls(_m: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<&str> = spec
        .pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "forbidden sysctls".into(),
        detail: bad.join(", "),
    })
}

/// A namespace's policy: the level and version of each mode.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub enforce: Option<(Level, String)>,
    pub warn: Option<(Level, String)>,
    pub audit: Option<(Level, String)>,
}

impl Policy {
    /// The policy of a namespace's labels, each mode without a label taking `defaults`'.
    pub fn from_labels_or(
        labels: &std::collections::BTreeMap<String, String>,
        defaults: &Policy,
    ) -> Policy {
        let labelled = Policy::from_labels(labels);
        Policy {
            enforce: labelled.enforce.or_else(|| defaults.enforce.clone()),
            warn: labelled.warn.or_else(|| defaults.warn.clone()),
            audit: labelled.audit.or_else(|| defaults.audit.clone()),
        }
    }

    /// The policy of a namespace's labels (unknown levels are refused by [`check_labels`]).
    pub fn from_labels(labels: &std::collections::BTreeMap<String, String>) -> Policy {
        let mode = |m: &str| -> Option<(Level, String)> {
            let level = Level::parse(labels.get(&format!("{LABEL_PREFIX}{m}"))?)?;
            let version = labels
                .get(&format!("{LABEL_PREFIX}{m}-version"))
                .cloned()
                .unwrap_or_else(|| "latest".to_string());
            Some((level, version))
        };
        Policy {
            enforce: mode("enforce"),
            warn: mode("warn"),
            audit: mode("audit"),
        }
    }
}

/// Refuses namespace labels naming an unknown level or a malformed version.
fn check_labels(labels: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let mut errs = Vec::new();
    for mode in ["enforce", "warn", "audit"] {
        if let Some(v) = labels.get(&format!("{LABEL_PREFIX}{mode}"))
            && Level::parse(v).is_none()
        {
            errs.push(format!(
                "metadata.labels[{LABEL_PREFIX}{mode}]: Invalid value: {v:?}: must be one of privileged, baseline, restricted"
            ));
        }
        if let Some(v) = labels.get(&format!("{LABEL_PREFIX}{mode}-version"))
            && !valid_version(v)
        {
            errs.push(format!(
                "metadata.labels[{LABEL_PREFIX}{mode}-version]: Invalid value: {v:?}: must be \"latest\" or of the form \"v1.x\""
            ));
        }
    }
    errs
}

fn valid_version(v: &str) -> bool {
    v == "latest"
        || v.strip_prefix("v1.")
            .is_some_and(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()))
}

/// The pod template (metadata, spec) of a workload object.
fn template_of<'v>(
    def: &crate::resources::ResourceDef,
    obj: &'v Value,
) -> Option<(&'v Value, &'v Value)> {
    let pointer = match (def.group, def.kind) {
        ("", "ReplicationController") | ("", "PodTemplate") => {
            if def.kind == "PodTemplate" {
                "/template"
            } else {
                "/spec/template"
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
            "/spec/template"
        }
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template",
        _ => return None,
    };
    let t = obj.pointer(pointer)?;
    Some((t.get("metadata").unwrap_or(&Value::Null), t.get("spec")?))
}

/// When a namespace's enforce level changes, upstream warns about the pods already there that
/// the new level would refuse: one line for the level, then one per distinct set of reasons.
async fn existing_pod_warnings(reg: &Registry, a: &Attributes<'_>) -> ApiResult<Vec<String>> {
    let (Some(new), Some(old)) = (a.object.as_ref(), a.old_object.as_ref()) else {
        return Ok(Vec::new());
    };
    let new_policy = Policy::from_labels(&super::labels_of(new));
    let old_policy = Policy::from_labels(&super::labels_of(old));
    let Some((level, version)) = new_policy.enforce.clone() else {
        return Ok(Vec::new());
    };
    if old_policy.enforce.as_ref() == Some(&(level, version.clone())) || level == Level::Privileged
    {
        return Ok(Vec::new());
    }
    let ns = a.object_name();
    let pods_def = crate::resources::find("", "v1", "pods").expect("served");
    let pods = reg
        .list(pods_def, Some(ns), &crate::list::ListQuery::default())
        .await?
        .items;
    // Distinct reason lists, in the order first seen, with the pods that have them.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for pod in &pods {
        let Some(spec) = pod.get("spec") else {
            continue;
        };
        let meta = pod.get("metadata").unwrap_or(&Value::Null);
        let violations = evaluate(level, meta, spec);
        if violations.is_empty() {
            continue;
        }
        let reasons = violations
            .iter()
            .map(|v| v.reason.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match groups.iter_mut().find(|(r, _)| *r == reasons) {
            Some((_, names)) => names.push(name),
            None => groups.push((reasons, vec![name])),
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = vec![format!(
        "existing pods in namespace {ns:?} violate the new PodSecurity enforce level \"{}:{version}\"",
        level.as_str()
    )];
    for (reasons, names) in groups {
        let who = match names.len() {
            1 => names[0].clone(),
            2 => format!("{} (and 1 other pod)", names[0]),
            n => format!("{} (and {} other pods)", names[0], n - 1),
        };
        out.push(format!("{who}: {reasons}"));
    }
    Ok(out)
}

#[async_trait]
impl Plugin for PodSecurity {
    fn name(&self) -> &'static str {
        "PodSecurity"
    }

    async fn validate(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if a.def.group.is_empty() && a.def.kind == "Namespace" && a.subresource.is_none() {
            if let Some(ns) = a.object.as_ref()
                && matches!(a.operation, Operation::Create | Operation::Update)
            {
                let errs = check_labels(&super::labels_of(ns));
                if !errs.is_empty() {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "Namespace {:?} is invalid: {}",
                            a.object_name(),
                            if errs.len() == 1 {
                                errs[0].clone()
                            } else {
                                format!("[{}]", errs.join(", "))
                            }
                        ),
                    ));
                }
                if a.operation == Operation::Update {
                    let warnings = existing_pod_warnings(reg, a).await?;
                    a.warnings.extend(warnings);
                }
            }
            return Ok(());
        }
        if !matches!(a.operation, Operation::Create | Operation::Update) {
            return Ok(());
        }
        let is_pod = a.def.group.is_empty() && a.def.kind == "Pod";
        let on_pod_spec = if is_pod {
            matches!(a.subresource, None | Some("ephemeralcontainers"))
        } else {
            a.subresource.is_none()
        };
        if !on_pod_spec {
            return Ok(());
        }
        let Some(obj) = a.object.as_ref() else {
            return Ok(());
        };
        let (meta, spec) = if is_pod {
            match obj.get("spec") {
                Some(s) => (obj.get("metadata").unwrap_or(&Value::Null), s),
                None => return Ok(()),
            }
        } else {
            match template_of(a.def, obj) {
                Some(t) => t,
                None => return Ok(()),
            }
        };
        // An update that leaves the pod spec as it was is not evaluated again.
        if a.operation == Operation::Update
            && let Some(old) = a.old_object.as_ref()
        {
            let old_spec = if is_pod {
                old.get("spec")
            } else {
                template_of(a.def, old).map(|(_, s)| s)
            };
            if old_spec == Some(spec) {
                return Ok(());
            }
        }
        let Some(ns) = a.namespace else {
            return Ok(());
        };
        // Exemptions, in upstream's order: namespace, requesting user, runtime class.
        let runtime_class = spec.get("runtimeClassName").and_then(Value::as_str);
        let exempt = if self.config.exempt_namespaces.iter().any(|n| n == ns) {
            Some("namespace")
        } else if a
            .user
            .is_some_and(|u| self.config.exempt_usernames.contains(&u.name))
        {
            Some("user")
        } else if runtime_class
            .is_some_and(|rc| self.config.exempt_runtime_classes.iter().any(|n| n == rc))
        {
            Some("runtimeClass")
        } else {
            None
        };
        if let Some(why) = exempt {
            a.audit_annotations
                .push((EXEMPT.to_string(), why.to_string()));
            return Ok(());
        }
        let nsdef = crate::resources::find("", "v1", "namespaces").expect("served");
        let namespace = match reg
            .lister_get(ObjectRef {
                def: nsdef,
                namespace: None,
                name: ns,
            })
            .await
        {
            Ok(n) => n,
            Err(e) if e.code() == 404 => return Ok(()),
            Err(e) => return Err(e),
        };
        let policy = Policy::from_labels_or(&super::labels_of(&namespace), &self.config.defaults);
        if let Some((level, version)) = &policy.audit {
            let violations = evaluate(*level, meta, spec);
            if !violations.is_empty() {
                a.audit_annotations.push((
                    AUDIT_VIOLATIONS.to_string(),
                    format!(
                        "would violate PodSecurity \"{}:{version}\": {}",
                        level.as_str(),
                        describe(&violations)
                    ),
                ));
            }
        }
        if is_pod {
            let (level, version) = policy
                .enforce
                .clone()
                .unwrap_or((Level::Privileged, "latest".to_string()));
            a.audit_annotations.push((
                ENFORCE_POLICY.to_string(),
                format!("{}:{version}", level.as_str()),
            ));
        }
        if let Some((level, version)) = &policy.enforce {
            let violations = evaluate(*level, meta, spec);
            if !violations.is_empty() {
                let text = format!(
                    "PodSecurity \"{}:{version}\": {}",
                    level.as_str(),
                    describe(&violations)
                );
                if is_pod {
                    return Err(forbidden(a, &format!("violates {text}")));
                }
                a.warnings.push(format!("would violate {text}"));
            }
        }
        if let Some((level, version)) = &policy.warn {
            let violations = evaluate(*level, meta, spec);
            let already = !is_pod && policy.enforce.as_ref() == Some(&(*level, version.clone()));
            if !violations.is_empty() && !already {
                a.warnings.push(format!(
                    "would violate PodSecurity \"{}:{version}\": {}",
                    level.as_str(),
                    describe(&violations)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(containers: Value) -> Value {
        json!({ "containers": containers })
    }

    #[test]
    fn a_plain_pod_violates_restricted_as_upstream_words_it() {
        let s = spec(json!([{"name": "nginx", "image": "nginx"}]));
        assert_eq!(
            describe(&evaluate(Level::Restricted, &json!({}), &s)),
            "allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert!(evaluate(Level::Baseline, &json!({}), &s).is_empty());
    }

    #[test]
    fn a_compliant_pod_passes_restricted() {
        let s = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "t", "projected": {}}, {"name": "e", "emptyDir": {}}],
        });
        assert_eq!(evaluate(Level::Restricted, &json!({}), &s), vec![]);
    }

    #[test]
    fn baseline_refuses_windows_host_process_pods() {
        let s = json!({
            "hostNetwork": true,
            "securityContext": {"windowsOptions": {"hostProcess": true}},
            "containers": [
                {"name": "a", "securityContext": {"windowsOptions": {"hostProcess": true}}},
                {"name": "b"},
            ],
        });
        let v = evaluate(Level::Baseline, &json!({}), &s);
        assert_eq!(
            describe(&v),
            "host namespaces (hostNetwork=true), hostProcess (pod and container \"a\" must not set securityContext.windowsOptions.hostProcess=true)"
        );
    }

    #[test]
    fn baseline_catches_privileged_host_access_and_capabilities() {
        let s = json!({
            "hostNetwork": true, "hostPID": true,
            "containers": [
                {"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}},
                 "ports": [{"containerPort": 80, "hostPort": 80}]},
                {"name": "b", "securityContext": {"privileged": true}},
            ],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        });
        assert_eq!(
            describe(&evaluate(Level::Baseline, &json!({}), &s)),
            "non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), host namespaces (hostNetwork=true, hostPID=true), hostPath volumes (volume \"root\"), hostPort (container \"a\" uses hostPort 80), privileged (containers \"a\", \"b\" must not set securityContext.privileged=true), forbidden sysctls (kernel.msgmax)"
        );
        let r = evaluate(Level::Restricted, &json!({}), &s);
        assert!(r.iter().any(|v| v.reason == "restricted volume types"
            && v.detail == "volume \"root\" uses restricted volume type \"hostPath\""));
        assert!(!r.iter().any(|v| v.reason == "hostPath volumes"));
        assert!(evaluate(Level::Privileged, &json!({}), &s).is_empty());
    }

    #[test]
    fn namespace_labels_are_parsed_and_checked() {
        let labels: std::collections::BTreeMap<String, String> = [
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/enforce-version", "v1.32"),
            ("pod-security.kubernetes.io/warn", "baseline"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = Policy::from_labels(&labels);
        assert_eq!(p.enforce, Some((Level::Restricted, "v1.32".to_string())));
        assert_eq!(p.warn, Some((Level::Baseline, "latest".to_string())));
        assert!(check_labels(&labels).is_empty());
        let bad = [(
            "pod-security.kubernetes.io/enforce".to_string(),
            "strict".to_string(),
        )]
        .into_iter()
        .collect();
        assert_eq!(check_labels(&bad).len(), 1);
    }
}
