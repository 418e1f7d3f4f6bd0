//! Discovery documents: `/api`, `/apis`, and each group-version's resource list.

use serde_json::{Value, json};

use crate::resources::{self, ResourceDef};

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_entry(group: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{group}/{v}"), "version": v }))
        .collect();
    json!({ "name": group, "versions": gvs, "preferredVersion": gvs[0] })
}

/// `/apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(g, v)| group_entry(g, &v))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/<group>`, if served.
pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = resources::groups().into_iter().find(|(g, _)| *g == group)?;
    let mut doc = group_entry(g, &v);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// The discovery entries of one resource and its subresources.
fn resource_entries(r: &ResourceDef) -> Vec<Value> {
    let mut main = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        main["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        main["categories"] = json!(r.categories);
    }
    if r.kind == "Binding" {
        main["verbs"] = json!(["create"]);
    }
    let mut out = vec![main];
    for sub in r.subresources {
        let (kind, group, version, verbs): (&str, Option<&str>, Option<&str>, &[&str]) = match *sub
        {
            "status" => (r.kind, None, None, &["get", "patch", "update"]),
            "scale" => (
                "Scale",
                Some("autoscaling"),
                Some("v1"),
                &["get", "patch", "update"],
            ),
            "binding" => ("Binding", None, None, &["create"]),
            "eviction" => ("Eviction", Some("policy"), Some("v1"), &["create"]),
            "token" => (
                "TokenRequest",
                Some("authentication.k8s.io"),
                Some("v1"),
                &["create"],
            ),
            "finalize" => (r.kind, None, None, &["update"]),
            "attach" => ("PodAttachOptions", None, None, &["create", "get"]),
            "exec" => ("PodExecOptions", None, None, &["create", "get"]),
            "portforward" => ("PodPortForwardOptions", None, None, &["create", "get"]),
            "log" => ("Pod", None, None, &["get"]),
            "ephemeralcontainers" => (r.kind, None, None, &["get", "patch", "update"]),
            "proxy" => (
                proxy_options_kind(r.kind),
                None,
                None,
                &["create", "delete", "get", "patch", "update"],
            ),
            _ => (r.kind, None, None, &["get"]),
        };
        let mut e = json!({
            "name": format!("{}/{}", r.plural, sub),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": kind,
            "verbs": verbs,
        });
        if let (Some(g), Some(v)) = (group, version) {
            e["group"] = json!(g);
            e["version"] = json!(v);
        }
        out.push(e);
    }
    out
}

/// The options kind upstream names for a resource's `proxy` subresource.
fn proxy_options_kind(kind: &str) -> &'static str {
    match kind {
        "Node" => "NodeProxyOptions",
        "Service" => "ServiceProxyOptions",
        _ => "PodProxyOptions",
    }
}

/// `/api/v1` or `/apis/<group>/<version>`, if served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    if !resources::serves(group, version) {
        return None;
    }
    let resources: Vec<Value> = resources::served_at(group, version)
        .flat_map(resource_entries)
        .collect();
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }),
    )
}

/// The media type of aggregated discovery (`apidiscovery.k8s.io/v2`).
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery v2 (kubectl's first preference).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p = part.replace(' ', "");
        p.contains("g=apidiscovery.k8s.io")
            && p.contains("v=v2")
            && !p.contains("v=v2beta1")
            && p.contains("as=APIGroupDiscoveryList")
    })
}

fn aggregated_resource(r: &ResourceDef) -> Value {
    let mut e = json!({
        "resource": r.plural,
        "responseKind": { "group": r.group, "version": r.version, "kind": r.kind },
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": if r.kind == "Binding" { json!(["create"]) } else { json!(r.verbs()) },
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    // Subresources as the legacy list describes them.
    let subs: Vec<Value> = resource_entries(r)
        .into_iter()
        .skip(1)
        .map(|s| {
            let name = s["name"]
                .as_str()
                .unwrap_or("")
                .split('/')
                .nth(1)
                .unwrap_or("")
                .to_string();
            let group = s.get("group").cloned().unwrap_or(json!(r.group));
            let version = s.get("version").cloned().unwrap_or(json!(r.version));
            json!({
                "subresource": name,
                "responseKind": { "group": group, "version": version, "kind": s["kind"] },
                "verbs": s["verbs"],
            })
        })
        .collect();
    if !subs.is_empty() {
        e["subresources"] = json!(subs);
    }
    e
}

fn aggregated_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let resources: Vec<Value> = resources::served_at(group, version)
                .map(aggregated_resource)
                .collect();
            json!({ "version": version, "resources": resources, "freshness": "Current" })
        })
        .collect();
    json!({ "metadata": { "name": group }, "versions": versions })
}

/// Aggregated discovery for `/api` (`legacy`) or `/apis`.
pub fn aggregated(legacy: bool) -> Value {
    let items: Vec<Value> = if legacy {
        vec![aggregated_group("", &["v1"])]
    } else {
        resources::groups()
            .into_iter()
            .map(|(g, v)| aggregated_group(g, &v))
            .collect()
    };
    json!({ "kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_header_selects_aggregated_discovery() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json"));
    }

    #[test]
    fn aggregated_discovery_lists_scale_as_an_autoscaling_subresource() {
        let doc = aggregated(false);
        let apps = doc["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .expect("apps");
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == "deployments")
            .expect("deployments");
        let scale = deploy["subresources"]
            .as_array()
            .expect("subresources")
            .iter()
            .find(|s| s["subresource"] == "scale")
            .expect("scale");
        assert_eq!(
            scale["responseKind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        assert_eq!(deploy["scope"], "Namespaced");
    }
}
