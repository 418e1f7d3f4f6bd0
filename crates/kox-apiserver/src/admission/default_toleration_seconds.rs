//! DefaultTolerationSeconds: a new pod that does not tolerate the `not-ready` and `unreachable`
//! NoExecute taints tolerates them for 300 seconds, so its node's brief trouble does not evict it
//! at once.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin};
use crate::error::ApiResult;
use crate::registry::Registry;

/// How long a pod stays on a not-ready or unreachable node by default.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The DefaultTolerationSeconds plugin.
pub struct DefaultTolerationSeconds;

#[async_trait]
impl Plugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }

    async fn admit(&self, _reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !a.is_pod() || a.operation != Operation::Create {
            return Ok(());
        }
        if let Some(pod) = a.object.as_mut() {
            add_default_tolerations(pod);
        }
        Ok(())
    }
}

/// Whether a toleration covers the NoExecute taint `key` (an empty key or effect matches all).
fn tolerates(t: &Value, key: &str) -> bool {
    let k = t.get("key").and_then(Value::as_str).unwrap_or("");
    let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
    (k.is_empty() || k == key) && (effect.is_empty() || effect == "NoExecute")
}

fn add_default_tolerations(pod: &mut Value) {
    let existing: Vec<Value> = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut tolerations = existing.clone();
    for key in [NOT_READY, UNREACHABLE] {
        if !existing.iter().any(|t| tolerates(t, key)) {
            tolerations.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
    if tolerations.len() != existing.len() {
        pod["spec"]["tolerations"] = json!(tolerations);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_both_tolerations_to_a_pod_without_any() {
        let mut pod = json!({"spec": {"containers": []}});
        add_default_tolerations(&mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
    }

    #[test]
    fn keeps_the_pods_own_tolerations() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
        ]}});
        add_default_tolerations(&mut pod);
        let t = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 5);
        assert_eq!(t[1]["key"], UNREACHABLE);
        // A toleration of everything covers both.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_default_tolerations(&mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }
}
