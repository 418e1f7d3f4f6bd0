//! Events as upstream's recorder writes them: core/v1 Events about an object with a reason, a
//! message and the controller as `source.component` (`replicaset-controller`, …). A repeat of
//! the same event bumps the existing Event's `count` and `lastTimestamp` instead of creating
//! another, as upstream's correlator does. Recording never blocks the caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};

/// `Normal` events: expected things happened.
pub const NORMAL: &str = "Normal";
/// `Warning` events: something went wrong.
pub const WARNING: &str = "Warning";

/// Past this many distinct events, the repeat cache starts over.
const CACHE_LIMIT: usize = 4096;

#[derive(Clone, Hash, PartialEq, Eq)]
struct EventKey {
    namespace: String,
    uid: String,
    kind: String,
    name: String,
    type_: String,
    reason: String,
    message: String,
}

/// Writes Events as one component. Cloning is cheap.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    seen: Arc<Mutex<HashMap<EventKey, (String, i32)>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .finish()
    }
}

impl Recorder {
    /// A recorder whose events come from `component` (e.g. `namespace-controller`).
    pub fn new(client: Client, component: &str) -> Self {
        Recorder {
            client,
            component: component.to_string(),
            seen: Arc::default(),
        }
    }

    /// Records a `Normal` event about `obj`.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: &str) {
        self.record(obj.object_ref(&()), NORMAL, reason, message);
    }

    /// Records a `Warning` event about `obj`.
    pub fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: &str) {
        self.record(obj.object_ref(&()), WARNING, reason, message);
    }

    /// Records an event about the object `involved` refers to, in the background.
    pub fn record(&self, involved: ObjectReference, type_: &str, reason: &str, message: &str) {
        let this = self.clone();
        let (type_, reason, message) = (type_.to_string(), reason.to_string(), message.to_string());
        tokio::spawn(async move {
            if let Err(e) = this.write(involved, &type_, &reason, &message).await {
                tracing::debug!(component = %this.component, %reason, "recording an event: {e}");
            }
        });
    }

    async fn write(
        &self,
        involved: ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        // Events about cluster-scoped objects live in `default`, as upstream's.
        let namespace = involved
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let key = EventKey {
            namespace: namespace.clone(),
            uid: involved.uid.clone().unwrap_or_default(),
            kind: involved.kind.clone().unwrap_or_default(),
            name: involved.name.clone().unwrap_or_default(),
            type_: type_.into(),
            reason: reason.into(),
            message: message.into(),
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = k8s_openapi::jiff::Timestamp::now();
        let previous = self.lock().get(&key).cloned();
        if let Some((name, count)) = previous {
            let patch = serde_json::json!({
                "count": count + 1,
                "lastTimestamp": Time(now),
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.lock().insert(key, (name, count + 1));
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let object_name = involved.name.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{object_name}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: involved,
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Event::default()
        };
        let created = api.create(&PostParams::default(), &event).await?;
        let mut seen = self.lock();
        if seen.len() >= CACHE_LIMIT {
            seen.clear();
        }
        seen.insert(key, (created.metadata.name.unwrap_or_default(), 1));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EventKey, (String, i32)>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}
