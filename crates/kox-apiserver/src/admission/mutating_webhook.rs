//! MutatingAdmissionWebhook: calls the webhooks of every MutatingWebhookConfiguration that
//! match a request, in configuration-name order, and applies the JSONPatch each one returns
//! before the next is called.

use async_trait::async_trait;
use serde_json::Value;

use super::webhook::{self, Answer};
use super::{Attributes, Plugin};
use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;

/// The MutatingAdmissionWebhook plugin.
pub struct MutatingWebhook;

#[async_trait]
impl Plugin for MutatingWebhook {
    fn name(&self) -> &'static str {
        "MutatingAdmissionWebhook"
    }

    async fn admit(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !webhook::applies(a) {
            return Ok(());
        }
        for hook in webhook::hooks(reg, "mutatingwebhookconfigurations").await? {
            if !webhook::matches(reg, &hook, a).await? {
                continue;
            }
            if let Some(e) = webhook::dry_run_refusal(&hook, a) {
                return Err(e);
            }
            let Some(Answer {
                allowed,
                status,
                patch,
                warnings,
            }) = webhook::call(reg, &hook, a).await?
            else {
                continue;
            };
            a.warnings.extend(warnings);
            if !allowed {
                return Err(webhook::denied(&hook, &status));
            }
            if let (Some(patch), Some(obj)) = (patch, a.object.as_mut()) {
                apply(obj, patch).map_err(|e| {
                    ApiError::internal(format!(
                        "JSON patch from webhook {:?} could not be applied: {e}",
                        hook.name()
                    ))
                })?;
            }
        }
        Ok(())
    }
}

fn apply(obj: &mut Value, patch: Value) -> Result<(), String> {
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|e| e.to_string())?;
    json_patch::patch(obj, &patch).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_patches_apply_to_the_object() {
        let mut obj = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
        apply(
            &mut obj,
            json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]),
        )
        .unwrap();
        assert_eq!(obj["metadata"]["labels"]["mutated"], "yes");
        assert!(apply(&mut obj, json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
