//! NamespaceLifecycle: the system namespaces cannot be deleted, nothing new is created in a
//! terminating namespace, and nothing is written into a namespace that does not exist.

use async_trait::async_trait;
use kox_api::status::StatusCause;
use serde_json::Value;

use super::{Attributes, Operation, Plugin};
use crate::error::{ApiError, ApiResult};
use crate::registry::{ObjectRef, Registry};

/// Namespaces that may never be deleted (upstream's immortal namespaces).
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// The NamespaceLifecycle plugin (mutating phase, first in the chain).
pub struct NamespaceLifecycle;

#[async_trait]
impl Plugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    async fn admit(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        let is_namespace = a.def.group.is_empty() && a.def.kind == "Namespace";
        if is_namespace {
            if a.operation == Operation::Delete && IMMORTAL_NAMESPACES.contains(&a.name.as_str()) {
                let gr = kox_api::status::GroupResource::new("", "namespaces");
                return Err(kox_api::status::forbidden(
                    &gr,
                    &a.name,
                    "this namespace may not be deleted",
                )
                .into());
            }
            return Ok(());
        }
        // Other resources: deletes always pass; so do cluster-scoped resources.
        let Some(ns) = a.namespace.filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        if a.operation == Operation::Delete
            || (a.def.group == "authorization.k8s.io"
                && a.def.plural == "localsubjectaccessreviews")
        {
            return Ok(());
        }
        let nsdef = crate::resources::find("", "v1", "namespaces").expect("namespaces are served");
        let namespace = reg
            .lister_get(ObjectRef {
                def: nsdef,
                namespace: None,
                name: ns,
            })
            .await?;
        if a.operation == Operation::Create && terminating(&namespace) {
            return Err(being_terminated(a, ns));
        }
        Ok(())
    }
}

/// Whether a namespace is being deleted.
fn terminating(ns: &Value) -> bool {
    ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        || ns.pointer("/metadata/deletionTimestamp").is_some()
}

/// Upstream's refusal of new content in a terminating namespace, with its
/// `NamespaceTerminating` cause.
fn being_terminated(a: &Attributes<'_>, ns: &str) -> ApiError {
    let gr = kox_api::status::GroupResource::new(a.def.group, a.def.plural);
    let mut status = kox_api::status::forbidden(
        &gr,
        a.object_name(),
        &format!("unable to create new content in namespace {ns} because it is being terminated"),
    );
    if let Some(d) = status.details.as_mut() {
        d.causes.push(StatusCause {
            cause_type: "NamespaceTerminating".to_string(),
            message: format!("namespace {ns} is being terminated"),
            field: "metadata.namespace".to_string(),
        });
    }
    status.into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admission::testing;

    fn def(plural: &str) -> &'static crate::resources::ResourceDef {
        crate::resources::find("", "v1", plural).unwrap()
    }

    #[tokio::test]
    async fn system_namespaces_cannot_be_deleted() {
        let (reg, _dir) = testing::registry().await;
        let mut a = Attributes::new(Operation::Delete, def("namespaces"), None);
        a.name = "kube-system".into();
        let err = NamespaceLifecycle.admit(&reg, &mut a).await.unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.message(),
            "namespaces \"kube-system\" is forbidden: this namespace may not be deleted"
        );
        a.name = "team-a".into();
        NamespaceLifecycle.admit(&reg, &mut a).await.unwrap();
    }

    #[tokio::test]
    async fn creates_in_terminating_namespace_are_forbidden_with_a_cause() {
        let (reg, _dir) = testing::registry().await;
        testing::put(
            &reg,
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "old"},
                   "status": {"phase": "Terminating"}}),
        )
        .await;
        let mut a = Attributes::new(Operation::Create, def("configmaps"), Some("old"));
        a.object = Some(json!({"metadata": {"name": "c"}}));
        let err = NamespaceLifecycle.admit(&reg, &mut a).await.unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.message(),
            "configmaps \"c\" is forbidden: unable to create new content in namespace old because it is being terminated"
        );
        assert_eq!(
            err.to_status()["details"]["causes"][0]["reason"],
            "NamespaceTerminating"
        );
        // Updates and deletes in a terminating namespace go on.
        a.operation = Operation::Update;
        NamespaceLifecycle.admit(&reg, &mut a).await.unwrap();
    }

    #[tokio::test]
    async fn writes_into_a_missing_namespace_are_not_found() {
        let (reg, _dir) = testing::registry().await;
        let mut a = Attributes::new(Operation::Create, def("configmaps"), Some("nowhere"));
        let err = NamespaceLifecycle.admit(&reg, &mut a).await.unwrap_err();
        assert_eq!(err.code(), 404);
        assert_eq!(err.message(), "namespaces \"nowhere\" not found");
        a.operation = Operation::Delete;
        NamespaceLifecycle.admit(&reg, &mut a).await.unwrap();
    }
}
