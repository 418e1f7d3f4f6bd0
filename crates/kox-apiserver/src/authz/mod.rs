//! Authorization: whether an authenticated user may do what a request asks.
//!
//! Three authorizers run in order, as upstream's `--authorization-mode=Node,RBAC` server does:
//! members of `system:masters` may do everything (upstream's privileged-group authorizer, so the
//! admin credential keeps working whatever the RBAC objects say), then the Node authorizer for
//! nodes' own requests ([`node`]), then RBAC ([`rbac`]). A request
//! no authorizer allows is a 403 worded as upstream's:
//! `pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "dev"`.

pub mod aggregation;
pub mod controller_policy;
pub mod escalation;
pub mod node;
pub mod policy;
pub mod rbac;
pub mod request_info;
pub mod review;

use std::sync::Arc;

use kox_api::status::{RequestAttributes, forbidden_request};

use crate::error::ApiError;
use crate::user::{MASTERS, UserInfo};
use crate::watch_cache::WatchCaches;

pub use rbac::Rbac;
pub use request_info::RequestInfo;

/// A decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Not allowed; the reason is appended to the 403 message when not empty.
    Deny(String),
}

/// The authorizer chain.
#[derive(Clone)]
pub struct Authorizer {
    pub node: node::NodeAuthorizer,
    pub rbac: Rbac,
}

impl Authorizer {
    pub fn new(caches: Arc<WatchCaches>) -> Self {
        Self {
            node: node::NodeAuthorizer::new(caches.clone()),
            rbac: Rbac::new(caches),
        }
    }

    /// Decides on a request.
    pub async fn authorize(&self, user: &UserInfo, info: &RequestInfo) -> Decision {
        if user.in_group(MASTERS) {
            return Decision::Allow;
        }
        let node = self.node.authorize(user, info).await;
        if let Some(Ok(())) = node {
            return Decision::Allow;
        }
        if self.rbac.allows(user, info).await {
            return Decision::Allow;
        }
        Decision::Deny(node.and_then(Result::err).unwrap_or_default())
    }

    /// Like [`Authorizer::authorize`], as a result carrying the 403.
    pub async fn check(&self, user: &UserInfo, info: &RequestInfo) -> Result<(), ApiError> {
        match self.authorize(user, info).await {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(forbidden(user, info, &reason)),
        }
    }
}

/// The 403 for a refused request.
pub fn forbidden(user: &UserInfo, info: &RequestInfo, reason: &str) -> ApiError {
    let attrs = RequestAttributes {
        user: user.name.clone(),
        verb: info.verb.clone(),
        group: if info.is_resource_request {
            info.api_group.clone()
        } else {
            String::new()
        },
        resource: if info.is_resource_request {
            info.resource.clone()
        } else {
            String::new()
        },
        subresource: info.subresource.clone(),
        namespace: info.namespace.clone(),
        name: info.name.clone(),
        path: info.path.clone(),
    };
    forbidden_request(&attrs, reason).into()
}
