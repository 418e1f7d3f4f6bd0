//! The kox controller manager: an ordinary API client that runs the cluster's control loops.
//!
//! The framework follows upstream's controller pattern:
//!
//! - `informer.rs` — shared informers: one list+watch per resource for every controller in
//!   the process, a cache of what it saw, and handlers called on each change. Handlers only
//!   enqueue keys.
//! - `queue.rs` — a rate-limited work queue of keys per controller: deduplicated, never handed
//!   to two workers at once, failures backed off per key (a failing key's own status writes
//!   do not cut the backoff short). Workers start after the caches the controller reads have
//!   synced, and reconcile from the cache (level-triggered), never from an event's delta alone.
//! - `events.rs` — core/v1 Events with upstream's reasons, messages and source components,
//!   correlated as upstream's recorder does (counted, combined, rate-limited per object).
//! - `rate.rs` — the token bucket behind the queue's retries, the event spam filter and node
//!   eviction.
//! - `context.rs` — what each controller is given ([`Context`]) and the manager's
//!   configuration; `client_builder.rs` — the client each controller acts with: the
//!   manager's, or its own ServiceAccount's token (`--use-service-account-credentials`);
//!   `manager.rs` — leader election, the health endpoint, selecting and running
//!   the controllers.
//!
//! The controllers: `namespace`, `garbagecollector` (`gc.rs`), `serviceaccount`,
//! `root_ca_publisher`, `endpoints`, `endpointslice`, `node_lifecycle`, `taint_eviction`,
//! `podgc`, `disruption`, `resourcequota`, `tokencleaner` (`token_cleaner.rs`); and the
//! workload controllers in `workloads/`.
//!
//! **Architecture invariant:** this crate talks to the cluster only through the Kubernetes API
//! (kube-rs); it does not depend on `kox-store` or `kox-apiserver`.
#![forbid(unsafe_code)]

pub mod client_builder;
pub mod context;
pub mod discovery;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod gc;
pub mod informer;
pub mod manager;
pub mod namespace;
pub mod node_lifecycle;
pub mod podgc;
pub mod queue;
pub mod rate;
pub mod resourcequota;
pub mod root_ca_publisher;
pub mod serviceaccount;
pub mod taint_eviction;
pub mod token_cleaner;
pub mod workloads;

pub use context::{Context, ControllerManagerConfig};
pub use events::Recorder;
pub use informer::{Change, Informer, InformerFactory, key_of, split_key};
pub use manager::run;
pub use queue::{Action, WorkQueue};

use tokio_util::sync::CancellationToken;

/// One control loop of the controller manager.
#[async_trait::async_trait]
pub trait Controller: Send + Sync + 'static {
    /// The name `--controllers` knows it by (upstream's, e.g. `replicaset`, `namespace`).
    fn name(&self) -> &'static str;

    /// Other names `--controllers` accepts for it (upstream's canonical `*-controller` names).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// The `kube-system` ServiceAccount it acts as under `--use-service-account-credentials`
    /// (upstream's client name, bound to the `system:controller:<account>` role); `None`
    /// (the default) keeps the manager's own client.
    fn service_account(&self) -> Option<&'static str> {
        None
    }

    /// Whether `*` in `--controllers` enables it (default true).
    fn enabled_by_default(&self) -> bool {
        true
    }

    /// Runs the controller until `stop` is cancelled. Called again, with a fresh context, each
    /// time this process becomes the leader.
    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()>;
}

/// Every controller this crate has, in start order.
pub fn all_controllers() -> Vec<Box<dyn Controller>> {
    let mine: Vec<Box<dyn Controller>> = vec![
        Box::new(namespace::NamespaceController),
        Box::new(gc::GarbageCollector),
        Box::new(serviceaccount::ServiceAccountController),
        Box::new(root_ca_publisher::RootCaPublisher),
        Box::new(endpoints::EndpointsController),
        Box::new(endpointslice::EndpointSliceController),
        Box::new(node_lifecycle::NodeLifecycleController),
        Box::new(taint_eviction::TaintEvictionController),
        Box::new(podgc::PodGcController),
        Box::new(disruption::DisruptionController),
        Box::new(resourcequota::ResourceQuotaController),
        Box::new(token_cleaner::TokenCleaner),
    ];
    mine.into_iter().chain(workloads::controllers()).collect()
}
