//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): the `Impersonate-*` headers make a
//! request act as another identity, if the requester may `impersonate` each part of it
//! (users, groups, uids, userextras, or the service account named), as upstream's filter.

use http::HeaderMap;

use crate::authz::{Authorizer, Decision, RequestInfo};
use crate::error::{ApiError, ApiResult};
use crate::user::{ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo};

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// The identity a request acts as: `user` itself without impersonation headers, else the
/// impersonated one (after checking `user` may impersonate every part of it).
pub async fn apply(authz: &Authorizer, user: UserInfo, headers: &HeaderMap) -> ApiResult<UserInfo> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let name = values(USER).into_iter().next();
    let groups = values(GROUP);
    let uid = values(UID).into_iter().next();
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(v) = v.to_str()
        {
            let key = form_urlencoded::parse(key.as_bytes())
                .map(|(k, v)| {
                    if v.is_empty() {
                        k.into_owned()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect::<String>();
            extra.entry(key).or_default().push(v.to_string());
        }
    }
    let Some(name) = name else {
        if groups.is_empty() && uid.is_none() && extra.is_empty() {
            return Ok(user);
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
    Ok(UserInfo {
        name,
        uid: uid.unwrap_or_default(),
        groups,
        extra,
    })
}
