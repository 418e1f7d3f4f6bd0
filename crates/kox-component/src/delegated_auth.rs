//! Who may read a component's own endpoints, decided by the API server as upstream's
//! delegated authentication and authorization do: a bearer token is checked with a
//! TokenReview, and the user (or `system:anonymous`) needs a SubjectAccessReview's yes for the
//! request's path and verb. Health paths are always allowed (upstream's
//! `--authorization-always-allow-paths`), so probes need no credentials.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use parking_lot::Mutex;

/// Paths anyone may read.
pub const ALWAYS_ALLOWED: &[&str] = &["/healthz", "/readyz", "/livez"];
/// How long an answer of the API server is reused (upstream caches both reviews for 10 s).
const CACHE_FOR: Duration = Duration::from_secs(10);
/// Answers kept at most; past that the cache starts afresh.
const CACHE_SIZE: usize = 1024;

/// The API server's answer for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The credentials are not valid (401).
    Unauthenticated,
    /// Valid, but not for this (403), with upstream's wording.
    Forbidden(String),
}

/// A request as the reviews see it: bearer token (empty: anonymous), verb, path.
type Asked = (String, String, String);

/// Asks the API server, through the component's own client.
pub struct DelegatedAuth {
    client: kube::Client,
    answers: Mutex<HashMap<Asked, (Instant, Verdict)>>,
}

impl DelegatedAuth {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the request with `headers` may `verb` the non-resource `path`.
    pub async fn check(&self, headers: &HeaderMap, verb: &str, path: &str) -> Verdict {
        if ALWAYS_ALLOWED.contains(&path) {
            return Verdict::Allowed;
        }
        let token = bearer_token(headers).unwrap_or_default();
        let key = (token.clone(), verb.to_string(), path.to_string());
        if let Some((at, verdict)) = self.answers.lock().get(&key)
            && at.elapsed() < CACHE_FOR
        {
            return verdict.clone();
        }
        let verdict = match self.review(&token, verb, path).await {
            Ok(v) => v,
            // The API server could not say: refuse, and ask again next time.
            Err(e) => return Verdict::Forbidden(format!("authorization failed: {e}")),
        };
        let mut answers = self.answers.lock();
        if answers.len() >= CACHE_SIZE {
            answers.clear();
        }
        answers.insert(key, (Instant::now(), verdict.clone()));
        verdict
    }

    async fn review(&self, token: &str, verb: &str, path: &str) -> kube::Result<Verdict> {
        let (user, groups, uid, extra) = if token.is_empty() {
            (
                "system:anonymous".to_string(),
                vec!["system:unauthenticated".to_string()],
                None,
                None,
            )
        } else {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            let reviewed = Api::<TokenReview>::all(self.client.clone())
                .create(&PostParams::default(), &review)
                .await?;
            let status = reviewed.status.unwrap_or_default();
            let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
                return Ok(Verdict::Unauthenticated);
            };
            (
                user.username.unwrap_or_default(),
                user.groups.unwrap_or_default(),
                user.uid,
                user.extra,
            )
        };
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                groups: Some(groups),
                uid,
                extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some(verb.to_string()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answered = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await?;
        Ok(if answered.status.is_some_and(|s| s.allowed) {
            Verdict::Allowed
        } else {
            Verdict::Forbidden(format!(
                "forbidden: User \"{user}\" cannot {verb} path \"{path}\""
            ))
        })
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
        h.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }
}
