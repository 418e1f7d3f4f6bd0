//! The API server benchmarks (`kox bench api-write | api-list | watch-fanout | footprint |
//! startup | engines`), measured against a real `kox server` started as a child process, the
//! controller manager's (`kox bench controllers`), with `kox controller-manager` beside it, and
//! the scheduler's (`kox bench scheduler`), with `kox scheduler` and `kox fake-nodes` beside it,
//! and the node agent's (`kox bench pod-startup`, `kox bench streams`), with `kox agent` on
//! the real containerd.
//!
//! Each prints a table and, with `--json FILE`, writes its result with the machine it ran on;
//! the goals are those of the project's performance design, printed met or missed.

mod client;
mod controllers;
mod engines;
mod footprint;
mod list;
mod load;
mod pod_startup;
mod report;
mod scheduler;
mod server_proc;
mod startup;
mod store_base;
mod streams;
mod watch;
mod write;

pub use controllers::{ControllersArgs, run as controllers};
pub use engines::{EnginesArgs, run as engines};
pub use footprint::{FootprintArgs, run as footprint};
pub use list::{ApiListArgs, run as api_list};
pub use pod_startup::{PodStartupArgs, run as pod_startup};
pub use scheduler::{SchedulerBenchArgs, run as scheduler};
pub use startup::{StartupArgs, run as startup};
pub use streams::{StreamsArgs, run as streams};
pub use watch::{WatchFanoutArgs, run as watch_fanout};
pub use write::{ApiWriteArgs, run as api_write};
