//! ServiceAccount tokens: JWTs (ES256) signed with the server's key, issued through the
//! TokenRequest API (`POST …/serviceaccounts/NAME/token`, what `kubectl create token` sends)
//! and verified on every request that presents one.
//!
//! A token names its service account by namespace, name and uid, and optionally the pod it
//! is bound to; it is valid while it has not expired, its audience is one the verifier
//! accepts, the service account still exists with the same uid, and the bound pod (if any)
//! still exists with the same uid and is not being deleted — so a bound token dies with its pod.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use http::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

use crate::admission::{Attributes, Operation};
use crate::error::{ApiError, ApiResult};
use crate::handlers::{Request, respond_json};
use crate::registry::{ObjectRef, Registry};
use crate::resources;
use crate::server::App;
use crate::user::UserInfo;

/// The issuer and default audience of tokens (upstream's default for kubeadm clusters).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Token lifetime when a TokenRequest names none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Where the signing key lives under the data directory.
pub const KEY_FILE: &str = "tls/service-account.key";

/// Signs and verifies service-account tokens.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    public: Vec<u8>,
    kid: String,
    rng: SystemRandom,
}

/// Creates the signing key under `data_dir` unless it exists (PKCS#8 PEM, owner-only).
pub fn ensure_key(data_dir: &Path) -> Result<()> {
    let path = data_dir.join(KEY_FILE);
    if path.exists() {
        return Ok(());
    }
    let key = rcgen::KeyPair::generate().context("generating the service-account key")?;
    crate::pki::write_secret(&path, &key.serialize_pem())
}

impl TokenSigner {
    /// Loads the signing key of `data_dir` (see [`ensure_key`]).
    pub fn load(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let der = rustls_pemfile::private_key(&mut pem.as_bytes())
            .ok()
            .flatten()
            .with_context(|| format!("{} holds no private key", path.display()))?;
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_der(), &rng)
                .map_err(|e| anyhow::anyhow!("{} is not a P-256 key: {e}", path.display()))?;
        let public = key.public_key().as_ref().to_vec();
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let kid = B64URL.encode(digest.as_ref());
        Ok(Self {
            key,
            public,
            kid,
            rng,
        })
    }

    /// Signs claims into a compact JWS.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({ "alg": "ES256", "kid": self.kid });
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| "signing failed".to_string())?;
        Ok(format!("{input}.{}", B64URL.encode(sig.as_ref())))
    }

    /// The claims of a token this server signed; an error for anything else.
    pub fn verify(&self, token: &str) -> Result<Value, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT".into());
        };
        let header: Value = B64URL
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("malformed token header")?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err("unsupported signing algorithm".into());
        }
        let sig = B64URL.decode(s).map_err(|_| "malformed signature")?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| "invalid signature".to_string())?;
        B64URL
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| "malformed token claims".to_string())
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Authenticates a token: signature, issuer, time, audience, then the live objects it names.
pub async fn authenticate(
    signer: &TokenSigner,
    registry: &Registry,
    token: &str,
    audiences: &[String],
) -> Result<UserInfo, String> {
    let claims = signer.verify(token)?;
    if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
        return Err("token issued by another issuer".into());
    }
    let t = now();
    let num = |k: &str| claims.get(k).and_then(Value::as_i64);
    if num("exp").is_none_or(|exp| exp <= t) {
        return Err("service account token has expired".into());
    }
    if num("nbf").is_some_and(|nbf| nbf > t + 60) {
        return Err("service account token is not valid yet".into());
    }
    let wanted: Vec<String> = if audiences.is_empty() {
        vec![ISSUER.to_string()]
    } else {
        audiences.to_vec()
    };
    let token_aud: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !token_aud.iter().any(|a| wanted.iter().any(|w| w == a)) {
        return Err("token audiences is invalid for the target audiences".into());
    }
    let k = claims
        .get("kubernetes.io")
        .ok_or("not a service account token")?;
    let s = |p: &str| k.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (ns, sa_name, sa_uid) = (
        s("/namespace"),
        s("/serviceaccount/name"),
        s("/serviceaccount/uid"),
    );
    if ns.is_empty() || sa_name.is_empty() {
        return Err("not a service account token".into());
    }
    let sa = registry
        .get(ObjectRef {
            def: resources::find("", "v1", "serviceaccounts").expect("served"),
            namespace: Some(ns),
            name: sa_name,
        })
        .await
        .map_err(|_| format!("service account {ns}/{sa_name} has been deleted"))?;
    let live_uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    if live_uid != sa_uid {
        return Err(format!(
            "service account UID ({live_uid}) does not match claim ({sa_uid})"
        ));
    }
    let mut user = UserInfo {
        name: format!("system:serviceaccount:{ns}:{sa_name}"),
        uid: sa_uid.to_string(),
        groups: vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ],
        ..Default::default()
    };
    let (pod_name, pod_uid) = (s("/pod/name"), s("/pod/uid"));
    if !pod_name.is_empty() {
        let pod = registry
            .get(ObjectRef {
                def: resources::find("", "v1", "pods").expect("served"),
                namespace: Some(ns),
                name: pod_name,
            })
            .await
            .map_err(|_| format!("pod {ns}/{pod_name} has been deleted"))?;
        if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(pod_uid) {
            return Err(format!("pod {ns}/{pod_name} has been replaced"));
        }
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(format!("pod {ns}/{pod_name} is being deleted"));
        }
        user.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![pod_name.to_string()],
        );
        user.extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![pod_uid.to_string()],
        );
    }
    if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
        user.extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={jti}")],
        );
    }
    Ok(user.with_authenticated_group())
}

fn invalid(name: &str, field: &str, value: &Value, why: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!(
            "TokenRequest.authentication.k8s.io {name:?} is invalid: {field}: Invalid value: {value}: {why}"
        ),
    )
}

/// `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`: issues a token.
pub async fn token_request(
    app: &Arc<App>,
    req: &Request,
    namespace: &str,
    name: &str,
) -> ApiResult<Response> {
    let signer = app.authn.service_accounts.as_ref().ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })?;
    let body = req.json_body()?;
    let sa_def = resources::find("", "v1", "serviceaccounts").expect("served");
    // The admission chain sees the TokenRequest as upstream's does (NodeRestriction keeps a
    // node to tokens bound to its own pods).
    let mut attrs = Attributes::new(Operation::Create, sa_def, Some(namespace));
    attrs.subresource = Some("token");
    attrs.name = name.to_string();
    attrs.user = Some(&req.user);
    attrs.object = Some(body);
    app.registry
        .admission
        .mutate(&app.registry, &mut attrs)
        .await?;
    app.registry
        .admission
        .validate(&app.registry, &mut attrs)
        .await?;
    let body = attrs.object.take().unwrap_or_default();
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let sa = app
        .registry
        .get(ObjectRef {
            def: sa_def,
            namespace: Some(namespace),
            name,
        })
        .await?;
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| invalid(name, "spec.expirationSeconds", v, "must be a number"))?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1 << 32 {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![ISSUER.to_string()]);
    let sa_uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut k8s = json!({
        "namespace": namespace,
        "serviceaccount": { "name": name, "uid": sa_uid },
    });
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        let kind = bound.get("kind").and_then(Value::as_str).unwrap_or("");
        let obj_name = bound.get("name").and_then(Value::as_str).unwrap_or("");
        if kind != "Pod" {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {name:?} to object of kind {kind:?}: only Pod is supported"
            )));
        }
        let pod = app
            .registry
            .get(ObjectRef {
                def: resources::find("", "v1", "pods").expect("served"),
                namespace: Some(namespace),
                name: obj_name,
            })
            .await?;
        let pod_uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(want) = bound
            .get("uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            && want != pod_uid
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        if pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            != Some(name)
        {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
            )));
        }
        k8s["pod"] = json!({ "name": obj_name, "uid": pod_uid });
        if let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) {
            k8s["node"] = json!({ "name": node });
        }
    }
    let iat = now();
    let exp = iat + expiration;
    let claims = json!({
        "aud": audiences,
        "exp": exp,
        "iat": iat,
        "iss": ISSUER,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": k8s,
        "nbf": iat,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    });
    let token = signer
        .sign(&claims)
        .map_err(|e| ApiError::new(500, "InternalError", e))?;
    let expires = jiff::Timestamp::from_second(exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut out_spec = spec.clone();
    out_spec["audiences"] = json!(audiences);
    out_spec["expirationSeconds"] = json!(expiration);
    let out = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": crate::meta::now_rfc3339(),
        },
        "spec": out_spec,
        "status": { "token": token, "expirationTimestamp": expires },
    });
    Ok(respond_json(req, StatusCode::CREATED, &out))
}
