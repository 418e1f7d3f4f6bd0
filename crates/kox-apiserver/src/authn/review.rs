//! authentication.k8s.io/v1 reviews: `SelfSubjectReview` (`kubectl auth whoami`) answers who the
//! requester is; `TokenReview` answers whom a bearer token belongs to (for webhooks and
//! aggregated servers that delegate authentication).

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::handlers::{Request, respond_json};
use crate::resources::ResourceDef;
use crate::server::App;

/// Serves `POST` on a create-only authentication.k8s.io resource.
pub async fn create(app: &Arc<App>, req: &Request, def: &ResourceDef) -> ApiResult<Response> {
    let body = req.json_body()?;
    check_kind(&body, def)?;
    let mut out = json!({
        "kind": def.kind,
        "apiVersion": def.api_version(),
        "metadata": { "creationTimestamp": null },
    });
    match def.kind {
        "SelfSubjectReview" => {
            out["status"] = json!({ "userInfo": req.user.to_json() });
        }
        "TokenReview" => {
            let token = body
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or("");
            let audiences: Vec<String> = body
                .pointer("/spec/audiences")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            out["spec"] = body.get("spec").cloned().unwrap_or_else(|| json!({}));
            out["status"] = app
                .authn
                .review_token(&app.registry, token, &audiences)
                .await;
        }
        _ => return Err(crate::handlers::not_found()),
    }
    Ok(respond_json(req, StatusCode::CREATED, &out))
}

/// Refuses a body of another kind than the resource's (an absent kind is accepted).
pub(crate) fn check_kind(body: &Value, def: &ResourceDef) -> ApiResult<()> {
    match body.get("kind").and_then(Value::as_str) {
        None | Some("") => Ok(()),
        Some(k) if k == def.kind => Ok(()),
        Some(k) => Err(ApiError::bad_request(format!(
            "the body of the request was of kind {k:?}; expected {:?}",
            def.kind
        ))),
    }
}
