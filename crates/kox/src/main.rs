//! The `kox` binary: every component of the cluster behind one command.
//!
//! **Architecture invariant:** only this crate reads flags, environment and config files, or
//! installs logging.
#![forbid(unsafe_code)]

mod bench;
mod bench_api;
mod cli;
mod controller_manager_cmd;
mod datastore_cmd;
mod fake_nodes_cmd;
mod kubeconfig_client;
mod kubeconfig_cmd;
mod scheduler_cmd;
mod server;

fn main() -> std::process::ExitCode {
    cli::run()
}
