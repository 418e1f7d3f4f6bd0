//! The kox scheduler: an ordinary API client that watches pods and nodes, picks a node for
//! each pending pod with upstream's filter and score plugins, and binds it through
//! `pods/binding`.
//!
//! - `cache.rs` — nodes and the pods on them, including *assumed* pods (placed, binding in
//!   flight), so binding runs asynchronously without double-booking.
//! - `queue.rs` — active / backoff / unschedulable queues.
//! - `framework.rs` — the extension points, what plugins see and answer; `cycle_state.rs` —
//!   what plugins keep between extension points of one attempt; `plugins/` — one file per
//!   plugin.
//! - `profile.rs` — profiles (scheduler name, plugins, weights) built from upstream's defaults
//!   and `config.rs`, the `KubeSchedulerConfiguration` file.
//! - `algorithm.rs` — one attempt (filter, sample, score, pick) and the FailedScheduling text.
//! - `scheduler.rs` — watches, the scheduling loop, binding, events and pod conditions.
//! - `metrics.rs` — the counters served at `/metrics`; leader election and the HTTPS health
//!   endpoint come from `kox-component`.
//!
//! **Architecture invariant:** this crate talks to the cluster only through the Kubernetes API
//! (kube-rs); it does not depend on `kox-store` or `kox-apiserver`.
#![forbid(unsafe_code)]

pub mod algorithm;
pub mod cache;
pub mod config;
pub mod cycle_state;
pub mod framework;
pub mod metrics;
pub mod plugins;
pub mod profile;
pub mod queue;
pub mod resources;
pub mod scheduler;

pub use kox_component::LeaderElectionConfig;
pub use scheduler::{SchedulerConfig, run};
