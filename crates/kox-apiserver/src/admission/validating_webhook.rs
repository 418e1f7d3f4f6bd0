//! ValidatingAdmissionWebhook: calls the webhooks of every ValidatingWebhookConfiguration that
//! match a request; any refusal refuses the request.

use async_trait::async_trait;

use super::webhook::{self, Answer};
use super::{Attributes, Plugin};
use crate::error::ApiResult;
use crate::registry::Registry;

/// The ValidatingAdmissionWebhook plugin.
pub struct ValidatingWebhook;

#[async_trait]
impl Plugin for ValidatingWebhook {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionWebhook"
    }

    async fn validate(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !webhook::applies(a) {
            return Ok(());
        }
        for hook in webhook::hooks(reg, "validatingwebhookconfigurations").await? {
            if !webhook::matches(reg, &hook, a).await? {
                continue;
            }
            if let Some(e) = webhook::dry_run_refusal(&hook, a) {
                return Err(e);
            }
            let Some(Answer {
                allowed,
                status,
                warnings,
                ..
            }) = webhook::call(reg, &hook, a).await?
            else {
                continue;
            };
            a.warnings.extend(warnings);
            if !allowed {
                return Err(webhook::denied(&hook, &status));
            }
        }
        Ok(())
    }
}
