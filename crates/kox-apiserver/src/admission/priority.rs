//! Priority: a new pod's `priorityClassName` (or the global default class) becomes its
//! `priority` and `preemptionPolicy`; at most one PriorityClass is the global default.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin, forbidden};
use crate::error::ApiResult;
use crate::registry::{ObjectRef, Registry};

/// The Priority plugin.
pub struct Priority;

fn classes_def() -> &'static crate::resources::ResourceDef {
    crate::resources::find("scheduling.k8s.io", "v1", "priorityclasses").expect("served")
}

#[async_trait]
impl Plugin for Priority {
    fn name(&self) -> &'static str {
        "Priority"
    }

    async fn admit(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !a.is_pod() || a.operation != Operation::Create {
            return Ok(());
        }
        let Some(pod) = a.object.as_ref() else {
            return Ok(());
        };
        let class_name = pod
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let class = match &class_name {
            None => global_default(reg).await?,
            Some(name) => match reg
                .lister_get(ObjectRef {
                    def: classes_def(),
                    namespace: None,
                    name,
                })
                .await
            {
                Ok(c) => Some(Value::clone(&c)),
                Err(e) if e.code() == 404 => {
                    return Err(forbidden(
                        a,
                        &format!("no PriorityClass with name {name} was found"),
                    ));
                }
                Err(e) => return Err(e),
            },
        };
        let (value, policy, name) = match &class {
            Some(c) => (
                c.get("value").and_then(Value::as_i64).unwrap_or(0),
                c.get("preemptionPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("PreemptLowerPriority")
                    .to_string(),
                c.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            None => (0, "PreemptLowerPriority".to_string(), None),
        };
        // The pod's own value (defaulted to 0 when absent) must not contradict its class.
        let given = pod.pointer("/spec/priority").and_then(Value::as_i64);
        if let Some(given) = given.filter(|g| *g != 0 && *g != value) {
            return Err(forbidden(
                a,
                &format!(
                    "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
                ),
            ));
        }
        if let Some(given) = pod
            .pointer("/spec/preemptionPolicy")
            .and_then(Value::as_str)
            .filter(|g| *g != policy)
        {
            return Err(forbidden(
                a,
                &format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                ),
            ));
        }
        let Some(pod) = a.object.as_mut() else {
            return Ok(());
        };
        pod["spec"]["priority"] = json!(value);
        // Without a class, upstream's default policy: every pod carries one.
        pod["spec"]["preemptionPolicy"] = json!(policy);
        if let Some(name) = name {
            pod["spec"]["priorityClassName"] = json!(name);
        }
        Ok(())
    }

    async fn validate(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !a.is_main("scheduling.k8s.io", "priorityclasses")
            || !matches!(a.operation, Operation::Create | Operation::Update)
        {
            return Ok(());
        }
        let Some(class) = a.object.as_ref() else {
            return Ok(());
        };
        if class.get("globalDefault").and_then(Value::as_bool) != Some(true) {
            return Ok(());
        }
        if let Some(other) = global_default(reg).await?
            && other.pointer("/metadata/name") != class.pointer("/metadata/name")
        {
            let other_name = other
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(forbidden(
                a,
                &format!(
                    "PriorityClass {other_name} is already marked as default. Only one default can exist"
                ),
            ));
        }
        Ok(())
    }
}

/// The global default class: the highest-valued one marked `globalDefault`.
async fn global_default(reg: &Registry) -> ApiResult<Option<Value>> {
    let listed = reg.lister_list(classes_def(), None).await?;
    Ok(listed
        .iter()
        .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
        .max_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0))
        .map(|c| Value::clone(c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::testing;

    fn pods() -> &'static crate::resources::ResourceDef {
        crate::resources::find("", "v1", "pods").unwrap()
    }

    async fn class(reg: &Registry, name: &str, value: i64, global: bool, policy: &str) {
        testing::put(
            reg,
            "priorityclasses",
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                   "metadata": {"name": name}, "value": value, "globalDefault": global,
                   "preemptionPolicy": policy}),
        )
        .await;
    }

    async fn admit(reg: &Registry, spec: Value) -> ApiResult<Value> {
        let mut a = Attributes::new(Operation::Create, pods(), Some("ns"));
        a.object = Some(json!({"metadata": {"name": "p"}, "spec": spec}));
        Priority.admit(reg, &mut a).await?;
        Ok(a.object.unwrap()["spec"].clone())
    }

    #[tokio::test]
    async fn a_named_class_sets_priority_and_preemption_policy() {
        let (reg, _dir) = testing::registry().await;
        class(&reg, "high", 1000, false, "Never").await;
        let spec = admit(&reg, json!({"priorityClassName": "high", "priority": 0}))
            .await
            .unwrap();
        assert_eq!(spec["priority"], 1000);
        assert_eq!(spec["preemptionPolicy"], "Never");
        let err = admit(&reg, json!({"priorityClassName": "nope"}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.message(),
            "pods \"p\" is forbidden: no PriorityClass with name nope was found"
        );
        let err = admit(&reg, json!({"priorityClassName": "high", "priority": 7}))
            .await
            .unwrap_err();
        assert!(err.message().contains("the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000"), "{}", err.message());
    }

    #[tokio::test]
    async fn the_global_default_applies_to_pods_without_a_class() {
        let (reg, _dir) = testing::registry().await;
        let spec = admit(&reg, json!({})).await.unwrap();
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        assert!(spec.get("priorityClassName").is_none());
        class(&reg, "everyone", 50, true, "PreemptLowerPriority").await;
        let spec = admit(&reg, json!({})).await.unwrap();
        assert_eq!(spec["priority"], 50);
        assert_eq!(spec["priorityClassName"], "everyone");
        // A second global default is refused.
        let mut a = Attributes::new(Operation::Create, classes_def(), None);
        a.object = Some(json!({"metadata": {"name": "other"}, "value": 1, "globalDefault": true}));
        let err = Priority.validate(&reg, &mut a).await.unwrap_err();
        assert_eq!(
            err.message(),
            "priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass everyone is already marked as default. Only one default can exist"
        );
    }
}
