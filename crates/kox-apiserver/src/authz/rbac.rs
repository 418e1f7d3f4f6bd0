//! RBAC: which rules apply to a user (from ClusterRoleBindings everywhere and RoleBindings in
//! the request's namespace) and whether one of them allows a request. Bindings and roles are
//! read from the watch caches, so a decision costs no store round trip.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use serde_json::Value;

use super::request_info::RequestInfo;
use crate::resources::{self, ResourceDef};
use crate::user::UserInfo;
use crate::watch_cache::WatchCaches;

/// The RBAC rule resolver over the watch caches.
#[derive(Clone)]
pub struct Rbac {
    caches: Arc<WatchCaches>,
    /// Bindings compiled with their roles' rules, rebuilt when the RBAC caches move, so a
    /// decision matches subjects and rules without decoding any object.
    compiled: Arc<Mutex<Compiled>>,
}

/// A role's rules, or why they could not be resolved (a missing role).
type ResolvedRules = Result<Arc<Vec<PolicyRule>>, String>;

/// A binding with its subjects decoded and its role's rules resolved.
struct CompiledBinding {
    subjects: Vec<Subject>,
    rules: ResolvedRules,
}

/// Bindings compiled at given cache generations.
struct Versioned {
    generations: Vec<u64>,
    bindings: Arc<Vec<CompiledBinding>>,
}

#[derive(Default)]
struct Compiled {
    cluster: Option<Versioned>,
    /// Per namespace: its RoleBindings.
    namespaced: HashMap<String, Versioned>,
}

/// How many namespaces' compiled bindings are kept; beyond it the map starts over.
const MAX_COMPILED_NAMESPACES: usize = 1024;

fn def(plural: &str) -> &'static ResourceDef {
    resources::find("rbac.authorization.k8s.io", "v1", plural).expect("RBAC resources are served")
}

impl Rbac {
    pub fn new(caches: Arc<WatchCaches>) -> Self {
        Self {
            caches,
            compiled: Arc::default(),
        }
    }

    async fn list(&self, plural: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let def = def(plural);
        let prefix = crate::list::list_prefix(def, namespace);
        self.caches.get(def).snapshot(prefix.as_bytes()).await.0
    }

    async fn generations(&self, plurals: &[&str]) -> Vec<u64> {
        let mut out = Vec::with_capacity(plurals.len());
        for p in plurals {
            out.push(self.caches.get(def(p)).generation().await);
        }
        out
    }

    /// One cached object, by name.
    async fn get(&self, plural: &str, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let def = def(plural);
        let key = def.key(namespace, name);
        let (items, _) = self.caches.get(def).snapshot(key.as_bytes()).await;
        items
            .into_iter()
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
    }

    /// The rules of the role a binding refers to; an error names what is missing.
    async fn role_rules(
        &self,
        role_ref: &RoleRef,
        namespace: Option<&str>,
    ) -> Result<Vec<PolicyRule>, String> {
        let role = match role_ref.kind.as_str() {
            "ClusterRole" => self.get("clusterroles", None, &role_ref.name).await,
            "Role" => self.get("roles", namespace, &role_ref.name).await,
            other => return Err(format!("unsupported role reference kind: {other:?}")),
        };
        let Some(role) = role else {
            return Err(match role_ref.kind.as_str() {
                "ClusterRole" => format!(
                    "clusterrole.rbac.authorization.k8s.io {:?} not found",
                    role_ref.name
                ),
                _ => format!(
                    "role.rbac.authorization.k8s.io {:?} not found",
                    role_ref.name
                ),
            });
        };
        Ok(rules_of(&role))
    }

    /// Decodes the bindings under one namespace (`None`: the ClusterRoleBindings) and
    /// resolves their roles; bindings referring to the same role share its rules.
    async fn compile(&self, namespace: Option<&str>) -> Vec<CompiledBinding> {
        let plural = if namespace.is_some() {
            "rolebindings"
        } else {
            "clusterrolebindings"
        };
        let mut resolved: HashMap<(String, String), ResolvedRules> = HashMap::new();
        let mut out = Vec::new();
        for binding in self.list(plural, namespace).await {
            let Some(role_ref) = role_ref_of(&binding) else {
                continue;
            };
            let subjects: Vec<Subject> = binding
                .get("subjects")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .unwrap_or_default();
            let key = (role_ref.kind.clone(), role_ref.name.clone());
            let rules = match resolved.get(&key) {
                Some(r) => r.clone(),
                None => {
                    let r = self.role_rules(&role_ref, namespace).await.map(Arc::new);
                    resolved.insert(key, r.clone());
                    r
                }
            };
            out.push(CompiledBinding { subjects, rules });
        }
        out
    }

    /// The compiled bindings of a namespace (`None`: cluster-wide), rebuilt if the caches
    /// they derive from moved since they were compiled.
    async fn bindings(&self, namespace: Option<&str>) -> Arc<Vec<CompiledBinding>> {
        let generations = match namespace {
            None => {
                self.generations(&["clusterrolebindings", "clusterroles"])
                    .await
            }
            Some(_) => {
                self.generations(&["rolebindings", "roles", "clusterroles"])
                    .await
            }
        };
        {
            let compiled = self.compiled.lock();
            let current = match namespace {
                None => compiled.cluster.as_ref(),
                Some(ns) => compiled.namespaced.get(ns),
            };
            if let Some(v) = current.filter(|v| v.generations == generations) {
                return v.bindings.clone();
            }
        }
        let bindings = Arc::new(self.compile(namespace).await);
        let mut compiled = self.compiled.lock();
        let versioned = Versioned {
            generations,
            bindings: bindings.clone(),
        };
        match namespace {
            None => compiled.cluster = Some(versioned),
            Some(ns) => {
                if compiled.namespaced.len() >= MAX_COMPILED_NAMESPACES {
                    compiled.namespaced.clear();
                }
                compiled.namespaced.insert(ns.to_string(), versioned);
            }
        }
        bindings
    }

    /// The bindings that count in `namespace`: the cluster-wide ones first, then (unless
    /// `namespace` is empty) the namespace's.
    async fn applicable(&self, namespace: &str) -> Vec<Arc<Vec<CompiledBinding>>> {
        let mut sets = vec![self.bindings(None).await];
        if !namespace.is_empty() {
            sets.push(self.bindings(Some(namespace)).await);
        }
        sets
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide rules only when empty),
    /// with the errors met resolving them (bindings to missing roles).
    pub async fn rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let sets = self.applicable(namespace).await;
        for (i, set) in sets.iter().enumerate() {
            let binding_ns = if i == 0 { "" } else { namespace };
            for b in set.iter() {
                if !b
                    .subjects
                    .iter()
                    .any(|s| subject_matches(s, user, binding_ns))
                {
                    continue;
                }
                match &b.rules {
                    Ok(r) => rules.extend(r.iter().cloned()),
                    Err(e) => errors.push(e.clone()),
                }
            }
        }
        (rules, errors)
    }

    /// Whether some rule that applies to `user` allows the request.
    pub async fn allows(&self, user: &UserInfo, info: &RequestInfo) -> bool {
        let ns = if info.is_resource_request {
            info.namespace.as_str()
        } else {
            ""
        };
        let sets = self.applicable(ns).await;
        sets.iter().enumerate().any(|(i, set)| {
            let binding_ns = if i == 0 { "" } else { ns };
            set.iter().any(|b| {
                b.subjects
                    .iter()
                    .any(|s| subject_matches(s, user, binding_ns))
                    && b.rules
                        .as_ref()
                        .is_ok_and(|r| r.iter().any(|rule| rule_allows(info, rule)))
            })
        })
    }

    /// The rules of a role object (`roles` / `clusterroles`) as currently cached.
    pub async fn rules_of_ref(
        &self,
        role_ref: &RoleRef,
        namespace: Option<&str>,
    ) -> Result<Vec<PolicyRule>, String> {
        self.role_rules(role_ref, namespace).await
    }
}

/// The `rules` of a Role or ClusterRole object.
pub fn rules_of(role: &Value) -> Vec<PolicyRule> {
    role.get("rules")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default()
}

fn role_ref_of(binding: &Value) -> Option<RoleRef> {
    serde_json::from_value(binding.get("roleRef")?.clone()).ok()
}

/// Whether a subject names `user` (upstream's `appliesToUser`).
pub fn subject_matches(subject: &Subject, user: &UserInfo, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        _ => false,
    }
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|v| v == want)
}

fn has_or_star(list: &[String], want: &str) -> bool {
    list.iter().any(|v| v == "*" || v == want)
}

/// Whether a rule allows a request (upstream's `RuleAllows`).
pub fn rule_allows(info: &RequestInfo, rule: &PolicyRule) -> bool {
    if !has_or_star(&rule.verbs, &info.verb) {
        return false;
    }
    if info.is_resource_request {
        let groups = rule.api_groups.as_deref().unwrap_or(&[]);
        let resources = rule.resources.as_deref().unwrap_or(&[]);
        let names = rule.resource_names.as_deref().unwrap_or(&[]);
        let combined = if info.subresource.is_empty() {
            info.resource.clone()
        } else {
            format!("{}/{}", info.resource, info.subresource)
        };
        has_or_star(groups, &info.api_group)
            && resources.iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!info.subresource.is_empty() && *r == format!("*/{}", info.subresource))
            })
            && (names.is_empty() || has(names, &info.name))
    } else {
        let urls = rule.non_resource_urls.as_deref().unwrap_or(&[]);
        urls.iter().any(|u| non_resource_url_matches(u, &info.path))
    }
}

fn non_resource_url_matches(rule_url: &str, path: &str) -> bool {
    if rule_url == "*" || rule_url == path {
        return true;
    }
    match rule_url.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: v(verbs),
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            resource_names: (!names.is_empty()).then(|| v(names)),
            non_resource_urls: None,
        }
    }

    fn req(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> RequestInfo {
        RequestInfo {
            is_resource_request: true,
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: "dev".into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let pods = rule(&["get", "list"], &[""], &["pods"], &[]);
        assert!(rule_allows(&req("list", "", "pods", "", ""), &pods));
        assert!(!rule_allows(&req("delete", "", "pods", "", "x"), &pods));
        assert!(!rule_allows(&req("get", "apps", "pods", "", "x"), &pods));
        // A subresource needs its own rule.
        assert!(!rule_allows(&req("get", "", "pods", "log", "x"), &pods));
        let logs = rule(&["get"], &[""], &["pods/log"], &[]);
        assert!(rule_allows(&req("get", "", "pods", "log", "x"), &logs));
        let any_status = rule(&["get"], &["*"], &["*/status"], &[]);
        assert!(rule_allows(
            &req("get", "apps", "deployments", "status", "x"),
            &any_status
        ));
        assert!(!rule_allows(
            &req("get", "apps", "deployments", "", "x"),
            &any_status
        ));
        let named = rule(&["get"], &[""], &["configmaps"], &["cfg"]);
        assert!(rule_allows(
            &req("get", "", "configmaps", "", "cfg"),
            &named
        ));
        assert!(!rule_allows(
            &req("get", "", "configmaps", "", "other"),
            &named
        ));
        assert!(!rule_allows(&req("list", "", "configmaps", "", ""), &named));
        let star = rule(&["*"], &["*"], &["*"], &[]);
        assert!(rule_allows(&req("escalate", "x", "y", "z", "w"), &star));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_trailing_star() {
        let r = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/healthz".into(), "/apis/*".into()]),
            ..Default::default()
        };
        let get = |path: &str| RequestInfo {
            verb: "get".into(),
            path: path.into(),
            ..Default::default()
        };
        assert!(rule_allows(&get("/healthz"), &r));
        assert!(!rule_allows(&get("/healthz/etcd"), &r));
        assert!(rule_allows(&get("/apis/apps/v1"), &r));
        assert!(!rule_allows(&get("/apis"), &r));
    }

    #[test]
    fn service_account_subjects_default_to_the_binding_namespace() {
        let sa = Subject {
            kind: "ServiceAccount".into(),
            name: "builder".into(),
            ..Default::default()
        };
        let user = UserInfo::new("system:serviceaccount:dev:builder", &[]);
        assert!(subject_matches(&sa, &user, "dev"));
        assert!(!subject_matches(&sa, &user, "prod"));
        assert!(!subject_matches(&sa, &user, ""));
    }
}
