//! The namespace controller: when a namespace is deleted (Terminating, with the `kubernetes`
//! finalizer in `spec.finalizers`), deletes every namespaced object in it — every resource
//! discovery lists that can be deleted — and then removes the finalizer through
//! `namespaces/<name>/finalize`, so the API server deletes the namespace. While content
//! remains, the namespace's status conditions say why, with upstream's reasons and messages.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::discovery::{self, Discovered};
use crate::{Action, Change, Context, Controller};

/// The finalizer the namespace controller owns.
pub const FINALIZER: &str = "kubernetes";

/// The namespace controller (`--controllers` name `namespace`).
#[derive(Debug, Default)]
pub struct NamespaceController;

#[async_trait::async_trait]
impl Controller for NamespaceController {
    fn name(&self) -> &'static str {
        "namespace"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("namespace-controller")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["namespace-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let namespaces = ctx.informers.get::<Namespace>();
        let queue = ctx.queue("namespace");
        let q = queue.clone();
        namespaces.add_handler(move |change| {
            if let Change::Added(ns) | Change::Updated { new: ns, .. } = change
                && ns.metadata.deletion_timestamp.is_some()
            {
                q.add_change(change);
            }
        });
        namespaces.synced().await;
        let client = ctx.client.clone();
        // Upstream's --concurrent-namespace-syncs default.
        queue
            .run_workers(10, stop, move |name| {
                let client = client.clone();
                async move { sync(&client, &name).await }
            })
            .await;
        Ok(())
    }
}

/// What is left in a namespace after a round of deletions.
#[derive(Debug, Default, PartialEq)]
struct Remaining {
    /// `resource.group` → objects left.
    resources: BTreeMap<String, usize>,
    /// finalizer → objects carrying it.
    finalizers: BTreeMap<String, usize>,
    /// Resources whose deletion failed, with the errors.
    failures: Vec<String>,
    /// The longest a pod left has to finish its graceful deletion, in seconds.
    estimate_secs: u64,
}

async fn sync(client: &Client, name: &str) -> anyhow::Result<Action> {
    let api: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = api.get_opt(name).await? else {
        return Ok(Action::await_change());
    };
    if ns.metadata.deletion_timestamp.is_none() || !has_finalizer(&ns) {
        return Ok(Action::await_change());
    }
    let discovered = discovery::discover(client).await?;
    let remaining = delete_content(client, name, &discovered).await;
    let conditions = conditions(&discovered, &remaining);
    let conditions = merge_conditions(
        ns.status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default(),
        conditions,
    );
    let current = ns.status.as_ref().and_then(|s| s.conditions.as_ref());
    if current != Some(&conditions) {
        let mut updated = ns.clone();
        let status = updated.status.get_or_insert_with(NamespaceStatus::default);
        status.conditions = Some(conditions);
        status.phase = Some("Terminating".into());
        api.replace_status(name, &PostParams::default(), &updated)
            .await?;
    }
    if !remaining.failures.is_empty() {
        anyhow::bail!(
            "deleting the content of namespace {name}: {}",
            remaining.failures.join("; ")
        );
    }
    if !remaining.resources.is_empty() {
        // Upstream waits the estimate (pods' grace periods) before looking again.
        let wait = remaining.estimate_secs.clamp(1, 10);
        return Ok(Action::requeue(Duration::from_secs(wait)));
    }
    finalize(client, name).await?;
    Ok(Action::await_change())
}

fn has_finalizer(ns: &Namespace) -> bool {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Removes the `kubernetes` finalizer through `namespaces/<name>/finalize` (read fresh, so the
/// write carries the current resourceVersion).
async fn finalize(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let Some(mut ns) = api.get_opt(name).await? else {
        return Ok(());
    };
    if let Some(f) = ns.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        f.retain(|f| f != FINALIZER);
    }
    match api
        .replace_subresource("finalize", name, &PostParams::default(), &ns)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes every deletable namespaced resource in `namespace` (one `deletecollection` each
/// where supported, else object by object), then counts what is left.
async fn delete_content(client: &Client, namespace: &str, discovered: &Discovered) -> Remaining {
    let mut remaining = Remaining::default();
    for r in &discovered.resources {
        if !r.namespaced || !r.supports("delete") || !r.supports("list") {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &r.api);
        let params = DeleteParams::background();
        let deleted = if r.supports("deletecollection") {
            api.delete_collection(&params, &ListParams::default())
                .await
                .map(|_| ())
        } else {
            delete_each(&api, &params).await
        };
        if let Err(e) = deleted {
            remaining
                .failures
                .push(format!("{}: {e}", r.group_resource()));
        }
        let left = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) => {
                remaining
                    .failures
                    .push(format!("{}: {e}", r.group_resource()));
                continue;
            }
        };
        if left.is_empty() {
            continue;
        }
        remaining.resources.insert(r.group_resource(), left.len());
        for obj in &left {
            for f in obj.metadata.finalizers.iter().flatten() {
                *remaining.finalizers.entry(f.clone()).or_default() += 1;
            }
            if let Some(grace) = obj.metadata.deletion_grace_period_seconds {
                remaining.estimate_secs = remaining.estimate_secs.max(grace.max(0) as u64);
            }
        }
    }
    remaining
}

async fn delete_each(api: &Api<DynamicObject>, params: &DeleteParams) -> Result<(), kube::Error> {
    for obj in api.list_metadata(&ListParams::default()).await?.items {
        let name = obj.metadata.name.unwrap_or_default();
        match api.delete(&name, params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    }
}

/// The deletion conditions upstream's namespace deleter reports.
fn conditions(discovered: &Discovered, remaining: &Remaining) -> Vec<NamespaceCondition> {
    let mut out = Vec::new();
    out.push(if discovered.failed.is_empty() {
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        )
    } else {
        let groups: Vec<String> = discovered
            .failed
            .iter()
            .map(|(gv, e)| format!("{gv}: {e}"))
            .collect();
        condition(
            "NamespaceDeletionDiscoveryFailure",
            true,
            "DiscoveryFailed",
            format!(
                "Discovery failed for some groups, {} failing: {}",
                groups.len(),
                groups.join(", ")
            ),
        )
    });
    out.push(condition(
        "NamespaceDeletionGroupVersionParsingFailure",
        false,
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed".into(),
    ));
    out.push(if remaining.failures.is_empty() {
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        condition(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                remaining.failures.len(),
                remaining.failures.join(", ")
            ),
        )
    });
    out.push(if remaining.resources.is_empty() {
        condition(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
        )
    } else {
        let items: Vec<String> = remaining
            .resources
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", items.join(", ")),
        )
    });
    out.push(if remaining.finalizers.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let items: Vec<String> = remaining
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        condition(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                items.join(", ")
            ),
        )
    });
    out
}

/// Replaces the deletion conditions in `existing` by `new`, keeping each condition's
/// `lastTransitionTime` while its status does not change, and other conditions as they are.
fn merge_conditions(
    existing: Vec<NamespaceCondition>,
    new: Vec<NamespaceCondition>,
) -> Vec<NamespaceCondition> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut out: Vec<NamespaceCondition> = existing
        .iter()
        .filter(|c| !new.iter().any(|n| n.type_ == c.type_))
        .cloned()
        .collect();
    for mut c in new {
        match existing.iter().find(|e| e.type_ == c.type_) {
            Some(e) if e.status == c.status => {
                c.last_transition_time = e.last_transition_time.clone();
            }
            _ => c.last_transition_time = Some(now.clone()),
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(c: &'a [NamespaceCondition], t: &str) -> &'a NamespaceCondition {
        c.iter().find(|c| c.type_ == t).expect(t)
    }

    #[test]
    fn remaining_content_is_reported_with_upstream_wording() {
        let remaining = Remaining {
            resources: BTreeMap::from([("configmaps.".into(), 1), ("pods.".into(), 2)]),
            finalizers: BTreeMap::from([("example/test".into(), 1)]),
            ..Remaining::default()
        };
        let c = conditions(&Discovered::default(), &remaining);
        let content = find(&c, "NamespaceContentRemaining");
        assert_eq!(content.status, "True");
        assert_eq!(content.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            content.message.as_deref(),
            Some(
                "Some resources are remaining: configmaps. has 1 resource instances, pods. has 2 resource instances"
            )
        );
        let fins = find(&c, "NamespaceFinalizersRemaining");
        assert_eq!(
            fins.message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example/test in 1 resource instances"
            )
        );
        assert_eq!(
            find(&c, "NamespaceDeletionDiscoveryFailure").status,
            "False"
        );
    }

    #[test]
    fn failures_are_conditions_too() {
        let discovered = Discovered {
            failed: vec![("metrics.k8s.io/v1beta1".into(), "503".into())],
            ..Discovered::default()
        };
        let remaining = Remaining {
            failures: vec!["widgets.example.com: 500".into()],
            ..Remaining::default()
        };
        let c = conditions(&discovered, &remaining);
        let d = find(&c, "NamespaceDeletionDiscoveryFailure");
        assert_eq!(d.status, "True");
        assert_eq!(d.reason.as_deref(), Some("DiscoveryFailed"));
        assert!(
            d.message
                .as_deref()
                .unwrap()
                .starts_with("Discovery failed for some groups, 1 failing")
        );
        let f = find(&c, "NamespaceDeletionContentFailure");
        assert_eq!(f.reason.as_deref(), Some("ContentDeletionFailed"));
        assert_eq!(
            find(&c, "NamespaceContentRemaining").reason.as_deref(),
            Some("ContentRemoved")
        );
    }

    #[test]
    fn transition_time_changes_only_with_status() {
        let empty = Remaining::default();
        let first = merge_conditions(vec![], conditions(&Discovered::default(), &empty));
        let t0 = find(&first, "NamespaceContentRemaining")
            .last_transition_time
            .clone();
        assert!(t0.is_some());
        std::thread::sleep(Duration::from_millis(5));
        let again = merge_conditions(first.clone(), conditions(&Discovered::default(), &empty));
        assert_eq!(
            find(&again, "NamespaceContentRemaining").last_transition_time,
            t0
        );
        let some = Remaining {
            resources: BTreeMap::from([("pods.".into(), 1)]),
            ..Remaining::default()
        };
        let changed = merge_conditions(again, conditions(&Discovered::default(), &some));
        assert_ne!(
            find(&changed, "NamespaceContentRemaining").last_transition_time,
            t0
        );
        assert_eq!(changed.len(), 5);
    }
}
