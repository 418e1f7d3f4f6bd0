//! Upstream's `ControllerRefManager`: a controller adopts orphans its selector matches and
//! releases what it owns but no longer matches.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::util::controller_of;

/// What to do with one candidate object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Owned and matching: it counts.
    Keep,
    /// An orphan that matches: take it.
    Adopt,
    /// Owned but no longer matching: let it go.
    Release,
    /// Someone else's, or nothing to do with us.
    Ignore,
}

/// Decides about `meta` for the owner with `owner_uid`.
pub fn decide(meta: &ObjectMeta, owner_uid: &str, matches: bool, owner_deleting: bool) -> Claim {
    match controller_of(meta) {
        Some(r) if r.uid == owner_uid => {
            if matches {
                Claim::Keep
            } else if owner_deleting {
                // Upstream keeps what a deleting owner owns rather than orphaning it.
                Claim::Ignore
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None => {
            if matches && !owner_deleting && meta.deletion_timestamp.is_none() {
                Claim::Adopt
            } else {
                Claim::Ignore
            }
        }
    }
}

/// Adds `owner` as the controller of the object, guarded by its resourceVersion.
pub async fn adopt<K>(api: &Api<K>, meta: &ObjectMeta, owner: OwnerReference) -> kube::Result<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut refs = meta.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != owner.uid);
    refs.push(owner);
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": meta.resource_version,
    }});
    api.patch(
        meta.name.as_deref().unwrap_or(""),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}

/// Removes the owner with `owner_uid` from the object's owner references.
pub async fn release<K>(api: &Api<K>, meta: &ObjectMeta, owner_uid: &str) -> kube::Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut refs = meta.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != owner_uid);
    let patch = json!({"metadata": {
        "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { json!(refs) },
        "resourceVersion": meta.resource_version,
    }});
    match api
        .patch(
            meta.name.as_deref().unwrap_or(""),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        // Gone or changed meanwhile: the next sync sees the truth.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        r => r.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            owner_references: owner.map(|u| {
                vec![OwnerReference {
                    uid: u.into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn orphans_are_adopted_and_strays_released() {
        assert_eq!(decide(&meta(Some("me")), "me", true, false), Claim::Keep);
        assert_eq!(
            decide(&meta(Some("me")), "me", false, false),
            Claim::Release
        );
        assert_eq!(decide(&meta(Some("me")), "me", false, true), Claim::Ignore);
        assert_eq!(
            decide(&meta(Some("other")), "me", true, false),
            Claim::Ignore
        );
        assert_eq!(decide(&meta(None), "me", true, false), Claim::Adopt);
        assert_eq!(decide(&meta(None), "me", true, true), Claim::Ignore);
        assert_eq!(decide(&meta(None), "me", false, false), Claim::Ignore);
    }
}
