//! Static pods: manifests in `--pod-manifest-path` run without the API server, as the
//! kubelet's file source. Each pod is named `<name>-<node>`, gets a uid from its content (an
//! edit is a new pod), and is mirrored into the API as a mirror pod
//! (`kubernetes.io/config.mirror`, owned by the Node) that comes back if deleted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kox_api::pod_refs::MIRROR_ANNOTATION;
use serde_json::{Value, json};

use crate::Agent;

pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";

/// The static pods the manifests describe now, by uid.
pub fn read_manifests(agent: &Agent, dir: &Path) -> HashMap<String, Pod> {
    let mut pods = HashMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && p.is_file()
        })
        .collect();
    files.sort();
    for path in files {
        match static_pod(agent, &path) {
            Ok(pod) => {
                pods.insert(pod.metadata.uid.clone().unwrap_or_default(), pod);
            }
            Err(e) => tracing::warn!(manifest = %path.display(), "static pod: {e}"),
        }
    }
    pods
}

fn static_pod(agent: &Agent, path: &Path) -> Result<Pod, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut obj: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).map_err(|e| e.to_string())?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())?
    };
    if obj["kind"] != "Pod" {
        return Err(format!("kind {} is not Pod", obj["kind"]));
    }
    let node = &agent.config.node_name;
    let name = obj["metadata"]["name"]
        .as_str()
        .ok_or("metadata.name is missing")?
        .to_string();
    let uid = content_uid(&text, node, path);
    let meta = &mut obj["metadata"];
    meta["name"] = json!(format!("{name}-{node}"));
    if meta["namespace"].as_str().is_none_or(str::is_empty) {
        meta["namespace"] = json!("default");
    }
    meta["uid"] = json!(uid);
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][CONFIG_SOURCE] = json!("file");
    meta["annotations"][CONFIG_HASH] = json!(uid);
    default_spec(&mut obj["spec"], node);
    serde_json::from_value(obj).map_err(|e| e.to_string())
}

/// The defaults the API server would give, which a pod that never went through it needs.
fn default_spec(spec: &mut Value, node: &str) {
    spec["nodeName"] = json!(node);
    for (field, value) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("terminationGracePeriodSeconds", json!(30)),
    ] {
        if spec[field].is_null() {
            spec[field] = value;
        }
    }
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            if c["imagePullPolicy"].is_null() {
                let image = c["image"].as_str().unwrap_or("");
                let latest = image.ends_with(":latest")
                    || !image.rsplit('/').next().unwrap_or("").contains(':');
                c["imagePullPolicy"] = json!(if latest && !image.contains('@') {
                    "Always"
                } else {
                    "IfNotPresent"
                });
            }
            if c["terminationMessagePath"].is_null() {
                c["terminationMessagePath"] = json!("/dev/termination-log");
            }
        }
    }
}

/// A uid from the manifest, the node and the file (as the kubelet hashes them).
fn content_uid(text: &str, node: &str, path: &Path) -> String {
    let input = format!("{text}\n{node}\n{}", path.display());
    let d = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    let h: String = d
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    h
}

/// The mirror pod of a static pod: the same pod in the API, marked and owned by the Node.
pub fn mirror_of(pod: &Pod, node_uid: &str) -> Value {
    let mut obj = serde_json::to_value(pod).unwrap_or_default();
    let hash = pod.metadata.uid.clone().unwrap_or_default();
    let meta = obj["metadata"].as_object_mut().expect("a pod has metadata");
    meta.remove("uid");
    meta.remove("resourceVersion");
    meta.remove("creationTimestamp");
    obj["metadata"]["annotations"][MIRROR_ANNOTATION] = json!(hash);
    obj["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "Node", "name": pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        "uid": node_uid, "controller": true,
    }]);
    obj.as_object_mut().map(|o| o.remove("status"));
    obj
}

/// The static pod a mirror pod stands for (its `kubernetes.io/config.mirror` hash).
pub fn mirror_hash(pod: &Pod) -> Option<String> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(MIRROR_ANNOTATION)
        .cloned()
}
