//! The `kox` binary: every component of the cluster behind one command.
//!
//! **Architecture invariant:** only this crate reads flags, environment and config files, or
//! installs logging.
#![forbid(unsafe_code)]

mod agent_cmd;
mod bench;
mod bench_api;
mod cli;
mod controller_manager_cmd;
mod datastore_cmd;
mod fake_nodes_cmd;
mod image_cmd;
mod kubeconfig_client;
mod kubeconfig_cmd;
mod scheduler_cmd;
mod server;

/// mimalloc instead of glibc's allocator: the API server builds and frees millions of small
/// JSON nodes per large list or write burst, and glibc's malloc/free took ~40% of a 10,000-pod
/// list's CPU (see BENCHMARKS.md, "allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::run()
}
