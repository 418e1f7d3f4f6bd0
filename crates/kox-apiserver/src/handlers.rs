//! Request dispatch: parses a Kubernetes API path and runs the verb against the registry.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::list::{ListBody, ListQuery};
use crate::patch::{PatchType, apply_patch};
use crate::registry::{FieldValidation, ObjectRef, WriteOptions, Written};
use crate::render::Render;
use crate::resources::{self, ResourceDef};
use crate::server::App;
use crate::user::UserInfo;
use crate::{discovery, health, openapi, subresources};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The parsed query string.
#[derive(Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        Query(
            q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    /// Every pair, in order (repeated keys repeat).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` to `value`, replacing what the query had.
    pub(crate) fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_string(), value));
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn list_query(&self) -> ApiResult<ListQuery> {
        let num = |k: &str| -> ApiResult<Option<u64>> {
            self.get(k)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u64>()
                        .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {s:?}")))
                })
                .transpose()
        };
        Ok(ListQuery {
            label_selector: self.get("labelSelector").map(str::to_string),
            field_selector: self.get("fieldSelector").map(str::to_string),
            limit: num("limit")?.map(|l| l as usize),
            continue_token: self.get("continue").map(str::to_string),
            resource_version: self.get("resourceVersion").map(str::to_string),
            resource_version_match: self.get("resourceVersionMatch").map(str::to_string),
            allow_watch_bookmarks: self.flag("allowWatchBookmarks"),
            timeout_seconds: num("timeoutSeconds")?,
            send_initial_events: self.get("sendInitialEvents").map(|v| v == "true"),
        })
    }

    fn write_options(&self) -> ApiResult<WriteOptions<'static>> {
        let dry_run = match self.get("dryRun") {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {other}: supported values: \"All\""
                )));
            }
        };
        let field_validation = match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
                )));
            }
        };
        Ok(WriteOptions {
            dry_run,
            field_validation,
            user: None,
            requested: None,
        })
    }
}

/// A request, read whole (bodies are small; watches have none).
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Who sent it, as authentication established (anonymous without credentials).
    pub user: UserInfo,
    /// When this is the stored version's form of a request for a resource served by
    /// conversion (`convert.rs`): the resource the client named.
    pub requested: Option<&'static ResourceDef>,
    /// The connection's pending protocol switch, for requests that ask for one (exec,
    /// attach, port-forward, proxied WebSockets).
    pub upgrade: parking_lot::Mutex<Option<hyper::upgrade::OnUpgrade>>,
}

impl Request {
    /// The request as a connect subresource consumes it (its pending upgrade moved out).
    fn take_for_connect(&self) -> Request {
        Request {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            user: self.user.clone(),
            requested: self.requested,
            upgrade: parking_lot::Mutex::new(self.upgrade.lock().take()),
        }
    }

    pub(crate) fn accept(&self) -> &str {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    pub(crate) fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    pub(crate) fn wants_yaml(&self) -> bool {
        let accept = self.accept();
        accept.starts_with("application/yaml") && !accept.contains("as=Table")
    }

    /// The write options of the query, with the requesting user for admission.
    pub fn write_options(&self) -> ApiResult<WriteOptions<'_>> {
        Ok(WriteOptions {
            user: self.user(),
            requested: self.requested,
            ..self.query.write_options()?
        })
    }

    /// A PATCH's type and body (server-side apply is refused).
    pub(crate) fn patch(&self) -> ApiResult<(PatchType, Value)> {
        let ty = PatchType::from_content_type(self.content_type())?;
        if ty == PatchType::Apply {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "server-side apply (application/apply-patch+yaml) is not supported yet; use client-side `kubectl apply`",
            ));
        }
        let patch = serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        Ok((ty, patch))
    }

    /// The requesting user, as admission sees it.
    pub fn user(&self) -> Option<&crate::admission::UserInfo> {
        Some(&self.user)
    }

    /// The request body as JSON (from JSON or YAML).
    pub(crate) fn json_body(&self) -> ApiResult<Value> {
        decode_body(self.content_type(), &self.body)
    }
}

/// Decodes a JSON, YAML or Kubernetes protobuf body.
pub fn decode_body(content_type: &str, body: &[u8]) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send the object as JSON or YAML",
        ));
    }
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if kox_proto::is_protobuf(ct) {
        return kox_proto::decode_object(body).map_err(|e| {
            if e.is_unsupported() {
                ApiError::new(415, "UnsupportedMediaType", e.to_string())
            } else {
                ApiError::bad_request(e.to_string())
            }
        });
    }
    if ct.ends_with("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the YAML body is not valid UTF-8"))?;
        serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    }
}

/// Encodes a response body as the client asked (JSON, or YAML).
/// A 200 with a JSON body made as the client reads it.
fn respond_stream(
    chunks: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Response {
    let body = axum::body::Body::from_stream(chunks);
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn respond<T: serde::Serialize>(
    req: &Request,
    code: StatusCode,
    value: &T,
    warnings: &[String],
) -> Response {
    let (body, ct) = if req.wants_yaml() {
        (
            serde_saphyr::to_string(value)
                .unwrap_or_default()
                .into_bytes(),
            "application/yaml",
        )
    } else {
        (json_body(value), "application/json")
    };
    let mut resp = (code, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    add_warnings(resp.headers_mut(), warnings);
    resp
}

/// Adds `warnings` as `Warning` headers (code 299, as upstream's apiserver sends them).
pub(crate) fn add_warnings(headers: &mut HeaderMap, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.append("Warning", v);
        }
    }
}

/// An API object's JSON body as upstream's serializer writes it (`json.Encoder.Encode`): the
/// value and a newline, which clients comparing bytes expect.
pub(crate) fn json_body<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    body
}

/// A non-API document (`/version`) as upstream's `WriteRawJSON` writes it: indented, with no
/// trailing newline.
fn respond_raw_json(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Encodes a JSON response body as the client asked (JSON or YAML).
pub(crate) fn respond_json(req: &Request, code: StatusCode, value: &Value) -> Response {
    respond(req, code, value, &[])
}

/// 404 for a path the server does not serve.
pub(crate) fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn written(req: &Request, w: Written, render: Render, def: &ResourceDef) -> Response {
    let code = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let name = w
        .object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut resp = respond(req, code, &render.event_object(def, w.object), &w.warnings);
    if w.created && !name.is_empty() {
        resp.extensions_mut().insert(crate::audit::ObjectName(name));
    }
    if !w.audit_annotations.is_empty() {
        resp.extensions_mut()
            .insert(crate::audit::Annotations(w.audit_annotations));
    }
    resp
}

/// Where a resource request points.
struct Target<'a> {
    def: &'static ResourceDef,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

/// Entry point for every request.
pub async fn dispatch(app: Arc<App>, req: Request) -> Response {
    match route(&app, &req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn route(app: &Arc<App>, req: &Request) -> ApiResult<Response> {
    let segs: Vec<&str> = req
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let get_only = || {
        if req.method != Method::GET && req.method != Method::HEAD {
            Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource".to_string(),
            ))
        } else {
            Ok(())
        }
    };
    match segs.as_slice() {
        ["version"] => {
            get_only()?;
            Ok(respond_raw_json(StatusCode::OK, &app.version_info()))
        }
        ["healthz" | "livez" | "readyz", rest @ ..] => {
            get_only()?;
            Ok(health::check(
                app,
                segs[0],
                rest.first().copied(),
                req.query.get("verbose").is_some(),
            )
            .await)
        }
        ["metrics"] => {
            get_only()?;
            Ok(app.metrics.render())
        }
        ["api"] | ["apis"] if discovery::wants_aggregated(req.accept()) => {
            get_only()?;
            let doc = discovery::aggregated(segs[0] == "api");
            let mut resp = respond(req, StatusCode::OK, &doc, &[]);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(discovery::AGGREGATED_V2),
            );
            Ok(resp)
        }
        ["api"] => {
            get_only()?;
            Ok(respond(
                req,
                StatusCode::OK,
                &discovery::api_versions(&app.advertise),
                &[],
            ))
        }
        ["apis"] => {
            get_only()?;
            Ok(respond(
                req,
                StatusCode::OK,
                &discovery::api_group_list(),
                &[],
            ))
        }
        ["api", "v1"] => {
            get_only()?;
            Ok(respond(
                req,
                StatusCode::OK,
                &discovery::api_resource_list("", "v1").unwrap_or_default(),
                &[],
            ))
        }
        ["apis", group] => {
            get_only()?;
            let doc = discovery::api_group(group).ok_or_else(|| not_found_path(req))?;
            Ok(respond(req, StatusCode::OK, &doc, &[]))
        }
        ["apis", group, version] => {
            get_only()?;
            let doc =
                discovery::api_resource_list(group, version).ok_or_else(|| not_found_path(req))?;
            Ok(respond(req, StatusCode::OK, &doc, &[]))
        }
        ["openapi", "v2"] => {
            get_only()?;
            openapi_v2(req)
        }
        ["openapi", "v3"] => {
            get_only()?;
            Ok(respond(req, StatusCode::OK, &openapi::v3::index(), &[]))
        }
        ["openapi", "v3", rest @ ..] => {
            get_only()?;
            let doc = openapi::v3::document(&rest.join("/")).ok_or_else(|| not_found_path(req))?;
            Ok(respond(req, StatusCode::OK, &doc, &[]))
        }
        ["api", "v1", rest @ ..] => resource(app, req, "", "v1", rest).await,
        ["apis", group, version, rest @ ..] => resource(app, req, group, version, rest).await,
        _ => Err(not_found_path(req)),
    }
}

/// `/openapi/v2` as JSON or protobuf, whichever `Accept` prefers, with upstream's ETag: a
/// client whose `If-None-Match` names it gets a 304 and no body.
fn openapi_v2(req: &Request) -> ApiResult<Response> {
    let format = openapi::v2::negotiate(req.accept()).ok_or_else(|| {
        ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only application/json and {} are served here",
                openapi::v2::PROTOBUF
            ),
        )
    })?;
    let spec = openapi::v2::spec();
    let cached = req
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| openapi::v2::matches(tags, &spec.etag));
    let (body, content_type) = spec.body(format);
    let mut resp = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut resp = (StatusCode::OK, Bytes::from_static(body)).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp
    };
    let headers = resp.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(etag) = HeaderValue::from_str(&spec.etag) {
        headers.insert(header::ETAG, etag);
    }
    Ok(resp)
}

fn not_found_path(_req: &Request) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn resource(
    app: &Arc<App>,
    req: &Request,
    group: &str,
    version: &str,
    rest: &[&str],
) -> ApiResult<Response> {
    let Some(c) = crate::convert::Converted::of(group, version, rest) else {
        return served_resource(app, req, group, version, rest).await;
    };
    // A resource served by conversion from the stored one: the request converted to the
    // stored version, the answer (errors too) back.
    let served = async {
        let current = match (&req.method, rest) {
            (&Method::PATCH, ["namespaces", ns, _, name, ..]) => Some((Some(*ns), *name)),
            (&Method::PATCH, [_, name, ..]) if !c.stored.namespaced => Some((None, *name)),
            _ => None,
        };
        let current = match current {
            Some((namespace, name)) => Some(
                app.registry
                    .get(ObjectRef {
                        def: c.stored,
                        namespace,
                        name,
                    })
                    .await?,
            ),
            None => None,
        };
        let (stored_req, warnings) = c.request(&app.registry, req, current)?;
        let resp =
            served_resource(app, &stored_req, c.stored.group, c.stored.version, rest).await?;
        Ok::<_, ApiError>((resp, warnings))
    };
    let (resp, warnings) = served
        .await
        .unwrap_or_else(|e| (e.into_response(), Vec::new()));
    c.response(req, resp, &warnings).await
}

async fn served_resource(
    app: &Arc<App>,
    req: &Request,
    group: &str,
    version: &str,
    rest: &[&str],
) -> ApiResult<Response> {
    if !resources::serves(group, version) {
        return Err(not_found_path(req));
    }
    if group.is_empty()
        && let Some(connect) = crate::connect::Connect::parse(rest)
    {
        return crate::connect::serve(app, req.take_for_connect(), connect).await;
    }
    let lookup =
        |plural: &str| resources::find(group, version, plural).ok_or_else(|| not_found_path(req));
    // /namespaces/{ns}/{resource}[/{name}[/{sub}]] vs cluster-scoped /{resource}[/{name}[/{sub}]].
    let target = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty() || lookup(plural).is_ok_and(|d| d.namespaced) =>
        {
            let is_ns_sub =
                group.is_empty() && tail.is_empty() && matches!(*plural, "status" | "finalize");
            if is_ns_sub {
                Target {
                    def: lookup("namespaces")?,
                    namespace: None,
                    name: Some(ns),
                    sub: Some(plural),
                }
            } else {
                let def = lookup(plural)?;
                if !def.namespaced {
                    return Err(not_found_path(req));
                }
                match tail {
                    [] => Target {
                        def,
                        namespace: Some(ns),
                        name: None,
                        sub: None,
                    },
                    [name] => Target {
                        def,
                        namespace: Some(ns),
                        name: Some(name),
                        sub: None,
                    },
                    [name, sub] => Target {
                        def,
                        namespace: Some(ns),
                        name: Some(name),
                        sub: Some(sub),
                    },
                    _ => return Err(not_found_path(req)),
                }
            }
        }
        [plural] => Target {
            def: lookup(plural)?,
            namespace: None,
            name: None,
            sub: None,
        },
        [plural, name] => Target {
            def: lookup(plural)?,
            namespace: None,
            name: Some(name),
            sub: None,
        },
        [plural, name, sub] => Target {
            def: lookup(plural)?,
            namespace: None,
            name: Some(name),
            sub: Some(sub),
        },
        _ => return Err(not_found_path(req)),
    };
    if target.def.namespaced && target.namespace.is_none() && target.name.is_some() {
        return Err(not_found_path(req));
    }
    if let Some(sub) = target.sub
        && !target.def.subresources.contains(&sub)
    {
        return Err(not_found_path(req));
    }
    if target.def.kind == "ComponentStatus" {
        return subresources::component_statuses(app, req, target.name).await;
    }
    if target.def.create_only {
        if req.method != Method::POST || target.name.is_some() {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource".to_string(),
            ));
        }
        return match target.def.group {
            "authentication.k8s.io" => crate::authn::review::create(app, req, target.def).await,
            "authorization.k8s.io" => {
                crate::authz::review::create(app, req, target.def, target.namespace).await
            }
            _ => Err(not_found_path(req)),
        };
    }
    let render = Render::negotiate(req.accept(), req.query.get("includeObject"));
    let def = target.def;
    let reg = &app.registry;
    match (&req.method, target.name, target.sub) {
        (&Method::GET | &Method::HEAD, None, None) => {
            let q = req.query.list_query()?;
            if req.query.flag("watch") {
                return watch(app, def, target.namespace, &q, render).await;
            }
            if matches!(render, Render::Object) && !req.wants_yaml() {
                return Ok(respond_stream(
                    reg.list_json(def, target.namespace, &q).await?,
                ));
            }
            let listed = reg.list(def, target.namespace, &q).await?;
            if let Render::Object = render {
                let body = ListBody {
                    def,
                    listed: &listed,
                };
                return Ok(respond(req, StatusCode::OK, &body, &[]));
            }
            let mut meta = json!({ "resourceVersion": listed.resource_version.to_string() });
            if let Some(c) = &listed.continue_token {
                meta["continue"] = json!(c);
            }
            let body = render.list(def, listed.items, meta);
            Ok(respond(req, StatusCode::OK, &body, &[]))
        }
        (&Method::GET | &Method::HEAD, Some(name), None) => {
            let obj = reg
                .get(ObjectRef {
                    def,
                    namespace: target.namespace,
                    name,
                })
                .await?;
            Ok(respond(
                req,
                StatusCode::OK,
                &render.event_object(def, obj),
                &[],
            ))
        }
        (&Method::GET, Some(name), Some("status" | "ephemeralcontainers")) => {
            let obj = reg
                .get(ObjectRef {
                    def,
                    namespace: target.namespace,
                    name,
                })
                .await?;
            Ok(respond(req, StatusCode::OK, &obj, &[]))
        }
        (&Method::POST, None, None) => {
            if def.kind == "Binding" {
                return subresources::bind(app, req, target.namespace.unwrap_or(""), None).await;
            }
            let opts = req.write_options()?;
            let duplicates = duplicate_field_warnings(req, def, opts)?;
            let body = req.json_body()?;
            crate::authz::escalation::check_write(
                &app.authz,
                &req.user,
                def,
                target.namespace,
                &body,
            )
            .await?;
            let mut w = reg.create(def, target.namespace, body, opts).await?;
            w.warnings.extend(duplicates);
            Ok(written(req, w, render, def))
        }
        (&Method::POST, Some(name), Some("token")) => {
            crate::authn::service_account::token_request(
                app,
                req,
                target.namespace.unwrap_or(""),
                name,
            )
            .await
        }
        (&Method::POST, Some(name), Some("binding")) => {
            subresources::bind(app, req, target.namespace.unwrap_or(""), Some(name)).await
        }
        (&Method::POST, Some(name), Some("eviction")) => {
            subresources::evict(
                app,
                req,
                ObjectRef {
                    def,
                    namespace: target.namespace,
                    name,
                },
            )
            .await
        }
        (_, Some(name), Some("scale")) => {
            subresources::scale(
                app,
                req,
                ObjectRef {
                    def,
                    namespace: target.namespace,
                    name,
                },
            )
            .await
        }
        (
            &Method::PUT,
            Some(name),
            sub @ (None | Some("status" | "finalize" | "ephemeralcontainers")),
        ) => {
            let opts = req.write_options()?;
            let r = ObjectRef {
                def,
                namespace: target.namespace,
                name,
            };
            let duplicates = duplicate_field_warnings(req, def, opts)?;
            let (body, mut warnings) = reg.admit_body(def, req.json_body()?, opts)?;
            crate::authz::escalation::check_write(
                &app.authz,
                &req.user,
                def,
                target.namespace,
                &body,
            )
            .await?;
            warnings.extend(duplicates);
            let mut w = reg
                .update_with(r, sub, opts, |current| {
                    crate::registry::uid_precondition(r, current, &body)?;
                    Ok((body.clone(), Vec::new()))
                })
                .await?;
            w.warnings.extend(warnings);
            Ok(written(req, w, render, def))
        }
        (&Method::PATCH, Some(name), sub @ (None | Some("status" | "ephemeralcontainers"))) => {
            let opts = req.write_options()?;
            let r = ObjectRef {
                def,
                namespace: target.namespace,
                name,
            };
            let (patch_type, patch) = req.patch()?;
            // RBAC objects: check what the patch would grant before writing, and write only
            // that (a concurrent change that alters the grant is a conflict, not a bypass).
            let checked_grant = if def.group == "rbac.authorization.k8s.io" {
                let current = reg.get(r).await?;
                let patched = apply_patch(def, patch_type, &current, &patch)?;
                crate::authz::escalation::check_write(
                    &app.authz,
                    &req.user,
                    def,
                    target.namespace,
                    &patched,
                )
                .await?;
                crate::authz::escalation::Grant::of(def, &patched)
            } else {
                None
            };
            let w = reg
                .update_with(r, sub, opts, |current| {
                    let patched = apply_patch(def, patch_type, current, &patch)?;
                    if checked_grant.is_some()
                        && crate::authz::escalation::Grant::of(def, &patched) != checked_grant
                    {
                        return Err(r.with_target(|t| {
                            ApiError::conflict(
                                t,
                                "the object changed while its permissions were checked; retry",
                            )
                        }));
                    }
                    let mut patched_checked = patched;
                    // A patch cannot pin another resourceVersion than the one it was applied to
                    // unless the patch names one itself.
                    if patch.pointer("/metadata/resourceVersion").is_none()
                        && let Some(m) = patched_checked
                            .get_mut("metadata")
                            .and_then(Value::as_object_mut)
                    {
                        m.remove("resourceVersion");
                    }
                    reg.admit_body(def, patched_checked, opts)
                })
                .await?;
            Ok(written(req, w, render, def))
        }
        (&Method::DELETE, Some(name), None) => {
            let opts = req.write_options()?;
            let options = delete_options(req)?;
            let obj = reg
                .delete(
                    ObjectRef {
                        def,
                        namespace: target.namespace,
                        name,
                    },
                    &options,
                    opts,
                )
                .await?;
            let gone_now = obj.pointer("/metadata/deletionTimestamp").is_none();
            if gone_now && !def.strategy.returns_deleted_object {
                // Upstream's finalizeDelete: a success Status naming what was deleted.
                let uid = obj
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let status = kox_api::status::deleted(
                    &kox_api::status::GroupResource::new(def.group, def.plural),
                    name,
                    uid,
                );
                return Ok(respond(req, StatusCode::OK, &status.to_value(), &[]));
            }
            Ok(respond(req, StatusCode::OK, &obj, &[]))
        }
        (&Method::DELETE, None, None) => {
            let opts = req.write_options()?;
            let options = delete_options(req)?;
            let q = req.query.list_query()?;
            let listed = reg.list(def, target.namespace, &q).await?;
            let mut deleted = Vec::new();
            for obj in listed.into_owned() {
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let ns = obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match reg
                    .delete(
                        ObjectRef {
                            def,
                            namespace: ns.as_deref(),
                            name: &name,
                        },
                        &options,
                        opts,
                    )
                    .await
                {
                    Ok(o) => deleted.push(o),
                    Err(e) if e.code() == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let body = json!({ "kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": {}, "items": deleted });
            Ok(respond(req, StatusCode::OK, &body, &[]))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource".to_string(),
        )),
    }
}

/// Duplicate keys in a JSON body, as upstream's strict decoding treats them: refused under
/// `fieldValidation=Strict`, returned as warnings under `Warn`.
fn duplicate_field_warnings(
    req: &Request,
    def: &ResourceDef,
    opts: WriteOptions<'_>,
) -> ApiResult<Vec<String>> {
    if opts.field_validation == FieldValidation::Ignore
        || !req.content_type().starts_with("application/json")
    {
        return Ok(Vec::new());
    }
    let found: Vec<String> = crate::duplicate_fields::duplicate_fields(&req.body)
        .into_iter()
        .map(|f| format!("duplicate field \"{f}\""))
        .collect();
    if found.is_empty() || opts.field_validation == FieldValidation::Warn {
        return Ok(found);
    }
    Err(ApiError::bad_request(format!(
        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
        def.kind,
        def.version,
        def.kind,
        found.join(", ")
    )))
}

/// DeleteOptions from the body (if any) and query parameters.
fn delete_options(req: &Request) -> ApiResult<Value> {
    let mut options = if req.body.is_empty() {
        json!({})
    } else {
        req.json_body()?
    };
    if !options.is_object() {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type v1.DeleteOptions",
            kox_proto::go_json::json_type(&options)
        )));
    }
    if let Some(g) = req.query.get("gracePeriodSeconds") {
        let g: i64 = g
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {g:?}")))?;
        options["gracePeriodSeconds"] = json!(g);
    }
    if let Some(p) = req.query.get("propagationPolicy") {
        options["propagationPolicy"] = json!(p);
    }
    if let Some(p) = options.get("propagationPolicy").and_then(Value::as_str)
        && !matches!(p, "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            ),
        ));
    }
    Ok(options)
}

async fn watch(
    app: &Arc<App>,
    def: &'static ResourceDef,
    namespace: Option<&str>,
    q: &ListQuery,
    render: Render,
) -> ApiResult<Response> {
    let stream = app.registry.watch(def, namespace, q, render).await?;
    let guard = app.metrics.watch_opened();
    let shutdown = app.shutdown.clone();
    let stream = stream
        .take_until(async move { shutdown.cancelled().await })
        .map(move |b| {
            let _ = &guard;
            Ok::<_, std::convert::Infallible>(b)
        });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
