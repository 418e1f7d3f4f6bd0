//! The TTL-after-finished controller: deletes a finished Job (Complete or Failed) once its
//! `ttlSecondsAfterFinished` has passed since it finished, with foreground propagation so its
//! pods go first. A controller of its own, as upstream's, acting with the
//! `ttl-after-finished-controller` account (the Job controller's role cannot delete Jobs).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{DeleteParams, PropagationPolicy};
use tokio_util::sync::CancellationToken;

use super::job::is_finished;
use super::util;
use crate::context::Context;
use crate::informer::{Change, Informer, key_of, split_key};
use crate::queue::{Action, WorkQueue};

/// The TTL-after-finished controller.
#[derive(Clone)]
pub struct TtlAfterFinishedController {
    ctx: Context,
    jobs: Informer<Job>,
    queue: WorkQueue,
}

/// When `job` is due for deletion (Unix seconds): its completion, else its finished
/// condition's transition, plus its TTL; `None` if it has no TTL or has not finished.
pub fn expires_at(job: &Job, now: i64) -> Option<i64> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let (_, finished_at) = is_finished(job)?;
    let at = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .or(finished_at)
        .map(|t| t.0.as_second())
        .unwrap_or(now);
    Some(at + i64::from(ttl))
}

impl TtlAfterFinishedController {
    /// Runs the controller until `stop`.
    pub async fn run(ctx: Context, stop: CancellationToken) {
        let this = TtlAfterFinishedController {
            jobs: ctx.informers.get::<Job>(),
            queue: ctx.queue("ttl_jobs_to_delete"),
            ctx,
        };
        let q = this.queue.clone();
        this.jobs.add_handler(move |c: &Change<'_, Job>| {
            let job = c.object();
            if job.metadata.deletion_timestamp.is_none()
                && job
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.ttl_seconds_after_finished.is_some())
            {
                q.add(key_of(job.as_ref()));
            }
        });
        this.jobs.synced().await;
        let me = this.clone();
        this.queue
            .run_workers(1, stop, move |key| {
                let me = me.clone();
                async move { me.sync(&key).await }
            })
            .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(job) = self.jobs.get(key) else {
            return Ok(Action::await_change());
        };
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let now = util::now().as_second();
        let Some(expire) = expires_at(&job, now) else {
            return Ok(Action::await_change());
        };
        if now < expire {
            return Ok(Action::requeue(Duration::from_secs(
                (expire - now) as u64 + 1,
            )));
        }
        let (ns, name) = split_key(key);
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), ns.unwrap_or("default"));
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(kube::api::Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: job.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(ttl: Option<i32>, status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "spec": {"template": {}, "ttlSecondsAfterFinished": ttl},
            "status": status,
        }))
        .expect("job")
    }

    #[test]
    fn a_finished_job_expires_its_ttl_after_completion() {
        let done = json!({
            "completionTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Complete", "status": "True",
                            "lastTransitionTime": "2026-01-01T00:00:05Z"}],
        });
        let at: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
        assert_eq!(expires_at(&job(Some(30), done.clone()), 0), Some(at + 30));
        assert_eq!(expires_at(&job(None, done), 0), None);
    }

    #[test]
    fn a_failed_job_expires_from_its_condition_and_a_running_one_never() {
        let failed = json!({"conditions": [{"type": "Failed", "status": "True",
                            "lastTransitionTime": "2026-01-01T00:00:05Z"}]});
        assert_eq!(expires_at(&job(Some(0), failed), 0), Some(1_767_225_605));
        let running = json!({"active": 1});
        assert_eq!(expires_at(&job(Some(0), running), 0), None);
    }
}
