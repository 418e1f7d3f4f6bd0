//! The Kubernetes `Status` object every API error is returned as, with builders that
//! reproduce upstream's wording, reasons and details (`k8s.io/apimachinery/pkg/api/errors`).
//!
//! kubectl prints `Error from server (<reason>): <message>`, and clients branch on
//! `reason` and `code`, so each builder matches its upstream twin exactly. The struct
//! serializes with upstream's field order and omissions:
//! `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":…,
//! "reason":…,"details":{…},"code":N}`. Note that a cause's type travels as `reason`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::field::{ErrorList, go_quote};

/// `Status.status` of a failed request.
pub const STATUS_FAILURE: &str = "Failure";
/// `Status.status` of a successful request.
pub const STATUS_SUCCESS: &str = "Success";
/// The detail upstream puts in a 409 when a write carried a stale `resourceVersion`.
pub const OPTIMISTIC_LOCK_MESSAGE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";
/// The message of an expired `continue` token when no fresh token can be offered.
pub const CONTINUE_EXPIRED_MESSAGE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";
/// The message of an expired `continue` token that comes with an inconsistent-list token.
pub const CONTINUE_EXPIRED_WITH_TOKEN_MESSAGE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// Upstream's `StatusReason` values (`Status.reason`).
pub mod reason {
    /// 401.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// 403.
    pub const FORBIDDEN: &str = "Forbidden";
    /// 404.
    pub const NOT_FOUND: &str = "NotFound";
    /// 409 on create.
    pub const ALREADY_EXISTS: &str = "AlreadyExists";
    /// 409 on a stale update.
    pub const CONFLICT: &str = "Conflict";
    /// 410 (deprecated in favour of `Expired`).
    pub const GONE: &str = "Gone";
    /// 422.
    pub const INVALID: &str = "Invalid";
    /// 500 with retry hint.
    pub const SERVER_TIMEOUT: &str = "ServerTimeout";
    /// 504.
    pub const TIMEOUT: &str = "Timeout";
    /// 429.
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    /// 400.
    pub const BAD_REQUEST: &str = "BadRequest";
    /// 405.
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// 406.
    pub const NOT_ACCEPTABLE: &str = "NotAcceptable";
    /// 413.
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    /// 415.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
    /// 500.
    pub const INTERNAL_ERROR: &str = "InternalError";
    /// 410 for a too-old resourceVersion or continue token.
    pub const EXPIRED: &str = "Expired";
    /// 503.
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
}

/// A resource and its API group (`deployments.apps`); the core group is `""`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupResource {
    /// The API group (`""` for core).
    pub group: String,
    /// The plural resource name (`pods`).
    pub resource: String,
}

impl GroupResource {
    /// A group-qualified resource.
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }
}

impl fmt::Display for GroupResource {
    /// `resource` for the core group, otherwise `resource.group`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A kind and its API group (`Deployment.apps`); the core group is `""`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupKind {
    /// The API group (`""` for core).
    pub group: String,
    /// The kind (`Pod`).
    pub kind: String,
}

impl GroupKind {
    /// A group-qualified kind.
    pub fn new(group: &str, kind: &str) -> Self {
        GroupKind {
            group: group.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

impl fmt::Display for GroupKind {
    /// `Kind` for the core group, otherwise `Kind.group`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// `Status.metadata`: a `ListMeta`, usually empty (`{}`); an expired continue token may
/// carry a fresh one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusMeta {
    /// The resource version, rarely set on a Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// A continue token the client may use despite an expired one.
    #[serde(rename = "continue", default, skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

/// One cause of a failure; for `Invalid`, one per field error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// The cause type (`FieldValueRequired`, …); serialized as `reason`, as upstream does.
    #[serde(rename = "reason", default, skip_serializing_if = "String::is_empty")]
    pub cause_type: String,
    /// Human-readable text of the cause.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field the cause is about (`spec.containers[0].name`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `Status.details`: what the failure is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The object's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The API group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The kind — or, as upstream does for most errors, the plural resource name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The object's UID (successful deletes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The individual causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// Seconds the client should wait before retrying (also sent as `Retry-After`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_after_seconds: i32,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

fn status_kind() -> String {
    "Status".to_owned()
}

fn status_api_version() -> String {
    "v1".to_owned()
}

/// The `Status` object (`kind: Status, apiVersion: v1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always `Status`.
    #[serde(default = "status_kind")]
    pub kind: String,
    /// Always `v1`.
    #[serde(default = "status_api_version")]
    pub api_version: String,
    /// List metadata, normally empty.
    #[serde(default)]
    pub metadata: StatusMeta,
    /// `Success` or `Failure`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason ([`reason`]); empty for unclassified errors.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Extended data for the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The HTTP status code; 0 (omitted) on success statuses.
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub code: u16,
}

impl Status {
    fn failure(code: u16, reason: &str, message: String, details: Option<StatusDetails>) -> Self {
        Status {
            kind: status_kind(),
            api_version: status_api_version(),
            metadata: StatusMeta::default(),
            status: STATUS_FAILURE.to_owned(),
            message,
            reason: reason.to_owned(),
            details,
            code,
        }
    }

    /// The HTTP status code to answer with (200 for a success status without a code).
    pub fn http_code(&self) -> u16 {
        match self.code {
            0 => 200,
            c => c,
        }
    }

    /// The `Retry-After` seconds to send as a header, if any.
    pub fn retry_after_seconds(&self) -> Option<i32> {
        self.details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
    }

    /// The same status about `to`, for an error `from`'s storage raised about a resource
    /// another API group serves from it (upstream names the resource the request named):
    /// `events "x" not found` becomes `events.events.k8s.io "x" not found`. Statuses about
    /// other resources, or about kinds (`Invalid`), are left as they are.
    pub fn retarget(&mut self, from: &GroupResource, to: &GroupResource) {
        let Some(d) = self.details.as_mut() else {
            return;
        };
        if d.group != from.group || d.kind != from.resource {
            return;
        }
        d.group = to.group.clone();
        d.kind = to.resource.clone();
        let name = go_quote(&d.name);
        self.message = self
            .message
            .replacen(&format!("{from} {name}"), &format!("{to} {name}"), 1);
    }

    /// The object as JSON.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The same status as `k8s-openapi`'s type (for clients built on it).
    pub fn to_openapi(&self) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        meta::Status {
            code: (self.code != 0).then_some(i32::from(self.code)),
            details: self.details.as_ref().map(|d| meta::StatusDetails {
                causes: (!d.causes.is_empty()).then(|| {
                    d.causes
                        .iter()
                        .map(|c| meta::StatusCause {
                            field: some(&c.field),
                            message: some(&c.message),
                            reason: some(&c.cause_type),
                        })
                        .collect()
                }),
                group: some(&d.group),
                kind: some(&d.kind),
                name: some(&d.name),
                retry_after_seconds: (d.retry_after_seconds != 0).then_some(d.retry_after_seconds),
                uid: some(&d.uid),
            }),
            message: some(&self.message),
            metadata: meta::ListMeta {
                continue_: self.metadata.continue_token.clone(),
                resource_version: self.metadata.resource_version.clone(),
                ..Default::default()
            },
            reason: some(&self.reason),
            status: some(&self.status),
        }
    }
}

impl fmt::Display for Status {
    /// The message, as upstream's `StatusError.Error()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Status {}

fn resource_details(gr: &GroupResource, name: &str) -> Option<StatusDetails> {
    Some(StatusDetails {
        name: name.to_owned(),
        group: gr.group.clone(),
        kind: gr.resource.clone(),
        ..Default::default()
    })
}

/// 200 `Success` with no details.
pub fn success() -> Status {
    Status {
        status: STATUS_SUCCESS.to_owned(),
        ..Status::failure(0, "", String::new(), None)
    }
}

/// 200 `Success` as a delete returns it when the object is gone:
/// `details: {name, group, kind: <resource>, uid}` (upstream puts the resource in `kind`).
pub fn deleted(gr: &GroupResource, name: &str, uid: &str) -> Status {
    Status {
        details: Some(StatusDetails {
            name: name.to_owned(),
            group: gr.group.clone(),
            kind: gr.resource.clone(),
            uid: uid.to_owned(),
            ..Default::default()
        }),
        ..success()
    }
}

/// 404 `NotFound`: `pods "x" not found`, `deployments.apps "x" not found`.
pub fn not_found(gr: &GroupResource, name: &str) -> Status {
    Status::failure(
        404,
        reason::NOT_FOUND,
        format!("{gr} {} not found", go_quote(name)),
        resource_details(gr, name),
    )
}

/// 409 `AlreadyExists`: `pods "x" already exists`.
pub fn already_exists(gr: &GroupResource, name: &str) -> Status {
    Status::failure(
        409,
        reason::ALREADY_EXISTS,
        format!("{gr} {} already exists", go_quote(name)),
        resource_details(gr, name),
    )
}

/// 409 `AlreadyExists` when every `generateName` attempt collided.
pub fn generate_name_conflict(gr: &GroupResource, name: &str, retry_after_seconds: i32) -> Status {
    let mut s = Status::failure(
        409,
        reason::ALREADY_EXISTS,
        format!(
            "{gr} {} already exists, the server was not able to generate a unique name for the object",
            go_quote(name)
        ),
        resource_details(gr, name),
    );
    if let Some(d) = s.details.as_mut() {
        d.retry_after_seconds = retry_after_seconds;
    }
    s
}

/// 409 `Conflict`: `Operation cannot be fulfilled on pods "x": <why>`.
pub fn conflict(gr: &GroupResource, name: &str, why: &str) -> Status {
    Status::failure(
        409,
        reason::CONFLICT,
        format!(
            "Operation cannot be fulfilled on {gr} {}: {why}",
            go_quote(name)
        ),
        resource_details(gr, name),
    )
}

/// 409 `Conflict` for a stale `resourceVersion` ([`OPTIMISTIC_LOCK_MESSAGE`]).
pub fn conflict_modified(gr: &GroupResource, name: &str) -> Status {
    conflict(gr, name, OPTIMISTIC_LOCK_MESSAGE)
}

/// 422 `Invalid`: `Pod "x" is invalid: <aggregated errors>`, one cause per field error.
pub fn invalid(gk: &GroupKind, name: &str, errs: &ErrorList) -> Status {
    let causes = errs
        .iter()
        .map(|e| StatusCause {
            cause_type: e.kind.cause_type().to_owned(),
            message: e.body(),
            field: e.field.clone(),
        })
        .collect();
    let message = match errs.aggregate() {
        None => format!("{gk} {} is invalid", go_quote(name)),
        Some(agg) => format!("{gk} {} is invalid: {agg}", go_quote(name)),
    };
    Status::failure(
        422,
        reason::INVALID,
        message,
        Some(StatusDetails {
            name: name.to_owned(),
            group: gk.group.clone(),
            kind: gk.kind.clone(),
            causes,
            ..Default::default()
        }),
    )
}

/// 400 `BadRequest` with the given message.
pub fn bad_request(message: &str) -> Status {
    Status::failure(400, reason::BAD_REQUEST, message.to_owned(), None)
}

/// 401 `Unauthorized`; an empty message becomes `not authorized`. (The authentication
/// filter itself answers with the message `Unauthorized`.)
pub fn unauthorized(message: &str) -> Status {
    let message = if message.is_empty() {
        "not authorized"
    } else {
        message
    };
    Status::failure(401, reason::UNAUTHORIZED, message.to_owned(), None)
}

/// 403 `Forbidden` with upstream's message shapes: `forbidden: <why>` without a resource,
/// `pods is forbidden: <why>` without a name, `pods "x" is forbidden: <why>` with one.
pub fn forbidden(gr: &GroupResource, name: &str, why: &str) -> Status {
    let message = if gr.group.is_empty() && gr.resource.is_empty() {
        format!("forbidden: {why}")
    } else if name.is_empty() {
        format!("{gr} is forbidden: {why}")
    } else {
        format!("{gr} {} is forbidden: {why}", go_quote(name))
    };
    Status::failure(403, reason::FORBIDDEN, message, resource_details(gr, name))
}

/// What an authorizer refused: the request's attributes, for [`forbidden_request`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    /// The user's name (`jane`, `system:serviceaccount:ns:sa`).
    pub user: String,
    /// The verb (`get`, `list`, `watch`, `create`, …).
    pub verb: String,
    /// The API group (`""` for core).
    pub group: String,
    /// The plural resource; empty for a non-resource request.
    pub resource: String,
    /// The subresource (`status`, `scale`, `log`), if any.
    pub subresource: String,
    /// The namespace; empty for cluster scope.
    pub namespace: String,
    /// The object's name, if the request names one.
    pub name: String,
    /// For a non-resource request, the URL path (`/healthz`).
    pub path: String,
}

/// 403 `Forbidden` as the authorization filter writes it:
/// `pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "dev"`,
/// `… at the cluster scope`, or `forbidden: User "jane" cannot get path "/metrics"`.
/// A non-empty `reason` from the authorizer is appended after `: `.
pub fn forbidden_request(attrs: &RequestAttributes, authorizer_reason: &str) -> Status {
    let user = go_quote(&attrs.user);
    let mut why = if attrs.resource.is_empty() {
        format!(
            "User {user} cannot {} path {}",
            attrs.verb,
            go_quote(&attrs.path)
        )
    } else {
        let mut resource = attrs.resource.clone();
        if !attrs.subresource.is_empty() {
            resource = format!("{resource}/{}", attrs.subresource);
        }
        let scope = if attrs.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {}", go_quote(&attrs.namespace))
        };
        format!(
            "User {user} cannot {} resource {} in API group {} {scope}",
            attrs.verb,
            go_quote(&resource),
            go_quote(&attrs.group)
        )
    };
    if !authorizer_reason.is_empty() {
        why = format!("{why}: {authorizer_reason}");
    }
    let gr = GroupResource::new(&attrs.group, &attrs.resource);
    forbidden(&gr, &attrs.name, &why)
}

/// 405 `MethodNotAllowed`: `<action> is not supported on resources of kind "pods"`.
pub fn method_not_supported(gr: &GroupResource, action: &str) -> Status {
    Status::failure(
        405,
        reason::METHOD_NOT_ALLOWED,
        format!(
            "{action} is not supported on resources of kind {}",
            go_quote(&gr.to_string())
        ),
        Some(StatusDetails {
            group: gr.group.clone(),
            kind: gr.resource.clone(),
            ..Default::default()
        }),
    )
}

/// 406 `NotAcceptable`: `only the following media types are accepted: a, b`.
pub fn not_acceptable(accepted: &[&str]) -> Status {
    Status::failure(
        406,
        reason::NOT_ACCEPTABLE,
        format!(
            "only the following media types are accepted: {}",
            accepted.join(", ")
        ),
        None,
    )
}

/// 415 `UnsupportedMediaType`:
/// `the body of the request was in an unknown format - accepted media types include: a, b`.
pub fn unsupported_media_type(accepted: &[&str]) -> Status {
    Status::failure(
        415,
        reason::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
        None,
    )
}

/// 410 `Gone` (upstream's deprecated form; prefer [`resource_expired`]).
pub fn gone(message: &str) -> Status {
    Status::failure(410, reason::GONE, message.to_owned(), None)
}

/// 410 `Expired` with the given message.
pub fn resource_expired(message: &str) -> Status {
    Status::failure(410, reason::EXPIRED, message.to_owned(), None)
}

/// 410 `Expired` for a watch or list from a compacted revision:
/// `too old resource version: <requested> (<oldest available>)`.
pub fn too_old_resource_version(requested: u64, oldest: u64) -> Status {
    resource_expired(&format!("too old resource version: {requested} ({oldest})"))
}

/// 410 `Expired` for a `continue` token whose snapshot was compacted. With a fresh
/// token (to continue inconsistently) it goes in `metadata.continue` and the message
/// says so.
pub fn continue_expired(fresh_token: Option<&str>) -> Status {
    match fresh_token {
        None => resource_expired(CONTINUE_EXPIRED_MESSAGE),
        Some(token) => {
            let mut s = resource_expired(CONTINUE_EXPIRED_WITH_TOKEN_MESSAGE);
            s.metadata.continue_token = Some(token.to_owned());
            s
        }
    }
}

/// 413 `RequestEntityTooLarge`: `Request entity too large: <message>`.
pub fn request_entity_too_large(message: &str) -> Status {
    Status::failure(
        413,
        reason::REQUEST_ENTITY_TOO_LARGE,
        format!("Request entity too large: {message}"),
        None,
    )
}

/// 429 `TooManyRequests` with `details.retryAfterSeconds` (send `Retry-After` too).
pub fn too_many_requests(message: &str, retry_after_seconds: i32) -> Status {
    Status::failure(
        429,
        reason::TOO_MANY_REQUESTS,
        message.to_owned(),
        Some(StatusDetails {
            retry_after_seconds,
            ..Default::default()
        }),
    )
}

/// 500 `InternalError`: `Internal error occurred: <error>`, the error also as a cause.
pub fn internal_error(error: &str) -> Status {
    Status::failure(
        500,
        reason::INTERNAL_ERROR,
        format!("Internal error occurred: {error}"),
        Some(StatusDetails {
            causes: vec![StatusCause {
                message: error.to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        }),
    )
}

/// 500 `ServerTimeout`: `The <op> operation against <resource> could not be completed at
/// this time, please try again.` (upstream puts the operation in `details.name`).
pub fn server_timeout(gr: &GroupResource, operation: &str, retry_after_seconds: i32) -> Status {
    Status::failure(
        500,
        reason::SERVER_TIMEOUT,
        format!(
            "The {operation} operation against {gr} could not be completed at this time, please try again."
        ),
        Some(StatusDetails {
            name: operation.to_owned(),
            group: gr.group.clone(),
            kind: gr.resource.clone(),
            retry_after_seconds,
            ..Default::default()
        }),
    )
}

/// 503 `ServiceUnavailable` with the given message.
pub fn service_unavailable(message: &str) -> Status {
    Status::failure(503, reason::SERVICE_UNAVAILABLE, message.to_owned(), None)
}

/// 504 `Timeout`: `Timeout: <message>`, with `details.retryAfterSeconds`.
pub fn timeout(message: &str, retry_after_seconds: i32) -> Status {
    Status::failure(
        504,
        reason::TIMEOUT,
        format!("Timeout: {message}"),
        Some(StatusDetails {
            retry_after_seconds,
            ..Default::default()
        }),
    )
}

/// 504 `Timeout` when a read asks for a revision the store has not reached:
/// `Timeout: Too large resource version: <requested>, current: <current>`, with a
/// `ResourceVersionTooLarge` cause.
pub fn too_large_resource_version(
    requested: u64,
    current: u64,
    retry_after_seconds: i32,
) -> Status {
    let mut s = timeout(
        &format!("Too large resource version: {requested}, current: {current}"),
        retry_after_seconds,
    );
    if let Some(d) = s.details.as_mut() {
        d.causes = vec![StatusCause {
            cause_type: "ResourceVersionTooLarge".to_owned(),
            message: "Too large resource version".to_owned(),
            field: String::new(),
        }];
    }
    s
}

/// An error upstream has no reason for (a plain Go error reaching the handler): the code
/// given (500 normally), an empty reason and the error text as message. kubectl prints
/// these as `Error from server: <message>`.
pub fn unknown(code: u16, message: &str) -> Status {
    Status::failure(code, "", message.to_owned(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::{FieldError, Path};
    use serde_json::json;

    /// Compares a built status with its expected JSON.
    fn check(status: Status, expect: serde_json::Value) {
        assert_eq!(status.to_value(), expect);
    }

    fn pods() -> GroupResource {
        GroupResource::new("", "pods")
    }

    #[test]
    fn not_found_and_already_exists() {
        check(
            not_found(&pods(), "x"),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"pods \"x\" not found","reason":"NotFound",
                   "details":{"name":"x","kind":"pods"},"code":404}),
        );
        check(
            not_found(&GroupResource::new("apps", "deployments"), "web"),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"deployments.apps \"web\" not found","reason":"NotFound",
                   "details":{"name":"web","group":"apps","kind":"deployments"},"code":404}),
        );
        let s = already_exists(&pods(), "x");
        assert_eq!(s.message, r#"pods "x" already exists"#);
        assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
    }

    #[test]
    fn a_status_is_retargeted_to_the_resource_the_request_named() {
        let (core, v1) = (
            GroupResource::new("", "events"),
            GroupResource::new("events.k8s.io", "events"),
        );
        let mut s = not_found(&core, "e");
        s.retarget(&core, &v1);
        assert_eq!(s, not_found(&v1, "e"));
        let mut s = conflict_modified(&core, "e");
        s.retarget(&core, &v1);
        assert_eq!(s, conflict_modified(&v1, "e"));
        let mut s = not_found(&pods(), "e");
        s.retarget(&core, &v1);
        assert_eq!(
            s,
            not_found(&pods(), "e"),
            "another resource's status stays"
        );
    }

    #[test]
    fn serializes_in_upstream_field_order() {
        let text = serde_json::to_string(&not_found(&pods(), "x")).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}"#
        );
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, not_found(&pods(), "x"));
    }

    #[test]
    fn conflict_message() {
        let s = conflict_modified(&pods(), "x");
        assert_eq!(
            s.message,
            r#"Operation cannot be fulfilled on pods "x": the object has been modified; please apply your changes to the latest version and try again"#
        );
        assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    }

    #[test]
    fn invalid_aggregates_like_upstream() {
        let c0 = Path::new("spec").child("containers").index(0);
        let one: ErrorList = vec![FieldError::required(&c0.child("name"), "")]
            .into_iter()
            .collect();
        check(
            invalid(&GroupKind::new("", "Pod"), "x", &one),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"Pod \"x\" is invalid: spec.containers[0].name: Required value",
                   "reason":"Invalid",
                   "details":{"name":"x","kind":"Pod","causes":[
                       {"reason":"FieldValueRequired","message":"Required value","field":"spec.containers[0].name"}]},
                   "code":422}),
        );
        let two: ErrorList = vec![
            FieldError::required(&c0.child("name"), ""),
            FieldError::invalid(&c0.child("image"), "", "must not be empty"),
        ]
        .into_iter()
        .collect();
        let s = invalid(&GroupKind::new("apps", "Deployment"), "web", &two);
        assert_eq!(
            s.message,
            r#"Deployment.apps "web" is invalid: [spec.containers[0].name: Required value, spec.containers[0].image: Invalid value: "": must not be empty]"#
        );
        assert_eq!(s.details.as_ref().unwrap().causes.len(), 2);
        assert_eq!(
            invalid(&GroupKind::new("", "Pod"), "x", &ErrorList::new()).message,
            r#"Pod "x" is invalid"#
        );
    }

    #[test]
    fn forbidden_messages() {
        let attrs = RequestAttributes {
            user: "jane".into(),
            verb: "list".into(),
            resource: "pods".into(),
            namespace: "dev".into(),
            ..Default::default()
        };
        check(
            forbidden_request(&attrs, ""),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"dev\"",
                   "reason":"Forbidden","details":{"kind":"pods"},"code":403}),
        );
        let named = RequestAttributes {
            verb: "update".into(),
            group: "apps".into(),
            resource: "deployments".into(),
            subresource: "scale".into(),
            name: "web".into(),
            namespace: String::new(),
            ..attrs.clone()
        };
        assert_eq!(
            forbidden_request(&named, "no RBAC policy matched").message,
            r#"deployments.apps "web" is forbidden: User "jane" cannot update resource "deployments/scale" in API group "apps" at the cluster scope: no RBAC policy matched"#
        );
        let path = RequestAttributes {
            user: "jane".into(),
            verb: "get".into(),
            path: "/metrics".into(),
            ..Default::default()
        };
        assert_eq!(
            forbidden_request(&path, "").message,
            r#"forbidden: User "jane" cannot get path "/metrics""#
        );
    }

    #[test]
    fn simple_failures() {
        let cases: Vec<(Status, u16, &str, &str)> = vec![
            (bad_request("bad"), 400, "BadRequest", "bad"),
            (unauthorized(""), 401, "Unauthorized", "not authorized"),
            (
                unauthorized("Unauthorized"),
                401,
                "Unauthorized",
                "Unauthorized",
            ),
            (
                method_not_supported(&GroupResource::new("apps", "deployments"), "watch"),
                405,
                "MethodNotAllowed",
                r#"watch is not supported on resources of kind "deployments.apps""#,
            ),
            (
                not_acceptable(&["application/json", "application/yaml"]),
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json, application/yaml",
            ),
            (
                unsupported_media_type(&["application/json"]),
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json",
            ),
            (
                too_old_resource_version(5, 10),
                410,
                "Expired",
                "too old resource version: 5 (10)",
            ),
            (gone("gone"), 410, "Gone", "gone"),
            (
                request_entity_too_large("limit is 3145728"),
                413,
                "RequestEntityTooLarge",
                "Request entity too large: limit is 3145728",
            ),
            (
                internal_error("boom"),
                500,
                "InternalError",
                "Internal error occurred: boom",
            ),
            (
                service_unavailable("down"),
                503,
                "ServiceUnavailable",
                "down",
            ),
            (timeout("slow", 2), 504, "Timeout", "Timeout: slow"),
            (
                server_timeout(&pods(), "list", 2),
                500,
                "ServerTimeout",
                "The list operation against pods could not be completed at this time, please try again.",
            ),
            (
                too_large_resource_version(20, 10, 1),
                504,
                "Timeout",
                "Timeout: Too large resource version: 20, current: 10",
            ),
            (unknown(500, "plain"), 500, "", "plain"),
        ];
        for (s, code, reason, message) in cases {
            assert_eq!(
                (s.code, s.reason.as_str(), s.message.as_str()),
                (code, reason, message)
            );
            assert_eq!(s.status, "Failure");
        }
    }

    #[test]
    fn retry_after_is_exposed() {
        let s = too_many_requests("slow down", 7);
        assert_eq!(s.code, 429);
        assert_eq!(s.retry_after_seconds(), Some(7));
        assert_eq!(s.to_value()["details"], json!({"retryAfterSeconds": 7}));
        assert_eq!(bad_request("x").retry_after_seconds(), None);
    }

    #[test]
    fn continue_token_expiry() {
        let plain = continue_expired(None);
        assert_eq!(plain.message, CONTINUE_EXPIRED_MESSAGE);
        assert_eq!(plain.to_value()["metadata"], json!({}));
        let with = continue_expired(Some("tok"));
        assert_eq!((with.code, with.reason.as_str()), (410, "Expired"));
        assert_eq!(with.to_value()["metadata"], json!({"continue": "tok"}));
        assert!(with.message.contains("inconsistent list"));
    }

    #[test]
    fn success_statuses() {
        check(
            deleted(&GroupResource::new("apps", "deployments"), "web", "u-1"),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",
                   "details":{"name":"web","group":"apps","kind":"deployments","uid":"u-1"}}),
        );
        assert_eq!(success().http_code(), 200);
        check(
            success(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}),
        );
    }

    #[test]
    fn converts_to_k8s_openapi() {
        let s = invalid(
            &GroupKind::new("", "Pod"),
            "x",
            &vec![FieldError::required(&Path::new("spec"), "")]
                .into_iter()
                .collect(),
        );
        let o = s.to_openapi();
        assert_eq!(o.code, Some(422));
        let causes = o.details.unwrap().causes.unwrap();
        assert_eq!(causes[0].reason.as_deref(), Some("FieldValueRequired"));
        assert_eq!(causes[0].field.as_deref(), Some("spec"));
    }
}
