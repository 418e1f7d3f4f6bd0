//! The workload controllers: ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob,
//! and TTL-after-finished.
//!
//! # Registering a controller
//!
//! 1. Write the controller in its own module here (`workloads/replicaset.rs`, …) as a type
//!    implementing [`crate::Controller`]: `name()` is its name in `--controllers` (upstream's,
//!    e.g. `"replicaset"`), `run(ctx, stop)` runs it until `stop` is cancelled, and
//!    `service_account()` names the `kube-system` account it acts as (upstream's client name,
//!    e.g. `"replicaset-controller"`, which the API server's controller policy binds to its
//!    role).
//! 2. Add a `pub mod` line below and a `Box::new(...)` line to [`controllers`].
//!
//! Inside `run`: take shared informers from `ctx.informers.get::<K>()` (one watch per resource
//! for the whole process), register handlers that only enqueue keys into a queue from
//! `ctx.queue("replicaset")` (for the kind the controller reconciles, `queue.add_change`, so
//! a failing sync's status write does not cut its backoff short), wait for
//! `informer.synced()`, then
//! `queue.run_workers(n, stop, reconcile)`; a reconcile returns `Ok(Action::await_change())`,
//! `Ok(Action::requeue(d))`, or an error (retried with per-key backoff). Events go through
//! `ctx.recorder("replicaset-controller")`. See `crate::namespace` for a complete example.

pub mod claim;
pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod history;
pub mod job;
pub mod ranking;
pub mod replicaset;
pub mod statefulset;
pub mod ttl_after_finished;
pub mod util;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use tokio_util::sync::CancellationToken;

use crate::{Context, Controller};

/// Every workload controller, in start order.
pub fn controllers() -> Vec<Box<dyn Controller>> {
    vec![
        Box::new(Workload(
            "replicaset",
            &["replicaset-controller"],
            "replicaset-controller",
            |c, s| Box::pin(replicaset::ReplicaController::<ReplicaSet>::run(c, s)),
        )),
        Box::new(Workload(
            "replicationcontroller",
            &["replicationcontroller-controller"],
            "replication-controller",
            |c, s| {
                Box::pin(replicaset::ReplicaController::<ReplicationController>::run(
                    c, s,
                ))
            },
        )),
        Box::new(Workload(
            "deployment",
            &["deployment-controller"],
            "deployment-controller",
            |c, s| Box::pin(deployment::DeploymentController::run(c, s)),
        )),
        Box::new(Workload(
            "statefulset",
            &["statefulset-controller"],
            "statefulset-controller",
            |c, s| Box::pin(statefulset::StatefulSetController::run(c, s)),
        )),
        Box::new(Workload(
            "daemonset",
            &["daemonset-controller"],
            "daemon-set-controller",
            |c, s| Box::pin(daemonset::DaemonSetController::run(c, s)),
        )),
        Box::new(Workload(
            "job",
            &["job-controller"],
            "job-controller",
            |c, s| Box::pin(job::JobController::run(c, s)),
        )),
        Box::new(Workload(
            "cronjob",
            &["cronjob-controller"],
            "cronjob-controller",
            |c, s| Box::pin(cronjob::CronJobController::run(c, s)),
        )),
        Box::new(Workload(
            "ttl-after-finished",
            &["ttl-after-finished-controller"],
            "ttl-after-finished-controller",
            |c, s| Box::pin(ttl_after_finished::TtlAfterFinishedController::run(c, s)),
        )),
    ]
}

type RunFn = fn(Context, CancellationToken) -> futures::future::BoxFuture<'static, ()>;

/// A workload controller: its `--controllers` name, aliases, ServiceAccount, and its loop.
struct Workload(&'static str, &'static [&'static str], &'static str, RunFn);

#[async_trait::async_trait]
impl Controller for Workload {
    fn name(&self) -> &'static str {
        self.0
    }

    fn aliases(&self) -> &'static [&'static str] {
        self.1
    }

    fn service_account(&self) -> Option<&'static str> {
        Some(self.2)
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        (self.3)(ctx, stop).await;
        Ok(())
    }
}
