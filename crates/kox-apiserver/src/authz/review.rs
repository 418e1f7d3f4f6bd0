//! authorization.k8s.io/v1 reviews: `SubjectAccessReview` (may this user do that?),
//! `LocalSubjectAccessReview` (the same, in one namespace), `SelfSubjectAccessReview`
//! (may I? — `kubectl auth can-i`) and `SelfSubjectRulesReview` (what may I do here? —
//! `kubectl auth can-i --list`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{Value, json};

use super::{Decision, RequestInfo};
use crate::error::{ApiError, ApiResult};
use crate::handlers::{Request, respond_json};
use crate::resources::ResourceDef;
use crate::server::App;
use crate::user::{MASTERS, UserInfo};

/// Serves `POST` on a create-only authorization.k8s.io resource.
pub async fn create(
    app: &Arc<App>,
    req: &Request,
    def: &ResourceDef,
    namespace: Option<&str>,
) -> ApiResult<Response> {
    let body = req.json_body()?;
    crate::authn::review::check_kind(&body, def)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match def.kind {
        "SelfSubjectRulesReview" => {
            let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
            rules_review(app, &req.user, ns).await
        }
        "SelfSubjectAccessReview" => access_review(app, &req.user, &spec).await?,
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            if def.kind == "LocalSubjectAccessReview" {
                let want = namespace.unwrap_or("");
                let got = spec
                    .pointer("/resourceAttributes/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if got != want || spec.get("nonResourceAttributes").is_some() {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {want}"
                    )));
                }
            }
            let user = subject_of(&spec)?;
            access_review(app, &user, &spec).await?
        }
        _ => return Err(crate::handlers::not_found()),
    };
    let mut metadata = json!({ "creationTimestamp": null });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    let out = json!({
        "kind": def.kind,
        "apiVersion": def.api_version(),
        "metadata": metadata,
        "spec": spec,
        "status": status,
    });
    Ok(respond_json(req, StatusCode::CREATED, &out))
}

/// The user a SubjectAccessReview asks about.
fn subject_of(spec: &Value) -> ApiResult<UserInfo> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let name = spec
        .get("user")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let groups = strings(spec.get("groups"));
    if name.is_empty() && groups.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .cloned()
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    Ok(UserInfo {
        name,
        uid: spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        groups,
        extra,
    })
}

/// The request a review's attributes describe.
pub fn info_from_spec(spec: &Value) -> ApiResult<RequestInfo> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        return Ok(RequestInfo {
            is_resource_request: true,
            path: String::new(),
            verb: s(ra, "verb"),
            api_group: s(ra, "group"),
            api_version: s(ra, "version"),
            namespace: s(ra, "namespace"),
            resource: s(ra, "resource"),
            subresource: s(ra, "subresource"),
            name: s(ra, "name"),
            field_selector: ra
                .pointer("/fieldSelector/rawSelector")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    if let Some(nra) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(RequestInfo {
            is_resource_request: false,
            path: s(nra, "path"),
            verb: s(nra, "verb"),
            ..Default::default()
        });
    }
    Err(ApiError::new(
        422,
        "Invalid",
        "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
    ))
}

async fn access_review(app: &Arc<App>, user: &UserInfo, spec: &Value) -> ApiResult<Value> {
    let info = info_from_spec(spec)?;
    Ok(match app.authz.authorize(user, &info).await {
        Decision::Allow => json!({ "allowed": true }),
        Decision::Deny(reason) if reason.is_empty() => json!({ "allowed": false }),
        Decision::Deny(reason) => json!({ "allowed": false, "reason": reason }),
    })
}

async fn rules_review(app: &Arc<App>, user: &UserInfo, namespace: &str) -> Value {
    let (mut rules, errors) = app.authz.rbac.rules_for(user, namespace).await;
    if user.in_group(MASTERS) {
        let star = || Some(vec!["*".to_string()]);
        rules.insert(
            0,
            PolicyRule {
                verbs: vec!["*".into()],
                api_groups: star(),
                resources: star(),
                ..Default::default()
            },
        );
        rules.insert(
            1,
            PolicyRule {
                verbs: vec!["*".into()],
                non_resource_urls: star(),
                ..Default::default()
            },
        );
    }
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in rules {
        if r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
            non_resource_rules
                .push(json!({ "verbs": r.verbs, "nonResourceURLs": r.non_resource_urls }));
        }
        if r.resources.as_ref().is_some_and(|u| !u.is_empty()) {
            let mut rr = json!({
                "verbs": r.verbs,
                "apiGroups": r.api_groups.unwrap_or_default(),
                "resources": r.resources,
            });
            if let Some(names) = r.resource_names.filter(|n| !n.is_empty()) {
                rr["resourceNames"] = json!(names);
            }
            resource_rules.push(rr);
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}
