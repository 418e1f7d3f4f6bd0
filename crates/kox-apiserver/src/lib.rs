//! `kox-apiserver`: the Kubernetes REST API over the kox store.
//!
//! A request flows: TLS ([`server`]) → dispatch by path ([`handlers`]) → the generic
//! [`registry`] (with per-kind [`strategy`]) → the store. Lists and watches are in [`list`] and
//! [`watch`]; discovery and OpenAPI in [`discovery`] and [`openapi`].
//!
//! **Architecture invariant:** this is the only crate that reads or writes the store.
#![forbid(unsafe_code)]

pub mod admission;
pub mod allocator;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod cluster_secrets;
pub mod connect;
pub mod connections;
pub mod convert;
pub mod decode_error;
pub mod discovery;
pub mod duplicate_fields;
pub mod error;
pub mod events_v1;
pub mod fairness;
pub mod handlers;
pub mod health;
pub mod hpa_v1;
pub mod list;
pub mod lister;
pub mod meta;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod registry;
pub mod render;
pub mod resources;
pub mod server;
pub mod store_metrics;
pub mod strategy;
pub mod subresources;
pub mod table;
pub mod user;
pub mod validation;
pub mod watch;
pub mod watch_cache;

pub use server::{Server, ServerConfig};

/// The Kubernetes version served (kubectl picks its matching minor version from `/version`).
pub const KUBERNETES_VERSION: &str = "v1.32.0";
