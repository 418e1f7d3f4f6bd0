//! `kox-api`: Kubernetes API machinery that `k8s-openapi` lacks.
//!
//! **Architecture invariant:** everything here is pure code — no IO, no async.
#![forbid(unsafe_code)]

pub mod field;
pub mod field_selector;
pub mod label_selector;
pub mod quantity;
pub mod status;
pub mod strategic_merge;
pub mod validation;
