//! Escalation prevention: a user may create or change a Role/ClusterRole only with rules they
//! hold themselves, and bind a role only if they hold all its rules — unless RBAC grants them
//! `escalate` on roles or `bind` on the role (upstream's `ConfirmNoEscalation`,
//! `EscalationAllowed`, `BindingAuthorized`). Members of `system:masters` may always.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

use super::{Authorizer, Decision, RequestInfo};
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceDef;
use crate::user::{MASTERS, UserInfo};

/// Whether `owner` rules cover every permission `servant` rules grant (upstream's
/// `validation.Covers`).
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> bool {
    uncovered(owner, servant).is_empty()
}

/// The single-permission rules of `servant` that `owner` does not cover.
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect()
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

/// Splits a rule into rules of one verb, group, resource and name (or one URL).
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let one = |s: &String| Some(vec![s.clone()]);
    for verb in &rule.verbs {
        for group in list(&rule.api_groups) {
            for resource in list(&rule.resources) {
                let names = list(&rule.resource_names);
                if names.is_empty() {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        ..Default::default()
                    });
                }
                for name in names {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        ..Default::default()
                    });
                }
            }
        }
        for url in list(&rule.non_resource_urls) {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(url),
                ..Default::default()
            });
        }
    }
    out
}

fn has(set: &[String], v: &str) -> bool {
    set.iter().any(|s| s == v)
}

fn covers_all(set: &[String], wanted: &[String]) -> bool {
    has(set, "*") || wanted.iter().all(|w| has(set, w))
}

fn resources_cover(set: &[String], wanted: &[String]) -> bool {
    if covers_all(set, wanted) {
        return true;
    }
    wanted.iter().all(|r| {
        has(set, r)
            || r.split_once('/')
                .is_some_and(|(_, sub)| has(set, &format!("*/{sub}")))
    })
}

fn urls_cover(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| {
        set.iter()
            .any(|s| s == "*" || s == w || s.strip_suffix('*').is_some_and(|p| w.starts_with(p)))
    })
}

/// Whether one owner rule covers a (broken-down) servant rule (upstream's `ruleCovers`).
fn rule_covers(owner: &PolicyRule, servant: &PolicyRule) -> bool {
    let names_ok = {
        let owner_names = list(&owner.resource_names);
        owner_names.is_empty() || {
            let wanted = list(&servant.resource_names);
            !wanted.is_empty() && wanted.iter().all(|n| has(owner_names, n))
        }
    };
    covers_all(&owner.verbs, &servant.verbs)
        && covers_all(list(&owner.api_groups), list(&servant.api_groups))
        && resources_cover(list(&owner.resources), list(&servant.resources))
        && urls_cover(
            list(&owner.non_resource_urls),
            list(&servant.non_resource_urls),
        )
        && names_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: v(verbs),
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            ..Default::default()
        }
    }

    #[test]
    fn owner_rules_cover_narrower_rules_only() {
        let owner = vec![r(&["get", "list"], &[""], &["pods", "*/status"])];
        assert!(covers(&owner, &[r(&["get"], &[""], &["pods"])]));
        assert!(covers(
            &owner,
            &[r(&["list"], &[""], &["deployments/status"])]
        ));
        assert!(!covers(&owner, &[r(&["delete"], &[""], &["pods"])]));
        assert!(!covers(&owner, &[r(&["get"], &["apps"], &["pods"])]));
        assert!(!covers(&owner, &[r(&["get"], &[""], &["*"])]));
        let admin = vec![r(&["*"], &["*"], &["*"])];
        assert!(covers(&admin, &[r(&["escalate"], &["x"], &["y/z"])]));
        assert!(!covers(&owner, &admin));
    }

    #[test]
    fn resource_names_narrow_what_an_owner_covers() {
        let mut owner = r(&["get"], &[""], &["configmaps"]);
        owner.resource_names = Some(vec!["cfg".into()]);
        let mut named = r(&["get"], &[""], &["configmaps"]);
        named.resource_names = Some(vec!["cfg".into()]);
        assert!(covers(std::slice::from_ref(&owner), &[named]));
        assert!(!covers(&[owner], &[r(&["get"], &[""], &["configmaps"])]));
    }
}

/// What an RBAC write would grant: the parts escalation prevention looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The rules of a Role/ClusterRole (empty for bindings).
    pub rules: Vec<PolicyRule>,
    /// Whether a ClusterRole carries an aggregationRule.
    pub aggregation: bool,
    /// The role a binding refers to.
    pub role_ref: Option<RoleRef>,
    /// A binding's subjects (what else a binding change can grant).
    pub subjects: Value,
}

impl Grant {
    /// The grant an object of an RBAC kind carries; `None` for other kinds.
    pub fn of(def: &ResourceDef, obj: &Value) -> Option<Grant> {
        if def.group != "rbac.authorization.k8s.io" {
            return None;
        }
        let role_ref = obj
            .get("roleRef")
            .cloned()
            .and_then(|r| serde_json::from_value(r).ok());
        Some(Grant {
            rules: super::rbac::rules_of(obj),
            aggregation: obj.get("aggregationRule").is_some_and(|a| !a.is_null()),
            role_ref,
            subjects: obj.get("subjects").cloned().unwrap_or(Value::Null),
        })
    }
}

fn rule_text(r: &PolicyRule) -> String {
    let mut parts = Vec::new();
    let q = |l: &[String]| {
        l.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some(g) = r.api_groups.as_deref().filter(|g| !g.is_empty()) {
        parts.push(format!("APIGroups:[{}]", q(g)));
    }
    if let Some(res) = r.resources.as_deref().filter(|g| !g.is_empty()) {
        parts.push(format!("Resources:[{}]", q(res)));
    }
    if let Some(n) = r.resource_names.as_deref().filter(|g| !g.is_empty()) {
        parts.push(format!("ResourceNames:[{}]", q(n)));
    }
    if let Some(u) = r.non_resource_urls.as_deref().filter(|g| !g.is_empty()) {
        parts.push(format!("NonResourceURLs:[{}]", q(u)));
    }
    parts.push(format!("Verbs:[{}]", q(&r.verbs)));
    format!("{{{}}}", parts.join(", "))
}

/// Refuses an RBAC write (`obj` of kind `def`, in `namespace`) that would grant more than
/// `user` holds, unless `user` may `escalate` (roles) or `bind` (bindings). Other kinds pass.
pub async fn check_write(
    authz: &Authorizer,
    user: &UserInfo,
    def: &ResourceDef,
    namespace: Option<&str>,
    obj: &Value,
) -> ApiResult<()> {
    let Some(grant) = Grant::of(def, obj) else {
        return Ok(());
    };
    if user.in_group(MASTERS) {
        return Ok(());
    }
    let ns = namespace.unwrap_or("");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let forbidden = |why: String| -> ApiError {
        kox_api::status::forbidden(
            &kox_api::status::GroupResource::new(def.group, def.plural),
            name,
            &why,
        )
        .into()
    };
    let allowed = |verb: &str, resource: &str, role_name: &str| RequestInfo {
        is_resource_request: true,
        verb: verb.to_string(),
        api_group: "rbac.authorization.k8s.io".to_string(),
        api_version: "v1".to_string(),
        namespace: ns.to_string(),
        resource: resource.to_string(),
        name: role_name.to_string(),
        ..Default::default()
    };
    let wanted: Vec<PolicyRule> = match def.kind {
        "Role" | "ClusterRole" => {
            let info = allowed("escalate", def.plural, name);
            if authz.authorize(user, &info).await == Decision::Allow {
                return Ok(());
            }
            if grant.aggregation {
                return Err(forbidden(
                    "must have cluster-admin privileges to use the aggregationRule".to_string(),
                ));
            }
            grant.rules
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let Some(role_ref) = grant.role_ref else {
                return Ok(()); // validation refuses it
            };
            let resource = if role_ref.kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            let info = allowed("bind", resource, &role_ref.name);
            if authz.authorize(user, &info).await == Decision::Allow {
                return Ok(());
            }
            let role_ns = (role_ref.kind == "Role").then_some(ns);
            authz
                .rbac
                .rules_of_ref(&role_ref, role_ns)
                .await
                .map_err(forbidden)?
        }
        _ => return Ok(()),
    };
    let (owned, errors) = authz.rbac.rules_for(user, ns).await;
    let missing = uncovered(&owned, &wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let groups = user
        .groups
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut why = format!(
        "user {:?} (groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        missing.iter().map(rule_text).collect::<Vec<_>>().join("\n")
    );
    if !errors.is_empty() {
        why.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(forbidden(why))
}
