//! Subresources with behaviour of their own: `pods/binding`, `pods/eviction`, `*/scale`, and the
//! computed `componentstatuses`.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::handlers::Request;
use crate::patch::{PatchType, apply_patch};
use crate::registry::ObjectRef;
use crate::resources;
use crate::server::App;

fn json_response(code: StatusCode, v: &Value) -> Response {
    let mut r = (code, crate::handlers::json_body(v)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn success(code: u16) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code })
}

/// `POST pods/<name>/binding` (or `POST bindings`): sets the pod's node once.
pub async fn bind(
    app: &Arc<App>,
    req: &Request,
    namespace: &str,
    pod: Option<&str>,
) -> ApiResult<Response> {
    let body = crate::handlers::decode_body(
        req.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json"),
        &req.body,
    )?;
    let name = pod
        .map(str::to_string)
        .or_else(|| {
            body.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    let node = body
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            &name,
            &[kox_api::field::FieldError::required(
                &crate::validation::p("target.name"),
                "",
            )],
        ));
    }
    let def = resources::find("", "v1", "pods").expect("pods are served");
    let r = ObjectRef {
        def,
        namespace: Some(namespace),
        name: &name,
    };
    let dry_run = req.query.get("dryRun") == Some("All");
    let opts = crate::registry::WriteOptions {
        dry_run,
        field_validation: crate::registry::FieldValidation::Ignore,
        user: req.user(),
        requested: None,
    };
    app.registry
        .update_with(r, Some("binding"), opts, |current| {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(r.with_target(|t| ApiError::conflict(t, "pod is being deleted, cannot be assigned to a host")));
            }
            if let Some(existing) = current.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                return Err(r.with_target(|t| {
                    ApiError::conflict(t, &format!("pod {name} is already assigned to node \"{existing}\""))
                }));
            }
            let mut new = current.clone();
            new["spec"]["nodeName"] = json!(node);
            let conditions = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conditions: Vec<Value> =
                conditions.into_iter().filter(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled")).collect();
            conditions.push(json!({ "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": crate::meta::now_rfc3339() }));
            new["status"]["conditions"] = json!(conditions);
            Ok((new, Vec::new()))
        })
        .await?;
    Ok(json_response(StatusCode::CREATED, &success(201)))
}

/// `POST pods/<name>/eviction`: deletes the pod gracefully. (Disruption budgets are checked
/// once the disruption controller exists.)
pub async fn evict(app: &Arc<App>, req: &Request, r: ObjectRef<'_>) -> ApiResult<Response> {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        crate::handlers::decode_body(
            req.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json"),
            &req.body,
        )?
    };
    let options = body.get("deleteOptions").cloned().unwrap_or(json!({}));
    app.registry
        .delete(
            r,
            &options,
            crate::registry::WriteOptions {
                dry_run: req.query.get("dryRun") == Some("All"),
                field_validation: crate::registry::FieldValidation::Ignore,
                user: req.user(),
                requested: None,
            },
        )
        .await?;
    Ok(json_response(StatusCode::CREATED, &success(201)))
}

/// `GET|PUT|PATCH <workload>/<name>/scale` as an `autoscaling/v1 Scale`.
pub async fn scale(app: &Arc<App>, req: &Request, r: ObjectRef<'_>) -> ApiResult<Response> {
    let to_scale = |obj: &Value| -> Value {
        let selector = match obj.pointer("/spec/selector") {
            Some(sel)
                if sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some() =>
            {
                selector_string(sel)
            }
            Some(Value::Object(m)) => {
                let mut parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                parts.sort();
                parts.join(",")
            }
            _ => String::new(),
        };
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": obj.pointer("/metadata/name"),
                "namespace": obj.pointer("/metadata/namespace"),
                "uid": obj.pointer("/metadata/uid"),
                "resourceVersion": obj.pointer("/metadata/resourceVersion"),
                "creationTimestamp": obj.pointer("/metadata/creationTimestamp"),
            },
            "spec": { "replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0) },
            "status": { "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0), "selector": selector },
        })
    };
    if req.method == Method::GET {
        let obj = app.registry.get(r).await?;
        return Ok(json_response(StatusCode::OK, &to_scale(&obj)));
    }
    let opts = crate::registry::WriteOptions {
        dry_run: req.query.get("dryRun") == Some("All"),
        field_validation: crate::registry::FieldValidation::Ignore,
        user: req.user(),
        requested: None,
    };
    let ct = req.content_type().to_string();
    let body: Value = if req.method == Method::PUT {
        crate::handlers::decode_body(&ct, &req.body)?
    } else if req.method == Method::PATCH {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
    } else {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    };
    let scale_def = resources::find("", "v1", "pods").expect("pods are served");
    let w = app
        .registry
        .update_with(r, None, opts, |current| {
            let scale = to_scale(current);
            let new_scale = if req.method == Method::PUT {
                body.clone()
            } else {
                let ty = PatchType::from_content_type(&ct)?;
                apply_patch(
                    scale_def,
                    if ty == PatchType::Strategic {
                        PatchType::Merge
                    } else {
                        ty
                    },
                    &scale,
                    &body,
                )?
            };
            if let Some(rv) = new_scale
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                && Some(rv)
                    != current
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
            {
                return Err(r.with_target(ApiError::stale));
            }
            let replicas = new_scale
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "Scale",
                    "autoscaling",
                    r.name,
                    &[kox_api::field::FieldError::invalid(
                        &crate::validation::p("spec.replicas"),
                        replicas,
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut new = current.clone();
            new["spec"]["replicas"] = json!(replicas);
            if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            Ok((new, Vec::new()))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &to_scale(&w.object)))
}

fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        let mut ls: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        ls.sort();
        parts.extend(ls);
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// The components `componentstatuses` reports, with their health endpoints.
const COMPONENTS: &[(&str, u16)] = &[("controller-manager", 10257), ("scheduler", 10259)];

/// `GET componentstatuses[/<name>]`: probes each component now.
pub async fn component_statuses(
    app: &Arc<App>,
    req: &Request,
    name: Option<&str>,
) -> ApiResult<Response> {
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    // The components, then one entry per store member (`etcd-0`, `etcd-1`, …).
    let mut probes: Vec<(String, (bool, String, String))> = Vec::new();
    for (comp, port) in COMPONENTS {
        if name.is_none_or(|want| want == *comp) {
            probes.push((
                comp.to_string(),
                crate::health::probe_component(*port).await,
            ));
        }
    }
    let members = app.registry.store.member_health().await;
    probes.extend(members.into_iter().enumerate().map(|(i, health)| {
        let verdict = match health {
            Ok(()) => (
                true,
                "{\"health\":\"true\",\"reason\":\"\"}".to_string(),
                String::new(),
            ),
            Err(e) => (false, String::new(), e.to_string()),
        };
        (format!("etcd-{i}"), verdict)
    }));
    let mut items = Vec::new();
    for (n, (healthy, message, error)) in probes
        .into_iter()
        .filter(|(n, _)| name.is_none_or(|want| want == n))
    {
        let mut cond = json!({ "type": "Healthy", "status": if healthy { "True" } else { "False" }, "message": message });
        if !error.is_empty() {
            cond["error"] = json!(error);
        }
        items.push(json!({
            "kind": "ComponentStatus",
            "apiVersion": "v1",
            "metadata": { "name": n },
            "conditions": [cond],
        }));
    }
    let def = resources::find("", "v1", "componentstatuses").expect("componentstatuses are served");
    let render = crate::render::Render::negotiate(
        req.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        req.query.get("includeObject"),
    );
    let body = match (name, render) {
        (Some(n), _) => {
            let obj = items.pop().ok_or_else(|| {
                ApiError::not_found(crate::error::Target {
                    qualified_resource: "componentstatuses",
                    group: "",
                    resource: "componentstatuses",
                    name: n,
                })
            })?;
            render.event_object(def, obj)
        }
        (None, crate::render::Render::Object) => {
            json!({ "kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items })
        }
        (None, r) => r.list(def, items.into_iter().map(Arc::new).collect(), json!({})),
    };
    let mut resp = json_response(StatusCode::OK, &body);
    // Upstream warns on every request to a deprecated API; kubectl prints it as a `Warning:`.
    resp.headers_mut().append(
        "Warning",
        http::HeaderValue::from_static("299 - \"v1 ComponentStatus is deprecated in v1.19+\""),
    );
    Ok(resp)
}
