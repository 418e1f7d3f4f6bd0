//! The `apps` group: deployments, replica sets, stateful sets, daemon sets, revisions.

use serde_json::{Value, json};

use super::pods::{pod_spec_defaults, pod_template, template_restarts_always};
use super::storage::pvc_spec;
use super::{
    FieldError, FieldErrors, annotations_at, child, controller_selector, go_label_selector,
    go_value, immutable, int_or_percent_value, labels_at, namespaced_meta, nonnegative,
    object_meta, p, positive_int_or_percent, set_default,
};
use crate::strategy::str_at;

fn template_spec_defaults(v: &mut Value) {
    if let Some(spec) = v.pointer_mut("/spec/template/spec") {
        pod_spec_defaults(spec);
    }
}

/// `Invalid value: <selector>: field is immutable` when the selector changed (the apps/v1
/// strategies' rule).
fn selector_immutable(new: &Value, old: &Value, errs: &mut FieldErrors) {
    if new.pointer("/spec/selector") != old.pointer("/spec/selector") {
        errs.push(FieldError::invalid(
            &p("spec.selector"),
            go_label_selector(new.pointer("/spec/selector")),
            "field is immutable",
        ));
    }
}

// ---- deployments -----------------------------------------------------------------------------------

pub fn deployment_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    if let Some(s) = child(spec, "strategy") {
        set_default(s, "type", json!("RollingUpdate"));
        if s.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = child(s, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
    }
    template_spec_defaults(v);
}

/// Upstream's `ValidateDeployment`.
pub fn deployment(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    deployment_spec(v, &mut errs);
    errs
}

fn deployment_spec(v: &Value, errs: &mut FieldErrors) {
    nonnegative(v, "/spec/replicas", "spec.replicas", errs);
    controller_selector(v, "deployment", errs);
    pod_template(v, "/spec/template", "spec.template", errs);
    template_restarts_always(v, "spec.template", "ReplicaSet", errs);
    match str_at(v, "spec.strategy.type").unwrap_or("") {
        "Recreate" => {
            if v.pointer("/spec/strategy/rollingUpdate")
                .is_some_and(|r| !r.is_null())
            {
                errs.push(FieldError::forbidden(
                    &p("spec.strategy.rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            let ru = "/spec/strategy/rollingUpdate";
            if v.pointer(ru).is_none_or(Value::is_null) {
                errs.push(FieldError::required(
                    &p("spec.strategy.rollingUpdate"),
                    "this should be defaulted and never be nil",
                ));
            } else {
                let (unavailable, surge) =
                    (format!("{ru}/maxUnavailable"), format!("{ru}/maxSurge"));
                positive_int_or_percent(
                    v,
                    &unavailable,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    errs,
                );
                positive_int_or_percent(v, &surge, "spec.strategy.rollingUpdate.maxSurge", errs);
                if int_or_percent_value(v, &unavailable) == 0
                    && int_or_percent_value(v, &surge) == 0
                {
                    errs.push(FieldError::invalid(
                        &p("spec.strategy.rollingUpdate.maxUnavailable"),
                        go_value(v.pointer(&unavailable).unwrap_or(&json!(0))),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
        }
        other => errs.push(FieldError::not_supported(
            &p("spec.strategy"),
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
    nonnegative(v, "/spec/minReadySeconds", "spec.minReadySeconds", errs);
    nonnegative(
        v,
        "/spec/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        errs,
    );
    if let Some(deadline) = v
        .pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_i64)
    {
        nonnegative(
            v,
            "/spec/progressDeadlineSeconds",
            "spec.progressDeadlineSeconds",
            errs,
        );
        let min_ready = v
            .pointer("/spec/minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if deadline <= min_ready {
            errs.push(FieldError::invalid(
                &p("spec.progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
}

pub fn deployment_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(new);
    deployment_spec(new, &mut errs);
    selector_immutable(new, old, &mut errs);
    errs
}

// ---- replica sets ----------------------------------------------------------------------------------

pub fn replica_set_defaults(v: &mut Value) {
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "replicas", json!(1));
    }
    template_spec_defaults(v);
}

/// Upstream's `ValidateReplicaSet` (the empty-selector message says "deployment" upstream too).
pub fn replica_set(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    replica_set_spec(v, &mut errs);
    errs
}

fn replica_set_spec(v: &Value, errs: &mut FieldErrors) {
    nonnegative(v, "/spec/replicas", "spec.replicas", errs);
    nonnegative(v, "/spec/minReadySeconds", "spec.minReadySeconds", errs);
    controller_selector(v, "deployment", errs);
    pod_template(v, "/spec/template", "spec.template", errs);
    template_restarts_always(v, "spec.template", "ReplicaSet", errs);
}

pub fn replica_set_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(new);
    replica_set_spec(new, &mut errs);
    selector_immutable(new, old, &mut errs);
    errs
}

// ---- stateful sets ---------------------------------------------------------------------------------

/// Upstream's `SetDefaults_StatefulSet` (with the PVC auto-deletion policy of 1.32).
pub fn stateful_set_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(s) = child(spec, "updateStrategy") {
        if s.get("type").is_none_or(Value::is_null) {
            s.insert("type".into(), json!("RollingUpdate"));
            set_default(s, "rollingUpdate", json!({}));
        }
        if s.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = s.get_mut("rollingUpdate").and_then(Value::as_object_mut)
        {
            set_default(ru, "partition", json!(0));
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default(policy, "whenDeleted", json!("Retain"));
        set_default(policy, "whenScaled", json!("Retain"));
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    for claim in spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        set_default(claim, "apiVersion", json!("v1"));
        set_default(claim, "kind", json!("PersistentVolumeClaim"));
        if let Some(cs) = child(claim, "spec") {
            set_default(cs, "volumeMode", json!("Filesystem"));
        }
        if let Some(st) = child(claim, "status") {
            set_default(st, "phase", json!("Pending"));
        }
    }
    template_spec_defaults(v);
}

/// Upstream's `ValidateStatefulSet`: DNS-1123 label names.
pub fn stateful_set(v: &Value) -> FieldErrors {
    let mut errs = object_meta(v, true, kox_api::validation::name_is_dns_label);
    stateful_set_spec(v, &mut errs);
    errs
}

fn stateful_set_spec(v: &Value, errs: &mut FieldErrors) {
    match str_at(v, "spec.podManagementPolicy").unwrap_or("") {
        "" => errs.push(FieldError::required(&p("spec.podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            &p("spec.podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let ru = v
        .pointer("/spec/updateStrategy/rollingUpdate")
        .filter(|r| !r.is_null());
    match str_at(v, "spec.updateStrategy.type").unwrap_or("") {
        "" => errs.push(FieldError::required(&p("spec.updateStrategy"), "")),
        "OnDelete" => {
            if let Some(r) = ru {
                errs.push(FieldError::invalid(
                    &p("spec.updateStrategy.rollingUpdate"),
                    go_value(r),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if ru.is_some() {
                nonnegative(
                    v,
                    "/spec/updateStrategy/rollingUpdate/partition",
                    "spec.updateStrategy.rollingUpdate.partition",
                    errs,
                );
                let mu = "/spec/updateStrategy/rollingUpdate/maxUnavailable";
                let mp = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                if let Some(x) = v.pointer(mu).filter(|x| !x.is_null()) {
                    positive_int_or_percent(v, mu, mp, errs);
                    if int_or_percent_value(v, mu) == 0 {
                        errs.push(FieldError::invalid(&p(mp), go_value(x), "cannot be 0"));
                    }
                }
            }
        }
        other => errs.push(FieldError::invalid(
            &p("spec.updateStrategy"),
            other,
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    for k in ["whenDeleted", "whenScaled"] {
        if let Some(policy) = v
            .pointer(&format!("/spec/persistentVolumeClaimRetentionPolicy/{k}"))
            .and_then(Value::as_str)
            && !["Retain", "Delete"].contains(&policy)
        {
            errs.push(FieldError::not_supported(
                &p(&format!("spec.persistentVolumeClaimRetentionPolicy.{k}")),
                policy,
                &["Retain", "Delete"],
            ));
        }
    }
    nonnegative(v, "/spec/replicas", "spec.replicas", errs);
    nonnegative(v, "/spec/minReadySeconds", "spec.minReadySeconds", errs);
    nonnegative(v, "/spec/ordinals/start", "spec.ordinals.start", errs);
    match v.pointer("/spec/selector").filter(|s| !s.is_null()) {
        None => errs.push(FieldError::required(&p("spec.selector"), "")),
        Some(_) => {
            super::selector_at(v, "/spec/selector", "spec.selector", errs);
            if super::selector_is_empty(v, "/spec/selector") {
                errs.push(FieldError::invalid(
                    &p("spec.selector"),
                    go_label_selector(v.pointer("/spec/selector")),
                    "empty selector is invalid for statefulset",
                ));
            }
        }
    }
    // Upstream checks only the template's labels and annotations, not its pod spec.
    super::template_matches_selector(v, "/spec/selector", "/spec/template", "spec.template", errs);
    labels_at(
        v,
        "/spec/template/metadata/labels",
        "spec.template.labels",
        errs,
    );
    annotations_at(
        v,
        "/spec/template/metadata/annotations",
        "spec.template.annotations",
        errs,
    );
    template_restarts_always(v, "spec.template", "StatefulSet", errs);
    for (i, _) in v
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        pvc_spec(
            v,
            &format!("/spec/volumeClaimTemplates/{i}/spec"),
            &format!("spec.volumeClaimTemplates[{i}].spec"),
            errs,
        );
    }
}

/// Upstream's `ValidateStatefulSetUpdate`: only replicas, ordinals, template, update
/// strategy, claim retention and minReadySeconds may change.
pub fn stateful_set_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = object_meta(new, true, |_, _| Vec::new());
    stateful_set_spec(new, &mut errs);
    let rest = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(json!({}));
        if let Some(m) = spec.as_object_mut() {
            for k in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                m.remove(k);
            }
            m.retain(|_, v| !v.is_null());
        }
        spec
    };
    if rest(new) != rest(old) {
        errs.push(FieldError::forbidden(
            &p("spec"),
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    errs
}

// ---- daemon sets -----------------------------------------------------------------------------------

/// Upstream's `SetDefaults_DaemonSet`: rolling updates of one pod at a time, no surge.
pub fn daemon_set_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(s) = child(spec, "updateStrategy") {
        set_default(s, "type", json!("RollingUpdate"));
        if s.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = child(s, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!(1));
            set_default(ru, "maxSurge", json!(0));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    template_spec_defaults(v);
}

/// Upstream's `ValidateDaemonSet`.
pub fn daemon_set(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    daemon_set_spec(v, &mut errs);
    errs
}

fn daemon_set_spec(v: &Value, errs: &mut FieldErrors) {
    super::selector_at(v, "/spec/selector", "spec.selector", errs);
    super::template_matches_selector(v, "/spec/selector", "/spec/template", "spec.template", errs);
    if v.pointer("/spec/selector").is_some_and(|s| !s.is_null())
        && super::selector_is_empty(v, "/spec/selector")
    {
        errs.push(FieldError::invalid(
            &p("spec.selector"),
            go_label_selector(v.pointer("/spec/selector")),
            "empty selector is invalid for daemonset",
        ));
    }
    pod_template(v, "/spec/template", "spec.template", errs);
    template_restarts_always(v, "spec.template", "DaemonSet", errs);
    nonnegative(v, "/spec/minReadySeconds", "spec.minReadySeconds", errs);
    let us = "spec.updateStrategy";
    match str_at(v, "spec.updateStrategy.type").unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let ru = "/spec/updateStrategy/rollingUpdate";
            if v.pointer(ru).is_none_or(Value::is_null) {
                errs.push(FieldError::required(&p(&format!("{us}.rollingUpdate")), ""));
            } else {
                let (mu, ms) = (format!("{ru}/maxUnavailable"), format!("{ru}/maxSurge"));
                let (mup, msp) = (
                    format!("{us}.rollingUpdate.maxUnavailable"),
                    format!("{us}.rollingUpdate.maxSurge"),
                );
                positive_int_or_percent(v, &mu, &mup, errs);
                positive_int_or_percent(v, &ms, &msp, errs);
                let has_unavailable = int_or_percent_value(v, &mu) != 0;
                let has_surge = int_or_percent_value(v, &ms) != 0;
                if has_unavailable && has_surge {
                    errs.push(FieldError::invalid(
                        &p(&msp),
                        go_value(v.pointer(&ms).unwrap_or(&Value::Null)),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !has_unavailable && !has_surge {
                    errs.push(FieldError::required(
                        &p(&mup),
                        "cannot be 0 when maxSurge is 0",
                    ));
                }
            }
        }
        other => errs.push(FieldError::not_supported(
            &p(us),
            other,
            &["RollingUpdate", "OnDelete"],
        )),
    }
    nonnegative(
        v,
        "/spec/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        errs,
    );
}

pub fn daemon_set_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(new);
    daemon_set_spec(new, &mut errs);
    selector_immutable(new, old, &mut errs);
    errs
}

// ---- controller revisions --------------------------------------------------------------------------

/// Upstream's `ValidateControllerRevision`: data is mandatory, the revision non-negative.
pub fn controller_revision(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    if v.get("data").is_none_or(Value::is_null) {
        errs.push(FieldError::required(&p("data"), "data is mandatory"));
    }
    nonnegative(v, "/revision", "revision", &mut errs);
    errs
}

pub fn controller_revision_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = controller_revision(new);
    immutable(new, old, "/data", "data", &mut errs);
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{check, with};

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    fn object(spec: Value) -> Value {
        let mut spec = spec;
        spec["template"] = template();
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn deployment_defaults_and_strategy_rules() {
        let mut v = object(json!({"selector": {"matchLabels": {"app": "web"}}}));
        super::deployment_defaults(&mut v);
        assert_eq!(v["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        check(super::deployment(&v), &[]);
        let bad = with(
            &v,
            json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}},
                "minReadySeconds": 700}}),
        );
        check(
            super::deployment(&bad),
            &[
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
                "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
            ],
        );
        check(
            super::deployment(&with(
                &v,
                json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}),
            )),
            &[
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ],
        );
        check(
            super::deployment_update(
                &with(
                    &v,
                    json!({"spec": {"selector": {"matchLabels": {"app": "web", "x": null}, "matchExpressions": [{"key": "app", "operator": "Exists"}]}}}),
                ),
                &v,
            ),
            &[
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"Exists\", Values:[]string(nil)}}}: field is immutable",
            ],
        );
    }

    #[test]
    fn replica_sets_default_one_replica_and_need_a_selector() {
        let mut v = object(json!({}));
        super::replica_set_defaults(&mut v);
        assert_eq!(v["spec"]["replicas"], 1);
        check(
            super::replica_set(&v),
            &[
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ],
        );
        check(
            super::replica_set(&with(&v, json!({"spec": {"selector": {}}}))),
            &[
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
            ],
        );
    }

    #[test]
    fn stateful_set_defaults_match_upstream() {
        let mut v = object(json!({"selector": {"matchLabels": {"app": "web"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]}));
        super::stateful_set_defaults(&mut v);
        let spec = &v["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        check(super::stateful_set(&v), &[]);
    }

    #[test]
    fn stateful_sets_check_names_policies_and_fixed_fields() {
        let mut v = object(json!({"selector": {"matchLabels": {"app": "web"}}}));
        super::stateful_set_defaults(&mut v);
        let bad = with(
            &v,
            json!({"metadata": {"name": "web.v1"}, "spec": {"podManagementPolicy": "Random",
                "updateStrategy": {"type": "OnDelete"}, "template": {"spec": {"restartPolicy": "OnFailure"}}}}),
        );
        check(
            super::stateful_set(&bad),
            &[
                "metadata.name: Invalid value: \"web.v1\": must not contain dots",
                "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
                "spec.updateStrategy.rollingUpdate: Invalid value: {\"partition\":0}: only allowed for updateStrategy 'RollingUpdate'",
                "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            ],
        );
        check(
            super::stateful_set_update(&with(&v, json!({"spec": {"replicas": 5}})), &v),
            &[],
        );
        check(
            super::stateful_set_update(&with(&v, json!({"spec": {"serviceName": "other"}})), &v),
            &[
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ],
        );
    }

    #[test]
    fn daemon_sets_default_rolling_updates_and_check_surge() {
        let mut v = object(json!({"selector": {"matchLabels": {"app": "web"}}}));
        super::daemon_set_defaults(&mut v);
        assert_eq!(
            v["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
        check(super::daemon_set(&v), &[]);
        check(
            super::daemon_set(&with(
                &v,
                json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxSurge": 1}}}}),
            )),
            &[
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero",
            ],
        );
        check(
            super::daemon_set(&with(
                &v,
                json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0}}}}),
            )),
            &[
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
            ],
        );
        check(
            super::daemon_set_update(
                &with(
                    &v,
                    json!({"spec": {"selector": {"matchLabels": {"tier": "x"}}}}),
                ),
                &v,
            ),
            &[
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
            ],
        );
    }

    #[test]
    fn controller_revisions_need_data() {
        let v = json!({"metadata": {"name": "r", "namespace": "d"}, "revision": -1});
        check(
            super::controller_revision(&v),
            &[
                "data: Required value: data is mandatory",
                "revision: Invalid value: -1: must be greater than or equal to 0",
            ],
        );
        let old = with(&v, json!({"revision": 1, "data": {"a": 1}}));
        check(
            super::controller_revision_update(&with(&old, json!({"data": {"a": 2}})), &old),
            &["data: Invalid value: {\"a\":2}: field is immutable"],
        );
    }
}
