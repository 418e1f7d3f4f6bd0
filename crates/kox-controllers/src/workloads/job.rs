//! The Job controller: runs pods until `completions` succeed (NonIndexed, or Indexed with one
//! success per index), at most `parallelism` at a time; fails the Job past `backoffLimit`
//! failures (new pods waiting out upstream's exponential backoff after each failure) or
//! `activeDeadlineSeconds`; honours `suspend`; reports Complete / Failed
//! conditions with upstream's reasons. Finished Jobs are deleted after
//! `ttlSecondsAfterFinished` by `ttl_after_finished.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kox_api::label_selector::Selector;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::claim::{self, Claim};
use super::util::{self, controller_ref, is_pod_ready};
use crate::context::Context;
use crate::events::Recorder;
use crate::informer::{Change, Informer, split_key};
use crate::queue::{Action, WorkQueue};

/// The annotation and label carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// Parses `completedIndexes` ("1,3-5") into a set.
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(v) = part.parse() {
                    out.insert(v);
                }
            }
        }
    }
    out
}

/// Formats a set of indexes as upstream does: ascending, runs as `a-b`.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX))
        .or_else(|| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPLETION_INDEX))
        })
        .and_then(|v| v.parse().ok())
}

/// Whether the Job has a finished (Complete or Failed) condition.
pub fn is_finished(job: &Job) -> Option<(&str, Option<&Time>)> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| (c.type_.as_str(), c.last_transition_time.as_ref()))
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn set_condition(s: &mut JobStatus, c: JobCondition) {
    let conds = s.conditions.get_or_insert_with(Vec::new);
    if let Some(cur) = conds.iter_mut().find(|x| x.type_ == c.type_) {
        if cur.status != c.status || cur.reason != c.reason {
            *cur = c;
        }
    } else {
        conds.push(c);
    }
}

/// Upstream's pod failure backoff: 10 s, doubling per failure since the last success, at
/// most 10 minutes.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1u64 << (failures - 1).min(16));
    Duration::from_secs(secs.min(600))
}

/// When a finished pod finished (its containers' latest finish time).
fn finished_at(p: &Pod) -> Option<Timestamp> {
    p.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
}

/// How long new pods must still wait after the failures since the last success.
fn backoff_remaining(pods: &[Pod], now: Timestamp) -> Option<Duration> {
    let last_success = pods
        .iter()
        .filter(|p| util::phase(p) == "Succeeded")
        .filter_map(finished_at)
        .max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| util::phase(p) == "Failed")
        .filter_map(finished_at)
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = failures.iter().max()?;
    let until = last.as_millisecond() + backoff(failures.len() as u32).as_millis() as i64;
    let left = until - now.as_millisecond();
    (left > 0).then(|| Duration::from_millis(left as u64))
}

/// The pods a Job should start now (NonIndexed: a count; Indexed: the indexes).
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Start this many pods.
    Start(usize),
    /// Start pods for these indexes.
    StartIndexes(Vec<i32>),
    /// Delete this many active pods (parallelism went down).
    Remove(usize),
    /// Nothing to do.
    Hold,
}

/// Upstream's `manageJob` arithmetic.
pub fn plan(
    parallelism: i32,
    completions: Option<i32>,
    indexed: bool,
    succeeded: i32,
    active: &[Option<i32>],
    done_indexes: &BTreeSet<i32>,
) -> Plan {
    let active_n = active.len() as i32;
    if indexed {
        let Some(total) = completions else {
            return Plan::Hold;
        };
        let running: BTreeSet<i32> = active.iter().flatten().copied().collect();
        let room = (parallelism - active_n).max(0) as usize;
        let todo: Vec<i32> = (0..total)
            .filter(|i| !done_indexes.contains(i) && !running.contains(i))
            .take(room)
            .collect();
        if active_n > parallelism {
            return Plan::Remove((active_n - parallelism) as usize);
        }
        return if todo.is_empty() {
            Plan::Hold
        } else {
            Plan::StartIndexes(todo)
        };
    }
    let want_active = match completions {
        // Work-queue Jobs: once one pod succeeded, what runs keeps running; none start.
        None if succeeded > 0 => active_n,
        None => parallelism,
        Some(c) => parallelism.min((c - succeeded).max(0)),
    };
    match active_n.cmp(&want_active) {
        std::cmp::Ordering::Less => Plan::Start((want_active - active_n) as usize),
        std::cmp::Ordering::Greater => Plan::Remove((active_n - want_active) as usize),
        std::cmp::Ordering::Equal => Plan::Hold,
    }
}

/// The Job controller.
#[derive(Clone)]
pub struct JobController {
    ctx: Context,
    jobs: Informer<Job>,
    pods: Informer<Pod>,
    queue: WorkQueue,
    recorder: Recorder,
    expectations: std::sync::Arc<util::Expectations>,
}

impl JobController {
    /// Runs the controller until `stop`.
    pub async fn run(ctx: Context, stop: CancellationToken) {
        let this = JobController {
            jobs: ctx.informers.get::<Job>(),
            pods: ctx.informers.get::<Pod>(),
            queue: ctx.queue("job"),
            recorder: ctx.recorder("job-controller"),
            expectations: Default::default(),
            ctx,
        };
        let q = this.queue.clone();
        this.jobs
            .add_handler(move |c: &Change<'_, Job>| q.add_change(c));
        this.pods
            .add_handler(this.expectations.observer::<Pod>("Job"));
        this.pods
            .add_handler(util::enqueue_controller(this.queue.clone(), "Job"));
        this.jobs.synced().await;
        this.pods.synced().await;
        let me = this.clone();
        this.queue
            .run_workers(4, stop, move |key| {
                let me = me.clone();
                async move { me.sync(&key).await }
            })
            .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(job) = self.jobs.get(key) else {
            self.expectations.forget(key);
            return Ok(Action::await_change());
        };
        let job = (*job).clone();
        let (ns, _) = split_key(key);
        let ns = ns.unwrap_or("default").to_string();
        let now = util::now();
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        if is_finished(&job).is_some() {
            return Ok(Action::await_change());
        }
        let spec = job.spec.clone().unwrap_or_default();
        let Ok(selector) = Selector::from_label_selector(spec.selector.as_ref()) else {
            return Ok(Action::await_change());
        };
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods_api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        let mut mine: Vec<Pod> = Vec::new();
        for pod in self.pods.list_namespace(&ns) {
            let matches = !selector.is_empty() && selector.matches(&util::labels(&pod.metadata));
            match claim::decide(&pod.metadata, &uid, matches, false) {
                Claim::Keep => mine.push((*pod).clone()),
                Claim::Adopt => {
                    let r = controller_ref(&job.metadata, "batch/v1", "Job");
                    if let Ok(p) = claim::adopt(&pods_api, &pod.metadata, r).await {
                        mine.push(p);
                    }
                }
                Claim::Release => claim::release(&pods_api, &pod.metadata, &uid).await?,
                Claim::Ignore => {}
            }
        }

        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let completions = spec.completions;
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        let on_failure = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure");

        let active: Vec<&Pod> = mine.iter().filter(|p| util::is_pod_active(p)).collect();
        let terminating = mine
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_some()
                    && !matches!(util::phase(p), "Succeeded" | "Failed")
            })
            .count() as i32;
        let succeeded_pods: Vec<&Pod> = mine
            .iter()
            .filter(|p| util::phase(p) == "Succeeded")
            .collect();
        let failed = mine.iter().filter(|p| util::phase(p) == "Failed").count() as i32;
        let old = job.status.clone().unwrap_or_default();
        let mut done_indexes = parse_indexes(old.completed_indexes.as_deref().unwrap_or(""));
        if indexed {
            done_indexes.extend(
                succeeded_pods
                    .iter()
                    .filter_map(|p| index_of(p))
                    .filter(|i| completions.is_some_and(|c| *i < c)),
            );
        }
        let succeeded = if indexed {
            done_indexes.len() as i32
        } else {
            (succeeded_pods.len() as i32).max(old.succeeded.unwrap_or(0))
        };
        let failed = failed.max(old.failed.unwrap_or(0));
        let restarts: i32 = if on_failure {
            active.iter().map(|p| util::restarts(p)).sum()
        } else {
            0
        };

        let mut status = JobStatus {
            active: Some(active.len() as i32),
            ready: Some(active.iter().filter(|p| is_pod_ready(p)).count() as i32),
            succeeded: Some(succeeded),
            failed: Some(failed),
            terminating: Some(terminating),
            start_time: old.start_time.clone(),
            completion_time: old.completion_time.clone(),
            completed_indexes: indexed.then(|| format_indexes(&done_indexes)),
            failed_indexes: old.failed_indexes.clone(),
            conditions: old.conditions.clone(),
            uncounted_terminated_pods: Some(Default::default()),
        };
        let suspended = spec.suspend.unwrap_or(false);
        let mut requeue: Option<Duration> = None;

        // Failure: too many failures, or past the deadline.
        let deadline_passed = spec.active_deadline_seconds.and_then(|d| {
            let start = status.start_time.as_ref()?.0;
            let end = start.as_second() + d;
            if now.as_second() >= end {
                Some(true)
            } else {
                requeue = Some(Duration::from_secs((end - now.as_second()) as u64 + 1));
                None
            }
        });
        let failure = if failed + restarts > backoff_limit {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if deadline_passed == Some(true) && !suspended {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            None
        };
        let complete = failure.is_none()
            && match completions {
                Some(c) => succeeded >= c,
                None => succeeded > 0 && active.is_empty(),
            };

        if let Some((reason, msg)) = failure {
            for p in &active {
                self.delete_pod(&job, &pods_api, p).await?;
            }
            status.active = Some(0);
            status.ready = Some(0);
            set_condition(&mut status, condition("FailureTarget", reason, msg, now));
            set_condition(&mut status, condition("Failed", reason, msg, now));
            self.recorder.warning(&job, reason, msg);
        } else if complete {
            for p in &active {
                self.delete_pod(&job, &pods_api, p).await?;
            }
            status.active = Some(0);
            status.ready = Some(0);
            let msg = "Reached expected number of succeeded pods";
            set_condition(
                &mut status,
                condition("SuccessCriteriaMet", "CompletionsReached", msg, now),
            );
            set_condition(
                &mut status,
                condition("Complete", "CompletionsReached", msg, now),
            );
            status.completion_time = Some(Time(now));
            self.recorder.normal(&job, "Completed", "Job completed");
        } else if suspended {
            for p in &active {
                self.delete_pod(&job, &pods_api, p).await?;
            }
            status.active = Some(0);
            if !old
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Suspended" && c.status == "True")
            {
                set_condition(
                    &mut status,
                    condition("Suspended", "JobSuspended", "Job suspended", now),
                );
                self.recorder.normal(&job, "Suspended", "Job suspended");
            }
            status.start_time = None;
        } else {
            if old
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Suspended" && c.status == "True")
            {
                let mut c = condition("Suspended", "JobResumed", "Job resumed", now);
                c.status = "False".into();
                set_condition(&mut status, c);
                self.recorder.normal(&job, "Resumed", "Job resumed");
            }
            if status.start_time.is_none() {
                status.start_time = Some(Time(now));
                if let Some(d) = spec.active_deadline_seconds {
                    requeue = Some(Duration::from_secs(d.max(0) as u64 + 1));
                }
            }
            let pods = self.pods.clone();
            let nsr = ns.clone();
            let satisfied = self.expectations.satisfied(
                key,
                |n| pods.get_in(Some(&nsr), n).is_some(),
                |n, u| {
                    pods.get_in(Some(&nsr), n).is_some_and(|p| {
                        p.metadata.uid.as_deref() == Some(u)
                            && p.metadata.deletion_timestamp.is_none()
                    })
                },
            );
            // New pods wait out the backoff after recent failures.
            let wait = backoff_remaining(&mine, now);
            if satisfied {
                let active_idx: Vec<Option<i32>> = active.iter().map(|p| index_of(p)).collect();
                let next = plan(
                    parallelism,
                    completions,
                    indexed,
                    succeeded,
                    &active_idx,
                    &done_indexes,
                );
                let next = match (next, wait) {
                    (Plan::Start(_) | Plan::StartIndexes(_), Some(w)) => {
                        requeue = Some(requeue.map_or(w, |r| r.min(w)));
                        Plan::Hold
                    }
                    (p, _) => p,
                };
                match next {
                    Plan::Start(n) => {
                        for _ in 0..n {
                            self.create_pod(&job, &pods_api, key, None).await?;
                        }
                        status.active = Some(active.len() as i32 + n as i32);
                    }
                    Plan::StartIndexes(ix) => {
                        for i in &ix {
                            self.create_pod(&job, &pods_api, key, Some(*i)).await?;
                        }
                        status.active = Some(active.len() as i32 + ix.len() as i32);
                    }
                    Plan::Remove(n) => {
                        let mut victims: Vec<Pod> = active.iter().map(|p| (*p).clone()).collect();
                        super::ranking::sort_for_deletion(&mut victims, &[], now);
                        for p in victims.iter().take(n) {
                            self.delete_pod(&job, &pods_api, p).await?;
                        }
                    }
                    Plan::Hold => {}
                }
            } else {
                requeue = Some(Duration::from_secs(2));
            }
        }

        if !util::same_status(job.status.as_ref(), &status) {
            let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &ns);
            util::update_status(&api, &job, serde_json::to_value(&status)?).await?;
        }
        Ok(match requeue {
            Some(d) => Action::requeue(d),
            None => Action::await_change(),
        })
    }

    async fn create_pod(
        &self,
        job: &Job,
        api: &Api<Pod>,
        key: &str,
        index: Option<i32>,
    ) -> anyhow::Result<()> {
        let spec = job.spec.clone().unwrap_or_default();
        let name = job.metadata.name.clone().unwrap_or_default();
        let prefix = match index {
            Some(i) => format!("{name}-{i}-"),
            None => format!("{name}-"),
        };
        let mut pod = util::pod_from_template(
            &spec.template,
            job.metadata.namespace.as_deref().unwrap_or(""),
            controller_ref(&job.metadata, "batch/v1", "Job"),
            Some(prefix),
            None,
        );
        if let Some(i) = index {
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(COMPLETION_INDEX.into(), i.to_string());
            pod.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(COMPLETION_INDEX.into(), i.to_string());
            if let Some(ps) = pod.spec.as_mut() {
                ps.hostname = Some(format!("{name}-{i}"));
                for c in ps
                    .containers
                    .iter_mut()
                    .chain(ps.init_containers.iter_mut().flatten())
                {
                    let env = c.env.get_or_insert_with(Vec::new);
                    if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                        env.push(EnvVar {
                            name: "JOB_COMPLETION_INDEX".into(),
                            value_from: Some(serde_json::from_value(json!({
                                "fieldRef": {"fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}
                            }))?),
                            value: None,
                        });
                    }
                }
            }
        }
        match api.create(&PostParams::default(), &pod).await {
            Ok(p) => {
                let pname = p.metadata.name.unwrap_or_default();
                self.expectations.created(key, &pname);
                self.recorder
                    .normal(job, "SuccessfulCreate", &format!("Created pod: {pname}"));
                Ok(())
            }
            Err(e) => {
                let msg = match &e {
                    kube::Error::Api(s) => s.message.clone(),
                    e => e.to_string(),
                };
                self.recorder
                    .warning(job, "FailedCreate", &format!("Error creating: {msg}"));
                Err(e.into())
            }
        }
    }

    async fn delete_pod(&self, job: &Job, api: &Api<Pod>, pod: &Pod) -> anyhow::Result<()> {
        let pname = pod.metadata.name.clone().unwrap_or_default();
        match api.delete(&pname, &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder
                    .normal(job, "SuccessfulDelete", &format!("Deleted pod: {pname}"));
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_exponentially() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(20), Duration::from_secs(600));
        let failed = |at: &str| -> Pod {
            serde_json::from_value(json!({"status": {"phase": "Failed", "containerStatuses": [{
                "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "finishedAt": at}}}]}}))
            .expect("pod")
        };
        let now: Timestamp = "2026-01-01T00:00:15Z".parse().expect("now");
        let one = [failed("2026-01-01T00:00:10Z")];
        assert_eq!(backoff_remaining(&one, now), Some(Duration::from_secs(5)));
        let two = [
            failed("2026-01-01T00:00:00Z"),
            failed("2026-01-01T00:00:10Z"),
        ];
        assert_eq!(backoff_remaining(&two, now), Some(Duration::from_secs(15)));
        assert_eq!(backoff_remaining(&[], now), None);
    }

    #[test]
    fn indexes_round_trip() {
        let s = parse_indexes("0,2-4,7");
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![0, 2, 3, 4, 7]);
        assert_eq!(format_indexes(&s), "0,2-4,7");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn plan_respects_parallelism_and_completions() {
        let none = BTreeSet::new();
        assert_eq!(plan(2, Some(5), false, 0, &[], &none), Plan::Start(2));
        assert_eq!(plan(2, Some(5), false, 4, &[None], &none), Plan::Hold);
        assert_eq!(plan(3, Some(5), false, 4, &[], &none), Plan::Start(1));
        assert_eq!(
            plan(1, Some(5), false, 0, &[None, None], &none),
            Plan::Remove(1)
        );
        // Work queue: no new pods once one succeeded.
        assert_eq!(plan(3, None, false, 0, &[], &none), Plan::Start(3));
        assert_eq!(plan(3, None, false, 1, &[None], &none), Plan::Hold);
        // Indexed: lowest missing indexes first, skipping running and done ones.
        let done: BTreeSet<i32> = [0].into();
        assert_eq!(
            plan(2, Some(4), true, 1, &[Some(1)], &done),
            Plan::StartIndexes(vec![2])
        );
        let all: BTreeSet<i32> = [0, 1, 2].into();
        assert_eq!(plan(2, Some(3), true, 3, &[], &all), Plan::Hold);
    }
}
