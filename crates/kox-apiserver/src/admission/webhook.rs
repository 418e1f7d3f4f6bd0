//! Dynamic admission, shared by the mutating and validating webhook plugins: which webhooks a
//! request matches (rules, scope, namespace and object selectors), the AdmissionReview v1 sent
//! to them over HTTPS (`clientConfig.url`, or a service reference resolved to the service's
//! endpoints, else its ClusterIP), and what their answers mean (allowed, denied, a JSONPatch,
//! warnings), with `failurePolicy`, `timeoutSeconds`, `sideEffects` on dry runs and upstream's
//! error wording.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kox_api::label_selector::Selector;
use serde_json::{Value, json};

use super::{Attributes, Operation, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::list::ListQuery;
use crate::registry::{ObjectRef, Registry};
use crate::resources::ResourceDef;

/// The largest webhook response read.
const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

/// One webhook of a configuration, with the configuration's name.
pub struct Hook {
    pub configuration: String,
    pub spec: Value,
}

impl Hook {
    pub fn name(&self) -> &str {
        self.spec.get("name").and_then(Value::as_str).unwrap_or("")
    }

    fn failure_policy_ignore(&self) -> bool {
        self.spec.get("failurePolicy").and_then(Value::as_str) == Some("Ignore")
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(
            self.spec
                .get("timeoutSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(10)
                .clamp(1, 30),
        )
    }
}

/// The webhooks of every configuration of one kind (`mutatingwebhookconfigurations` or
/// `validatingwebhookconfigurations`), configurations in name order.
pub async fn hooks(reg: &Registry, plural: &str) -> ApiResult<Vec<Hook>> {
    let def = crate::resources::find("admissionregistration.k8s.io", "v1", plural).expect("served");
    let mut configs = reg
        .list(def, None, &ListQuery::default())
        .await?
        .into_owned();
    configs.sort_by(|a, b| {
        a.pointer("/metadata/name")
            .and_then(Value::as_str)
            .cmp(&b.pointer("/metadata/name").and_then(Value::as_str))
    });
    Ok(configs
        .into_iter()
        .flat_map(|c| {
            let configuration = c
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            c.get("webhooks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |spec| Hook {
                    configuration: configuration.clone(),
                    spec,
                })
        })
        .collect())
}

/// Whether webhooks apply to a request at all: never to the webhook configurations themselves
/// (so a broken webhook can always be removed).
pub fn applies(a: &Attributes<'_>) -> bool {
    a.def.group != "admissionregistration.k8s.io"
}

fn strings<'v>(v: &'v Value, key: &str) -> Vec<&'v str> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Whether one rule covers the request (operation, group, version, resource/subresource,
/// scope).
fn rule_matches(rule: &Value, a: &Attributes<'_>) -> bool {
    let ops = strings(rule, "operations");
    if !ops.iter().any(|o| *o == "*" || *o == a.operation.as_str()) {
        return false;
    }
    let groups = strings(rule, "apiGroups");
    if !groups.iter().any(|g| *g == "*" || *g == a.def.group) {
        return false;
    }
    let versions = strings(rule, "apiVersions");
    if !versions.iter().any(|v| *v == "*" || *v == a.def.version) {
        return false;
    }
    let sub = a.subresource.unwrap_or("");
    let resources = strings(rule, "resources");
    let resource_ok = resources.iter().any(|r| {
        let (res, rsub) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == a.def.plural) && (rsub == sub || (rsub == "*" && !sub.is_empty()))
            || *r == "*/*"
    });
    if !resource_ok {
        return false;
    }
    let namespaced = a.def.namespaced;
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !namespaced,
        "Namespaced" => namespaced,
        _ => true,
    }
}

fn selector(v: Option<&Value>) -> Selector {
    let ls = v.and_then(|s| serde_json::from_value(s.clone()).ok());
    Selector::from_label_selector(ls.as_ref()).unwrap_or_else(|_| Selector::nothing())
}

/// Whether a webhook is called for the request: a rule matches, the namespace selector
/// matches the namespace's labels (a Namespace's own labels for namespaces; cluster-scoped
/// objects always match), and the object selector matches the new or old object's labels.
pub async fn matches(reg: &Registry, hook: &Hook, a: &Attributes<'_>) -> ApiResult<bool> {
    let rules: Vec<&Value> = hook
        .spec
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if !rules.iter().any(|r| rule_matches(r, a)) {
        return Ok(false);
    }
    let objsel = selector(hook.spec.get("objectSelector"));
    let obj_labels = |o: Option<&Value>| o.map(super::labels_of);
    let candidates: Vec<BTreeMap<String, String>> = [
        obj_labels(a.object.as_ref()),
        obj_labels(a.old_object.as_ref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let empty = BTreeMap::new();
    if candidates.is_empty() {
        if !objsel.matches(&empty) {
            return Ok(false);
        }
    } else if !candidates.iter().any(|l| objsel.matches(l)) {
        return Ok(false);
    }
    let nssel = selector(hook.spec.get("namespaceSelector"));
    let is_namespace = a.def.group.is_empty() && a.def.kind == "Namespace";
    if is_namespace {
        let labels = a
            .object
            .as_ref()
            .or(a.old_object.as_ref())
            .map(super::labels_of)
            .unwrap_or_default();
        return Ok(nssel.matches(&labels));
    }
    let Some(ns) = a.namespace.filter(|n| !n.is_empty()) else {
        return Ok(true);
    };
    let nsdef = crate::resources::find("", "v1", "namespaces").expect("served");
    let labels = match reg
        .get(ObjectRef {
            def: nsdef,
            namespace: None,
            name: ns,
        })
        .await
    {
        Ok(n) => super::labels_of(&n),
        Err(e) if e.code() == 404 => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    Ok(nssel.matches(&labels))
}

/// A dry run reaches only webhooks that declare no side effects.
pub fn dry_run_refusal(hook: &Hook, a: &Attributes<'_>) -> Option<ApiError> {
    let side_effects = hook.spec.get("sideEffects").and_then(Value::as_str);
    (a.dry_run && !matches!(side_effects, Some("None" | "NoneOnDryRun"))).then(|| {
        ApiError::bad_request(format!(
            "admission webhook {:?} does not support dry run",
            hook.name()
        ))
    })
}

fn user_info(user: Option<&UserInfo>) -> Value {
    match user {
        Some(u) => {
            let mut v = json!({ "username": u.name, "groups": u.groups });
            if !u.uid.is_empty() {
                v["uid"] = json!(u.uid);
            }
            if !u.extra.is_empty() {
                v["extra"] = json!(u.extra);
            }
            v
        }
        // The server's own writes.
        None => {
            json!({ "username": "system:apiserver", "groups": ["system:authenticated", "system:masters"] })
        }
    }
}

/// The AdmissionReview v1 request for one call.
pub fn review(a: &Attributes<'_>, uid: &str) -> Value {
    let def: &ResourceDef = a.def;
    let kind = json!({ "group": def.group, "version": def.version, "kind": def.kind });
    let resource = json!({ "group": def.group, "version": def.version, "resource": def.plural });
    let options_kind = match a.operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
        Operation::Connect => "",
    };
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": a.object_name(),
        "operation": a.operation.as_str(),
        "userInfo": user_info(a.user),
        "object": a.object.clone().unwrap_or(Value::Null),
        "oldObject": a.old_object.clone().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
    });
    if let Some(ns) = a.namespace {
        request["namespace"] = json!(ns);
    }
    if let Some(sub) = a.subresource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    if !options_kind.is_empty() {
        request["options"] = json!({ "kind": options_kind, "apiVersion": "meta.k8s.io/v1" });
    }
    json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request })
}

/// Where a webhook is called: the URL (shown in errors), the address to connect to, and the
/// TLS server name.
struct Endpoint {
    url: String,
    connect: String,
    server_name: String,
    path_and_query: String,
}

/// Resolves `clientConfig` (URL first, else the service reference).
async fn endpoint(reg: &Registry, hook: &Hook) -> Result<Endpoint, String> {
    let cc = hook.spec.get("clientConfig").cloned().unwrap_or(json!({}));
    let timeout = format!("timeout={}s", hook.timeout().as_secs());
    if let Some(url) = cc.get("url").and_then(Value::as_str) {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let host = uri.host().ok_or("the URL has no host")?.to_string();
        let port = uri.port_u16().unwrap_or(443);
        let host_bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let path = uri.path().to_string();
        let query = match uri.query() {
            Some(q) => format!("{q}&{timeout}"),
            None => timeout.clone(),
        };
        let connect = if host_bare.contains(':') {
            format!("[{host_bare}]:{port}")
        } else {
            format!("{host_bare}:{port}")
        };
        let shown = match uri.query() {
            Some(_) => format!("{url}&{timeout}"),
            None => format!("{url}?{timeout}"),
        };
        return Ok(Endpoint {
            url: shown,
            connect,
            server_name: host_bare,
            path_and_query: format!("{path}?{query}"),
        });
    }
    let svc = cc.get("service").cloned().unwrap_or(json!({}));
    let ns = svc.get("namespace").and_then(Value::as_str).unwrap_or("");
    let name = svc.get("name").and_then(Value::as_str).unwrap_or("");
    let port = svc.get("port").and_then(Value::as_i64).unwrap_or(443);
    let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
    let host = format!("{name}.{ns}.svc");
    let url = format!("https://{host}:{port}{path}?{timeout}");
    let svc_def = crate::resources::find("", "v1", "services").expect("served");
    let service = reg
        .get(ObjectRef {
            def: svc_def,
            namespace: Some(ns),
            name,
        })
        .await
        .map_err(|_| format!("service \"{name}\" not found"))?;
    let svc_port = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(port))
        .cloned()
        .ok_or_else(|| format!("service \"{name}\" has no port {port}"))?;
    let port_name = svc_port.get("name").and_then(Value::as_str).unwrap_or("");
    let target = svc_port.get("targetPort").cloned().unwrap_or(json!(port));
    // The service's endpoints first (no service proxy is needed to reach them).
    let ep_def = crate::resources::find("", "v1", "endpoints").expect("served");
    if let Ok(ep) = reg
        .get(ObjectRef {
            def: ep_def,
            namespace: Some(ns),
            name,
        })
        .await
    {
        for subset in ep
            .get("subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ip = subset.pointer("/addresses/0/ip").and_then(Value::as_str);
            let ep_port = subset
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| {
                    p.get("name").and_then(Value::as_str).unwrap_or("") == port_name
                        || Some(p.get("port").and_then(Value::as_i64).unwrap_or(-1))
                            == target.as_i64()
                })
                .and_then(|p| p.get("port").and_then(Value::as_i64));
            if let (Some(ip), Some(ep_port)) = (ip, ep_port) {
                let connect = if ip.contains(':') {
                    format!("[{ip}]:{ep_port}")
                } else {
                    format!("{ip}:{ep_port}")
                };
                return Ok(Endpoint {
                    url,
                    connect,
                    server_name: host,
                    path_and_query: format!("{path}?{timeout}"),
                });
            }
        }
    }
    let cluster_ip = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .ok_or_else(|| format!("service \"{name}\" has no endpoints and no cluster IP"))?;
    Ok(Endpoint {
        url,
        connect: format!("{cluster_ip}:{port}"),
        server_name: host,
        path_and_query: format!("{path}?{timeout}"),
    })
}

/// The TLS client for a webhook: its `caBundle`, else the system's roots.
fn tls_config(hook: &Hook) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let bundle = hook
        .spec
        .pointer("/clientConfig/caBundle")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty());
    match bundle {
        Some(b64) => {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("caBundle is not base64: {e}"))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("caBundle: {e}"))?;
                roots.add(cert).map_err(|e| format!("caBundle: {e}"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// POSTs the review and returns the response's `response` object.
async fn post(ep: &Endpoint, hook: &Hook, body: Vec<u8>) -> Result<Value, String> {
    let config = tls_config(hook)?;
    let server_name = rustls::pki_types::ServerName::try_from(ep.server_name.clone())
        .map_err(|e| format!("invalid server name {:?}: {e}", ep.server_name))?;
    let tcp = tokio::net::TcpStream::connect(&ep.connect)
        .await
        .map_err(|e| format!("dial tcp {}: connect: {e}", ep.connect))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(&ep.path_and_query)
        .header(http::header::HOST, &ep.server_name)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the response: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "the server responded with the status code {} but did not return more information",
            status.as_u16()
        ));
    }
    let review: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("received invalid webhook response: {e}"))?;
    review
        .get("response")
        .cloned()
        .ok_or_else(|| "received invalid webhook response: response is missing".to_string())
}

/// What a webhook answered.
pub struct Answer {
    pub allowed: bool,
    pub status: Value,
    pub patch: Option<Value>,
    pub warnings: Vec<String>,
}

/// Calls one webhook. `Ok(None)` when the call failed and the webhook's failure policy is
/// Ignore; an error when it failed under Fail.
pub async fn call(reg: &Registry, hook: &Hook, a: &Attributes<'_>) -> ApiResult<Option<Answer>> {
    let uid = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&review(a, &uid)).map_err(ApiError::internal)?;
    let timeout = hook.timeout();
    let result = match endpoint(reg, hook).await {
        Err(e) => Err((String::new(), e)),
        Ok(ep) => match tokio::time::timeout(timeout, post(&ep, hook, body)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err((ep.url.clone(), e)),
            Err(_) => Err((ep.url.clone(), "context deadline exceeded".to_string())),
        },
    };
    let response = match result {
        Ok(r) => r,
        Err((url, e)) => {
            let detail = if url.is_empty() {
                e
            } else {
                format!("Post {url:?}: {e}")
            };
            let msg = format!(
                "failed calling webhook {:?}: failed to call webhook: {detail}",
                hook.name()
            );
            if hook.failure_policy_ignore() {
                tracing::warn!(webhook = hook.name(), error = %msg, "webhook failed; failurePolicy is Ignore");
                return Ok(None);
            }
            return Err(ApiError::internal(msg));
        }
    };
    if response.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
        let msg = format!(
            "failed calling webhook {:?}: expected response.uid={uid:?}, got {:?}",
            hook.name(),
            response.get("uid").and_then(Value::as_str).unwrap_or("")
        );
        if hook.failure_policy_ignore() {
            return Ok(None);
        }
        return Err(ApiError::internal(msg));
    }
    let patch = match response.get("patch").and_then(Value::as_str) {
        Some(p) if !p.is_empty() => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| {
                    ApiError::internal(format!(
                        "webhook {:?} sent a patch that is not base64: {e}",
                        hook.name()
                    ))
                })?;
            Some(serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::internal(format!(
                    "webhook {:?} sent a patch that is not JSON: {e}",
                    hook.name()
                ))
            })?)
        }
        _ => None,
    };
    Ok(Some(Answer {
        allowed: response.get("allowed").and_then(Value::as_bool) == Some(true),
        status: response.get("status").cloned().unwrap_or(Value::Null),
        patch,
        warnings: strings(&response, "warnings")
            .into_iter()
            .map(str::to_string)
            .collect(),
    }))
}

/// A webhook's refusal as upstream's `ToStatusErr`: at least 400, the webhook's reason, and
/// `admission webhook "x" denied the request: <message>`.
pub fn denied(hook: &Hook, status: &Value) -> ApiError {
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .filter(|c| *c >= 400 && *c < 600)
        .unwrap_or(400) as u16;
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let denied_by = format!("admission webhook {:?} denied the request", hook.name());
    let text = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    ApiError::new(code, reason, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods_attrs(op: Operation) -> Attributes<'static> {
        let mut a = Attributes::new(
            op,
            crate::resources::find("", "v1", "pods").unwrap(),
            Some("ns"),
        );
        a.object = Some(json!({"metadata": {"name": "p", "labels": {"app": "web"}}}));
        a
    }

    #[test]
    fn rules_match_operation_group_version_resource_and_scope() {
        let a = pods_attrs(Operation::Create);
        let rule = |v: Value| rule_matches(&v, &a);
        let base = json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]});
        assert!(rule(base.clone()));
        let mut r = base.clone();
        r["operations"] = json!(["UPDATE"]);
        assert!(!rule(r));
        let mut r = base.clone();
        r["resources"] = json!(["*"]);
        assert!(rule(r));
        let mut r = base.clone();
        r["resources"] = json!(["pods/status"]);
        assert!(!rule(r));
        let mut r = base.clone();
        r["scope"] = json!("Cluster");
        assert!(!rule(r));
        let mut status = pods_attrs(Operation::Update);
        status.subresource = Some("status");
        let r = json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["pods/*"]});
        assert!(rule_matches(&r, &status));
        let r = json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["pods"]});
        assert!(!rule_matches(&r, &status));
    }

    #[test]
    fn review_carries_the_request() {
        let a = pods_attrs(Operation::Create);
        let r = review(&a, "u1");
        assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(r["request"]["uid"], "u1");
        assert_eq!(r["request"]["operation"], "CREATE");
        assert_eq!(
            r["request"]["resource"],
            json!({"group": "", "version": "v1", "resource": "pods"})
        );
        assert_eq!(r["request"]["namespace"], "ns");
        assert_eq!(r["request"]["name"], "p");
        assert_eq!(r["request"]["options"]["kind"], "CreateOptions");
        assert_eq!(r["request"]["oldObject"], Value::Null);
    }

    #[tokio::test]
    async fn a_service_reference_resolves_to_the_services_endpoints_then_its_cluster_ip() {
        let (reg, _dir) = crate::admission::testing::registry().await;
        crate::admission::testing::put(
            &reg,
            "services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hooks", "namespace": "sys"},
                   "spec": {"clusterIP": "10.43.0.50", "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}),
        )
        .await;
        let hook = Hook {
            configuration: "c".into(),
            spec: json!({"name": "h.example.com", "timeoutSeconds": 5,
                         "clientConfig": {"service": {"namespace": "sys", "name": "hooks", "port": 443, "path": "/check"}}}),
        };
        let ep = endpoint(&reg, &hook).await.unwrap();
        assert_eq!(ep.connect, "10.43.0.50:443");
        assert_eq!(ep.server_name, "hooks.sys.svc");
        assert_eq!(ep.url, "https://hooks.sys.svc:443/check?timeout=5s");
        assert_eq!(ep.path_and_query, "/check?timeout=5s");
        crate::admission::testing::put(
            &reg,
            "endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "hooks", "namespace": "sys"},
                   "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"name": "https", "port": 8443}]}]}),
        )
        .await;
        let ep = endpoint(&reg, &hook).await.unwrap();
        assert_eq!(ep.connect, "10.1.2.3:8443");
        assert_eq!(ep.server_name, "hooks.sys.svc");
        let url = Hook {
            configuration: "c".into(),
            spec: json!({"name": "u.example.com", "clientConfig": {"url": "https://127.0.0.1:9443/x"}}),
        };
        let ep = endpoint(&reg, &url).await.unwrap();
        assert_eq!(ep.connect, "127.0.0.1:9443");
        assert_eq!(ep.url, "https://127.0.0.1:9443/x?timeout=10s");
    }

    #[test]
    fn denials_are_worded_as_upstream() {
        let hook = Hook {
            configuration: "c".into(),
            spec: json!({"name": "deny.example.com"}),
        };
        let e = denied(
            &hook,
            &json!({"code": 403, "reason": "Forbidden", "message": "no pods today"}),
        );
        assert_eq!(e.code(), 403);
        assert_eq!(
            e.message(),
            "admission webhook \"deny.example.com\" denied the request: no pods today"
        );
        let e = denied(&hook, &Value::Null);
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.message(),
            "admission webhook \"deny.example.com\" denied the request without explanation"
        );
    }
}
