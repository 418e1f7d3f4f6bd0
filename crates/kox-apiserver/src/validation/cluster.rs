//! The other groups: events.k8s.io, policy, scheduling, storage, coordination and autoscaling.

use serde_json::{Map, Value, json};

use super::core::new_style_event_fields;
use super::{
    FieldError, FieldErrors, child, cluster_meta, field_str, immutable, items,
    name_is_path_segment, namespaced_meta, nonnegative, p, positive_int_or_percent, selector_at,
    set_default,
};
use crate::strategy::str_at;
use kox_api::field::BadValue;

// ---- events.k8s.io -------------------------------------------------------------------------------

/// Upstream's `ValidateEventCreate` for `events.k8s.io/v1`: the legacy rules, then the strict
/// ones (event time, type, series; the deprecated fields unset).
pub fn events_v1(v: &Value) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let ns = str_at(v, "metadata.namespace").unwrap_or("");
    let regarding_ns = str_at(v, "regarding.namespace").unwrap_or("");
    if regarding_ns.is_empty() && ns != "default" && ns != "kube-system" {
        errs.push(FieldError::invalid(
            &p("involvedObject.namespace"),
            regarding_ns,
            "does not match event.namespace",
        ));
    }
    new_style_event_fields(v, "reportingController", "note", &mut errs);
    errs.extend(namespaced_meta(v));
    if let Some(series) = v.get("series").filter(|x| !x.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errs.push(FieldError::invalid(
                &p("series.count"),
                "",
                "should be at least 2",
            ));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            errs.push(FieldError::required(&p("series.lastObservedTime"), ""));
        }
    }
    if v.get("eventTime").is_none_or(Value::is_null) {
        errs.push(FieldError::required(&p("eventTime"), ""));
    }
    let ty = str_at(v, "type").unwrap_or("");
    if ty != "Normal" && ty != "Warning" {
        errs.push(FieldError::invalid(
            &p("type"),
            "",
            format!("has invalid value: {ty}"),
        ));
    }
    for (k, path) in [
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
    ] {
        if v.get(k).is_some_and(|x| !x.is_null()) {
            errs.push(FieldError::invalid(&p(path), "", "needs to be unset"));
        }
    }
    if v.get("deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0
    {
        errs.push(FieldError::invalid(&p("count"), "", "needs to be unset"));
    }
    let source = v.get("deprecatedSource");
    if source.is_some_and(|src| {
        !field_str(src, "component").is_empty() || !field_str(src, "host").is_empty()
    }) {
        errs.push(FieldError::invalid(&p("source"), "", "needs to be unset"));
    }
    errs
}

/// Upstream's `ValidateEventUpdate` for `events.k8s.io/v1`: what the event says is fixed.
pub fn events_v1_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = events_v1(new);
    for (ptr, path) in [
        ("/regarding", "involvedObject"),
        ("/reason", "reason"),
        ("/note", "message"),
        ("/deprecatedSource", "source"),
        ("/deprecatedFirstTimestamp", "firstTimestamp"),
        ("/action", "action"),
        ("/related", "related"),
        ("/reportingController", "reportingController"),
        ("/reportingInstance", "reportingInstance"),
        ("/type", "type"),
        ("/eventTime", "eventTime"),
    ] {
        immutable(new, old, ptr, path, &mut errs);
    }
    errs
}

// ---- policy --------------------------------------------------------------------------------------

/// Upstream's `ValidatePodDisruptionBudgetSpec`: one bound of the two, each an integer or a
/// percentage up to 100%.
pub fn pdb(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    let min = v.pointer("/spec/minAvailable").filter(|x| !x.is_null());
    let max = v.pointer("/spec/maxUnavailable").filter(|x| !x.is_null());
    if min.is_some() && max.is_some() {
        let show = |x: Option<&Value>| match x {
            Some(Value::String(s)) => format!("{s:?}"),
            Some(other) => other.to_string(),
            None => "nil".into(),
        };
        errs.push(FieldError::invalid(
            &p("spec"),
            BadValue::Raw(format!(
                "policy.PodDisruptionBudgetSpec{{MinAvailable:{}, MaxUnavailable:{}}}",
                show(min),
                show(max)
            )),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    positive_int_or_percent(v, "/spec/minAvailable", "spec.minAvailable", &mut errs);
    positive_int_or_percent(v, "/spec/maxUnavailable", "spec.maxUnavailable", &mut errs);
    selector_at(v, "/spec/selector", "spec.selector", &mut errs);
    if let Some(policy) = str_at(v, "spec.unhealthyPodEvictionPolicy")
        && policy != "AlwaysAllow"
        && policy != "IfHealthyBudget"
    {
        errs.push(FieldError::not_supported(
            &p("spec.unhealthyPodEvictionPolicy"),
            policy,
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
    errs
}

pub fn pdb_update(new: &Value, _old: &Value) -> FieldErrors {
    pdb(new)
}

// ---- scheduling ----------------------------------------------------------------------------------

pub fn priority_class_defaults(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

/// The system priority classes upstream creates: name, value, global default.
const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, bool)] = &[
    ("system-node-critical", 2_000_001_000, false),
    ("system-cluster-critical", 2_000_000_000, false),
];

/// Upstream's `ValidatePriorityClass`: user values up to one billion, `system-` names reserved.
pub fn priority_class(v: &Value) -> FieldErrors {
    let mut errs = cluster_meta(v);
    let name = str_at(v, "metadata.name").unwrap_or("");
    let value = v.get("value").and_then(Value::as_i64).unwrap_or(0);
    let global = v
        .get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if name.starts_with("system-") {
        let problem = match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, ..)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((n, want, _)) if *want != value => {
                Some(format!("value of {n} PriorityClass must be {want}"))
            }
            Some((n, _, want)) if *want != global => {
                Some(format!("globalDefault of {n} PriorityClass must be {want}"))
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            errs.push(FieldError::forbidden(
                &p("metadata.name"),
                format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {problem}"
                ),
            ));
        }
    } else if value > 1_000_000_000 {
        errs.push(FieldError::forbidden(
            &p("value"),
            "maximum allowed value of a user defined priority is 1000000000",
        ));
    }
    if let Some(policy) = str_at(v, "preemptionPolicy")
        && policy != "PreemptLowerPriority"
        && policy != "Never"
    {
        errs.push(FieldError::not_supported(
            &p("preemptionPolicy"),
            policy,
            &["PreemptLowerPriority", "Never"],
        ));
    }
    errs
}

/// Upstream's `ValidatePriorityClassUpdate`: value and preemption policy are fixed.
pub fn priority_class_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = cluster_meta(new);
    if new.get("value") != old.get("value") {
        errs.push(FieldError::forbidden(
            &p("value"),
            "may not be changed in an update.",
        ));
    }
    immutable(new, old, "/preemptionPolicy", "preemptionPolicy", &mut errs);
    errs
}

// ---- storage -------------------------------------------------------------------------------------

pub fn storage_class_defaults(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        set_default(m, "reclaimPolicy", json!("Delete"));
        set_default(m, "volumeBindingMode", json!("Immediate"));
    }
}

/// Upstream's `ValidateStorageClass`: a provisioner, bounded parameters and supported
/// policies.
pub fn storage_class(v: &Value) -> FieldErrors {
    let mut errs = cluster_meta(v);
    match str_at(v, "provisioner").unwrap_or("") {
        "" => errs.push(FieldError::required(&p("provisioner"), "")),
        prov => {
            for msg in kox_api::validation::is_qualified_name(&prov.to_lowercase()) {
                errs.push(FieldError::invalid(&p("provisioner"), prov, msg));
            }
        }
    }
    let params = v.get("parameters").and_then(Value::as_object);
    if params.is_some_and(|m| m.len() > 512) {
        errs.push(FieldError::too_long(&p("parameters"), 512));
    } else {
        let mut total = 0;
        for (k, val) in params.into_iter().flatten() {
            if k.is_empty() {
                errs.push(FieldError::invalid(
                    &p("parameters"),
                    "",
                    "field can not be empty.",
                ));
            }
            total += k.len() + val.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldError::too_long(&p("parameters"), 256 * 1024));
        }
    }
    if let Some(policy) = str_at(v, "reclaimPolicy").filter(|s| !s.is_empty())
        && policy != "Delete"
        && policy != "Retain"
    {
        errs.push(FieldError::not_supported(
            &p("reclaimPolicy"),
            policy,
            &["Delete", "Retain"],
        ));
    }
    match str_at(v, "volumeBindingMode") {
        None => errs.push(FieldError::required(&p("volumeBindingMode"), "")),
        Some("Immediate" | "WaitForFirstConsumer") => {}
        Some(other) => errs.push(FieldError::not_supported(
            &p("volumeBindingMode"),
            other,
            &["Immediate", "WaitForFirstConsumer"],
        )),
    }
    errs
}

/// Upstream's `ValidateStorageClassUpdate`: parameters, provisioner, reclaim policy and binding
/// mode are fixed.
pub fn storage_class_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = cluster_meta(new);
    let params = |v: &Value| {
        v.get("parameters")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .cloned()
    };
    if params(new) != params(old) {
        errs.push(FieldError::forbidden(
            &p("parameters"),
            "updates to parameters are forbidden.",
        ));
    }
    if new.get("provisioner") != old.get("provisioner") {
        errs.push(FieldError::forbidden(
            &p("provisioner"),
            "updates to provisioner are forbidden.",
        ));
    }
    if new.get("reclaimPolicy") != old.get("reclaimPolicy") {
        errs.push(FieldError::forbidden(
            &p("reclaimPolicy"),
            "updates to reclaimPolicy are forbidden.",
        ));
    }
    immutable(
        new,
        old,
        "/volumeBindingMode",
        "volumeBindingMode",
        &mut errs,
    );
    errs
}

// ---- coordination --------------------------------------------------------------------------------

/// Upstream's `ValidateLeaseSpec`.
pub fn lease(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    if let Some(d) = v
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .filter(|d| *d <= 0)
    {
        errs.push(FieldError::invalid(
            &p("spec.leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    nonnegative(
        v,
        "/spec/leaseTransitions",
        "spec.leaseTransitions",
        &mut errs,
    );
    if let Some(strategy) = str_at(v, "spec.strategy")
        && strategy != "OldestEmulationVersion"
    {
        errs.push(FieldError::not_supported(
            &p("spec.strategy"),
            strategy,
            &["OldestEmulationVersion"],
        ));
    }
    if str_at(v, "spec.preferredHolder").is_some_and(|h| !h.is_empty())
        && str_at(v, "spec.strategy").is_none_or(str::is_empty)
    {
        errs.push(FieldError::forbidden(
            &p("spec.preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

pub fn lease_update(new: &Value, _old: &Value) -> FieldErrors {
    lease(new)
}

// ---- autoscaling ---------------------------------------------------------------------------------

/// Upstream's `SetDefaults_HorizontalPodAutoscaler` (v2): one replica at least, 80% CPU when
/// no metric is given, and the scaling rules filled in when a behavior is.
pub fn hpa_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    if spec.get("behavior").is_some_and(|b| !b.is_null())
        && let Some(behavior) = child(spec, "behavior")
    {
        scaling_rules(
            behavior,
            "scaleUp",
            0,
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                   {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
        scaling_rules(
            behavior,
            "scaleDown",
            300,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
}

fn scaling_rules(behavior: &mut Map<String, Value>, key: &str, window: i64, policies: Value) {
    if let Some(rules) = child(behavior, key) {
        set_default(rules, "stabilizationWindowSeconds", json!(window));
        set_default(rules, "selectPolicy", json!("Max"));
        set_default(rules, "policies", policies);
    }
}

/// Upstream's `ValidateHorizontalPodAutoscaler`: the target reference and replica bounds.
pub fn hpa(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    for k in ["kind", "name"] {
        let path = format!("spec.scaleTargetRef.{k}");
        match str_at(v, &path).unwrap_or("") {
            "" => errs.push(FieldError::required(&p(&path), "")),
            value => {
                for msg in name_is_path_segment(value, false) {
                    errs.push(FieldError::invalid(&p(&path), value, msg));
                }
            }
        }
    }
    let max = v
        .pointer("/spec/maxReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(min) = v.pointer("/spec/minReplicas").and_then(Value::as_i64) {
        if min < 1 {
            errs.push(FieldError::invalid(
                &p("spec.minReplicas"),
                min,
                "must be greater than or equal to 1",
            ));
        }
        if max < min {
            errs.push(FieldError::invalid(
                &p("spec.maxReplicas"),
                max,
                "must be greater than or equal to `minReplicas`",
            ));
        }
    }
    if max < 1 {
        errs.push(FieldError::invalid(
            &p("spec.maxReplicas"),
            max,
            "must be greater than 0",
        ));
    }
    const TYPES: &[&str] = &[
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    for (i, m) in items(v, "/spec/metrics").enumerate() {
        let ty = field_str(m, "type");
        if ty.is_empty() {
            errs.push(FieldError::required(
                &p(&format!("spec.metrics[{i}].type")),
                "",
            ));
        } else if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported(
                &p(&format!("spec.metrics[{i}].type")),
                ty,
                TYPES,
            ));
        }
    }
    errs
}

pub fn hpa_update(new: &Value, _old: &Value) -> FieldErrors {
    hpa(new)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{check, with};

    #[test]
    fn new_events_need_reporting_fields_and_unset_deprecated_ones() {
        let v = json!({"metadata": {"name": "e", "namespace": "d"}, "eventTime": "2025-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "d"}, "reason": "Started", "action": "Start",
            "reportingController": "kubelet", "reportingInstance": "n1", "type": "Normal"});
        check(super::events_v1(&v), &[]);
        check(
            super::events_v1(&with(
                &v,
                json!({"type": "Info", "deprecatedCount": 3, "series": {"count": 1}}),
            )),
            &[
                "series.count: Invalid value: \"\": should be at least 2",
                "series.lastObservedTime: Required value",
                "type: Invalid value: \"\": has invalid value: Info",
                "count: Invalid value: \"\": needs to be unset",
            ],
        );
        check(
            super::events_v1_update(&with(&v, json!({"note": "changed"})), &v),
            &["message: Invalid value: \"changed\": field is immutable"],
        );
    }

    #[test]
    fn pdb_bounds_are_exclusive_percentages_or_integers() {
        let v = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"minAvailable": 1, "maxUnavailable": "120%"}});
        check(
            super::pdb(&v),
            &[
                "spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:1, MaxUnavailable:\"120%\"}: minAvailable and maxUnavailable cannot be both set",
                "spec.maxUnavailable: Invalid value: 120%: must not be greater than 100%",
            ],
        );
    }

    #[test]
    fn priority_classes_reserve_system_names_and_fix_their_value() {
        let mut v = json!({"metadata": {"name": "high"}, "value": 2_000_000_000i64});
        super::priority_class_defaults(&mut v);
        assert_eq!(v["preemptionPolicy"], "PreemptLowerPriority");
        check(
            super::priority_class(&v),
            &["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"],
        );
        check(
            super::priority_class(&with(&v, json!({"metadata": {"name": "system-high"}}))),
            &[
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-high is not a known system priority class",
            ],
        );
        check(
            super::priority_class(&with(
                &v,
                json!({"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000i64}),
            )),
            &[],
        );
        let ok = with(&v, json!({"value": 100}));
        check(
            super::priority_class_update(
                &with(&ok, json!({"value": 200, "preemptionPolicy": "Never"})),
                &ok,
            ),
            &[
                "value: Forbidden: may not be changed in an update.",
                "preemptionPolicy: Invalid value: \"Never\": field is immutable",
            ],
        );
    }

    #[test]
    fn storage_classes_need_a_provisioner_and_keep_parameters() {
        let mut v =
            json!({"metadata": {"name": "fast"}, "provisioner": "", "reclaimPolicy": "Recycle"});
        super::storage_class_defaults(&mut v);
        assert_eq!(v["volumeBindingMode"], "Immediate");
        check(
            super::storage_class(&v),
            &[
                "provisioner: Required value",
                "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
            ],
        );
        let ok = json!({"metadata": {"name": "fast"}, "provisioner": "example.com/disk", "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate", "parameters": {"type": "ssd"}});
        check(super::storage_class(&ok), &[]);
        check(
            super::storage_class_update(
                &with(
                    &ok,
                    json!({"parameters": {"type": "hdd"}, "allowVolumeExpansion": true}),
                ),
                &ok,
            ),
            &["parameters: Forbidden: updates to parameters are forbidden."],
        );
    }

    #[test]
    fn leases_have_positive_durations() {
        let v = json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0, "preferredHolder": "a"}});
        check(
            super::lease(&v),
            &[
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
            ],
        );
    }

    #[test]
    fn hpa_defaults_and_replica_bounds() {
        let mut v: Value = json!({"metadata": {"name": "h", "namespace": "d"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        super::hpa_defaults(&mut v);
        assert_eq!(v["spec"]["minReplicas"], 1);
        assert_eq!(
            v["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(
            v["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            60
        );
        assert_eq!(v["spec"]["behavior"]["scaleDown"]["selectPolicy"], "Max");
        assert_eq!(v["spec"]["behavior"]["scaleUp"]["policies"][0]["value"], 4);
        check(super::hpa(&v), &[]);
        check(
            super::hpa(&with(
                &v,
                json!({"spec": {"minReplicas": 6, "scaleTargetRef": {"name": ""}}}),
            )),
            &[
                "spec.scaleTargetRef.name: Required value",
                "spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`",
            ],
        );
    }
}
