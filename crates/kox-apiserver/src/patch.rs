//! PATCH bodies: JSON patch, JSON merge patch and strategic merge patch.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceDef;

/// The patch formats, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {other:?}"
                ),
            )),
        }
    }
}

/// Applies `patch` to `current`, giving the new object (not yet validated).
pub fn apply_patch(
    def: &ResourceDef,
    ty: PatchType,
    current: &Value,
    patch: &Value,
) -> ApiResult<Value> {
    let mut doc = current.clone();
    match ty {
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut doc, patch);
        }
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            use kox_api::strategic_merge::schema::{GENERIC_OBJECT, schema_for_kind};
            let schema = schema_for_kind(def.group, def.kind).unwrap_or(&GENERIC_OBJECT);
            doc = kox_api::strategic_merge::strategic_merge_patch(current, patch, schema).map_err(
                |e| ApiError::bad_request(format!("error applying strategic merge patch: {e}")),
            )?;
        }
        PatchType::Apply => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "server-side apply is not supported yet",
            ));
        }
    }
    Ok(doc)
}
