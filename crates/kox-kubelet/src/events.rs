//! Events about a pod, as the kubelet records them (core/v1, `source.component: kubelet`):
//! a repeat of the same reason and message within 10 minutes bumps the first one's count, as
//! upstream's event correlator does, instead of creating another.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

const REPEAT_WINDOW: Duration = Duration::from_secs(600);

/// Records one pod's events.
pub struct PodEvents {
    api: Api<k8s_openapi::api::core::v1::Event>,
    host: String,
    involved: serde_json::Value,
    pod_name: String,
    /// (reason, message) → (event name, count, first recorded).
    recorded: HashMap<(String, String), (String, i32, Instant)>,
}

impl PodEvents {
    pub fn new(client: kube::Client, host: &str, pod: &Pod) -> PodEvents {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        PodEvents {
            api: Api::namespaced(client, &ns),
            host: host.into(),
            involved: json!({
                "kind": "Pod", "apiVersion": "v1", "namespace": ns,
                "name": pod.metadata.name, "uid": pod.metadata.uid,
                "resourceVersion": pod.metadata.resource_version,
            }),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            recorded: HashMap::new(),
        }
    }

    /// Records an event about the pod, or about one of its containers (`field`:
    /// `spec.containers{name}`). The write happens in the background, as upstream's
    /// broadcaster does: a pod's start never waits on its events.
    pub fn record(&mut self, field: Option<&str>, type_: &str, reason: &str, message: &str) {
        let key = (reason.to_string(), message.to_string());
        let now = crate::now_rfc3339();
        if let Some((name, count, first)) = self.recorded.get_mut(&key)
            && first.elapsed() < REPEAT_WINDOW
        {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": now});
            let (api, name) = (self.api.clone(), name.clone());
            tokio::spawn(async move {
                if let Err(e) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    tracing::debug!("updating event {name}: {e}");
                }
            });
            return;
        }
        let mut involved = self.involved.clone();
        if let Some(field) = field {
            involved["fieldPath"] = json!(field);
        }
        let name = format!("{}.{:x}", self.pod_name, unique());
        let event = json!({
            "metadata": {"name": name},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": type_,
            "source": {"component": "kubelet", "host": self.host},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": self.host,
        });
        let Ok(event) = serde_json::from_value::<k8s_openapi::api::core::v1::Event>(event) else {
            return;
        };
        self.recorded.insert(key, (name, 1, Instant::now()));
        let (api, reason) = (self.api.clone(), reason.to_string());
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!("recording event {reason}: {e}");
            }
        });
    }
}

/// A number unique enough for an event name: nanoseconds since the epoch.
fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
