//! What a request asks to do, in authorization terms (upstream's `RequestInfoFactory`): a verb
//! on a resource (group, resource, subresource, namespace, name) or on a non-resource URL.

use http::Method;

use crate::handlers::Query;

/// The attributes an authorizer decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether the request addresses an API resource (else a non-resource URL).
    pub is_resource_request: bool,
    /// The URL path.
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; for
    /// non-resource requests the lower-cased HTTP method.
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The `fieldSelector` of a list or watch (the Node authorizer scopes a node's pod lists by
    /// `spec.nodeName`).
    pub field_selector: String,
}

/// Subresources of a namespace that are not resources in the namespace.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

impl RequestInfo {
    /// Parses a request the way upstream's request-info filter does.
    pub fn from_request(method: &Method, path: &str, query: &Query) -> Self {
        let verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        };
        let non_resource = || RequestInfo {
            is_resource_request: false,
            path: path.to_string(),
            verb: method.as_str().to_ascii_lowercase(),
            ..Default::default()
        };
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let (group, version, mut rest) = match parts.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
            ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
            _ => return non_resource(),
        };
        if verb.is_empty() {
            return non_resource();
        }
        let mut info = RequestInfo {
            is_resource_request: true,
            path: path.to_string(),
            verb: verb.to_string(),
            api_group: group.to_string(),
            api_version: version.to_string(),
            ..Default::default()
        };
        // The legacy `/watch/` prefix.
        if rest.first() == Some(&"watch") {
            info.verb = "watch".to_string();
            rest = &rest[1..];
        }
        if rest.first() == Some(&"namespaces")
            && let Some(ns) = rest.get(1)
        {
            info.namespace = ns.to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        if let Some(r) = rest.first() {
            info.resource = r.to_string();
        }
        if let Some(n) = rest.get(1) {
            info.name = n.to_string();
        }
        if let Some(s) = rest.get(2) {
            info.subresource = s.to_string();
        }
        if info.name.is_empty() && info.verb == "get" {
            info.field_selector = query.get("fieldSelector").unwrap_or("").to_string();
            info.verb = if matches!(query.get("watch"), Some("true" | "1")) {
                "watch".to_string()
            } else {
                "list".to_string()
            };
            // A list narrowed to one name by `fieldSelector=metadata.name=x` is about that name
            // (what `kubectl get pod x -w` sends), so resourceNames rules apply to it.
            if let Some(name) = query.get("fieldSelector").and_then(exact_name_selector) {
                info.name = name.to_string();
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        info
    }
}

/// The name a field selector pins with `metadata.name=x` (or `==`), when that is all it says.
fn exact_name_selector(selector: &str) -> Option<&str> {
    let selector = selector.trim();
    if selector.contains(',') {
        return None;
    }
    let value = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    (!value.is_empty() && !value.contains('/')).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: &str) -> RequestInfo {
        RequestInfo::from_request(&method, path, &Query::parse(Some(query)))
    }

    #[test]
    fn resource_requests_parse_like_upstream() {
        let i = info(Method::GET, "/api/v1/namespaces/dev/pods", "");
        assert_eq!(
            (i.verb.as_str(), i.namespace.as_str(), i.resource.as_str()),
            ("list", "dev", "pods")
        );
        let i = info(Method::GET, "/api/v1/namespaces/dev/pods", "watch=true");
        assert_eq!(i.verb, "watch");
        let i = info(
            Method::GET,
            "/api/v1/namespaces/dev/pods",
            "fieldSelector=metadata.name%3Dweb&watch=1",
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "web"));
        let i = info(
            Method::PUT,
            "/apis/apps/v1/namespaces/dev/deployments/web/scale",
            "",
        );
        assert_eq!(
            (
                i.verb.as_str(),
                i.api_group.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str()
            ),
            ("update", "apps", "deployments", "web", "scale")
        );
        let i = info(Method::DELETE, "/api/v1/namespaces/dev/pods", "");
        assert_eq!(i.verb, "deletecollection");
        let i = info(Method::GET, "/api/v1/namespaces/dev", "");
        assert_eq!(
            (
                i.verb.as_str(),
                i.namespace.as_str(),
                i.resource.as_str(),
                i.name.as_str()
            ),
            ("get", "dev", "namespaces", "dev")
        );
        let i = info(Method::PUT, "/api/v1/namespaces/dev/finalize", "");
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.subresource.as_str()),
            ("namespaces", "dev", "finalize")
        );
        let i = info(Method::GET, "/api/v1/nodes", "");
        assert_eq!((i.verb.as_str(), i.namespace.as_str()), ("list", ""));
    }

    #[test]
    fn discovery_and_health_are_non_resource_requests() {
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/healthz",
            "/version",
        ] {
            let i = info(Method::GET, p, "");
            assert!(!i.is_resource_request, "{p}");
            assert_eq!(i.verb, "get");
        }
        assert_eq!(info(Method::POST, "/logs", "").verb, "post");
    }
}
