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
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
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

/// Who is asking: a bearer token still to be reviewed, or a user already authenticated (by
/// a client certificate of the cluster CA), or nobody.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    Token(String),
    User { name: String, groups: Vec<String> },
    Anonymous,
}

/// What is asked: a verb on a non-resource path, or on a resource (the kubelet API's
/// `nodes/proxy`, `nodes/log`, … checks).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Asked {
    Path {
        verb: String,
        path: String,
    },
    Resource {
        verb: String,
        resource: String,
        subresource: String,
        name: String,
    },
}

impl Asked {
    fn attributes(&self) -> (Option<NonResourceAttributes>, Option<ResourceAttributes>) {
        match self {
            Asked::Path { verb, path } => (
                Some(NonResourceAttributes {
                    path: Some(path.clone()),
                    verb: Some(verb.clone()),
                }),
                None,
            ),
            Asked::Resource {
                verb,
                resource,
                subresource,
                name,
            } => (
                None,
                Some(ResourceAttributes {
                    verb: Some(verb.clone()),
                    version: Some("v1".into()),
                    resource: Some(resource.clone()),
                    subresource: (!subresource.is_empty()).then(|| subresource.clone()),
                    name: Some(name.clone()),
                    ..Default::default()
                }),
            ),
        }
    }

    /// Upstream's wording of a refusal.
    fn forbidden(&self, user: &str) -> String {
        match self {
            Asked::Path { verb, path } => {
                format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\"")
            }
            Asked::Resource {
                verb,
                resource,
                subresource,
                ..
            } => format!(
                "Forbidden (user={user}, verb={verb}, resource={resource}, subresource={subresource})"
            ),
        }
    }
}

/// Asks the API server, through the component's own client.
pub struct DelegatedAuth {
    client: kube::Client,
    answers: Mutex<HashMap<(Caller, Asked), (Instant, Verdict)>>,
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
        let caller = bearer_token(headers).map_or(Caller::Anonymous, Caller::Token);
        let asked = Asked::Path {
            verb: verb.to_string(),
            path: path.to_string(),
        };
        self.authorize(caller, asked).await
    }

    /// Whether `caller` may do what is `asked`, as the API server answers (cached).
    pub async fn authorize(&self, caller: Caller, asked: Asked) -> Verdict {
        let key = (caller, asked);
        if let Some((at, verdict)) = self.answers.lock().get(&key)
            && at.elapsed() < CACHE_FOR
        {
            return verdict.clone();
        }
        let verdict = match self.review(&key.0, &key.1).await {
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

    async fn review(&self, caller: &Caller, asked: &Asked) -> kube::Result<Verdict> {
        let (user, groups, uid, extra) = match caller {
            Caller::Anonymous => (
                "system:anonymous".to_string(),
                vec!["system:unauthenticated".to_string()],
                None,
                None,
            ),
            Caller::User { name, groups } => {
                let mut groups = groups.clone();
                groups.push("system:authenticated".to_string());
                (name.clone(), groups, None, None)
            }
            Caller::Token(token) => {
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
            }
        };
        let (non_resource_attributes, resource_attributes) = asked.attributes();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                groups: Some(groups),
                uid,
                extra,
                non_resource_attributes,
                resource_attributes,
            },
            ..Default::default()
        };
        let answered = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await?;
        Ok(if answered.status.is_some_and(|s| s.allowed) {
            Verdict::Allowed
        } else {
            Verdict::Forbidden(asked.forbidden(&user))
        })
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
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
