//! RBAC: roles, cluster roles and their bindings.

use serde_json::{Value, json};

use super::{
    FieldError, FieldErrors, field_str, go_value, items, name_is_path_segment, object_meta, p,
    selector_at,
};
use crate::strategy::str_at;
use kox_api::field::BadValue;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

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
        let name = field_str(sub, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&p(&format!("{sp}.name")), ""));
        }
        let group = field_str(sub, "apiGroup");
        match field_str(sub, "kind") {
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
                if !namespaced && field_str(sub, "namespace").is_empty() {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

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
}
