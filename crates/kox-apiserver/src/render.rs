//! Response shapes a client may ask for in `Accept`: the object itself, a `Table` for
//! `kubectl get`, or `PartialObjectMetadata`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::resources::ResourceDef;

/// What goes into a row's `object` field of a Table (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// The requested representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    Object,
    Table(IncludeObject),
    PartialMetadata,
}

impl Render {
    /// Chooses from the `Accept` header and `includeObject` parameter.
    pub fn negotiate(accept: &str, include_object: Option<&str>) -> Self {
        for part in accept.split(',') {
            let p = part.replace(' ', "");
            if p.contains("as=Table") && p.contains("g=meta.k8s.io") {
                let include = match include_object {
                    Some("Object") => IncludeObject::Object,
                    Some("None") => IncludeObject::None,
                    _ => IncludeObject::Metadata,
                };
                return Render::Table(include);
            }
            if (p.contains("as=PartialObjectMetadata;")
                || p.ends_with("as=PartialObjectMetadata")
                || p.contains("as=PartialObjectMetadataList"))
                && p.contains("g=meta.k8s.io")
            {
                return Render::PartialMetadata;
            }
            if p.starts_with("application/json")
                || p.starts_with("application/yaml")
                || p.starts_with("*/*")
            {
                return Render::Object;
            }
        }
        Render::Object
    }

    /// One object as a watch event or GET carries it.
    pub fn event_object(self, def: &ResourceDef, obj: Value) -> Value {
        match self {
            Render::Object => obj,
            Render::PartialMetadata => partial(&obj),
            Render::Table(include) => {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(json!(""));
                let mut t = table(def, vec![Arc::new(obj)], include);
                t["metadata"]["resourceVersion"] = rv;
                t
            }
        }
    }

    /// A list of objects, already filtered, with its list metadata.
    pub fn list(self, def: &ResourceDef, items: Vec<Arc<Value>>, list_metadata: Value) -> Value {
        match self {
            Render::Object => unreachable_list(def, items, list_metadata),
            Render::PartialMetadata => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_metadata,
                "items": items.iter().map(|o| partial(o)).collect::<Vec<_>>(),
            }),
            Render::Table(include) => {
                let mut t = table(def, items, include);
                t["metadata"] = list_metadata;
                t
            }
        }
    }
}

fn unreachable_list(def: &ResourceDef, items: Vec<Arc<Value>>, list_metadata: Value) -> Value {
    json!({ "kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": list_metadata, "items": items.into_iter().map(Arc::unwrap_or_clone).collect::<Vec<_>>() })
}

fn partial(obj: &Value) -> Value {
    json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({})) })
}

/// A `meta.k8s.io/v1` Table of `items` (copied only when the rows carry whole objects).
pub fn table(def: &ResourceDef, items: Vec<Arc<Value>>, include: IncludeObject) -> Value {
    let now = jiff::Timestamp::now();
    let t = def.strategy.table;
    let rows: Vec<Value> = items
        .into_iter()
        .map(|obj| {
            let cells = (t.row)(&obj, now);
            let mut row = json!({ "cells": cells });
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial(&obj),
                IncludeObject::Object => {
                    let mut o = Arc::unwrap_or_clone(obj);
                    if o.get("kind").is_none() {
                        o["kind"] = json!(def.kind);
                        o["apiVersion"] = json!(def.api_version());
                    }
                    row["object"] = o;
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": t.column_definitions(),
        "rows": rows,
    })
}
