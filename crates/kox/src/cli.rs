//! Command-line parsing and dispatch to the components.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kox_apiserver::KUBERNETES_VERSION;

#[derive(Parser)]
#[command(
    name = "kox",
    version,
    about = "A Kubernetes-compatible container orchestrator in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: store and API server, in the foreground.
    Server(crate::server::ServerArgs),
    /// Run the API server alone (same flags as `server`): several of them can share one etcd
    /// cluster (`--datastore-endpoint`, `--token`).
    Apiserver(crate::server::ServerArgs),
    /// Print the kox and Kubernetes versions.
    Version,
    /// Snapshots of the cluster state, and moving it from the embedded store to etcd.
    #[command(subcommand)]
    Datastore(crate::datastore_cmd::DatastoreCommand),
    /// Run the scheduler alone, as a client of a cluster.
    Scheduler(crate::scheduler_cmd::SchedulerArgs),
    /// Run the controller manager alone, as a client of a cluster.
    ControllerManager(crate::controller_manager_cmd::ControllerManagerArgs),
    /// Print a kubeconfig for a user or a node, with a client certificate from the cluster CA.
    Kubeconfig(crate::kubeconfig_cmd::KubeconfigArgs),
    /// Run the node agent alone: register a node and run its pods on containerd.
    Agent(crate::agent_cmd::AgentCmdArgs),
    /// Stop every pod of this node and its containerd, and unmount what the agent mounted
    /// (run after stopping `kox server` / `kox agent` to clear the node).
    Killall(crate::agent_cmd::KillallArgs),
    /// Build OCI image archives without a registry (import them by dropping them into
    /// DATA_DIR/agent/images/).
    #[command(subcommand)]
    Image(crate::image_cmd::ImageCommand),
    /// Simulate nodes: register them, keep them Ready, and run their pods without containers.
    FakeNodes(crate::fake_nodes_cmd::FakeNodesArgs),
    /// Run a benchmark and print its results.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// The benchmarks of `kox bench`.
#[derive(Subcommand)]
enum BenchCommand {
    /// Durable writes (1, 8, 64 writers) and 10,000-key reads of the embedded store, with the
    /// disk's fdatasync rate as reference.
    Store(crate::bench::StoreBenchArgs),
    /// Concurrent pod creates over HTTPS vs the embedded store's write rate.
    ApiWrite(crate::bench_api::ApiWriteArgs),
    /// LIST 10,000 pods: unpaged, paged, label selector, resourceVersion=0.
    ApiList(crate::bench_api::ApiListArgs),
    /// 10,000 pod watchers, then pod writes: delivery and memory per watcher.
    WatchFanout(crate::bench_api::WatchFanoutArgs),
    /// RSS of kox server idle and with 10,000 pods.
    Footprint(crate::bench_api::FootprintArgs),
    /// Process start to /readyz, empty and with 100,000 objects.
    Startup(crate::bench_api::StartupArgs),
    /// store-write and api-write on the embedded engine, a 1-member and a 3-member etcd.
    Engines(crate::bench_api::EnginesArgs),
    /// A Deployment scaled 0 → 10,000 replicas on 1,000 simulated nodes: time to all available
    /// and Running, and the controller manager's CPU and memory.
    Controllers(crate::bench_api::ControllersArgs),
    /// 10,000 pods scheduled onto 5,000 simulated nodes: pods/s from create to bound.
    Scheduler(crate::bench_api::SchedulerBenchArgs),
    /// 30 and 100 pods on one real node (containerd): create → Running p50/p99, and the
    /// agent's idle RSS and CPU with 30 pods running.
    PodStartup(crate::bench_api::PodStartupArgs),
    /// Port-forward throughput against a direct read from the pod, exec round trips over
    /// WebSocket, and `logs -f` delivery latency, through the API server and a real agent.
    Streams(crate::bench_api::StreamsArgs),
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // As Go programs do at start: the soft descriptor limit up to the hard one, so a server
    // has the descriptors its connection limits count on.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match cli.command {
        Command::Server(args) => run_async(crate::server::run(args)),
        Command::Apiserver(args) => run_async(crate::server::run_apiserver(args)),
        Command::Scheduler(args) => run_async(crate::scheduler_cmd::run(args)),
        Command::ControllerManager(args) => run_async(crate::controller_manager_cmd::run(args)),
        Command::Kubeconfig(args) => run_async(crate::kubeconfig_cmd::run(args)),
        Command::FakeNodes(args) => run_async(crate::fake_nodes_cmd::run(args)),
        Command::Agent(args) => run_async(crate::agent_cmd::run(args)),
        Command::Killall(args) => run_async(crate::agent_cmd::killall(args)),
        Command::Image(command) => run_async(crate::image_cmd::run(command)),
        Command::Datastore(command) => run_async(crate::datastore_cmd::run(command)),
        Command::Version => {
            println!("kox version {}", env!("CARGO_PKG_VERSION"));
            println!("Kubernetes version {KUBERNETES_VERSION}");
            ExitCode::SUCCESS
        }
        Command::Bench(bench) => match bench {
            BenchCommand::Store(a) => run_async(crate::bench::store(a)),
            BenchCommand::ApiWrite(a) => run_async(crate::bench_api::api_write(a)),
            BenchCommand::ApiList(a) => run_async(crate::bench_api::api_list(a)),
            BenchCommand::WatchFanout(a) => run_async(crate::bench_api::watch_fanout(a)),
            BenchCommand::Footprint(a) => run_async(crate::bench_api::footprint(a)),
            BenchCommand::Startup(a) => run_async(crate::bench_api::startup(a)),
            BenchCommand::Engines(a) => run_async(crate::bench_api::engines(a)),
            BenchCommand::Controllers(a) => run_async(crate::bench_api::controllers(a)),
            BenchCommand::Scheduler(a) => run_async(crate::bench_api::scheduler(a)),
            BenchCommand::PodStartup(a) => run_async(crate::bench_api::pod_startup(a)),
            BenchCommand::Streams(a) => run_async(crate::bench_api::streams(a)),
        },
    }
}

/// Runs a component on a multi-threaded runtime with logging to stderr.
fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
