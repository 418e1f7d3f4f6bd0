//! Cases in the spirit of upstream's `patch_test.go` and of what `kubectl apply` and
//! `kubectl patch` send.

use serde_json::{Value, json};

use super::*;

/// Applies `patch` to `original` as a `kind` (core group unless `group/kind`) and compares
/// with `expect`; `expect` may be `{"error": "<message>"}`.
fn check(kind: &str, original: Value, patch: Value, expect: Value) {
    let (group, kind) = kind.split_once('/').unwrap_or(("", kind));
    let schema = schema_for_kind(group, kind).unwrap_or(&TypeSchema::EMPTY);
    let got = match strategic_merge_patch(&original, &patch, schema) {
        Ok(v) => v,
        Err(e) => json!({ "error": e.to_string() }),
    };
    assert_eq!(got, expect, "patch: {patch}");
}

#[test]
fn maps_merge_and_null_deletes() {
    check(
        "ConfigMap",
        json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}),
        json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"y": "2"}}),
        json!({"metadata": {"name": "c", "labels": {"b": "2", "c": "3"}}, "data": {"x": "1", "y": "2"}}),
    );
    // A null for a key that is not there is dropped, not stored.
    check(
        "ConfigMap",
        json!({"data": {}}),
        json!({"data": {"gone": null}}),
        json!({"data": {}}),
    );
    // Scalars and type changes replace.
    check(
        "ConfigMap",
        json!({"a": {"b": 1}}),
        json!({"a": "s"}),
        json!({"a": "s"}),
    );
}

#[test]
fn map_directives() {
    check(
        "Pod",
        json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}}),
        json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}),
        json!({"spec": {"nodeSelector": {"c": "3"}}}),
    );
    check(
        "Pod",
        json!({"spec": {"nodeSelector": {"a": "1"}, "x": 1}}),
        json!({"spec": {"nodeSelector": {"$patch": "delete"}}}),
        json!({"spec": {"nodeSelector": {}, "x": 1}}),
    );
    check(
        "Pod",
        json!({"spec": {"nodeSelector": {"a": "1"}}}),
        json!({"spec": {"nodeSelector": {"$patch": "merge"}}}),
        json!({"error": "unknown patch type: merge in map: map[$patch:merge]"}),
    );
}

#[test]
fn kubectl_patch_adds_container_in_front() {
    // Upstream places new items ahead of the live ones when no order is given (as the
    // Kubernetes "kubectl patch" task page shows).
    check(
        "apps/Deployment",
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "patch-demo-ctr", "image": "nginx"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "patch-demo-ctr-2", "image": "redis"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "patch-demo-ctr-2", "image": "redis"},
            {"name": "patch-demo-ctr", "image": "nginx"}]}}}}),
    );
}

#[test]
fn merge_list_updates_by_key_recursively() {
    check(
        "Pod",
        json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
             "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "b", "image": "b:1"}]}}),
        json!({"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "3"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}),
        json!({"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}],
             "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]},
            {"name": "b", "image": "b:1"}]}}),
    );
}

#[test]
fn list_item_directives() {
    check(
        "Pod",
        json!({"spec": {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]}}),
        json!({"spec": {"volumes": [{"$patch": "delete", "name": "a"}]}}),
        json!({"spec": {"volumes": [{"name": "b", "emptyDir": {}}]}}),
    );
    check(
        "Pod",
        json!({"spec": {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]}}),
        json!({"spec": {"volumes": [{"name": "c", "emptyDir": {}}, {"$patch": "replace"}]}}),
        json!({"spec": {"volumes": [{"name": "c", "emptyDir": {}}]}}),
    );
    check(
        "Pod",
        json!({"spec": {"volumes": [{"name": "a"}]}}),
        json!({"spec": {"volumes": [{"$patch": "merge"}]}}),
        json!({"error": "merging lists cannot yet be specified in the patch"}),
    );
    check(
        "Pod",
        json!({"spec": {"volumes": [{"name": "a"}]}}),
        json!({"spec": {"volumes": [{"$patch": "delete"}]}}),
        json!({"error": "map: map[$patch:delete] does not contain declared merge key: name"}),
    );
    check(
        "Pod",
        json!({"spec": {"volumes": [{"name": "a"}]}}),
        json!({"spec": {"volumes": [{"emptyDir": {}}]}}),
        json!({"error": "map: map[emptyDir:map[]] does not contain declared merge key: name"}),
    );
}

#[test]
fn primitive_merge_lists_are_sets() {
    check(
        "ConfigMap",
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
    );
    check(
        "ConfigMap",
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
        json!({"metadata": {"finalizers": ["a", "c"]}}),
    );
    // Deleting from an absent list deletes nothing and adds nothing.
    check(
        "ConfigMap",
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
        json!({"metadata": {}}),
    );
    check(
        "ConfigMap",
        json!({"metadata": {"finalizers": ["a"]}}),
        json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
        json!({"error": "invalid patch format of primitive list"}),
    );
}

#[test]
fn untagged_lists_are_replaced() {
    check(
        "Pod",
        json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["x", "y"]}]}}),
        json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
        json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
    );
    // Unknown kinds: every list is replaced, objects still merge.
    check(
        "example.com/Widget",
        json!({"spec": {"containers": [{"name": "a"}], "m": {"x": 1}}}),
        json!({"spec": {"containers": [{"name": "b"}], "m": {"y": 2}}}),
        json!({"spec": {"containers": [{"name": "b"}], "m": {"x": 1, "y": 2}}}),
    );
}

#[test]
fn retain_keys_clears_other_fields() {
    check(
        "Pod",
        json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
        json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/d"}, "$retainKeys": ["hostPath", "name"]}]}}),
        json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/d"}}]}}),
    );
    check(
        "apps/Deployment",
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
        json!({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": null, "$retainKeys": ["type"]}}}),
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    check(
        "Pod",
        json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
        json!({"spec": {"volumes": [{"name": "v", "hostPath": {}, "$retainKeys": ["name"]}]}}),
        json!({"error": "invalid patch format of retainKeys"}),
    );
}

#[test]
fn kubectl_apply_changes_container_list() {
    // Live Deployment has a, b; the new manifest drops b and adds c after a.
    check(
        "apps/Deployment",
        json!({"metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
               "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                   {"name": "a", "image": "a:1", "terminationMessagePath": "/dev/termination-log"},
                   {"name": "b", "image": "b:1"}]}}}}),
        json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"}},
               "spec": {"template": {"spec": {
                   "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
                   "containers": [{"name": "c", "image": "c:1"}, {"$patch": "delete", "name": "b"}]}}}}),
        json!({"metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"}},
               "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                   {"name": "a", "image": "a:1", "terminationMessagePath": "/dev/termination-log"},
                   {"name": "c", "image": "c:1"}]}}}}),
    );
}

#[test]
fn set_element_order_reorders_and_keeps_server_only_items() {
    // b was added by the server (not in the applied config); it keeps its place.
    check(
        "Pod",
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
        json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "c"}, {"name": "d"}],
                        "containers": [{"name": "d", "image": "d"}]}}),
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d", "image": "d"}]}}),
    );
    // Pure reorder, no content change.
    check(
        "Pod",
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
        json!({"spec": {"containers": [{"name": "b"}, {"name": "a"}]}}),
    );
    // Primitive list order.
    check(
        "ConfigMap",
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}),
        json!({"metadata": {"finalizers": ["b", "c", "a"]}}),
    );
    // A list the live object lacks.
    check(
        "Pod",
        json!({"spec": {}}),
        json!({"spec": {"$setElementOrder/initContainers": [{"name": "i"}], "initContainers": [{"name": "i", "image": "x"}]}}),
        json!({"spec": {"initContainers": [{"name": "i", "image": "x"}]}}),
    );
    check(
        "Pod",
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
        json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "b", "image": "x"}]}}),
        json!({"error": "The order in patch list:\n[map[image:x name:b]]\n doesn't match $setElementOrder list:\n[map[name:a]]\n"}),
    );
    check(
        "Pod",
        json!({"spec": {}}),
        json!({"spec": {"$setElementOrder": [], "containers": []}}),
        json!({"error": "invalid patch format of setElementOrder list"}),
    );
}

#[test]
fn tagged_paths_reach_every_pod_template() {
    let env_patch = |path: &[&str]| {
        let mut v = json!({"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]});
        for p in path.iter().rev() {
            v = json!({ *p: v });
        }
        v
    };
    let env_live = |path: &[&str]| {
        let mut v = json!({"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]});
        for p in path.iter().rev() {
            v = json!({ *p: v });
        }
        v
    };
    let cases: &[(&str, &[&str])] = &[
        ("", &["spec"]),
        ("apps", &["spec", "template", "spec"]),
        ("batch", &["spec", "template", "spec"]),
        ("cron", &["spec", "jobTemplate", "spec", "template", "spec"]),
        ("rc", &["spec", "template", "spec"]),
        ("tmpl", &["template", "spec"]),
    ];
    let kinds: &[(&str, &[&str])] = &[
        ("", &["Pod"]),
        (
            "apps",
            &[
                "apps/Deployment",
                "apps/ReplicaSet",
                "apps/StatefulSet",
                "apps/DaemonSet",
            ],
        ),
        ("batch", &["batch/Job"]),
        ("cron", &["batch/CronJob"]),
        ("rc", &["ReplicationController"]),
        ("tmpl", &["PodTemplate"]),
    ];
    for (tag, path) in cases {
        let names = kinds
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, k)| *k)
            .unwrap_or(&[]);
        for kind in names {
            let merged = strategic_merge_patch(&env_live(path), &env_patch(path), {
                let (g, k) = kind.split_once('/').unwrap_or(("", kind));
                schema_for_kind(g, k).unwrap()
            })
            .unwrap();
            let mut node = &merged;
            for p in *path {
                node = &node[*p];
            }
            assert_eq!(
                node["containers"][0]["env"].as_array().unwrap().len(),
                2,
                "{kind}"
            );
        }
    }
}

#[test]
fn other_tagged_fields() {
    check(
        "Service",
        json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
    );
    check(
        "Node",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}]}}),
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}]}}),
    );
    check(
        "ConfigMap",
        json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
        json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
        json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}}),
    );
    check(
        "policy/PodDisruptionBudget",
        json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}}),
        json!({"spec": {"selector": {"matchExpressions": []}}}),
        json!({"spec": {"selector": {"matchExpressions": []}}}),
    );
}

#[test]
fn new_subtrees_store_no_directives() {
    check(
        "Pod",
        json!({"spec": {"containers": [{"name": "a"}]}}),
        json!({"spec": {"containers": [{"name": "b", "env": [{"name": "X", "value": "1"}, {"$patch": "delete", "name": "Y"}],
                                         "resources": {"limits": {"cpu": "1", "memory": null}}}]}}),
        json!({"spec": {"containers": [{"name": "b", "env": [{"name": "X", "value": "1"}], "resources": {"limits": {"cpu": "1"}}},
                                       {"name": "a"}]}}),
    );
}

#[test]
fn malformed_input() {
    let schema = &TypeSchema::EMPTY;
    assert_eq!(
        strategic_merge_patch(&json!({}), &json!([1]), schema),
        Err(PatchError::BadJsonDoc)
    );
    check(
        "ConfigMap",
        json!({"metadata": {"finalizers": [["a"]]}}),
        json!({"metadata": {"finalizers": [["b"]]}}),
        json!({"error": "lists of lists are not supported"}),
    );
    check(
        "ConfigMap",
        json!({"metadata": {"finalizers": ["a"]}}),
        json!({"metadata": {"finalizers": [1]}}),
        json!({"error": "list element types are not identical: [[a] [1]]"}),
    );
}

#[test]
fn errors_map_to_upstream_statuses() {
    assert_eq!(
        PatchError::BadPatchFormatForRetainKeys.to_status().code,
        400
    );
    let s = PatchError::NoListOfLists.to_status();
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    let s = PatchError::Other("map: map[] does not contain declared merge key: name".into())
        .to_status();
    assert_eq!((s.code, s.reason.as_str()), (500, ""));
}

#[test]
fn schema_lookup_by_api_version() {
    assert_eq!(
        schema_for_object("apps/v1", "Deployment").unwrap().name,
        "Deployment"
    );
    assert_eq!(schema_for_object("v1", "Pod").unwrap().name, "Pod");
    assert_eq!(schema_for_object("v1", "ConfigMap").unwrap().name, "Object");
    assert!(schema_for_object("example.com/v1", "Widget").is_none());
    let pod_spec = schema_for_kind("", "Pod")
        .unwrap()
        .field("spec")
        .unwrap()
        .schema
        .unwrap();
    let containers = pod_spec.field("containers").unwrap();
    assert_eq!(
        (containers.strategy, containers.merge_key),
        (Strategy::Merge, Some("name"))
    );
    assert!(pod_spec.field("volumes").unwrap().retain_keys);
}

#[test]
fn merged_objects_keep_their_key_order() {
    let merged = strategic_merge_patch(
        &json!({"a": 1, "b": {"x": 1, "y": 2}, "c": 3}),
        &json!({"b": {"x": 5}, "a": null, "d": 4}),
        &TypeSchema::EMPTY,
    )
    .unwrap();
    assert_eq!(merged.to_string(), r#"{"b":{"x":5,"y":2},"c":3,"d":4}"#);
}

/// The `mergingList`/`mergingIntList` fields of upstream's test struct.
static MERGE_ITEM: TypeSchema = TypeSchema {
    name: "mergeItem",
    fields: &[
        FieldPatch {
            name: "mergingList",
            strategy: Strategy::Merge,
            merge_key: Some("name"),
            retain_keys: false,
            schema: None,
        },
        FieldPatch {
            name: "mergeItemPtr",
            strategy: Strategy::Merge,
            merge_key: Some("name"),
            retain_keys: false,
            schema: None,
        },
        FieldPatch {
            name: "mergingIntList",
            strategy: Strategy::Merge,
            merge_key: None,
            retain_keys: false,
            schema: None,
        },
    ],
};

/// Upstream `patch_test.go` three-way cases: (current, patch, result).
#[test]
fn upstream_order_preserving_cases() {
    let named = |items: &[(i64, &str)]| -> Value {
        Value::Array(
            items
                .iter()
                .map(|(n, extra)| {
                    let mut m = json!({ "name": n });
                    if !extra.is_empty() {
                        m["value"] = json!(extra);
                    }
                    m
                })
                .collect(),
        )
    };
    let order = |names: &[i64]| -> Value { names.iter().map(|n| json!({ "name": n })).collect() };
    let cases = [
        // add an item in a list and preserve order
        (
            json!({"mergingList": named(&[(1, ""), (2, "2")])}),
            json!({"$setElementOrder/mergingList": order(&[3, 1, 2]), "mergingList": named(&[(3, "3")])}),
            json!({"mergingList": named(&[(3, "3"), (1, ""), (2, "2")])}),
        ),
        // set elements order in a list with server-only items (1, 2, 3)
        (
            json!({"mergingList": named(&[(1, ""), (3, "3"), (4, "4"), (2, "2"), (9, "")])}),
            json!({"$setElementOrder/mergingList": order(&[4, 2, 3, 1])}),
            json!({"mergingList": named(&[(4, "4"), (2, "2"), (3, "3"), (1, ""), (9, "")])}),
        ),
        (
            json!({"mergingList": named(&[(1, ""), (2, "2"), (9, ""), (3, "3"), (4, "4")])}),
            json!({"$setElementOrder/mergingList": order(&[2, 1, 4, 3])}),
            json!({"mergingList": named(&[(2, "2"), (1, ""), (9, ""), (4, "4"), (3, "3")])}),
        ),
        (
            json!({"mergingList": named(&[(1, ""), (2, "2"), (7, ""), (9, ""), (8, ""), (3, "3"), (4, "4")])}),
            json!({"$setElementOrder/mergingList": order(&[2, 1, 4, 3])}),
            json!({"mergingList": named(&[(2, "2"), (1, ""), (7, ""), (9, ""), (8, ""), (4, "4"), (3, "3")])}),
        ),
        // duplicates keep their relative order
        (
            json!({"mergingList": named(&[(1, ""), (2, "dup1"), (3, ""), (2, "dup2"), (4, "")])}),
            json!({"$setElementOrder/mergingList": order(&[2, 1, 4, 3, 2])}),
            json!({"mergingList": named(&[(2, "dup1"), (2, "dup2"), (1, ""), (4, ""), (3, "")])}),
        ),
        (
            json!({"mergingIntList": [1, 2, 3, 2, 4]}),
            json!({"$setElementOrder/mergingIntList": [2, 1, 4, 3, 2]}),
            json!({"mergingIntList": [2, 2, 1, 4, 3]}),
        ),
        // delete and reorder in one list, reorder in another
        (
            json!({"mergingList": [{"name": "a", "value": "a"}, {"name": "b", "value": "b"}],
                   "mergeItemPtr": [{"name": "c", "value": "c"}, {"name": "d", "value": "d"}]}),
            json!({"$setElementOrder/mergingList": [{"name": "b"}],
                   "$setElementOrder/mergeItemPtr": [{"name": "d"}, {"name": "c"}],
                   "mergingList": [{"$patch": "delete", "name": "a"}]}),
            json!({"mergingList": [{"name": "b", "value": "b"}],
                   "mergeItemPtr": [{"name": "d", "value": "d"}, {"name": "c", "value": "c"}]}),
        ),
    ];
    for (current, patch, result) in cases {
        let got = strategic_merge_patch(&current, &patch, &MERGE_ITEM).unwrap();
        assert_eq!(got, result, "patch: {patch}");
    }
}
