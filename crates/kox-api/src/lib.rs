//! `kox-api`: Kubernetes API machinery that `k8s-openapi` lacks.
//!
//! **Architecture invariant:** everything here is pure code — no IO, no async.
//!
//! Behaviour and wording follow upstream Kubernetes 1.32 (`k8s.io/apimachinery`), since
//! clients such as kubectl parse and print what the API server returns:
//! - [`field`]: field paths and field-level validation errors (`spec.x: Required value`).
//! - [`validation`]: name, label, annotation and object-metadata validators.
//! - [`label_selector`] and [`field_selector`]: `labelSelector`/`fieldSelector` parsing
//!   and matching.
//! - [`status`]: the `Status` object and upstream's error builders.
//! - [`strategic_merge`]: strategic merge patch with a table of built-in patch tags.
//! - [`quantity`]: resource quantities.
//! - [`pod_refs`]: the secrets, config maps, claims and service account a pod refers to.
#![forbid(unsafe_code)]

pub mod field;
pub mod field_selector;
pub mod label_selector;
pub mod node_selector;
pub mod pod_refs;
pub mod quantity;
pub mod query;
pub mod status;
pub mod strategic_merge;
pub mod taints;
pub mod validation;
