//! OpenAPI v3 documents, generated from the Rust types: what `kubectl create/apply` validation
//! and `kubectl explain` read. `/openapi/v3` lists one document per group-version; the v2
//! document is derived from these.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use kox_api::strategic_merge::schema::{Strategy, TypeSchema, schema_for_kind};

use crate::resources::{self, ResourceDef};

/// Documents (with their hashes) by path (`api/v1`, `apis/apps/v1`), built once.
pub(super) fn documents() -> &'static BTreeMap<String, (Value, String)> {
    static DOCS: OnceLock<BTreeMap<String, (Value, String)>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut gvs: Vec<(&str, &str)> = vec![("", "v1")];
        for (g, versions) in resources::groups() {
            gvs.extend(versions.into_iter().map(|v| (g, v)));
        }
        gvs.into_iter()
            .map(|(g, v)| {
                let path = if g.is_empty() {
                    format!("api/{v}")
                } else {
                    format!("apis/{g}/{v}")
                };
                let doc = build(g, v);
                let mut h = std::collections::hash_map::DefaultHasher::new();
                doc.to_string().hash(&mut h);
                (path, (doc, format!("{:016X}", h.finish())))
            })
            .collect()
    })
}

/// `/openapi/v3`.
pub fn index() -> Value {
    let paths: serde_json::Map<String, Value> = documents()
        .iter()
        .map(|(path, (_, hash))| {
            (
                path.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}") }),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// `/openapi/v3/<path>`.
pub fn document(path: &str) -> Option<Value> {
    documents().get(path).map(|(doc, _)| doc.clone())
}

fn gvk(def: &ResourceDef) -> Value {
    json!({ "group": def.group, "version": def.version, "kind": def.kind })
}

/// The schemas of `defs` and of everything they lead to, from one generator: each kind's schema
/// lists its group-version-kinds, and fields carry their strategic-merge-patch metadata. Also
/// returns each def's `$ref`, in the order of `defs`.
pub(super) fn schemas(defs: &[&ResourceDef]) -> (serde_json::Map<String, Value>, Vec<String>) {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let refs: Vec<String> = defs
        .iter()
        .map(|def| {
            let schema = (def.strategy.schema)(&mut generator);
            schema
                .get("$ref")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let mut schemas = generator.take_definitions(true);
    for (def, reference) in defs.iter().zip(&refs) {
        let name = reference.rsplit('/').next().unwrap_or("");
        if let Some(s) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            let gvks = s
                .entry("x-kubernetes-group-version-kind")
                .or_insert_with(|| json!([]));
            if let Some(list) = gvks.as_array_mut() {
                list.push(gvk(def));
            }
        }
        if let Some(patch_schema) = schema_for_kind(def.group, def.kind) {
            annotate_patch_meta(&mut schemas, name, patch_schema, 0);
        }
    }
    add_enums(&mut schemas);
    (schemas, refs)
}

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["FallbackToLogsOnError", "File"];
const TAINT_EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];
const UPDATE_STRATEGIES: &[&str] = &["OnDelete", "RollingUpdate"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];

/// Upstream's `+enum` string types as its OpenAPI lists them (values sorted), by schema,
/// property and whether the values are the property's array items: what `kubectl explain`
/// prints as `ENUM:`.
pub(super) const ENUMS: &[(&str, &str, bool, &[&str])] = &[
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "type",
        false,
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "externalTrafficPolicy",
        false,
        TRAFFIC_POLICIES,
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "internalTrafficPolicy",
        false,
        TRAFFIC_POLICIES,
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "sessionAffinity",
        false,
        &["ClientIP", "None"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ipFamilyPolicy",
        false,
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
    ),
    (
        "io.k8s.api.core.v1.ServicePort",
        "protocol",
        false,
        PROTOCOLS,
    ),
    (
        "io.k8s.api.core.v1.ContainerPort",
        "protocol",
        false,
        PROTOCOLS,
    ),
    (
        "io.k8s.api.core.v1.EndpointPort",
        "protocol",
        false,
        PROTOCOLS,
    ),
    (
        "io.k8s.api.discovery.v1.EndpointPort",
        "protocol",
        false,
        PROTOCOLS,
    ),
    (
        "io.k8s.api.networking.v1.NetworkPolicyPort",
        "protocol",
        false,
        PROTOCOLS,
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "restartPolicy",
        false,
        &["Always", "Never", "OnFailure"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "dnsPolicy",
        false,
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "preemptionPolicy",
        false,
        &["Never", "PreemptLowerPriority"],
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "phase",
        false,
        &["Failed", "Pending", "Running", "Succeeded", "Unknown"],
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "qosClass",
        false,
        &["BestEffort", "Burstable", "Guaranteed"],
    ),
    (
        "io.k8s.api.core.v1.Container",
        "imagePullPolicy",
        false,
        PULL_POLICIES,
    ),
    (
        "io.k8s.api.core.v1.Container",
        "terminationMessagePolicy",
        false,
        MESSAGE_POLICIES,
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "imagePullPolicy",
        false,
        PULL_POLICIES,
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "terminationMessagePolicy",
        false,
        MESSAGE_POLICIES,
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        "accessModes",
        true,
        ACCESS_MODES,
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        "volumeMode",
        false,
        VOLUME_MODES,
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeSpec",
        "accessModes",
        true,
        ACCESS_MODES,
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeSpec",
        "volumeMode",
        false,
        VOLUME_MODES,
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeSpec",
        "persistentVolumeReclaimPolicy",
        false,
        &["Delete", "Recycle", "Retain"],
    ),
    (
        "io.k8s.api.core.v1.Toleration",
        "operator",
        false,
        &["Equal", "Exists"],
    ),
    (
        "io.k8s.api.core.v1.Toleration",
        "effect",
        false,
        TAINT_EFFECTS,
    ),
    ("io.k8s.api.core.v1.Taint", "effect", false, TAINT_EFFECTS),
    (
        "io.k8s.api.core.v1.NodeSelectorRequirement",
        "operator",
        false,
        &["DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"],
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "phase",
        false,
        &["Active", "Terminating"],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStrategy",
        "type",
        false,
        &["Recreate", "RollingUpdate"],
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetUpdateStrategy",
        "type",
        false,
        UPDATE_STRATEGIES,
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetUpdateStrategy",
        "type",
        false,
        UPDATE_STRATEGIES,
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetSpec",
        "podManagementPolicy",
        false,
        &["OrderedReady", "Parallel"],
    ),
    (
        "io.k8s.api.batch.v1.JobSpec",
        "completionMode",
        false,
        &["Indexed", "NonIndexed"],
    ),
    (
        "io.k8s.api.batch.v1.CronJobSpec",
        "concurrencyPolicy",
        false,
        &["Allow", "Forbid", "Replace"],
    ),
];

/// Adds [`ENUMS`] to the schemas present.
fn add_enums(schemas: &mut serde_json::Map<String, Value>) {
    for (schema, property, items, values) in ENUMS {
        let Some(prop) = schemas
            .get_mut(*schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(*property))
        else {
            continue;
        };
        let target = if *items {
            prop.get_mut("items")
        } else {
            Some(prop)
        };
        if let Some(t) = target.and_then(Value::as_object_mut) {
            t.insert("enum".into(), json!(values));
        }
    }
}

fn build(group: &str, version: &str) -> Value {
    let defs: Vec<&ResourceDef> = resources::served_at(group, version).collect();
    let (schemas, refs) = schemas(&defs);
    let mut paths = serde_json::Map::new();
    for (def, reference) in defs.iter().zip(refs) {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let collection = if def.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", def.plural)
        } else {
            format!("{prefix}/{}", def.plural)
        };
        let body = json!({ "schema": { "$ref": reference } });
        let params_common = json!([
            { "name": "dryRun", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
            { "name": "fieldManager", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
            { "name": "fieldValidation", "in": "query", "description": "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Strict - Warn", "schema": { "type": "string", "uniqueItems": true } },
        ]);
        let ext = gvk(def);
        let op = |id: &str| {
            json!({
                "operationId": format!("{id}{}", def.kind),
                "parameters": params_common,
                "x-kubernetes-action": id,
                "x-kubernetes-group-version-kind": ext,
                "responses": { "200": { "description": "OK", "content": { "application/json": body } } },
            })
        };
        let mut post = op("post");
        post["requestBody"] =
            json!({ "content": { "application/json": body, "application/yaml": body } });
        let mut put = op("put");
        put["requestBody"] = post["requestBody"].clone();
        let mut patch = op("patch");
        patch["requestBody"] = json!({ "content": {
            "application/json-patch+json": { "schema": { "type": "object" } },
            "application/merge-patch+json": { "schema": { "type": "object" } },
            "application/strategic-merge-patch+json": { "schema": { "type": "object" } },
            "application/apply-patch+yaml": { "schema": { "type": "object" } },
        }});
        if def.create_only {
            paths.insert(collection, json!({ "post": post }));
            continue;
        }
        paths.insert(
            collection.clone(),
            json!({ "get": op("list"), "post": post }),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({ "get": op("get"), "put": put, "patch": patch, "delete": op("delete") }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": crate::KUBERNETES_VERSION },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// Adds upstream's `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` to the schema
/// named `name` (and what it leads to), from the strategic-merge table: kubectl's client-side
/// apply computes its patches from these, so lists such as `containers` merge by name.
fn annotate_patch_meta(
    schemas: &mut serde_json::Map<String, Value>,
    name: &str,
    patch: &TypeSchema,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    for field in patch.fields {
        let Some(prop) = schemas
            .get_mut(name)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field.name))
        else {
            continue;
        };
        let Some(prop) = prop.as_object_mut() else {
            continue;
        };
        match field.strategy {
            Strategy::Merge => {
                prop.insert(
                    "x-kubernetes-patch-strategy".into(),
                    json!(if field.retain_keys {
                        "merge,retainKeys"
                    } else {
                        "merge"
                    }),
                );
            }
            Strategy::Replace => {
                prop.insert("x-kubernetes-patch-strategy".into(), json!("replace"));
            }
            Strategy::Default => {}
        }
        if let Some(key) = field.merge_key {
            prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
        let target = prop
            .get("items")
            .and_then(|i| i.get("$ref"))
            .or_else(|| prop.get("$ref"))
            .or_else(|| {
                prop.get("allOf")
                    .and_then(|a| a.get(0))
                    .and_then(|a| a.get("$ref"))
            })
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .map(str::to_string);
        if let (Some(next), Some(sub)) = (target, field.schema) {
            annotate_patch_meta(schemas, &next, sub, depth + 1);
        }
    }
}
