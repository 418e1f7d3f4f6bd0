//! Tables of persistent volumes, their claims and resource quotas.

use serde_json::{Value, json};

use super::{AGE, NAME, TableDef, age, col, name, quantity, str_ptr};
use crate::strategy::str_at;

/// Upstream's `GetAccessModesAsString`.
fn access_modes(modes: Option<&Value>) -> String {
    let has = |m: &str| {
        modes
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(m)))
    };
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if has(mode) {
            out.push(short);
        }
    }
    out.join(",")
}

/// The storage class of a PV or PVC: the beta annotation wins over `spec.storageClassName`.
fn storage_class(v: &Value) -> String {
    v.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .or(str_at(v, "spec.storageClassName"))
        .unwrap_or("")
        .to_string()
}

fn unset_or(v: Option<&str>) -> String {
    v.unwrap_or("<unset>").to_string()
}

pub static PV: TableDef = TableDef {
    columns: &[
        NAME,
        col("Capacity", "string", 0),
        col("Access Modes", "string", 0),
        col("Reclaim Policy", "string", 0),
        col("Status", "string", 0),
        col("Claim", "string", 0),
        col("StorageClass", "string", 0).about("StorageClass of the pv"),
        col("VolumeAttributesClass", "string", 0).about("VolumeAttributesClass of the pv"),
        col("Reason", "string", 0),
        AGE,
        col("VolumeMode", "string", 1),
    ],
    row: |v, now| {
        let claim = match v.pointer("/spec/claimRef").filter(|c| !c.is_null()) {
            Some(c) => format!(
                "{}/{}",
                str_ptr(c, "/namespace").unwrap_or(""),
                str_ptr(c, "/name").unwrap_or("")
            ),
            None => String::new(),
        };
        let phase = if v.pointer("/metadata/deletionTimestamp").is_some() {
            "Terminating"
        } else {
            str_at(v, "status.phase").unwrap_or("")
        };
        vec![
            name(v),
            json!(quantity(v.pointer("/spec/capacity/storage"))),
            json!(access_modes(v.pointer("/spec/accessModes"))),
            json!(str_at(v, "spec.persistentVolumeReclaimPolicy").unwrap_or("")),
            json!(phase),
            json!(claim),
            json!(storage_class(v)),
            json!(unset_or(str_at(v, "spec.volumeAttributesClassName"))),
            json!(str_at(v, "status.reason").unwrap_or("")),
            age(v, now),
            json!(unset_or(str_at(v, "spec.volumeMode"))),
        ]
    },
};

pub static PVC: TableDef = TableDef {
    columns: &[
        NAME,
        col("Status", "string", 0),
        col("Volume", "string", 0),
        col("Capacity", "string", 0),
        col("Access Modes", "string", 0),
        col("StorageClass", "string", 0).about("StorageClass of the pvc"),
        col("VolumeAttributesClass", "string", 0).about("VolumeAttributesClass of the pvc"),
        AGE,
        col("VolumeMode", "string", 1),
    ],
    row: |v, now| {
        let phase = if v.pointer("/metadata/deletionTimestamp").is_some() {
            "Terminating"
        } else {
            str_at(v, "status.phase").unwrap_or("")
        };
        let volume = str_at(v, "spec.volumeName").unwrap_or("");
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                quantity(v.pointer("/status/capacity/storage")),
                access_modes(v.pointer("/status/accessModes")),
            )
        };
        vec![
            name(v),
            json!(phase),
            json!(volume),
            json!(capacity),
            json!(modes),
            json!(storage_class(v)),
            json!(unset_or(str_at(v, "spec.volumeAttributesClassName"))),
            age(v, now),
            json!(unset_or(str_at(v, "spec.volumeMode"))),
        ]
    },
};

pub static RESOURCE_QUOTA: TableDef = TableDef {
    columns: &[
        NAME,
        col("Request", "string", 0).about(
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        col("Limit", "string", 0).about("Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
        AGE,
    ],
    row: |v, now| {
        let mut names: Vec<&String> = v
            .pointer("/status/hard")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys())
            .collect();
        names.sort();
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for r in names {
            let used = quantity(v.pointer(&format!("/status/used/{}", pointer_escape(r))));
            let hard = quantity(v.pointer(&format!("/status/hard/{}", pointer_escape(r))));
            let text = format!("{r}: {used}/{hard}");
            match r.split('.').collect::<Vec<_>>().as_slice() {
                ["limits", _, ..] => limits.push(text),
                _ => requests.push(text),
            }
        }
        vec![
            name(v),
            json!(requests.join(", ")),
            json!(limits.join(", ")),
            age(v, now),
        ]
    },
};

/// Escapes a key for use in a JSON pointer.
pub(super) fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{ago, check, headers};

    #[test]
    fn persistent_volumes_and_claims() {
        assert_eq!(
            headers("persistentvolumes"),
            "NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE VOLUMEMODE*"
        );
        check(
            "persistentvolumes",
            json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "10240Mi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "fast", "volumeMode": "Filesystem"},
                "status": {"phase": "Bound"}}),
            json!([
                "pv1",
                "10Gi",
                "RWO,RWX",
                "Retain",
                "Bound",
                "default/data",
                "fast",
                "<unset>",
                "",
                "<unknown>",
                "Filesystem"
            ]),
        );
        check(
            "persistentvolumeclaims",
            json!({"metadata": {"name": "data", "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
                "spec": {"volumeName": "pv1", "storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}},
                "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}}),
            json!([
                "data",
                "Bound",
                "pv1",
                "10Gi",
                "RWO",
                "old",
                "<unset>",
                "<unknown>",
                "<unset>"
            ]),
        );
        check(
            "persistentvolumeclaims",
            json!({"metadata": {"name": "pending", "deletionTimestamp": ago(1)}, "spec": {}, "status": {"phase": "Pending"}}),
            json!([
                "pending",
                "Terminating",
                "",
                "",
                "",
                "",
                "<unset>",
                "<unknown>",
                "<unset>"
            ]),
        );
    }

    #[test]
    fn resource_quotas_split_requests_and_limits() {
        check(
            "resourcequotas",
            json!({"metadata": {"name": "q"}, "status": {
                "hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi", "limits.memory": "2Gi"},
                "used": {"pods": "3", "limits.cpu": "500m", "requests.memory": "512Mi"}}}),
            json!([
                "q",
                "pods: 3/10, requests.memory: 512Mi/1Gi",
                "limits.cpu: 500m/2, limits.memory: 0/2Gi",
                "<unknown>"
            ]),
        );
    }
}
