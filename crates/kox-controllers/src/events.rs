//! Events as upstream's recorder writes them: core/v1 Events about an object with a reason, a
//! message and the controller as `source.component` (`replicaset-controller`, …). Every event
//! passes upstream's correlator first (`correlator.rs`): repeats bump an existing Event's
//! `count`, many similar messages are combined into one Event, and a component writes about
//! one object at most 25 times, then once every 5 minutes. Recording never blocks the caller.

mod correlator;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use tokio::sync::mpsc;

use correlator::{Correlator, Occurrence, Verdict};

/// `Normal` events: expected things happened.
pub const NORMAL: &str = "Normal";
/// `Warning` events: something went wrong.
pub const WARNING: &str = "Warning";

/// Events correlated but not yet written, past which new ones are dropped (upstream's
/// `maxQueuedEvents`).
const MAX_QUEUED: usize = 1000;

/// Writes Events as one component. Cloning is cheap; clones share the correlator and the
/// writer.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    correlator: Arc<Mutex<Correlator>>,
    /// The queue of the task writing this recorder's Events one at a time, in order (so a
    /// bump never overtakes the create it bumps); started by the first event.
    writer: Arc<OnceLock<mpsc::Sender<Write>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .finish()
    }
}

/// One Event to write, as the correlator decided.
struct Write {
    involved: ObjectReference,
    namespace: String,
    type_: String,
    reason: String,
    verdict: Verdict,
}

impl Recorder {
    /// A recorder whose events come from `component` (e.g. `namespace-controller`).
    pub fn new(client: Client, component: &str) -> Self {
        Recorder {
            client,
            component: component.to_string(),
            correlator: Arc::default(),
            writer: Arc::default(),
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

    /// Records an event about the object `involved` refers to: correlated at once and
    /// written in the background.
    pub fn record(&self, involved: ObjectReference, type_: &str, reason: &str, message: &str) {
        let occurrence = Occurrence {
            component: self.component.clone(),
            object: [
                involved.kind.clone().unwrap_or_default(),
                involved.namespace.clone().unwrap_or_default(),
                involved.name.clone().unwrap_or_default(),
                involved.uid.clone().unwrap_or_default(),
                involved.api_version.clone().unwrap_or_default(),
            ],
            field_path: involved.field_path.clone().unwrap_or_default(),
            type_: type_.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let new_name = format!(
            "{}.{:x}",
            occurrence.object[2],
            k8s_openapi::jiff::Timestamp::now().as_nanosecond()
        );
        let verdict = self
            .correlator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .correlate(&occurrence, new_name, Instant::now());
        if verdict == Verdict::Skip {
            tracing::debug!(component = %self.component, %reason, "event dropped: too many about {:?}", involved.name);
            return;
        }
        // Events about cluster-scoped objects live in `default`, as upstream's.
        let namespace = involved
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let write = Write {
            involved,
            namespace,
            type_: type_.to_string(),
            reason: reason.to_string(),
            verdict,
        };
        let writer = self.writer.get_or_init(|| {
            let (tx, rx) = mpsc::channel(MAX_QUEUED);
            tokio::spawn(write_all(self.client.clone(), self.component.clone(), rx));
            tx
        });
        if writer.try_send(write).is_err() {
            tracing::debug!(component = %self.component, %reason, "event dropped: too many waiting");
        }
    }
}

/// Writes what `rx` brings until every recorder sharing it is gone.
async fn write_all(client: Client, component: String, mut rx: mpsc::Receiver<Write>) {
    while let Some(w) = rx.recv().await {
        if let Err(e) = write(&client, &component, &w).await {
            tracing::debug!(%component, reason = %w.reason, "recording an event: {e}");
        }
    }
}

/// Creates or bumps the Event; a bumped Event that is gone is created again with its count,
/// as upstream's recorder does.
async fn write(client: &Client, component: &str, w: &Write) -> Result<(), kube::Error> {
    let api: Api<Event> = Api::namespaced(client.clone(), &w.namespace);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let (name, count, message) = match &w.verdict {
        Verdict::Skip => return Ok(()),
        Verdict::Create { name, message } => (name, 1, message),
        Verdict::Bump {
            name,
            count,
            message,
        } => {
            let patch = serde_json::json!({
                "count": count,
                "lastTimestamp": now,
                "message": message,
            });
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Err(kube::Error::Api(s)) if s.code == 404 => (name, *count, message),
                other => return other.map(|_| ()),
            }
        }
    };
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(w.namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: w.involved.clone(),
        reason: Some(w.reason.clone()),
        message: Some(message.clone()),
        type_: Some(w.type_.clone()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(count),
        ..Event::default()
    };
    api.create(&PostParams::default(), &event).await.map(|_| ())
}
