//! NodeRestriction: a node's agent (user `system:node:<name>` in group `system:nodes`) may only
//! modify its own Node object and the pods bound to it, and may only create mirror pods of its
//! static pods bound to itself.

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, Operation, Plugin, UserInfo, forbidden};
use crate::error::ApiResult;
use crate::registry::Registry;

/// The NodeRestriction plugin.
pub struct NodeRestriction;

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The node a user is, if it is one (`system:node:<name>` in `system:nodes`).
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix("system:node:")?;
    (!name.is_empty() && user.groups.iter().any(|g| g == "system:nodes")).then_some(name)
}

fn bound_to(pod: Option<&Value>) -> Option<&str> {
    pod?.pointer("/spec/nodeName").and_then(Value::as_str)
}

#[async_trait]
impl Plugin for NodeRestriction {
    fn name(&self) -> &'static str {
        "NodeRestriction"
    }

    async fn admit(&self, _reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        let Some(node) = a.user.and_then(node_name).map(str::to_string) else {
            return Ok(());
        };
        if !a.def.group.is_empty() {
            return Ok(());
        }
        match a.def.plural {
            "nodes" => {
                let target = a.object_name().to_string();
                if target != node {
                    return Err(forbidden(
                        a,
                        &format!("node {node:?} is not allowed to modify node {target:?}"),
                    ));
                }
                Ok(())
            }
            "pods" => self.pod(a, &node),
            _ => Ok(()),
        }
    }
}

impl NodeRestriction {
    fn pod(&self, a: &Attributes<'_>, node: &str) -> ApiResult<()> {
        match (a.operation, a.subresource) {
            (Operation::Create, None) => {
                let pod = a.object.as_ref();
                let mirror = pod
                    .and_then(|p| p.pointer("/metadata/annotations"))
                    .and_then(Value::as_object)
                    .is_some_and(|m| m.contains_key(MIRROR_ANNOTATION));
                if !mirror {
                    return Err(forbidden(
                        a,
                        &format!(
                            "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node {node:?} can only create mirror pods"
                        ),
                    ));
                }
                if bound_to(pod) != Some(node) {
                    return Err(forbidden(
                        a,
                        &format!(
                            "node {node:?} can only create pods with spec.nodeName set to itself"
                        ),
                    ));
                }
                Ok(())
            }
            (Operation::Update, Some("status")) | (Operation::Update, None) => {
                if bound_to(a.old_object.as_ref()) != Some(node) {
                    return Err(forbidden(
                        a,
                        &format!(
                            "node {node:?} can only update pods with spec.nodeName set to itself"
                        ),
                    ));
                }
                Ok(())
            }
            (Operation::Delete, None) => {
                if bound_to(a.old_object.as_ref()) != Some(node) {
                    return Err(forbidden(
                        a,
                        &format!(
                            "node {node:?} can only delete pods with spec.nodeName set to itself"
                        ),
                    ));
                }
                Ok(())
            }
            (Operation::Create, Some("eviction")) => {
                if bound_to(a.old_object.as_ref()) != Some(node) {
                    return Err(forbidden(
                        a,
                        &format!(
                            "node {node:?} can only evict pods with spec.nodeName set to itself"
                        ),
                    ));
                }
                Ok(())
            }
            (_, Some(sub)) => Err(forbidden(
                a,
                &format!(
                    "unexpected operation {} on pods/{sub}",
                    a.operation.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admission::testing;

    fn node_user(name: &str) -> UserInfo {
        UserInfo {
            name: format!("system:node:{name}"),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            ..Default::default()
        }
    }

    fn def(plural: &str) -> &'static crate::resources::ResourceDef {
        crate::resources::find("", "v1", plural).unwrap()
    }

    #[test]
    fn only_node_users_are_nodes() {
        assert_eq!(node_name(&node_user("n1")), Some("n1"));
        let mut u = node_user("n1");
        u.groups.clear();
        assert_eq!(node_name(&u), None);
        assert_eq!(
            node_name(&UserInfo {
                name: "admin".into(),
                ..Default::default()
            }),
            None
        );
    }

    #[tokio::test]
    async fn a_node_may_change_only_itself_and_its_pods() {
        let (reg, _dir) = testing::registry().await;
        let user = node_user("n1");
        let mut a = Attributes::new(Operation::Update, def("nodes"), None);
        a.user = Some(&user);
        a.name = "n1".into();
        NodeRestriction.admit(&reg, &mut a).await.unwrap();
        a.name = "n2".into();
        let err = NodeRestriction.admit(&reg, &mut a).await.unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.message(),
            "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
        );

        let mut a = Attributes::new(Operation::Update, def("pods"), Some("ns"));
        a.user = Some(&user);
        a.subresource = Some("status");
        a.name = "p".into();
        a.old_object = Some(json!({"spec": {"nodeName": "n1"}}));
        NodeRestriction.admit(&reg, &mut a).await.unwrap();
        a.old_object = Some(json!({"spec": {"nodeName": "n2"}}));
        let err = NodeRestriction.admit(&reg, &mut a).await.unwrap_err();
        assert_eq!(
            err.message(),
            "pods \"p\" is forbidden: node \"n1\" can only update pods with spec.nodeName set to itself"
        );

        let mut a = Attributes::new(Operation::Create, def("pods"), Some("ns"));
        a.user = Some(&user);
        a.object = Some(json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}}));
        let err = NodeRestriction.admit(&reg, &mut a).await.unwrap_err();
        assert!(
            err.message().contains("can only create mirror pods"),
            "{}",
            err.message()
        );
        a.object = Some(
            json!({"metadata": {"name": "p", "annotations": {MIRROR_ANNOTATION: "x"}},
                               "spec": {"nodeName": "n1"}}),
        );
        NodeRestriction.admit(&reg, &mut a).await.unwrap();
    }

    #[tokio::test]
    async fn other_users_are_not_restricted() {
        let (reg, _dir) = testing::registry().await;
        let admin = UserInfo {
            name: "kubernetes-admin".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        let mut a = Attributes::new(Operation::Delete, def("nodes"), None);
        a.user = Some(&admin);
        a.name = "n2".into();
        NodeRestriction.admit(&reg, &mut a).await.unwrap();
    }
}
