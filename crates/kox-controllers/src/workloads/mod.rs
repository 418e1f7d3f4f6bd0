//! The workload controllers: ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob.
//!
//! # Registering a controller
//!
//! 1. Write the controller in its own module here (`workloads/replicaset.rs`, …) as a type
//!    implementing [`crate::Controller`]: `name()` is its name in `--controllers` (upstream's,
//!    e.g. `"replicaset"`), `run(ctx, stop)` runs it until `stop` is cancelled.
//! 2. Add a `pub mod` line below and a `Box::new(...)` line to [`controllers`].
//!
//! Inside `run`: take shared informers from `ctx.informers.get::<K>()` (one watch per resource
//! for the whole process), register handlers that only enqueue keys into a queue from
//! `ctx.queue("replicaset")`, wait for `informer.synced()`, then
//! `queue.run_workers(n, stop, reconcile)`; a reconcile returns `Ok(Action::await_change())`,
//! `Ok(Action::requeue(d))`, or an error (retried with per-key backoff). Events go through
//! `ctx.recorder("replicaset-controller")`.

use crate::Controller;

/// Every workload controller, in start order.
pub fn controllers() -> Vec<Box<dyn Controller>> {
    vec![]
}
