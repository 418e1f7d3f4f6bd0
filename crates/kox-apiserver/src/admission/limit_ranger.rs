//! LimitRanger: the LimitRanges of a namespace default the requests and limits of new pods'
//! containers (`defaultRequest`, `default`), and bound containers, pods and claims (`min`,
//! `max`, `maxLimitRequestRatio`), with upstream's messages.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kox_api::quantity::Quantity;
use serde_json::{Map, Value, json};

use super::{Attributes, Operation, Plugin, forbidden};
use crate::error::ApiResult;
use crate::list::ListQuery;
use crate::registry::Registry;

/// The annotation naming what the plugin defaulted.
pub const LIMIT_RANGER_ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The LimitRanger plugin.
pub struct LimitRanger;

/// A resource list (`{"cpu": "100m"}`) as parsed quantities.
type Resources = BTreeMap<String, Quantity>;

fn resources_at(v: &Value, pointer: &str) -> Resources {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, q)| Some((k.clone(), Quantity::parse(q.as_str()?).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the request is one LimitRanger looks at: creates of pods, creates and updates of
/// claims (containers cannot change after creation).
fn supports(a: &Attributes<'_>) -> bool {
    a.subresource.is_none()
        && a.def.group.is_empty()
        && match a.def.plural {
            "pods" => a.operation == Operation::Create,
            "persistentvolumeclaims" => {
                matches!(a.operation, Operation::Create | Operation::Update)
            }
            _ => false,
        }
}

async fn limit_ranges(reg: &Registry, ns: &str) -> ApiResult<Vec<Value>> {
    let def = crate::resources::find("", "v1", "limitranges").expect("served");
    let cached = reg.lister_list(def, Some(ns)).await?;
    if cached.is_empty() {
        // As upstream's live lookup: a LimitRange created a moment ago may not be cached yet.
        return Ok(reg
            .list(def, Some(ns), &ListQuery::default())
            .await?
            .into_owned());
    }
    Ok(cached.iter().map(|v| Value::clone(v)).collect())
}

/// The items of the LimitRanges of one type (`Container`, `Pod`, `PersistentVolumeClaim`).
fn items<'v>(ranges: &'v [Value], ty: &'v str) -> impl Iterator<Item = &'v Value> + 'v {
    ranges
        .iter()
        .flat_map(|r| {
            r.pointer("/spec/limits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(move |i| i.get("type").and_then(Value::as_str) == Some(ty))
}

#[async_trait]
impl Plugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    async fn admit(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !supports(a) || a.def.plural != "pods" {
            return Ok(());
        }
        let Some(ns) = a.namespace else {
            return Ok(());
        };
        let ranges = limit_ranges(reg, ns).await?;
        if ranges.is_empty() {
            return Ok(());
        }
        if let Some(pod) = a.object.as_mut() {
            apply_defaults(&ranges, pod);
        }
        Ok(())
    }

    async fn validate(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !supports(a) {
            return Ok(());
        }
        let Some(ns) = a.namespace else {
            return Ok(());
        };
        let Some(obj) = a.object.as_ref() else {
            return Ok(());
        };
        let ranges = limit_ranges(reg, ns).await?;
        let errs = if a.def.plural == "pods" {
            check_pod(&ranges, obj)
        } else {
            check_claim(&ranges, obj)
        };
        match errs.len() {
            0 => Ok(()),
            1 => Err(forbidden(a, &errs[0])),
            _ => Err(forbidden(a, &format!("[{}]", errs.join(", ")))),
        }
    }
}

/// The container defaults of all Container items: `(requests, limits)`.
fn container_defaults(ranges: &[Value]) -> (Map<String, Value>, Map<String, Value>) {
    let mut requests = Map::new();
    let mut limits = Map::new();
    for item in items(ranges, "Container") {
        if let Some(m) = item.get("defaultRequest").and_then(Value::as_object) {
            requests.extend(m.clone());
        }
        if let Some(m) = item.get("default").and_then(Value::as_object) {
            limits.extend(m.clone());
        }
    }
    (requests, limits)
}

/// Fills missing container requests and limits from the defaults and records what was set
/// in the `kubernetes.io/limit-ranger` annotation.
fn apply_defaults(ranges: &[Value], pod: &mut Value) {
    let (requests, limits) = container_defaults(ranges);
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (list, prefix) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(containers) = pod
            .get_mut("spec")
            .and_then(|s| s.get_mut(list))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            let cname = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !c.get("resources").is_some_and(Value::is_object) {
                c["resources"] = json!({});
            }
            let mut set = |field: &str, defaults: &Map<String, Value>| -> Vec<String> {
                let mut added = Vec::new();
                if defaults.is_empty() {
                    return added;
                }
                let res = &mut c["resources"];
                if !res.get(field).is_some_and(Value::is_object) {
                    res[field] = json!({});
                }
                let Some(m) = res[field].as_object_mut() else {
                    return added;
                };
                for (k, v) in defaults {
                    if !m.contains_key(k) {
                        m.insert(k.clone(), v.clone());
                        added.push(k.clone());
                    }
                }
                if m.is_empty() {
                    res.as_object_mut().map(|r| r.remove(field));
                }
                added.sort();
                added
            };
            let set_limits = set("limits", &limits);
            let set_requests = set("requests", &requests);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {prefix} {cname}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!(
                    "{} limit for {prefix} {cname}",
                    set_limits.join(", ")
                ));
            }
        }
    }
    if !notes.is_empty() {
        let meta = crate::meta::metadata_mut(pod);
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        if !ann.is_object() {
            *ann = json!({});
        }
        ann[LIMIT_RANGER_ANNOTATION] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

/// Upstream compares CPU-like values in milli-units and large ones in units; nanos cover both.
fn cmp_value(q: &Quantity) -> i128 {
    q.as_nanos()
}

fn min_constraint(
    ty: &str,
    res: &str,
    enforced: &Quantity,
    req: &Resources,
    lim: &Resources,
) -> Option<String> {
    let Some(r) = req.get(res) else {
        return Some(format!(
            "minimum {res} usage per {ty} is {enforced}.  No request is specified"
        ));
    };
    if cmp_value(r) < cmp_value(enforced) {
        return Some(format!(
            "minimum {res} usage per {ty} is {enforced}, but request is {r}"
        ));
    }
    if let Some(l) = lim.get(res).filter(|l| cmp_value(l) < cmp_value(enforced)) {
        return Some(format!(
            "minimum {res} usage per {ty} is {enforced}, but limit is {l}"
        ));
    }
    None
}

fn max_constraint(
    ty: &str,
    res: &str,
    enforced: &Quantity,
    req: &Resources,
    lim: &Resources,
) -> Option<String> {
    let Some(l) = lim.get(res) else {
        return Some(format!(
            "maximum {res} usage per {ty} is {enforced}.  No limit is specified"
        ));
    };
    if cmp_value(l) > cmp_value(enforced) {
        return Some(format!(
            "maximum {res} usage per {ty} is {enforced}, but limit is {l}"
        ));
    }
    if let Some(r) = req.get(res).filter(|r| cmp_value(r) > cmp_value(enforced)) {
        return Some(format!(
            "maximum {res} usage per {ty} is {enforced}, but request is {r}"
        ));
    }
    None
}

fn ratio_constraint(
    ty: &str,
    res: &str,
    enforced: &Quantity,
    req: &Resources,
    lim: &Resources,
) -> Option<String> {
    let r = req.get(res).map(cmp_value).unwrap_or(0);
    if r == 0 {
        return Some(format!(
            "{res} max limit to request ratio per {ty} is {enforced}, but no request is specified or request is 0"
        ));
    }
    let l = lim.get(res).map(cmp_value).unwrap_or(0);
    if l == 0 {
        return Some(format!(
            "{res} max limit to request ratio per {ty} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let observed = l as f64 / r as f64;
    let max = cmp_value(enforced) as f64 / 1e9;
    if observed > max + 1e-9 {
        return Some(format!(
            "{res} max limit to request ratio per {ty} is {enforced}, but provided ratio is {observed:.6}"
        ));
    }
    None
}

/// Checks `min`, `max` and `maxLimitRequestRatio` of one item against requests and limits.
fn check_item(item: &Value, ty: &str, req: &Resources, lim: &Resources, errs: &mut Vec<String>) {
    type Check = fn(&str, &str, &Quantity, &Resources, &Resources) -> Option<String>;
    let checks: [(&str, Check); 3] = [
        ("min", min_constraint),
        ("max", max_constraint),
        ("maxLimitRequestRatio", ratio_constraint),
    ];
    for (field, check) in checks {
        for (res, enforced) in resources_at(item, &format!("/{field}")) {
            if let Some(e) = check(ty, &res, &enforced, req, lim) {
                errs.push(e);
            }
        }
    }
}

fn check_pod(ranges: &[Value], pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let containers = |list: &str| -> Vec<Value> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (app, init) = (containers("containers"), containers("initContainers"));
    for item in items(ranges, "Container") {
        for c in app.iter().chain(init.iter()) {
            let req = resources_at(c, "/resources/requests");
            let lim = resources_at(c, "/resources/limits");
            check_item(item, "Container", &req, &lim, &mut errs);
        }
    }
    let pod_items: Vec<&Value> = items(ranges, "Pod").collect();
    if !pod_items.is_empty() {
        let (req, lim) = (
            pod_total(&app, &init, "requests"),
            pod_total(&app, &init, "limits"),
        );
        for item in pod_items {
            check_item(item, "Pod", &req, &lim, &mut errs);
        }
    }
    errs
}

/// A pod's total of one resource field: the sum over its containers, or the largest init
/// container if that is more (init containers run one at a time).
fn pod_total(app: &[Value], init: &[Value], field: &str) -> Resources {
    let mut total: Resources = BTreeMap::new();
    for c in app {
        for (k, q) in resources_at(c, &format!("/resources/{field}")) {
            match total.get(&k).and_then(|t| t.checked_add(&q)) {
                Some(sum) => total.insert(k, sum),
                None => total.insert(k, q),
            };
        }
    }
    for c in init {
        for (k, q) in resources_at(c, &format!("/resources/{field}")) {
            if total.get(&k).is_none_or(|t| t.as_nanos() < q.as_nanos()) {
                total.insert(k, q);
            }
        }
    }
    total
}

fn check_claim(ranges: &[Value], pvc: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let req = resources_at(pvc, "/spec/resources/requests");
    let lim = resources_at(pvc, "/spec/resources/limits");
    for item in items(ranges, "PersistentVolumeClaim") {
        for (res, enforced) in resources_at(item, "/min") {
            if let Some(e) = min_constraint("PersistentVolumeClaim", &res, &enforced, &req, &lim) {
                errs.push(e);
            }
        }
        for (res, enforced) in resources_at(item, "/max") {
            // A claim need not state a limit: its request is what is bounded.
            let r = req.get(&res);
            if let Some(r) = r.filter(|r| r.as_nanos() > enforced.as_nanos()) {
                errs.push(format!(
                    "maximum {res} usage per PersistentVolumeClaim is {enforced}, but request is {r}"
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Vec<Value> {
        vec![json!({"spec": {"limits": limits}})]
    }

    #[test]
    fn defaults_fill_only_what_a_container_lacks_and_are_annotated() {
        let ranges = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "x"},
            {"name": "b", "image": "x", "resources": {"limits": {"cpu": "1"}}},
        ]}});
        apply_defaults(&ranges, &mut pod);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
        );
        assert_eq!(
            pod["spec"]["containers"][1]["resources"]["limits"]["cpu"],
            "1"
        );
        assert_eq!(
            pod["metadata"]["annotations"][LIMIT_RANGER_ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; cpu, memory request for container b; memory limit for container b"
        );
    }

    #[test]
    fn min_max_and_ratio_are_checked_with_upstreams_messages() {
        let ranges = range(json!([{"type": "Container",
            "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "2"}}]));
        let pod = json!({"spec": {"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "50m"}, "limits": {"cpu": "200m", "memory": "2Gi"}}}]}});
        assert_eq!(
            check_pod(&ranges, &pod),
            vec![
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum memory usage per Container is 1Gi, but limit is 2Gi",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
            ]
        );
        let ok = json!({"spec": {"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "1Gi"}}}]}});
        assert!(check_pod(&ranges, &ok).is_empty());
        let none = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            check_pod(&ranges, &none)[0],
            "minimum cpu usage per Container is 100m.  No request is specified"
        );
    }

    #[test]
    fn pod_and_claim_items_bound_totals() {
        let ranges = range(json!([
            {"type": "Pod", "max": {"cpu": "1"}},
            {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "5Gi"}},
        ]));
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "600m"}}},
            {"name": "b", "resources": {"limits": {"cpu": "600m"}}},
        ]}});
        assert_eq!(
            check_pod(&ranges, &pod),
            vec!["maximum cpu usage per Pod is 1, but limit is 1200m"]
        );
        let pvc = json!({"spec": {"resources": {"requests": {"storage": "10Gi"}}}});
        assert_eq!(
            check_claim(&ranges, &pvc),
            vec!["maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi"]
        );
    }
}
