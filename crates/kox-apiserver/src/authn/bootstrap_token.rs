//! Bootstrap tokens, as upstream's `bootstrap` token authenticator: a bearer token
//! `<id>.<secret>` (6 and 16 characters of `[a-z0-9]`) names the Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`. It authenticates
//! as `system:bootstrap:<id>` in `system:bootstrappers` (plus the Secret's `auth-extra-groups`)
//! while the Secret's `token-secret` matches, its `expiration` has not passed, it allows
//! `usage-bootstrap-authentication`, and it is not being deleted.

use serde_json::Value;

use crate::registry::{ObjectRef, Registry};
use crate::resources;
use crate::user::UserInfo;

const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
const SECRET_PREFIX: &str = "bootstrap-token-";
const USER_PREFIX: &str = "system:bootstrap:";
const DEFAULT_GROUP: &str = "system:bootstrappers";

/// The id and secret of a token of the bootstrap form, or `None`.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// Authenticates a token of the bootstrap form; the error says why it is not valid.
pub async fn authenticate(registry: &Registry, id: &str, secret: &str) -> Result<UserInfo, String> {
    let name = format!("{SECRET_PREFIX}{id}");
    let obj = registry
        .get(ObjectRef {
            def: resources::find("", "v1", "secrets").expect("served"),
            namespace: Some("kube-system"),
            name: &name,
        })
        .await
        .map_err(|_| format!("no bootstrap token secret {name}"))?;
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Err(format!("bootstrap token secret {name} is being deleted"));
    }
    if obj.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err(format!("secret {name} is not of type {SECRET_TYPE}"));
    }
    let data = |key: &str| data_string(&obj, key);
    let stored = data("token-secret").unwrap_or_default();
    if !constant_time_eq(stored.as_bytes(), secret.as_bytes()) {
        return Err("bootstrap token secret does not match".into());
    }
    if data("token-id").as_deref() != Some(id) {
        return Err(format!("secret {name} names another token id"));
    }
    if expired(data("expiration").as_deref()) {
        return Err(format!("bootstrap token {id} has expired"));
    }
    if data("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(format!("bootstrap token {id} is not for authentication"));
    }
    let groups = groups(data("auth-extra-groups").as_deref())?;
    Ok(UserInfo {
        name: format!("{USER_PREFIX}{id}"),
        groups,
        ..Default::default()
    }
    .with_authenticated_group())
}

/// A `data` entry of a Secret, decoded.
fn data_string(secret: &Value, key: &str) -> Option<String> {
    use base64::Engine;
    let b64 = secret.pointer(&format!("/data/{key}"))?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// Whether an `expiration` (RFC 3339) has passed; one that does not parse counts as passed,
/// a missing or empty one never passes (upstream's `GetExpiration`, which the token cleaner
/// follows too).
fn expired(expiration: Option<&str>) -> bool {
    let Some(expiration) = expiration.filter(|e| !e.is_empty()) else {
        return false;
    };
    match expiration.parse::<jiff::Timestamp>() {
        Ok(t) => t <= jiff::Timestamp::now(),
        Err(_) => true,
    }
}

/// `system:bootstrappers` and the valid `auth-extra-groups` (each
/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`); one invalid group invalidates the token.
fn groups(extra: Option<&str>) -> Result<Vec<String>, String> {
    let mut groups = vec![DEFAULT_GROUP.to_string()];
    for g in extra.unwrap_or("").split(',').map(str::trim) {
        if g.is_empty() {
            continue;
        }
        let rest = g.strip_prefix("system:bootstrappers:").ok_or_else(|| {
            format!("auth-extra-group {g:?} does not start with system:bootstrappers:")
        })?;
        let valid = !rest.is_empty()
            && rest.len() <= 256
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
            && rest
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(format!("auth-extra-group {g:?} is not valid"));
        }
        if !groups.iter().any(|have| have == g) {
            groups.push(g.to_string());
        }
    }
    Ok(groups)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bootstrap_form_parses() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse("abcdef.0123456789abcde"), None);
        assert_eq!(parse("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse("abcdef0123456789abcdef"), None);
        assert_eq!(parse("a.b.c"), None);
    }

    #[test]
    fn extra_groups_are_validated_as_upstream() {
        assert_eq!(groups(None).unwrap(), vec!["system:bootstrappers"]);
        assert_eq!(
            groups(Some(
                "system:bootstrappers:kubeadm:default-node-token, system:bootstrappers:x"
            ))
            .unwrap(),
            vec![
                "system:bootstrappers",
                "system:bootstrappers:kubeadm:default-node-token",
                "system:bootstrappers:x"
            ]
        );
        assert!(groups(Some("system:masters")).is_err());
        assert!(groups(Some("system:bootstrappers:Bad")).is_err());
        assert!(groups(Some("system:bootstrappers:trailing-")).is_err());
    }

    #[test]
    fn expiration_is_rfc3339_and_unparsable_means_expired() {
        assert!(!expired(None));
        assert!(!expired(Some("")));
        assert!(expired(Some("2000-01-01T00:00:00Z")));
        assert!(!expired(Some("2999-01-01T00:00:00Z")));
        assert!(expired(Some("tomorrow")));
    }
}
