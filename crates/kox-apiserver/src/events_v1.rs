//! `events.k8s.io/v1` Events, served by conversion from the stored core `v1` Events, as
//! upstream's `pkg/apis/events/v1/conversion.go`: one object under both APIs, with the same
//! name, uid and resourceVersion. The two say the same things; seven fields differ only by
//! name (`regarding` is `involvedObject`, `note` is `message`, the `deprecated*` fields are the
//! legacy ones), the rest (metadata, `eventTime`, `series`, `action`, `reason`, `related`,
//! `reportingInstance`, `type`) are the same.

use serde_json::{Map, Value};

use crate::convert::Conversion;
use crate::validation::{self, FieldErrors};

/// The fields named differently: (`events.k8s.io/v1`, core `v1`).
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Upstream's field labels of `events.k8s.io/v1` Events, each with the core name it selects
/// by (`AddFieldLabelConversionsForEvent`).
const FIELD_LABELS: &[(&str, &str)] = &[
    ("metadata.name", "metadata.name"),
    ("metadata.namespace", "metadata.namespace"),
    ("reason", "reason"),
    ("regarding.apiVersion", "involvedObject.apiVersion"),
    ("regarding.fieldPath", "involvedObject.fieldPath"),
    ("regarding.kind", "involvedObject.kind"),
    ("regarding.name", "involvedObject.name"),
    ("regarding.namespace", "involvedObject.namespace"),
    (
        "regarding.resourceVersion",
        "involvedObject.resourceVersion",
    ),
    ("regarding.uid", "involvedObject.uid"),
    ("reportingController", "reportingComponent"),
    ("source", "source"),
    ("type", "type"),
];

/// `events.k8s.io/v1` as served from core `v1` (`resources::CONVERTED`).
pub static CONVERSION: Conversion = Conversion {
    stored_group: "",
    stored_version: "v1",
    to_stored: v1_to_core,
    to_served: core_to_v1,
    field_labels: Some(FIELD_LABELS),
};

/// `obj` with its `apiVersion` (if it has one) set to `api_version` and its fields renamed by
/// `rename`, each where it was.
fn renamed(obj: Value, api_version: &str, rename: impl Fn(&str) -> Option<&'static str>) -> Value {
    let Value::Object(fields) = obj else {
        return obj;
    };
    let fields: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| match (k.as_str(), rename(&k)) {
            ("apiVersion", _) => (k, Value::from(api_version)),
            (_, Some(name)) => (name.to_string(), v),
            _ => (k, v),
        })
        .collect();
    Value::Object(fields)
}

/// A core `v1` Event as `events.k8s.io/v1`, in Go's encoded shape of that type.
pub fn core_to_v1(obj: Value) -> Value {
    let mut v1 = renamed(obj, "events.k8s.io/v1", |k| {
        RENAMED
            .iter()
            .find(|(_, core)| *core == k)
            .map(|(v1, _)| *v1)
    });
    kox_proto::go_json::shape("events.k8s.io/v1", "Event", &mut v1);
    v1
}

/// An `events.k8s.io/v1` Event as core `v1`, the stored version.
pub fn v1_to_core(obj: Value) -> Value {
    renamed(obj, "v1", |k| {
        RENAMED
            .iter()
            .find(|(v1, _)| *v1 == k)
            .map(|(_, core)| *core)
    })
}

/// Upstream validates an event with the request's group version: one created through
/// `events.k8s.io/v1` meets that API's rules (`ValidateEventCreate`), read in its terms.
pub fn validate(stored: &Value) -> FieldErrors {
    validation::events_v1(&core_to_v1(stored.clone()))
}

/// `ValidateEventUpdate` for an update through `events.k8s.io/v1`: what the event says is fixed.
pub fn validate_update(new: &Value, old: &Value) -> FieldErrors {
    validation::events_v1_update(&core_to_v1(new.clone()), &core_to_v1(old.clone()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v1() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": { "name": "web.1", "namespace": "default", "uid": "u1", "resourceVersion": "7" },
            "eventTime": "2025-01-10T11:58:00.000000Z",
            "series": { "count": 2, "lastObservedTime": "2025-01-10T11:59:00.000000Z" },
            "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1",
            "action": "Scaling",
            "reason": "Scaled",
            "regarding": { "kind": "Deployment", "name": "web", "namespace": "default" },
            "related": { "kind": "ReplicaSet", "name": "web-1" },
            "note": "scaled up",
            "type": "Normal",
            "deprecatedSource": { "component": "ctl", "host": "n1" },
            "deprecatedFirstTimestamp": "2025-01-10T11:00:00Z",
            "deprecatedLastTimestamp": "2025-01-10T11:30:00Z",
            "deprecatedCount": 3,
        })
    }

    #[test]
    fn v1_fields_are_the_core_ones_renamed() {
        let core = v1_to_core(v1());
        assert_eq!(
            core,
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": { "name": "web.1", "namespace": "default", "uid": "u1", "resourceVersion": "7" },
                "eventTime": "2025-01-10T11:58:00.000000Z",
                "series": { "count": 2, "lastObservedTime": "2025-01-10T11:59:00.000000Z" },
                "reportingComponent": "example.com/ctl",
                "reportingInstance": "ctl-1",
                "action": "Scaling",
                "reason": "Scaled",
                "involvedObject": { "kind": "Deployment", "name": "web", "namespace": "default" },
                "related": { "kind": "ReplicaSet", "name": "web-1" },
                "message": "scaled up",
                "type": "Normal",
                "source": { "component": "ctl", "host": "n1" },
                "firstTimestamp": "2025-01-10T11:00:00Z",
                "lastTimestamp": "2025-01-10T11:30:00Z",
                "count": 3,
            })
        );
        assert_eq!(core_to_v1(core), v1(), "and back");
    }

    #[test]
    fn a_legacy_core_event_reads_as_v1_in_gos_shape() {
        let core = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": { "name": "p.1", "namespace": "default" },
            "involvedObject": { "kind": "Pod", "name": "p" },
            "reason": "Pulled",
            "message": "pulled",
            "source": { "component": "kubelet" },
            "count": 4,
            "reportingComponent": "",
            "type": "Normal",
        });
        let v1 = core_to_v1(core.clone());
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["regarding"], json!({ "kind": "Pod", "name": "p" }));
        assert_eq!(v1["note"], "pulled");
        assert_eq!(v1["deprecatedSource"], json!({ "component": "kubelet" }));
        assert_eq!(v1["deprecatedCount"], 4);
        // v1's reportingController is `omitempty`; core's reportingComponent is not.
        assert!(v1.get("reportingController").is_none(), "{v1}");
        for core_name in ["involvedObject", "message", "source", "count"] {
            assert!(v1.get(core_name).is_none(), "{core_name} in {v1}");
        }
        let mut back = core;
        back.as_object_mut().unwrap().remove("reportingComponent");
        assert_eq!(v1_to_core(v1), back);
    }

    #[test]
    fn v1_requests_are_validated_by_v1s_rules_on_the_stored_form() {
        let stored = v1_to_core(v1());
        let errs = validate(&stored);
        // A v1 create may not set the deprecated fields (upstream names the core fields).
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["firstTimestamp", "lastTimestamp", "count", "source"],
            "{errs:?}"
        );
        let mut fresh = v1();
        for k in [
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        ] {
            fresh.as_object_mut().unwrap().remove(k);
        }
        let stored = v1_to_core(fresh);
        assert!(validate(&stored).is_empty());
        let mut changed = stored.clone();
        changed["message"] = json!("another note");
        let errs = validate_update(&changed, &stored);
        assert_eq!(errs.0.len(), 1, "{errs:?}");
        assert_eq!(errs.0[0].field, "message");
    }

    #[test]
    fn field_labels_select_by_the_core_names() {
        let stored = |l: &str| {
            FIELD_LABELS
                .iter()
                .find(|(v1, _)| *v1 == l)
                .map(|(_, core)| *core)
        };
        assert_eq!(stored("regarding.name"), Some("involvedObject.name"));
        assert_eq!(stored("reportingController"), Some("reportingComponent"));
        assert_eq!(stored("involvedObject.name"), None);
        let core_fields = crate::strategy::EVENT.field_names;
        for (_, core) in FIELD_LABELS {
            assert!(
                core.starts_with("metadata.") || core_fields.contains(core),
                "{core} is selectable on core events"
            );
        }
    }
}
