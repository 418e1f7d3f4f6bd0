//! ResourceQuota: a create that would take a namespace past one of its quotas' `hard` limits is
//! refused with upstream's `exceeded quota: …` message; an admitted create records the new
//! usage in the quota's `status.used` (not on a dry run), and a delete gives it back.
//!
//! Usage is computed at admission from the objects the namespace holds (not carried forward
//! from `status.used`), so no quota controller is needed to replenish it. An admitted object
//! is not stored yet when the next admission lists the namespace, so each admission also
//! records its object in the quota's `quota.kox.dev/pending` annotation until it shows up (at
//! most 30 s); the status write is a compare-and-swap on the quota's resourceVersion, and a
//! lost race counts again. Concurrent creates therefore cannot overrun a quota, on one API
//! server or several.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use kox_api::quantity::{Format, Quantity};
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin, forbidden};
use crate::error::{ApiError, ApiResult};
use crate::list::ListQuery;
use crate::registry::{FieldValidation, ObjectRef, Registry, WriteOptions};
use crate::resources::ResourceDef;

/// The ResourceQuota plugin (last in the chain).
pub struct ResourceQuota;

/// Resource name → quantity, ordered (upstream prints them sorted).
pub type Usage = BTreeMap<String, Quantity>;

/// Lost status-write races tolerated before the request is refused with a conflict.
const ATTEMPTS: usize = 16;

/// The annotation on a quota listing admitted objects that may not be stored yet (so a
/// concurrent admission counts them), each for at most [`PENDING_SECONDS`].
pub const PENDING_ANNOTATION: &str = "quota.kox.dev/pending";
/// How long an admitted object counts as pending before it must show in the namespace.
const PENDING_SECONDS: i64 = 30;

fn count(n: i64) -> Quantity {
    Quantity::from_units(n, Format::DecimalSI)
}

fn add(u: &mut Usage, k: &str, q: &Quantity) {
    let sum = match u.get(k) {
        Some(cur) => cur.checked_add(q).unwrap_or_else(|| cur.clone()),
        None => q.clone(),
    };
    u.insert(k.to_string(), sum);
}

fn resources_at(v: &Value, pointer: &str) -> Usage {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, q)| Some((k.clone(), Quantity::parse(q.as_str()?).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// `count/pods`, `count/deployments.apps`: the generic object-count name of a resource.
fn count_name(def: &ResourceDef) -> String {
    if def.group.is_empty() {
        format!("count/{}", def.plural)
    } else {
        format!("count/{}.{}", def.plural, def.group)
    }
}

/// Core resources that are also counted under their bare name (upstream's legacy names).
const LEGACY_COUNTED: &[&str] = &[
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

/// Whether a pod still uses quota: not finished, and not past its deletion grace period.
fn pod_counts(pod: &Value) -> bool {
    if matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    if let Some(ts) = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    {
        let grace = pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if jiff::Timestamp::now().as_second() > ts.as_second() + grace {
            return false;
        }
    }
    true
}

/// A pod's compute totals for `requests` or `limits`: containers summed, the largest init
/// container if that is more.
fn pod_totals(pod: &Value, field: &str) -> Usage {
    let mut total = Usage::new();
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (k, q) in resources_at(c, &format!("/resources/{field}")) {
            add(&mut total, &k, &q);
        }
    }
    for c in pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (k, q) in resources_at(c, &format!("/resources/{field}")) {
            if total.get(&k).is_none_or(|t| t.as_nanos() < q.as_nanos()) {
                total.insert(k, q);
            }
        }
    }
    total
}

/// What one object uses, under every quota resource name that counts it.
pub fn usage_of(def: &ResourceDef, obj: &Value) -> Usage {
    let mut u = Usage::new();
    let core = def.group.is_empty();
    if core && def.plural == "pods" && !pod_counts(obj) {
        return u;
    }
    u.insert(count_name(def), count(1));
    if core && LEGACY_COUNTED.contains(&def.plural) {
        u.insert(def.plural.to_string(), count(1));
    }
    match (core, def.plural) {
        (true, "pods") => {
            for (k, q) in pod_totals(obj, "requests") {
                if matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage") {
                    u.insert(k.clone(), q.clone());
                }
                u.insert(format!("requests.{k}"), q);
            }
            for (k, q) in pod_totals(obj, "limits") {
                u.insert(format!("limits.{k}"), q);
            }
        }
        (true, "services") => {
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if ty == "LoadBalancer" {
                u.insert("services.loadbalancers".into(), count(1));
            }
            if matches!(ty, "NodePort" | "LoadBalancer") {
                let ports = obj
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                u.insert("services.nodeports".into(), count(ports as i64));
            }
        }
        (true, "persistentvolumeclaims") => {
            let storage = resources_at(obj, "/spec/resources/requests")
                .remove("storage")
                .unwrap_or_else(|| count(0));
            u.insert("requests.storage".into(), storage.clone());
            if let Some(class) = obj
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
            {
                let prefix = format!("{class}.storageclass.storage.k8s.io");
                u.insert(format!("{prefix}/requests.storage"), storage);
                u.insert(format!("{prefix}/persistentvolumeclaims"), count(1));
            }
        }
        _ => {}
    }
    u
}

/// Whether a pod is in the quota's scopes (other kinds only match quotas without scopes).
fn in_scope(quota: &Value, def: &ResourceDef, obj: &Value) -> bool {
    let scopes: Vec<&str> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let exprs: Vec<&Value> = quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if scopes.is_empty() && exprs.is_empty() {
        return true;
    }
    if !(def.group.is_empty() && def.plural == "pods") {
        return false;
    }
    let terminating = obj.pointer("/spec/activeDeadlineSeconds").is_some();
    let best_effort = ["containers", "initContainers"].iter().all(|list| {
        obj.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .all(|c| {
                resources_at(c, "/resources/requests").is_empty()
                    && resources_at(c, "/resources/limits").is_empty()
            })
    });
    let class = obj
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let scope_matches = |scope: &str, op: &str, values: &[&str]| -> bool {
        let base = match scope {
            "Terminating" => terminating,
            "NotTerminating" => !terminating,
            "BestEffort" => best_effort,
            "NotBestEffort" => !best_effort,
            "PriorityClass" => {
                return match op {
                    "In" => values.contains(&class),
                    "NotIn" => !values.contains(&class),
                    "Exists" => !class.is_empty(),
                    "DoesNotExist" => class.is_empty(),
                    _ => false,
                };
            }
            _ => return false,
        };
        match op {
            "DoesNotExist" => !base,
            _ => base,
        }
    };
    scopes.iter().all(|s| scope_matches(s, "Exists", &[]))
        && exprs.iter().all(|e| {
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            scope_matches(
                e.get("scopeName").and_then(Value::as_str).unwrap_or(""),
                e.get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or("Exists"),
                &values,
            )
        })
}

/// `cpu=1,pods=2`, as upstream's `prettyPrint`.
fn pretty(u: &Usage) -> String {
    u.iter()
        .map(|(k, q)| format!("{k}={q}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Compute resources every container must state when a quota limits them (upstream's
/// backward-compatibility rule).
const MUST_SPECIFY: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// `must specify limits.cpu for: a,b; requests.memory for: a`, or `None` when every container
/// states what the quota limits.
fn missing_compute(hard: &Usage, pod: &Value) -> Option<String> {
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for list in ["containers", "initContainers"] {
        for c in pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let requests = resources_at(c, "/resources/requests");
            let limits = resources_at(c, "/resources/limits");
            for name in MUST_SPECIFY.iter().filter(|n| hard.contains_key(**n)) {
                let present = match name.split_once('.') {
                    Some(("limits", r)) => limits.contains_key(r),
                    Some((_, r)) => requests.contains_key(r),
                    None => requests.contains_key(*name),
                };
                if !present {
                    let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
                    missing.entry(name).or_default().push(cname.to_string());
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(r, mut names)| {
            names.sort();
            names.dedup();
            format!("{r} for: {}", names.join(","))
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// The resource whose objects a quota resource name counts.
fn counted_resource(name: &str) -> Option<&'static ResourceDef> {
    let core = |plural: &str| crate::resources::find("", "v1", plural);
    if let Some(rest) = name.strip_prefix("count/") {
        let (plural, group) = rest.split_once('.').unwrap_or((rest, ""));
        return crate::resources::RESOURCES
            .iter()
            .find(|d| d.plural == plural && d.group == group && !d.read_only);
    }
    if LEGACY_COUNTED.contains(&name) {
        return core(name);
    }
    if name.starts_with("services.") {
        return core("services");
    }
    if name == "requests.storage" || name.contains(".storageclass.storage.k8s.io/") {
        return core("persistentvolumeclaims");
    }
    let compute = ["cpu", "memory", "ephemeral-storage"];
    let base = name
        .strip_prefix("requests.")
        .or_else(|| name.strip_prefix("limits."))
        .unwrap_or(name);
    if compute.contains(&base) || base.starts_with("hugepages-") {
        return core("pods");
    }
    None
}

/// The namespace's current usage of `keys` under `quota`, from the objects it holds, and the
/// objects counted (`<resource>/<name>`), by the resources listed.
async fn live_usage(
    reg: &Registry,
    ns: &str,
    quota: &Value,
    keys: &[String],
) -> ApiResult<(Usage, BTreeSet<String>, BTreeSet<String>)> {
    let mut by_resource: BTreeMap<String, (&'static ResourceDef, Vec<String>)> = BTreeMap::new();
    for k in keys {
        if let Some(def) = counted_resource(k) {
            by_resource
                .entry(def.qualified())
                .or_insert_with(|| (def, Vec::new()))
                .1
                .push(k.clone());
        }
    }
    let mut used = Usage::new();
    for k in keys {
        used.insert(k.clone(), count(0));
    }
    let mut seen = BTreeSet::new();
    let listed: BTreeSet<String> = by_resource.keys().cloned().collect();
    for (def, wanted) in by_resource.into_values() {
        let objects = reg
            .list(def, Some(ns), &ListQuery::default())
            .await?
            .into_owned();
        for obj in objects.iter().filter(|o| in_scope(quota, def, o)) {
            seen.insert(pending_key(def, obj));
            let u = usage_of(def, obj);
            for k in &wanted {
                if let Some(q) = u.get(k) {
                    add(&mut used, k, q);
                }
            }
        }
    }
    Ok((used, seen, listed))
}

/// `configmaps/name`, `deployments.apps/name`: how pending admissions name their object.
fn pending_key(def: &ResourceDef, obj: &Value) -> String {
    format!(
        "{}/{}",
        def.qualified(),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// The admissions a quota records as possibly not stored yet: key → (admitted at, usage).
fn pending_of(quota: &Value) -> BTreeMap<String, (i64, Usage)> {
    quota
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(PENDING_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v.as_object().cloned())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| {
                    let at = v.get("at")?.as_i64()?;
                    Some((k, (at, resources_at(&v, "/usage"))))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pending_json(p: &BTreeMap<String, (i64, Usage)>) -> String {
    let m: serde_json::Map<String, Value> = p
        .iter()
        .map(|(k, (at, u))| (k.clone(), json!({ "at": at, "usage": to_json(u) })))
        .collect();
    Value::Object(m).to_string()
}

fn quotas_def() -> &'static ResourceDef {
    crate::resources::find("", "v1", "resourcequotas").expect("served")
}

#[async_trait]
impl Plugin for ResourceQuota {
    fn name(&self) -> &'static str {
        "ResourceQuota"
    }

    /// A new or changed quota gets its `status` computed (hard from the spec, used from what
    /// the namespace holds), so `kubectl describe quota` is right at once.
    async fn admit(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !a.is_main("", "resourcequotas")
            || !matches!(a.operation, Operation::Create | Operation::Update)
        {
            return Ok(());
        }
        let creating = a.operation == Operation::Create;
        let (Some(ns), Some(quota)) = (a.namespace, a.object.as_ref()) else {
            return Ok(());
        };
        let hard = resources_at(quota, "/spec/hard");
        let mut keys: Vec<String> = hard.keys().cloned().collect();
        keys.retain(|k| k != "resourcequotas" && k != "count/resourcequotas");
        let (mut used, _, _) = live_usage(reg, ns, quota, &keys).await?;
        // This quota is one of the namespace's quotas too.
        for k in ["resourcequotas", "count/resourcequotas"] {
            if hard.contains_key(k) {
                let (others, _, _) = live_usage(reg, ns, quota, &[k.to_string()]).await?;
                let n = others.get(k).map_or(0, Quantity::value) + i64::from(creating);
                used.insert(k.to_string(), count(n));
            }
        }
        let status = json!({ "hard": quota.pointer("/spec/hard").cloned().unwrap_or(json!({})), "used": to_json(&used) });
        if let Some(q) = a.object.as_mut() {
            q["status"] = status;
        }
        Ok(())
    }

    async fn validate(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if a.operation == Operation::Delete && a.subresource.is_none() && !a.dry_run {
            return release(reg, a).await;
        }
        if a.operation != Operation::Create || a.subresource.is_some() {
            return Ok(());
        }
        let (Some(ns), Some(obj)) = (a.namespace, a.object.as_ref()) else {
            return Ok(());
        };
        let delta = usage_of(a.def, obj);
        if delta.is_empty() {
            return Ok(());
        }
        let now = jiff::Timestamp::now().as_second();
        let me = pending_key(a.def, obj);
        'attempt: for _ in 0..ATTEMPTS {
            let quotas = reg
                .list(quotas_def(), Some(ns), &ListQuery::default())
                .await?
                .items;
            let mut writes = Vec::new();
            for quota in quotas.iter().filter(|q| in_scope(q, a.def, obj)) {
                let qname = quota
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let hard = resources_at(quota, "/spec/hard");
                if a.def.group.is_empty()
                    && a.def.plural == "pods"
                    && let Some(why) = missing_compute(&hard, obj)
                {
                    return Err(forbidden(a, &format!("failed quota: {qname}: {why}")));
                }
                let keys: Vec<String> = delta
                    .keys()
                    .filter(|k| hard.contains_key(*k))
                    .cloned()
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                let (mut used, seen, listed) = live_usage(reg, ns, quota, &keys).await?;
                // Admissions recorded on the quota whose objects are not stored yet count too;
                // those stored (or older than the pending window) are dropped.
                let mut pending = pending_of(quota);
                pending.retain(|key, (at, _)| {
                    let resource = key.rsplit_once('/').map_or("", |(r, _)| r);
                    now - *at <= PENDING_SECONDS
                        && !(listed.contains(resource) && seen.contains(key))
                        && *key != me
                });
                for (_, u) in pending.values() {
                    for k in &keys {
                        if let Some(q) = u.get(k) {
                            add(&mut used, k, q);
                        }
                    }
                }
                let mut exceeded = Vec::new();
                let mut new_used = used.clone();
                for k in &keys {
                    add(&mut new_used, k, &delta[k]);
                    if new_used[k].as_nanos() > hard[k].as_nanos() {
                        exceeded.push(k.clone());
                    }
                }
                if !exceeded.is_empty() {
                    let mask = |u: &Usage| -> Usage {
                        exceeded
                            .iter()
                            .filter_map(|k| Some((k.clone(), u.get(k)?.clone())))
                            .collect()
                    };
                    return Err(forbidden(
                        a,
                        &format!(
                            "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                            pretty(&mask(&delta)),
                            pretty(&mask(&used)),
                            pretty(&mask(&hard))
                        ),
                    ));
                }
                let mine: Usage = keys.iter().map(|k| (k.clone(), delta[k].clone())).collect();
                pending.insert(me.clone(), (now, mine));
                writes.push((quota.clone(), new_used, pending));
            }
            if a.dry_run {
                return Ok(());
            }
            for (quota, new_used, pending) in writes {
                match write_used(reg, ns, &quota, &new_used, &pending).await {
                    Ok(()) => {}
                    // Another admission recorded usage first: count again with it.
                    Err(e) if e.code() == 409 => continue 'attempt,
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        Err(ApiError::new(
            409,
            "Conflict",
            "Operation cannot be fulfilled on resourcequotas: too many concurrent updates of the namespace's quotas; try again",
        ))
    }
}

/// A deleted object gives its quota back at once (upstream's quota controller replenishes on
/// deletions): every quota that counts it is recomputed without it, and its pending entry (it
/// was stored, or it would not be deleted) is dropped.
async fn release(reg: &Registry, a: &Attributes<'_>) -> ApiResult<()> {
    let (Some(ns), Some(old)) = (a.namespace, a.old_object.as_ref()) else {
        return Ok(());
    };
    let key = pending_key(a.def, old);
    let usage = usage_of(a.def, old);
    let now = jiff::Timestamp::now().as_second();
    for _ in 0..ATTEMPTS {
        let quotas = reg
            .list(quotas_def(), Some(ns), &ListQuery::default())
            .await?
            .items;
        let mut lost = false;
        for quota in &quotas {
            let mut pending = pending_of(quota);
            let was_pending = pending.remove(&key).is_some();
            let hard = resources_at(quota, "/spec/hard");
            let keys: Vec<String> = usage
                .keys()
                .filter(|k| hard.contains_key(*k))
                .cloned()
                .collect();
            if !was_pending && (keys.is_empty() || !in_scope(quota, a.def, old)) {
                continue;
            }
            let (mut used, seen, listed) = live_usage(reg, ns, quota, &keys).await?;
            if seen.contains(&key) {
                for k in &keys {
                    if let (Some(u), Some(q)) = (used.get(k), usage.get(k)) {
                        let less = u.checked_sub(q).unwrap_or_else(|| u.clone());
                        used.insert(k.clone(), less);
                    }
                }
            }
            pending.retain(|p, (at, _)| {
                let resource = p.rsplit_once('/').map_or("", |(r, _)| r);
                now - *at <= PENDING_SECONDS && !(listed.contains(resource) && seen.contains(p))
            });
            for (_, u) in pending.values() {
                for k in &keys {
                    if let Some(q) = u.get(k) {
                        add(&mut used, k, q);
                    }
                }
            }
            match write_used(reg, ns, quota, &used, &pending).await {
                Ok(()) => {}
                Err(e) if e.code() == 409 => {
                    lost = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !lost {
            return Ok(());
        }
    }
    Ok(())
}

fn to_json(u: &Usage) -> Value {
    Value::Object(
        u.iter()
            .map(|(k, q)| (k.clone(), Value::String(q.to_string())))
            .collect(),
    )
}

/// Writes `status.used` (merged over what the quota already records) and `status.hard`, pinned
/// to the resourceVersion the check read: a 409 means another request recorded usage first.
async fn write_used(
    reg: &Registry,
    ns: &str,
    quota: &Value,
    used: &Usage,
    pending: &BTreeMap<String, (i64, Usage)>,
) -> ApiResult<()> {
    let name = quota
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut new = quota.clone();
    let mut merged = new
        .pointer("/status/used")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, q) in used {
        merged.insert(k.clone(), Value::String(q.to_string()));
    }
    new["status"] = json!({
        "hard": quota.pointer("/spec/hard").cloned().unwrap_or(json!({})),
        "used": merged,
    });
    let meta = crate::meta::metadata_mut(&mut new);
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    if let Some(m) = annotations.as_object_mut() {
        if pending.is_empty() {
            m.remove(PENDING_ANNOTATION);
        } else {
            m.insert(PENDING_ANNOTATION.into(), json!(pending_json(pending)));
        }
        if m.is_empty() {
            meta.remove("annotations");
        }
    }
    let opts = WriteOptions {
        dry_run: false,
        field_validation: FieldValidation::Ignore,
        user: None,
        requested: None,
    };
    reg.update_with(
        ObjectRef {
            def: quotas_def(),
            namespace: Some(ns),
            name,
        },
        Some("status"),
        opts,
        |_current| Ok((new.clone(), Vec::new())),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::testing;

    fn pods() -> &'static ResourceDef {
        crate::resources::find("", "v1", "pods").unwrap()
    }

    fn pod(name: &str, cpu: Option<&str>) -> Value {
        let resources = match cpu {
            Some(c) => json!({"requests": {"cpu": c}, "limits": {"cpu": c}}),
            None => json!({}),
        };
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "ns"},
               "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]}})
    }

    async fn quota(reg: &Registry, hard: Value) {
        testing::put(
            reg,
            "resourcequotas",
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
                   "metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": hard}}),
        )
        .await;
    }

    async fn check(reg: &Registry, obj: Value, dry_run: bool) -> ApiResult<()> {
        let mut a = Attributes::new(Operation::Create, pods(), Some("ns"));
        a.object = Some(obj);
        a.dry_run = dry_run;
        ResourceQuota.validate(reg, &mut a).await
    }

    async fn used(reg: &Registry) -> Value {
        reg.get(ObjectRef {
            def: quotas_def(),
            namespace: Some("ns"),
            name: "q",
        })
        .await
        .unwrap()["status"]["used"]
            .clone()
    }

    #[tokio::test]
    async fn exceeding_a_count_is_forbidden_with_upstreams_message() {
        let (reg, _dir) = testing::registry().await;
        quota(&reg, json!({"pods": "1"})).await;
        check(&reg, pod("a", None), false).await.unwrap();
        assert_eq!(used(&reg).await, json!({"pods": "1"}));
        testing::put(&reg, "pods", pod("a", None)).await;
        let err = check(&reg, pod("b", None), false).await.unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.message(),
            "pods \"b\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"
        );
    }

    #[tokio::test]
    async fn compute_quota_requires_and_sums_requests() {
        let (reg, _dir) = testing::registry().await;
        quota(&reg, json!({"requests.cpu": "1", "limits.cpu": "1"})).await;
        let err = check(&reg, pod("a", None), false).await.unwrap_err();
        assert_eq!(
            err.message(),
            "pods \"a\" is forbidden: failed quota: q: must specify limits.cpu for: c; requests.cpu for: c"
        );
        testing::put(&reg, "pods", pod("a", Some("600m"))).await;
        let err = check(&reg, pod("b", Some("500m")), false)
            .await
            .unwrap_err();
        assert_eq!(
            err.message(),
            "pods \"b\" is forbidden: exceeded quota: q, requested: limits.cpu=500m,requests.cpu=500m, used: limits.cpu=600m,requests.cpu=600m, limited: limits.cpu=1,requests.cpu=1"
        );
        check(&reg, pod("b", Some("400m")), false).await.unwrap();
        assert_eq!(
            used(&reg).await,
            json!({"limits.cpu": "1", "requests.cpu": "1"})
        );
    }

    #[tokio::test]
    async fn a_dry_run_is_checked_but_records_nothing() {
        let (reg, _dir) = testing::registry().await;
        quota(&reg, json!({"pods": "2"})).await;
        check(&reg, pod("a", None), true).await.unwrap();
        assert_eq!(used(&reg).await, Value::Null);
    }

    #[tokio::test]
    async fn scopes_select_pods() {
        let (reg, _dir) = testing::registry().await;
        testing::put(
            &reg,
            "resourcequotas",
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
                   "metadata": {"name": "q", "namespace": "ns"},
                   "spec": {"hard": {"pods": "0"}, "scopes": ["NotBestEffort"]}}),
        )
        .await;
        check(&reg, pod("free", None), false).await.unwrap();
        assert!(check(&reg, pod("paid", Some("1")), false).await.is_err());
    }

    #[test]
    fn finished_pods_use_nothing() {
        let mut p = pod("a", Some("1"));
        assert_eq!(usage_of(pods(), &p)["requests.cpu"].to_string(), "1");
        p["status"] = json!({"phase": "Succeeded"});
        assert!(usage_of(pods(), &p).is_empty());
    }
}
