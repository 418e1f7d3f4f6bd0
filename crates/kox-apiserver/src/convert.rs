//! Resources served by conversion from a stored one (`resources::CONVERTED`), as upstream
//! serves several versions of one stored object: a request is converted to the stored
//! version and served there (validated by the requested version's strategy); the answer — an
//! object, a list, a Table's objects, watch events, a `Status` naming the resource — is
//! converted back. The conversions themselves are in `hpa_v1.rs` and `events_v1.rs`.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, header};
use kox_api::field_selector::FieldSelector;
use kox_api::status::{GroupResource, Status};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::handlers::{Request, decode_body};
use crate::registry::Registry;
use crate::resources::{self, ResourceDef};

/// How a served version converts to and from its stored one.
pub struct Conversion {
    /// The group the resource is stored (and served internally) at.
    pub stored_group: &'static str,
    /// The version the resource is stored at.
    pub stored_version: &'static str,
    /// A served-version object as the stored version.
    pub to_stored: fn(Value) -> Value,
    /// A stored object as the served version.
    pub to_served: fn(Value) -> Value,
    /// The served version's field selector labels, each with the stored version's name for
    /// it (upstream's field label conversion); `None` when they are the stored version's.
    pub field_labels: Option<&'static [(&'static str, &'static str)]>,
}

/// A request's resource served by conversion, with the stored resource it is served from.
#[derive(Clone, Copy)]
pub struct Converted {
    pub served: &'static ResourceDef,
    pub stored: &'static ResourceDef,
    conversion: &'static Conversion,
}

impl Converted {
    /// The converted resource a request names (`rest`: the path under its group-version).
    pub fn of(group: &str, version: &str, rest: &[&str]) -> Option<Self> {
        let plural = match rest {
            ["namespaces", _, plural, ..] | [plural, ..] => plural,
            _ => return None,
        };
        let served = resources::find_converted(group, version, plural)?;
        let conversion = served.conversion?;
        let stored = resources::find(
            conversion.stored_group,
            conversion.stored_version,
            served.plural,
        )?;
        Some(Converted {
            served,
            stored,
            conversion,
        })
    }

    /// The request to serve at the stored version: a body decoded, checked and normalized as
    /// the served version (its unknown fields reported, returned as warnings), then converted;
    /// a patch applied to the served form of `current` and sent on as an update of it.
    pub fn request(
        &self,
        reg: &Registry,
        req: &Request,
        current: Option<Value>,
    ) -> ApiResult<(Request, Vec<String>)> {
        let opts = req.write_options()?;
        let mut warnings = Vec::new();
        let mut to_stored = |obj: Value| -> ApiResult<Bytes> {
            let (obj, w) = reg.admit_body(self.served, obj, opts)?;
            warnings.extend(w);
            Ok(Bytes::from(
                serde_json::to_vec(&(self.conversion.to_stored)(obj)).unwrap_or_default(),
            ))
        };
        let (method, body) = match req.method {
            Method::POST | Method::PUT if !req.body.is_empty() => (
                req.method.clone(),
                Some(to_stored(decode_body(req.content_type(), &req.body)?)?),
            ),
            Method::PATCH => {
                let (ty, patch) = req.patch()?;
                let current = current.ok_or_else(|| ApiError::internal("no current object"))?;
                let current = (self.conversion.to_served)(current);
                let mut patched = crate::patch::apply_patch(self.served, ty, &current, &patch)?;
                // Applied to this version: a concurrent change is a conflict.
                if patch.pointer("/metadata/resourceVersion").is_none() {
                    patched["metadata"]["resourceVersion"] =
                        current["metadata"]["resourceVersion"].clone();
                }
                (Method::PUT, Some(to_stored(patched)?))
            }
            _ => (req.method.clone(), None),
        };
        let mut headers = req.headers.clone();
        // Answers are converted as JSON (and re-encoded as YAML if that was asked for).
        if req.wants_yaml() {
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        }
        if body.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let mut query = req.query.clone();
        if let (Some(labels), Some(selector)) =
            (self.conversion.field_labels, req.query.get("fieldSelector"))
        {
            let bad = |e: kox_api::field_selector::FieldSelectorError| {
                ApiError::bad_request(e.to_string())
            };
            let stored = FieldSelector::parse(selector)
                .map_err(bad)?
                .convert_fields(|f| labels.iter().find(|(l, _)| *l == f).map(|(_, s)| *s))
                .map_err(bad)?;
            query.set("fieldSelector", stored.to_string());
        }
        let req = Request {
            method,
            path: req.path.clone(),
            query,
            headers,
            body: body.unwrap_or_else(|| req.body.clone()),
            user: req.user.clone(),
            requested: Some(self.served),
            upgrade: Default::default(),
        };
        Ok((req, warnings))
    }

    /// What a stored-version answer (an object, a list, a Table, a watch event, a Status)
    /// says at the served version.
    pub(crate) fn answer(&self, mut v: Value) -> Value {
        let kind = self.stored.kind;
        match v["kind"].as_str() {
            Some(k) if k == kind => (self.conversion.to_served)(v),
            Some(k) if k.strip_suffix("List") == Some(kind) => {
                v["apiVersion"] = json!(self.served.api_version());
                if let Some(items) = v["items"].as_array_mut() {
                    for item in items {
                        *item = (self.conversion.to_served)(item.take());
                    }
                }
                v
            }
            Some("Table") => {
                if let Some(rows) = v["rows"].as_array_mut() {
                    for row in rows {
                        if row.pointer("/object/kind") == Some(&json!(kind)) {
                            row["object"] = (self.conversion.to_served)(row["object"].take());
                        }
                    }
                }
                v
            }
            Some("Status") => {
                let Ok(status) = serde_json::from_value::<Status>(v.clone()) else {
                    return v;
                };
                let of = |d: &ResourceDef| GroupResource::new(d.group, d.plural);
                let mut retargeted = status.clone();
                retargeted.retarget(&of(self.stored), &of(self.served));
                if retargeted == status {
                    v
                } else {
                    retargeted.to_value()
                }
            }
            _ if v.get("type").is_some() && v.get("object").is_some() => {
                v["object"] = self.answer(v["object"].take());
                v
            }
            _ => v,
        }
    }

    /// The stored version's answer as the served version, with `warnings` (from reading the
    /// request body) added: whole bodies converted at once, watch streams a line at a time.
    pub async fn response(
        &self,
        req: &Request,
        resp: Response,
        warnings: &[String],
    ) -> ApiResult<Response> {
        let (mut parts, body) = resp.into_parts();
        crate::handlers::add_warnings(&mut parts.headers, warnings);
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        if !is_json {
            return Ok(Response::from_parts(parts, body));
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        if req.query.flag("watch") {
            let this = *self;
            let mut buf: Vec<u8> = Vec::new();
            let stream = body.into_data_stream().map(move |chunk| {
                let chunk = chunk.map_err(std::io::Error::other)?;
                buf.extend_from_slice(&chunk);
                let mut out = Vec::new();
                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    match serde_json::from_slice::<Value>(&line) {
                        Ok(v) => {
                            out.extend(serde_json::to_vec(&this.answer(v)).unwrap_or_default());
                            out.push(b'\n');
                        }
                        Err(_) => out.extend(line),
                    }
                }
                Ok::<_, std::io::Error>(Bytes::from(out))
            });
            return Ok(Response::from_parts(parts, Body::from_stream(stream)));
        }
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| ApiError::internal(format!("reading the answer: {e}")))?;
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(Response::from_parts(parts, Body::from(bytes)));
        };
        let v = self.answer(v);
        let out = if req.wants_yaml() {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml"),
            );
            serde_saphyr::to_string(&v).unwrap_or_default().into_bytes()
        } else {
            crate::handlers::json_body(&v)
        };
        Ok(Response::from_parts(parts, Body::from(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converted_resources_are_found_by_their_path() {
        let c = Converted::of(
            "autoscaling",
            "v1",
            &["namespaces", "default", "horizontalpodautoscalers", "web"],
        )
        .expect("served by conversion");
        assert_eq!(c.stored.api_version(), "autoscaling/v2");
        assert!(Converted::of("autoscaling", "v2", &["horizontalpodautoscalers"]).is_none());
        let c = Converted::of("events.k8s.io", "v1", &["events"]).expect("served by conversion");
        assert_eq!((c.stored.group, c.stored.plural), ("", "events"));
        assert!(Converted::of("", "v1", &["events"]).is_none());
    }

    #[test]
    fn lists_tables_watch_events_and_statuses_are_answered_at_the_served_version() {
        let c = Converted::of("events.k8s.io", "v1", &["events"]).unwrap();
        let event = json!({ "apiVersion": "v1", "kind": "Event", "metadata": { "name": "e" }, "message": "hi" });
        let list =
            c.answer(json!({ "kind": "EventList", "apiVersion": "v1", "items": [event.clone()] }));
        assert_eq!(list["apiVersion"], "events.k8s.io/v1");
        assert_eq!(list["items"][0]["note"], "hi");
        let table = c.answer(json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": [{ "cells": [], "object": event.clone() }] }));
        assert_eq!(table["rows"][0]["object"]["apiVersion"], "events.k8s.io/v1");
        let watched = c.answer(json!({ "type": "ADDED", "object": event }));
        assert_eq!(watched["object"]["note"], "hi");
        let core = GroupResource::new("", "events");
        let gone = c.answer(kox_api::status::not_found(&core, "e").to_value());
        assert_eq!(gone["message"], r#"events.events.k8s.io "e" not found"#);
        assert_eq!(gone["details"]["group"], "events.k8s.io");
        let invalid = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "Event \"e\" is invalid", "reason": "Invalid", "details": { "name": "e", "kind": "Event" }, "code": 422 });
        assert_eq!(
            c.answer(invalid.clone()),
            invalid,
            "the kind's wording stays"
        );
    }
}
