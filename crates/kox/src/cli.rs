//! Command-line parsing and dispatch to the components.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Kubernetes version kox serves, as reported by `/version` and `kox version`.
pub const KUBERNETES_VERSION: &str = "v1.32.0";

#[derive(Parser)]
#[command(name = "kox", version, about = "A Kubernetes-compatible container orchestrator in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the kox and Kubernetes versions.
    Version,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("kox version {}", env!("CARGO_PKG_VERSION"));
            println!("Kubernetes version {KUBERNETES_VERSION}");
            ExitCode::SUCCESS
        }
    }
}
