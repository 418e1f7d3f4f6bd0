//! What every kox control-plane component (scheduler, controller manager) shares:
//!
//! - `leader.rs` — Lease-based leader election (upstream's `leaderelection`), so one of
//!   several replicas is active and the others stand by;
//! - `client_switch.rs` — a client whose credentials can be swapped while it is in use, for
//!   certificate rotation and refreshed service-account tokens;
//! - `healthz.rs` — the HTTPS `/healthz`, `/livez`, `/readyz` and `/metrics` endpoint on the
//!   component's secure port, which the API server's `componentstatuses` probes;
//! - `http_proxy.rs` — one HTTP request forwarded to a backend, upgrades (exec, port-forward
//!   streams) spliced through;
//! - `probe_tls.rs` — TLS that accepts any certificate, for health probes (the kubelet's HTTPS
//!   probes, the API server's component checks).
//!
//! **Architecture invariant:** components talk to the cluster only through the Kubernetes API;
//! this crate does not read flags, environment or files (the `kox` binary builds the client).
#![forbid(unsafe_code)]

pub mod client_switch;
pub mod delegated_auth;
pub mod healthz;
pub mod http_proxy;
pub mod leader;
pub mod probe_tls;
pub mod x509_user;

pub use client_switch::ClientSwitch;
pub use healthz::MetricsSource;
pub use leader::LeaderElectionConfig;
