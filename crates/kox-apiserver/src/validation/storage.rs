//! Persistent volumes and claims, limit ranges and resource quotas.

use serde_json::{Map, Value, json};

use super::{
    FieldError, FieldErrors, cluster_meta, go_string_map, namespaced_meta, p, selector_at,
    set_default,
};
use crate::strategy::str_at;
use kox_api::field::BadValue;

// ---- persistent volumes and claims ----------------------------------------------------------------

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn access_modes(v: &Value, pointer: &str, path: &str, detail: &str, errs: &mut FieldErrors) {
    let modes: Vec<&str> = v
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if modes.is_empty() {
        errs.push(FieldError::required(&p(path), detail));
    }
    for m in &modes {
        if !ACCESS_MODES.contains(m) {
            errs.push(FieldError::not_supported(&p(path), *m, ACCESS_MODES));
        }
    }
    if modes.contains(&"ReadWriteOncePod") && modes.iter().any(|m| *m != "ReadWriteOncePod") {
        errs.push(FieldError::forbidden(
            &p(path),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// A positive, parseable quantity at `pointer`.
fn positive_quantity(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    let Some(s) = v.pointer(pointer).and_then(Value::as_str) else {
        return;
    };
    match kox_api::quantity::Quantity::parse(s) {
        Err(_) => errs.push(FieldError::invalid(
            &p(path),
            s,
            "must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$",
        )),
        Ok(q) if q.as_nanos() <= 0 => errs.push(FieldError::invalid(
            &p(path),
            q.canonical(),
            "must be greater than zero",
        )),
        Ok(_) => {}
    }
}

pub fn pvc_defaults(v: &mut Value) {
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(m) = v.as_object_mut()
        && let Some(status) = super::child(m, "status")
    {
        set_default(status, "phase", json!("Pending"));
    }
}

/// Upstream's `ValidatePersistentVolumeClaimSpec` at `pointer`/`path` (also used for
/// stateful sets' claim templates).
pub(super) fn pvc_spec(v: &Value, pointer: &str, path: &str, errs: &mut FieldErrors) {
    access_modes(
        v,
        &format!("{pointer}/accessModes"),
        &format!("{path}.accessModes"),
        "at least 1 access mode is required",
        errs,
    );
    selector_at(
        v,
        &format!("{pointer}/selector"),
        &format!("{path}.selector"),
        errs,
    );
    let storage = format!("{pointer}/resources/requests/storage");
    let storage_path = format!("{path}.resources[storage]");
    if v.pointer(&storage).is_none_or(Value::is_null) {
        errs.push(FieldError::required(&p(&storage_path), ""));
    } else {
        positive_quantity(v, &storage, &storage_path, errs);
    }
    if let Some(class) = v
        .pointer(&format!("{pointer}/storageClassName"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    {
        for msg in kox_api::validation::is_dns1123_subdomain(class) {
            errs.push(FieldError::invalid(
                &p(&format!("{path}.storageClassName")),
                class,
                msg,
            ));
        }
    }
    if let Some(mode) = v
        .pointer(&format!("{pointer}/volumeMode"))
        .and_then(Value::as_str)
        && !["Block", "Filesystem"].contains(&mode)
    {
        errs.push(FieldError::not_supported(
            &p(&format!("{path}.volumeMode")),
            mode,
            &["Block", "Filesystem"],
        ));
    }
}

pub fn pvc(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    pvc_spec(v, "/spec", "spec", &mut errs);
    errs
}

/// Upstream's `ValidatePersistentVolumeClaimUpdate`: the spec is fixed after creation but for
/// binding it once, growing a bound claim and its volume attributes class.
pub fn pvc_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = pvc(new);
    let mut new_spec = new.get("spec").cloned().unwrap_or(json!({}));
    let mut old_spec = old.get("spec").cloned().unwrap_or(json!({}));
    if str_at(old, "spec.volumeName").is_none_or(str::is_empty) {
        old_spec["volumeName"] = new_spec.get("volumeName").cloned().unwrap_or(Value::Null);
    }
    let bound = str_at(new, "status.phase") == Some("Bound");
    for spec in [&mut new_spec, &mut old_spec] {
        if let Some(m) = spec.as_object_mut() {
            m.remove("volumeAttributesClassName");
            if bound && let Some(r) = m.get_mut("resources").and_then(|r| r.get_mut("requests")) {
                r.as_object_mut().map(|r| r.remove("storage"));
            }
            m.retain(|_, v| !v.is_null());
        }
    }
    if new_spec != old_spec {
        errs.push(FieldError::forbidden(
            &p("spec"),
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    } else if bound {
        let size = |v: &Value| {
            v.pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(|s| kox_api::quantity::Quantity::parse(s).ok())
                .map(|q| q.as_nanos())
        };
        if let (Some(n), Some(o)) = (size(new), size(old))
            && n < o
        {
            errs.push(FieldError::forbidden(
                &p("spec.resources.requests.storage"),
                "field can not be less than previous value",
            ));
        }
    }
    errs
}

pub fn pv_defaults(v: &mut Value) {
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(m) = v.as_object_mut()
        && let Some(status) = super::child(m, "status")
    {
        set_default(status, "phase", json!("Pending"));
    }
}

const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
    "iscsi",
];

/// Upstream's `ValidatePersistentVolume`: access modes, a storage capacity, one volume source
/// and a supported reclaim policy.
pub fn pv(v: &Value) -> FieldErrors {
    let mut errs = cluster_meta(v);
    access_modes(v, "/spec/accessModes", "spec.accessModes", "", &mut errs);
    let capacity = v.pointer("/spec/capacity").and_then(Value::as_object);
    if capacity.is_none_or(Map::is_empty) {
        errs.push(FieldError::required(&p("spec.capacity"), ""));
    }
    if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        errs.push(FieldError::not_supported(
            &p("spec.capacity"),
            BadValue::Raw(go_string_map(
                &v.pointer("/spec/capacity").cloned().unwrap_or(Value::Null),
            )),
            &["storage"],
        ));
    }
    for k in capacity.into_iter().flat_map(|c| c.keys()) {
        positive_quantity(
            v,
            &format!("/spec/capacity/{}", k.replace('~', "~0").replace('/', "~1")),
            &format!("spec.capacity[{k}]"),
            &mut errs,
        );
    }
    const RECLAIM: &[&str] = &["Delete", "Recycle", "Retain"];
    if let Some(policy) = str_at(v, "spec.persistentVolumeReclaimPolicy").filter(|s| !s.is_empty())
        && !RECLAIM.contains(&policy)
    {
        errs.push(FieldError::not_supported(
            &p("spec.persistentVolumeReclaimPolicy"),
            policy,
            RECLAIM,
        ));
    }
    let sources: Vec<&&str> = PV_SOURCES
        .iter()
        .filter(|s| {
            v.pointer(&format!("/spec/{s}"))
                .is_some_and(|x| !x.is_null())
        })
        .collect();
    match sources.as_slice() {
        [] => errs.push(FieldError::required(
            &p("spec"),
            "must specify a volume type",
        )),
        [_] => {}
        [_, rest @ ..] => {
            for s in rest {
                errs.push(FieldError::forbidden(
                    &p(&format!("spec.{s}")),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    errs
}

pub fn pv_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = pv(new);
    for s in PV_SOURCES {
        if old
            .pointer(&format!("/spec/{s}"))
            .is_some_and(|x| !x.is_null())
        {
            // The volume source is fixed once created (upstream compares the whole source).
            if new.pointer(&format!("/spec/{s}")) != old.pointer(&format!("/spec/{s}")) {
                errs.push(FieldError::forbidden(
                    &p("spec.persistentvolumesource"),
                    "spec.persistentvolumesource is forbidden.",
                ));
            }
        }
    }
    errs
}

// ---- limit ranges and quotas ---------------------------------------------------------------------------

/// Upstream's `SetDefaults_LimitRangeItem`: a container's default limit is its max, its
/// default request the default limit (or the min).
pub fn limit_range_defaults(v: &mut Value) {
    for item in v
        .pointer_mut("/spec/limits")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let get = |item: &Map<String, Value>, k: &str| {
            item.get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let (max, min) = (get(item, "max"), get(item, "min"));
        let mut default = get(item, "default");
        for (k, q) in &max {
            default.entry(k.clone()).or_insert_with(|| q.clone());
        }
        let mut request = get(item, "defaultRequest");
        for (k, q) in default.iter().chain(min.iter()) {
            request.entry(k.clone()).or_insert_with(|| q.clone());
        }
        if !default.is_empty() {
            item.insert("default".into(), Value::Object(default));
        }
        if !request.is_empty() {
            item.insert("defaultRequest".into(), Value::Object(request));
        }
    }
}

/// Upstream's `ValidateLimitRange`: supported and distinct types, min ≤ max.
pub fn limit_range(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    const TYPES: &[&str] = &["Container", "PersistentVolumeClaim", "Pod"];
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in v
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ip = format!("spec.limits[{i}]");
        let ty = item.get("type").and_then(Value::as_str).unwrap_or("");
        if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported(
                &p(&format!("{ip}.type")),
                ty,
                TYPES,
            ));
        }
        if !seen.insert(ty.to_string()) {
            errs.push(FieldError::duplicate(&p(&format!("{ip}.type")), ty));
        }
        let q = |k: &str, r: &str| {
            item.get(k)
                .and_then(|m| m.get(r))
                .and_then(Value::as_str)
                .and_then(|s| kox_api::quantity::Quantity::parse(s).ok())
        };
        let resources: std::collections::BTreeSet<&String> = ["min", "max"]
            .iter()
            .filter_map(|k| item.get(*k).and_then(Value::as_object))
            .flat_map(|m| m.keys())
            .collect();
        for r in resources {
            if let (Some(min), Some(max)) = (q("min", r), q("max", r))
                && min.as_nanos() > max.as_nanos()
            {
                errs.push(FieldError::invalid(
                    &p(&format!("{ip}.min[{r}]")),
                    min.canonical(),
                    format!(
                        "min value {} is greater than max value {}",
                        min.canonical(),
                        max.canonical()
                    ),
                ));
            }
        }
    }
    errs
}

pub fn limit_range_update(new: &Value, _old: &Value) -> FieldErrors {
    limit_range(new)
}

/// Upstream's `ValidateResourceQuota`: hard limits are valid, non-negative quantities.
pub fn resource_quota(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    for (k, q) in v
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let path = format!("spec.hard[{k}]");
        let s = q.as_str().unwrap_or("");
        match kox_api::quantity::Quantity::parse(s) {
            Err(_) => errs.push(FieldError::invalid(
                &p(&path),
                s,
                "must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$",
            )),
            Ok(q) if q.as_nanos() < 0 => errs.push(FieldError::invalid(
                &p(&path),
                q.canonical(),
                "must be greater than or equal to 0",
            )),
            Ok(_) => {}
        }
    }
    const SCOPES: &[&str] = &[
        "BestEffort",
        "CrossNamespacePodAffinity",
        "NotBestEffort",
        "NotTerminating",
        "PriorityClass",
        "Terminating",
    ];
    for (i, s) in v
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let s = s.as_str().unwrap_or("");
        if !SCOPES.contains(&s) {
            errs.push(FieldError::not_supported(
                &p(&format!("spec.scopes[{i}]")),
                s,
                SCOPES,
            ));
        }
    }
    errs
}

pub fn resource_quota_update(new: &Value, _old: &Value) -> FieldErrors {
    resource_quota(new)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{check, with};

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default"})
    }

    #[test]
    fn claims_need_access_modes_and_storage() {
        let mut v = json!({"metadata": meta("data"), "spec": {}});
        super::pvc_defaults(&mut v);
        assert_eq!(v["status"]["phase"], "Pending");
        check(
            super::pvc(&v),
            &[
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ],
        );
        let v = with(
            &v,
            json!({"spec": {"accessModes": ["ReadWriteOncePod", "ReadOnlyMany", "Sometimes"],
                "resources": {"requests": {"storage": "0"}}}}),
        );
        check(
            super::pvc(&v),
            &[
                "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
                "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
            ],
        );
    }

    #[test]
    fn bound_claims_may_only_grow() {
        let old = json!({"metadata": meta("data"), "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv1", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        check(
            super::pvc_update(
                &with(
                    &old,
                    json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}),
                ),
                &old,
            ),
            &[],
        );
        check(
            super::pvc_update(
                &with(
                    &old,
                    json!({"spec": {"resources": {"requests": {"storage": "512Mi"}}}}),
                ),
                &old,
            ),
            &[
                "spec.resources.requests.storage: Forbidden: field can not be less than previous value",
            ],
        );
        check(
            super::pvc_update(
                &with(&old, json!({"spec": {"accessModes": ["ReadWriteMany"]}})),
                &old,
            ),
            &[
                "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ],
        );
    }

    #[test]
    fn volumes_need_one_source_and_a_storage_capacity() {
        let mut v = json!({"metadata": {"name": "pv1"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data"}}});
        super::pv_defaults(&mut v);
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        check(super::pv(&v), &[]);
        check(
            super::pv(&with(
                &v,
                json!({"spec": {"hostPath": null, "capacity": {"storage": null, "cpu": "1"}}}),
            )),
            &[
                "spec.capacity: Unsupported value: map[string]string{\"cpu\":\"1\"}: supported values: \"storage\"",
                "spec: Required value: must specify a volume type",
            ],
        );
    }

    #[test]
    fn limit_ranges_and_quotas() {
        let mut v = json!({"metadata": meta("l"), "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "2", "memory": "1Mi"}},
            {"type": "Container"}, {"type": "Node"}]}});
        super::limit_range_defaults(&mut v);
        assert_eq!(v["spec"]["limits"][0]["default"], json!({"cpu": "1"}));
        assert_eq!(
            v["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "1", "memory": "1Mi"})
        );
        check(
            super::limit_range(&v),
            &[
                "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
                "spec.limits[1].type: Duplicate value: \"Container\"",
                "spec.limits[2].type: Unsupported value: \"Node\": supported values: \"Container\", \"PersistentVolumeClaim\", \"Pod\"",
            ],
        );
        check(
            super::resource_quota(
                &json!({"metadata": meta("q"), "spec": {"hard": {"pods": "-1", "cpu": "lots"}}}),
            ),
            &[
                "spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.hard[cpu]: Invalid value: \"lots\": must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$",
            ],
        );
    }
}
