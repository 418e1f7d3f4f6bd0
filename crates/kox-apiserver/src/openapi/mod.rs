//! OpenAPI documents generated from the Rust types (k8s-openapi through schemars): one v3
//! document per group-version ([`v3`]), and the single v2 document ([`v2`]) converted from the
//! same schemas and paths, served as JSON or as gnostic's protobuf (`gnostic`).

mod gnostic;
pub mod v2;
pub mod v3;
