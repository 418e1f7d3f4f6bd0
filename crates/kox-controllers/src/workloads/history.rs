//! ControllerRevisions, the history StatefulSets and DaemonSets keep of their templates: each
//! holds the patch `{"spec":{"template":{…,"$patch":"replace"}}}` that restores one template
//! (what `kubectl rollout history|undo` reads and applies), is named `<owner>-<hash>` and
//! numbered by `revision`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::util::{fnv32a, is_controlled_by, safe_encode};

/// The label carrying a revision's hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The patch a revision stores for `template`.
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(o) = t.as_object_mut() {
        o.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The hash naming a revision of `data` (upstream's `HashControllerRevision`).
pub fn revision_hash(data: &Value, collision: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    if let Some(c) = collision.filter(|c| *c != 0) {
        bytes.extend_from_slice(c.to_string().as_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// The revisions `owner_uid` controls, oldest revision first.
pub fn owned(all: &[Arc<ControllerRevision>], owner_uid: &str) -> Vec<ControllerRevision> {
    let mut v: Vec<ControllerRevision> = all
        .iter()
        .filter(|r| is_controlled_by(&r.metadata, owner_uid))
        .map(|r| (**r).clone())
        .collect();
    v.sort_by_key(|r| r.revision);
    v
}

/// Whether a revision stores `data`.
pub fn matches(r: &ControllerRevision, data: &Value) -> bool {
    r.data.as_ref().map(|d| &d.0) == Some(data)
}

/// Finds or creates the revision for `template`; an equal older revision is renumbered to be
/// the newest (a rollback). Returns the revision and the updated history.
pub async fn ensure(
    api: &Api<ControllerRevision>,
    owner: OwnerReference,
    owner_name: &str,
    selector_labels: &BTreeMap<String, String>,
    template: &PodTemplateSpec,
    collision: Option<i32>,
    mut history: Vec<ControllerRevision>,
) -> kube::Result<(ControllerRevision, Vec<ControllerRevision>)> {
    let data = revision_data(template);
    let max = history.iter().map(|r| r.revision).max().unwrap_or(0);
    if let Some(i) = history.iter().rposition(|r| matches(r, &data)) {
        let r = history[i].clone();
        if r.revision == max {
            return Ok((r, history));
        }
        let patch = json!({"revision": max + 1});
        let updated = api
            .patch(
                r.metadata.name.as_deref().unwrap_or(""),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        history[i] = updated.clone();
        history.sort_by_key(|r| r.revision);
        return Ok((updated, history));
    }
    let hash = revision_hash(&data, collision);
    let mut labels = selector_labels.clone();
    labels.insert(HASH_LABEL.into(), hash.clone());
    let rev = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{owner_name}-{hash}")),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data.clone())),
        revision: max + 1,
    };
    let created = match api.create(&PostParams::default(), &rev).await {
        Ok(c) => c,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // Ours, created by an earlier sync the cache has not shown yet?
            let existing = api.get(rev.metadata.name.as_deref().unwrap_or("")).await?;
            if !matches(&existing, &data) {
                return Err(kube::Error::Api(s));
            }
            existing
        }
        Err(e) => return Err(e),
    };
    history.push(created.clone());
    Ok((created, history))
}

/// Deletes the oldest revisions beyond `limit`, sparing those in `live` (names in use).
pub async fn truncate(
    api: &Api<ControllerRevision>,
    history: &[ControllerRevision],
    live: &[String],
    limit: i32,
) -> kube::Result<()> {
    let spare: Vec<&ControllerRevision> = history
        .iter()
        .filter(|r| {
            !live
                .iter()
                .any(|n| Some(n.as_str()) == r.metadata.name.as_deref())
        })
        .collect();
    let excess = spare.len() as i64 - i64::from(limit.max(0));
    for r in spare.iter().take(excess.max(0) as usize) {
        match api
            .delete(
                r.metadata.name.as_deref().unwrap_or(""),
                &DeleteParams::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if matches!(s.code, 404) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_data_is_a_replacing_patch_and_hashes_stably() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .expect("template");
        let d = revision_data(&t);
        assert_eq!(d["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx"
        );
        assert_eq!(revision_hash(&d, None), revision_hash(&d, Some(0)));
        assert_ne!(revision_hash(&d, None), revision_hash(&d, Some(1)));
    }
}
