//! Admission control: the plugins every write passes through after it is decoded and defaulted
//! and before it is stored, as upstream's admission chain.
//!
//! The registry runs the chain in two phases (upstream's order):
//!
//! 1. **mutating** ([`Chain::mutate`]) after decoding and defaulting, before the kind's
//!    validation: plugins may change the object (a pod gets its service account, its token
//!    volume, LimitRange defaults, its priority…);
//! 2. **validating** ([`Chain::validate`]) after the kind's validation, right before the store
//!    write: plugins may only refuse (PodSecurity, ResourceQuota…).
//!
//! A plugin refuses with an [`ApiError`] that reaches the client as upstream's `Status`
//! (mostly 403 Forbidden, built by [`forbidden`]). Warnings a plugin adds to
//! [`Attributes::warnings`] reach the client in `Warning` headers. Plugins with side effects
//! (ResourceQuota writing usage) do not perform them on a dry run.
//!
//! One file per plugin; [`Chain::standard`] lists them in upstream's recommended order.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;
use crate::resources::ResourceDef;

pub mod default_toleration_seconds;
pub mod limit_ranger;
pub mod mutating_webhook;
pub mod namespace_lifecycle;
pub mod node_restriction;
pub mod pod_security;
pub mod priority;
pub mod resource_quota;
pub mod service_account;
pub mod validating_webhook;
pub mod webhook;

/// Who makes a request, as authentication found it (`system:admin`, `system:node:n1`, …).
pub use crate::user::UserInfo;

/// The operation a request performs, as admission sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// `CREATE`, `UPDATE`, … as AdmissionReview and webhook rules spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// Everything a plugin may look at (and, in the mutating phase, change).
pub struct Attributes<'a> {
    pub operation: Operation,
    /// The resource addressed (group, version, kind, plural, scope).
    pub def: &'static ResourceDef,
    /// `status`, `binding`, `scale`, … or `None` for the main resource.
    pub subresource: Option<&'a str>,
    /// The namespace of a namespaced resource.
    pub namespace: Option<&'a str>,
    /// The object's name (may be empty on a create with `generateName`).
    pub name: String,
    /// The new object (create, update); `None` on delete.
    pub object: Option<Value>,
    /// The stored object (update, delete).
    pub old_object: Option<Value>,
    /// A dry run: plugins check but perform no side effect.
    pub dry_run: bool,
    /// The requesting user; `None` for the server's own writes.
    pub user: Option<&'a UserInfo>,
    /// Warnings for the client (`Warning` headers).
    pub warnings: Vec<String>,
    /// Annotations for the request's audit event (key, value).
    pub audit_annotations: Vec<(String, String)>,
}

impl<'a> Attributes<'a> {
    /// Attributes of a request on `def` with no object yet.
    pub fn new(
        operation: Operation,
        def: &'static ResourceDef,
        namespace: Option<&'a str>,
    ) -> Self {
        Self {
            operation,
            def,
            subresource: None,
            namespace: namespace.filter(|_| def.namespaced),
            name: String::new(),
            object: None,
            old_object: None,
            dry_run: false,
            user: None,
            warnings: Vec::new(),
            audit_annotations: Vec::new(),
        }
    }

    /// Whether the request addresses `group`/`plural` itself (not a subresource).
    pub fn is_main(&self, group: &str, plural: &str) -> bool {
        self.subresource.is_none() && self.def.group == group && self.def.plural == plural
    }

    /// Whether the request addresses core pods themselves (not a subresource).
    pub fn is_pod(&self) -> bool {
        self.is_main("", "pods")
    }

    /// The object's name: the new object's (after `generateName`), else the request's.
    pub fn object_name(&self) -> &str {
        self.object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.name)
    }
}

/// A 403 Forbidden on the request's object, worded as upstream's `admission.NewForbidden`:
/// `pods "x" is forbidden: <why>`.
pub fn forbidden(a: &Attributes<'_>, why: &str) -> ApiError {
    let gr = kox_api::status::GroupResource::new(a.def.group, a.def.plural);
    kox_api::status::forbidden(&gr, a.object_name(), why).into()
}

/// One admission plugin. Both phases default to admitting; a plugin implements the one(s) it
/// takes part in.
#[async_trait]
pub trait Plugin: Send + Sync {
    /// Upstream's plugin name (`NamespaceLifecycle`, `ResourceQuota`, …).
    fn name(&self) -> &'static str;

    /// The mutating phase: may change `a.object`.
    async fn admit(&self, _reg: &Registry, _a: &mut Attributes<'_>) -> ApiResult<()> {
        Ok(())
    }

    /// The validating phase: may refuse or add warnings, never change the object.
    async fn validate(&self, _reg: &Registry, _a: &mut Attributes<'_>) -> ApiResult<()> {
        Ok(())
    }
}

/// The ordered plugins of a server.
pub struct Chain {
    plugins: Vec<Box<dyn Plugin>>,
}

impl Chain {
    /// A chain of exactly these plugins, in this order.
    pub fn new(plugins: Vec<Box<dyn Plugin>>) -> Self {
        Self { plugins }
    }

    /// The plugins upstream enables by default, in its order.
    pub fn standard() -> Self {
        Self::standard_with(pod_security::PodSecurityConfig::default())
    }

    /// [`Self::standard`] with PodSecurity's configuration (defaults and exemptions).
    pub fn standard_with(pod_security: pod_security::PodSecurityConfig) -> Self {
        Self::new(vec![
            Box::new(namespace_lifecycle::NamespaceLifecycle),
            Box::new(limit_ranger::LimitRanger),
            Box::new(service_account::ServiceAccount::default()),
            Box::new(node_restriction::NodeRestriction),
            Box::new(pod_security::PodSecurity::new(pod_security)),
            Box::new(priority::Priority),
            Box::new(default_toleration_seconds::DefaultTolerationSeconds),
            Box::new(mutating_webhook::MutatingWebhook),
            Box::new(validating_webhook::ValidatingWebhook),
            Box::new(resource_quota::ResourceQuota),
        ])
    }

    /// The names of the plugins, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// Runs every plugin's mutating phase, in order; the first refusal ends the request.
    pub async fn mutate(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        for p in &self.plugins {
            p.admit(reg, a).await?;
        }
        Ok(())
    }

    /// Runs every plugin's validating phase, in order; the first refusal ends the request.
    pub async fn validate(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        for p in &self.plugins {
            p.validate(reg, a).await?;
        }
        Ok(())
    }
}

impl Default for Chain {
    fn default() -> Self {
        Self::standard()
    }
}

/// The labels of an object as a map.
pub(crate) fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod testing {
    //! An in-memory registry for plugin unit tests.

    use std::sync::Arc;

    use serde_json::Value;

    use crate::registry::{FieldValidation, Registry, WriteOptions};

    /// A registry over a fresh embedded store, with no admission plugins (so test fixtures are
    /// stored as given).
    pub async fn registry() -> (Registry, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = kox_store::embedded::EmbeddedStore::open(
            dir.path().join("store"),
            kox_store::embedded::EmbeddedOptions::default(),
        )
        .expect("store");
        let store: Arc<dyn kox_store::Store> = Arc::new(store);
        let reg = Registry {
            allocators: Arc::new(
                crate::allocator::Allocators::new(store.clone(), "10.43.0.0/16").expect("alloc"),
            ),
            caches: Arc::new(crate::watch_cache::WatchCaches::new(store.clone())),
            store,
            admission: Arc::new(super::Chain::new(Vec::new())),
        };
        (reg, dir)
    }

    /// Stores an object (cluster-scoped or in its `metadata.namespace`).
    pub async fn put(reg: &Registry, plural: &str, obj: Value) -> Value {
        let (group, version) = match obj["apiVersion"].as_str().unwrap_or("v1").split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (
                String::new(),
                obj["apiVersion"].as_str().unwrap_or("v1").to_string(),
            ),
        };
        let def = crate::resources::find(&group, &version, plural).expect("served resource");
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let opts = WriteOptions {
            dry_run: false,
            field_validation: FieldValidation::Strict,
            user: None,
            requested: None,
        };
        let stored = reg
            .create(def, ns.as_deref(), obj, opts)
            .await
            .expect("fixture stored")
            .object;
        // Admission reads through the watch caches (listers), which follow the store a moment
        // later: a fixture counts once the cache holds it.
        let name = stored
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = def.key(ns.as_deref(), name);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while reg.caches.get(def).get(key.as_bytes()).await.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the watch cache never saw {key}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        stored
    }
}
