//! ClusterRole aggregation (upstream's clusterrole-aggregation controller, run inside the API
//! server): a ClusterRole with an `aggregationRule` gets as rules the union of the rules of
//! every other ClusterRole its selectors match, recomputed whenever a ClusterRole changes.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{AggregationRule, PolicyRule};
use kox_api::label_selector::Selector;
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::list::ListQuery;
use crate::registry::{FieldValidation, ObjectRef, Registry, WriteOptions};

/// Server-made writes: real, and strict about unknown fields.
const STRICT: WriteOptions<'static> = WriteOptions {
    dry_run: false,
    field_validation: FieldValidation::Strict,
    user: None,
    requested: None,
};
use crate::resources::{self, ResourceDef};
use crate::server::App;
use crate::watch_cache::{Delivery, Start};

fn cluster_roles() -> &'static ResourceDef {
    resources::find("rbac.authorization.k8s.io", "v1", "clusterroles")
        .expect("RBAC resources are served")
}

fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default()
}

fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The rules an aggregated role should have, given every ClusterRole.
pub fn aggregated_rules(role: &Value, all: &[Value]) -> Option<Vec<PolicyRule>> {
    let rule: AggregationRule =
        serde_json::from_value(role.get("aggregationRule")?.clone()).ok()?;
    let selectors: Vec<Selector> = rule
        .cluster_role_selectors
        .unwrap_or_default()
        .iter()
        .filter_map(|s| Selector::from_label_selector(Some(s)).ok())
        .collect();
    let mut matched: Vec<&Value> = all
        .iter()
        .filter(|other| name(other) != name(role))
        .filter(|other| {
            let l = labels(other);
            selectors.iter().any(|s| s.matches(&l))
        })
        .collect();
    matched.sort_by(|a, b| name(a).cmp(name(b)));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for other in matched {
        for r in super::rbac::rules_of(other) {
            if !rules.contains(&r) {
                rules.push(r);
            }
        }
    }
    Some(rules)
}

/// Brings every aggregated ClusterRole's rules up to date. Aggregated roles may select other
/// aggregated roles (`admin` selects `edit`, which selects `view`), so passes repeat until
/// nothing changes.
pub async fn aggregate(registry: &Registry) -> ApiResult<()> {
    for _ in 0..8 {
        if !aggregate_once(registry).await? {
            break;
        }
    }
    Ok(())
}

/// One pass; whether it changed a role.
async fn aggregate_once(registry: &Registry) -> ApiResult<bool> {
    let def = cluster_roles();
    let mut changed = false;
    let all = registry
        .list(def, None, &ListQuery::default())
        .await?
        .into_owned();
    for role in all.iter().filter(|r| r.get("aggregationRule").is_some()) {
        let Some(rules) = aggregated_rules(role, &all) else {
            continue;
        };
        if super::rbac::rules_of(role) == rules {
            continue;
        }
        let rules = json!(rules);
        let role_name = name(role).to_string();
        let r = ObjectRef {
            def,
            namespace: None,
            name: &role_name,
        };
        let result = registry
            .update_with(r, None, STRICT, |current| {
                let mut next = current.clone();
                next["rules"] = rules.clone();
                Ok((next, Vec::new()))
            })
            .await;
        match result {
            Ok(_) => changed = true,
            Err(e) if e.code() == 404 => {}
            Err(e) => {
                tracing::warn!(
                    role = role_name,
                    "aggregating cluster role: {}",
                    e.message()
                );
            }
        }
    }
    Ok(changed)
}

/// Re-aggregates after every ClusterRole change until the server stops.
pub fn spawn(app: Arc<App>) {
    tokio::spawn(async move {
        let def = cluster_roles();
        let prefix = def.key_prefix();
        loop {
            let cache = app.registry.caches.get(def);
            let Some(mut sub) = cache.subscribe(prefix.as_bytes(), Start::Now).await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            if let Err(e) = aggregate(&app.registry).await {
                tracing::warn!("aggregating cluster roles: {}", e.message());
            }
            loop {
                tokio::select! {
                    _ = app.shutdown.cancelled() => return,
                    d = sub.rx.recv() => match d {
                        None => break,
                        Some(Delivery::Bookmark(_)) => continue,
                        Some(Delivery::Event(_)) => {}
                    },
                }
                // Let a burst of changes settle into one pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while sub.rx.try_recv().is_ok() {}
                if let Err(e) = aggregate(&app.registry).await {
                    tracing::warn!("aggregating cluster roles: {}", e.message());
                }
            }
        }
    });
}
