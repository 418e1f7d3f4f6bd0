//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): the `Impersonate-*` headers make a
//! request act as another identity, if the requester may `impersonate` each part of it
//! (users, groups, uids, userextras, or the service account named), as upstream's filter.

use http::{HeaderMap, HeaderValue};

use crate::authz::{Authorizer, Decision, RequestInfo};
use crate::error::{ApiError, ApiResult};
use crate::user::{ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo};

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// An impersonation header's value: its bytes as text (upstream passes them on as they are),
/// and a refusal when they are not text — never ignored, which would run the request as the
/// caller (behind an authenticating proxy, with the proxy's rights).
fn text(name: &str, value: &HeaderValue) -> ApiResult<String> {
    std::str::from_utf8(value.as_bytes())
        .map(str::to_string)
        .map_err(|_| ApiError::bad_request(format!("the {name} header is not valid UTF-8")))
}

/// The identity a request acts as: `user` itself without impersonation headers, else the
/// impersonated one (after checking `user` may impersonate every part of it), with `user` as
/// the impersonator.
pub async fn apply(
    authz: &Authorizer,
    user: UserInfo,
    headers: &HeaderMap,
) -> ApiResult<(UserInfo, Option<UserInfo>)> {
    let values = |name: &str| -> ApiResult<Vec<String>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| text(name, v))
            .collect()
    };
    let name = values(USER)?.into_iter().next();
    let groups = values(GROUP)?;
    let uid = values(UID)?.into_iter().next();
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(EXTRA_PREFIX) {
            let key = form_urlencoded::parse(key.as_bytes())
                .map(|(k, v)| {
                    if v.is_empty() {
                        k.into_owned()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect::<String>();
            extra.entry(key).or_default().push(text(k.as_str(), v)?);
        }
    }
    let Some(name) = name else {
        if groups.is_empty() && uid.is_none() && extra.is_empty() {
            return Ok((user, None));
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups, uid or extra without impersonating a user",
        ));
    };
    let check = |resource: &str, group: &str, namespace: &str, object: &str| RequestInfo {
        is_resource_request: true,
        verb: "impersonate".into(),
        api_group: group.into(),
        api_version: "v1".into(),
        namespace: namespace.into(),
        resource: resource.into(),
        name: object.into(),
        ..Default::default()
    };
    let mut wanted = Vec::new();
    let mut service_account_groups = Vec::new();
    match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, sa)) => {
            wanted.push(check("serviceaccounts", "", ns, sa));
            service_account_groups = vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ];
        }
        None => wanted.push(check("users", "", "", &name)),
    }
    for g in &groups {
        wanted.push(check("groups", "", "", g));
    }
    if let Some(u) = &uid {
        wanted.push(check("uids", "authentication.k8s.io", "", u));
    }
    for (k, vs) in &extra {
        for v in vs {
            wanted.push(check(
                &format!("userextras/{k}"),
                "authentication.k8s.io",
                "",
                v,
            ));
        }
    }
    for info in &wanted {
        if let Decision::Deny(reason) = authz.authorize(&user, info).await {
            return Err(crate::authz::forbidden(&user, info, &reason));
        }
    }
    let mut groups = if groups.is_empty() {
        service_account_groups
    } else {
        groups
    };
    if name == ANONYMOUS {
        if !groups.iter().any(|g| g == UNAUTHENTICATED) {
            groups.push(UNAUTHENTICATED.to_string());
        }
    } else if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.to_string());
    }
    let impersonated = UserInfo {
        name,
        uid: uid.unwrap_or_default(),
        groups,
        extra,
    };
    Ok((impersonated, Some(user)))
}
