//! API errors: every failure becomes a Kubernetes `Status` response in one place.
//!
//! The `Status` objects and their wording come from `kox_api::status`; this module adapts them to
//! the server (targets named by `ResourceDef`, store errors, HTTP responses).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use kox_api::status::{self, GroupKind, GroupResource, Status};
use serde_json::Value;

/// A failed request, rendered as a `Status` object with its HTTP code.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Status>);

/// Result of a handler step.
pub type ApiResult<T> = Result<T, ApiError>;

/// Identifies the object an error is about: resource (group-qualified) and name.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// e.g. `pods` or `deployments.apps` (kept for callers; derived from group and resource).
    pub qualified_resource: &'a str,
    pub group: &'a str,
    /// The plural resource name.
    pub resource: &'a str,
    pub name: &'a str,
}

impl Target<'_> {
    fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group, self.resource)
    }
}

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        Self(Box::new(s))
    }
}

impl ApiError {
    /// A failure with an explicit code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        let mut s = status::unknown(code, &message.into());
        s.reason = reason.to_string();
        s.into()
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.0.http_code()
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn not_found(t: Target<'_>) -> Self {
        status::not_found(&t.group_resource(), t.name).into()
    }

    pub fn already_exists(t: Target<'_>) -> Self {
        status::already_exists(&t.group_resource(), t.name).into()
    }

    pub fn conflict(t: Target<'_>, why: &str) -> Self {
        status::conflict(&t.group_resource(), t.name, why).into()
    }

    /// The standard optimistic-concurrency conflict.
    pub fn stale(t: Target<'_>) -> Self {
        status::conflict_modified(&t.group_resource(), t.name).into()
    }

    /// 422 Invalid with one cause per field error.
    pub fn invalid(
        kind: &str,
        group: &str,
        name: &str,
        errors: &[kox_api::field::FieldError],
    ) -> Self {
        let list = kox_api::field::ErrorList(errors.to_vec());
        status::invalid(&GroupKind::new(group, kind), name, &list).into()
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        status::bad_request(&message.into()).into()
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, status::reason::METHOD_NOT_ALLOWED, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        status::resource_expired(&message.into()).into()
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        status::request_entity_too_large(&message.into()).into()
    }

    pub fn too_many_requests(retry_after_seconds: u32) -> Self {
        status::too_many_requests(
            "Too many requests, please try again later.",
            retry_after_seconds as i32,
        )
        .into()
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        status::internal_error(&message.to_string()).into()
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        status::timeout(&message.into(), 0).into()
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        self.0.to_value()
    }
}

impl From<kox_store::Error> for ApiError {
    fn from(e: kox_store::Error) -> Self {
        match e {
            kox_store::Error::Compacted {
                requested,
                compacted,
            } => status::too_old_resource_version(requested.max(0) as u64, compacted.max(0) as u64)
                .into(),
            kox_store::Error::FutureRevision { requested, current } => Self::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            kox_store::Error::ValueTooLarge { .. } => {
                Self::too_large(format!("etcdserver: request is too large: {e}"))
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::handlers::json_body(&self.to_status());
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.0.retry_after_seconds().filter(|s| *s > 0) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
