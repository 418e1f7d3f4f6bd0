//! Who a request is from: the identity authentication establishes and every later step
//! (authorization, admission, audit) reads.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The user name of requests that carry no credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of requests that carry no credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group every authenticated user belongs to.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group with unrestricted access (the admin kubeconfig's group).
pub const MASTERS: &str = "system:masters";

/// An authenticated (or anonymous) identity, as upstream's `user.Info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`jane`, `system:serviceaccount:dev:builder`, `system:anonymous`).
    pub name: String,
    /// A unique id, when the authenticator knows one (service accounts, token file entries).
    pub uid: String,
    /// The groups the user belongs to.
    pub groups: Vec<String>,
    /// Further authenticator-supplied attributes (e.g. the pod a service-account token is bound
    /// to, `authentication.kubernetes.io/pod-name`).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        Self {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    /// The identity of a request without credentials.
    pub fn anonymous() -> Self {
        Self::new(ANONYMOUS, &[UNAUTHENTICATED])
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS
    }

    /// Whether the user belongs to `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Adds `system:authenticated` to an authenticated user's groups (upstream's
    /// `AuthenticatedGroupAdder`): every user except the anonymous one, once.
    pub fn with_authenticated_group(mut self) -> Self {
        if !self.is_anonymous() && !self.in_group(AUTHENTICATED) {
            self.groups.push(AUTHENTICATED.to_string());
        }
        self
    }

    /// The `UserInfo` JSON of authentication.k8s.io (TokenReview, SelfSubjectReview, audit).
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "username": self.name });
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.groups.is_empty() {
            v["groups"] = json!(self.groups);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticated_group_is_added_once_and_never_to_anonymous() {
        let jane = UserInfo::new("jane", &["dev"]).with_authenticated_group();
        assert_eq!(jane.groups, ["dev", AUTHENTICATED]);
        assert_eq!(jane.clone().with_authenticated_group(), jane);
        let anon = UserInfo::anonymous().with_authenticated_group();
        assert_eq!(anon.groups, [UNAUTHENTICATED]);
    }
}
