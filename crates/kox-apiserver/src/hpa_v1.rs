//! `autoscaling/v1` HorizontalPodAutoscalers, served by conversion from the stored
//! `autoscaling/v2` objects, as upstream's `pkg/apis/autoscaling/v1/conversion.go`:
//! `targetCPUUtilizationPercentage` is v2's CPU `Utilization` Resource metric and
//! `currentCPUUtilizationPercentage` its current value; what v1 cannot say (other metrics,
//! behavior, conditions) rides in the `autoscaling.alpha.kubernetes.io/*` annotations, so a
//! v1 read-modify-write keeps it.

use serde_json::{Map, Value, json};

use crate::convert::Conversion;

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// `autoscaling/v1` as served from `autoscaling/v2` (`resources::CONVERTED`).
pub static CONVERSION: Conversion = Conversion {
    stored_group: "autoscaling",
    stored_version: "v2",
    to_stored: v1_to_v2,
    to_served: v2_to_v1,
    field_labels: None,
};

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m.pointer("/resource/name") == Some(&json!("cpu"))
        && m.pointer("/resource/target/type") == Some(&json!("Utilization"))
}

fn annotations(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let meta = obj["metadata"].as_object_mut().expect("an object");
    if !meta.get("annotations").is_some_and(Value::is_object) {
        meta.insert("annotations".into(), json!({}));
    }
    meta.get_mut("annotations")
        .and_then(Value::as_object_mut)
        .expect("an object")
}

fn drop_empty_annotations(obj: &mut Value) {
    if let Some(meta) = obj["metadata"].as_object_mut()
        && meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        meta.remove("annotations");
    }
}

fn take_json_annotation(obj: &mut Value, key: &str) -> Option<Value> {
    let raw = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)?
        .remove(key)?;
    serde_json::from_str(raw.as_str()?).ok()
}

fn put_json_annotation(obj: &mut Value, key: &str, value: &Value) {
    annotations(obj).insert(key.into(), json!(value.to_string()));
}

/// A v2 HorizontalPodAutoscaler as `autoscaling/v1`.
pub fn v2_to_v1(mut obj: Value) -> Value {
    if obj.get("apiVersion").is_some() {
        obj["apiVersion"] = json!("autoscaling/v1");
    }
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let status = obj.get("status").cloned();
    let mut v1_spec = Map::new();
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = spec.get(k) {
            v1_spec.insert(k.into(), v.clone());
        }
    }
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    let (cpu, other): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    if let Some(u) = cpu
        .first()
        .and_then(|m| m.pointer("/resource/target/averageUtilization"))
    {
        v1_spec.insert("targetCPUUtilizationPercentage".into(), u.clone());
    }
    if !other.is_empty() {
        put_json_annotation(&mut obj, METRICS, &json!(other));
    }
    if let Some(b) = spec.get("behavior") {
        put_json_annotation(&mut obj, BEHAVIOR, b);
    }
    obj["spec"] = Value::Object(v1_spec);
    if let Some(status) = status {
        let mut v1_status = Map::new();
        for k in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            if let Some(v) = status.get(k) {
                v1_status.insert(k.into(), v.clone());
            }
        }
        let current = status["currentMetrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let (cpu, other): (Vec<Value>, Vec<Value>) = current.into_iter().partition(|m| {
            m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu"))
        });
        if let Some(u) = cpu
            .first()
            .and_then(|m| m.pointer("/resource/current/averageUtilization"))
        {
            v1_status.insert("currentCPUUtilizationPercentage".into(), u.clone());
        }
        if !other.is_empty() {
            put_json_annotation(&mut obj, CURRENT_METRICS, &json!(other));
        }
        if let Some(c) = status.get("conditions").filter(|c| !c.is_null()) {
            put_json_annotation(&mut obj, CONDITIONS, c);
        }
        v1_status.entry("currentReplicas").or_insert(json!(0));
        v1_status.entry("desiredReplicas").or_insert(json!(0));
        obj["status"] = Value::Object(v1_status);
    }
    obj
}

/// An `autoscaling/v1` HorizontalPodAutoscaler as v2, the stored version.
pub fn v1_to_v2(mut obj: Value) -> Value {
    if obj.get("apiVersion").is_some() {
        obj["apiVersion"] = json!("autoscaling/v2");
    }
    let other = take_json_annotation(&mut obj, METRICS);
    let current_other = take_json_annotation(&mut obj, CURRENT_METRICS);
    let conditions = take_json_annotation(&mut obj, CONDITIONS);
    let behavior = take_json_annotation(&mut obj, BEHAVIOR);
    drop_empty_annotations(&mut obj);
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let mut metrics = Vec::new();
        if let Some(u) = spec.remove("targetCPUUtilizationPercentage")
            && !u.is_null()
        {
            metrics.push(json!({
                "type": "Resource",
                "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": u } },
            }));
        }
        if let Some(Value::Array(o)) = other {
            metrics.extend(o);
        }
        if !metrics.is_empty() {
            spec.insert("metrics".into(), json!(metrics));
        }
        if let Some(b) = behavior {
            spec.insert("behavior".into(), b);
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        let mut current = Vec::new();
        if let Some(u) = status.remove("currentCPUUtilizationPercentage")
            && !u.is_null()
        {
            current.push(json!({
                "type": "Resource",
                "resource": { "name": "cpu", "current": { "averageUtilization": u } },
            }));
        }
        if let Some(Value::Array(o)) = current_other {
            current.extend(o);
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), json!(current));
        }
        if let Some(c) = conditions {
            status.insert("conditions".into(), c);
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> Value {
        json!({
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": "web", "namespace": "default" },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
                "minReplicas": 1,
                "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 80,
            },
            "status": { "currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 95 },
        })
    }

    #[test]
    fn cpu_target_is_a_v2_resource_metric_and_back() {
        let v2 = v1_to_v2(v1());
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } } }])
        );
        assert_eq!(
            v2.pointer("/status/currentMetrics/0/resource/current/averageUtilization"),
            Some(&json!(95))
        );
        assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());
        assert!(v2["metadata"].get("annotations").is_none());
        assert_eq!(v2_to_v1(v2), v1());
    }

    #[test]
    fn what_v1_cannot_say_rides_in_annotations() {
        let v2 = json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": "web" },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
                "maxReplicas": 5,
                "metrics": [
                    { "type": "Resource", "resource": { "name": "memory", "target": { "type": "AverageValue", "averageValue": "100Mi" } } },
                ],
                "behavior": { "scaleDown": { "stabilizationWindowSeconds": 60 } },
            },
            "status": {
                "currentReplicas": 1, "desiredReplicas": 1,
                "conditions": [{ "type": "AbleToScale", "status": "True" }],
            },
        });
        let v1 = v2_to_v1(v2.clone());
        assert!(v1["spec"].get("targetCPUUtilizationPercentage").is_none());
        assert!(v1["spec"].get("metrics").is_none());
        let ann = &v1["metadata"]["annotations"];
        assert!(ann[METRICS].as_str().unwrap().contains("memory"));
        assert!(ann[CONDITIONS].as_str().unwrap().contains("AbleToScale"));
        assert!(ann[BEHAVIOR].is_string());
        assert_eq!(v1_to_v2(v1), v2);
    }

    #[test]
    fn lists_are_converted() {
        let c = crate::convert::Converted::of("autoscaling", "v1", &["horizontalpodautoscalers"])
            .expect("served by conversion");
        let list = json!({ "kind": "HorizontalPodAutoscalerList", "apiVersion": "autoscaling/v2", "items": [v1_to_v2(v1())] });
        let l = c.answer(list);
        assert_eq!(l["apiVersion"], "autoscaling/v1");
        assert_eq!(l["items"][0]["spec"]["targetCPUUtilizationPercentage"], 80);
    }
}
