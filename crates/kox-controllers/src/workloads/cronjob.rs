//! The CronJob controller (upstream's v2): at each time the schedule names (in `timeZone`,
//! default the controller's UTC), creates a Job `<cronjob>-<minutes since epoch>` from the
//! template, subject to `concurrencyPolicy`, `startingDeadlineSeconds` and `suspend`; keeps
//! `status.active`, `lastScheduleTime`, `lastSuccessfulTime`; prunes finished Jobs beyond the
//! history limits.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::{Api, Resource};
use tokio_util::sync::CancellationToken;

use super::cron;
use super::job::is_finished;
use super::util::{self, controller_ref, is_controlled_by};
use crate::context::Context;
use crate::events::Recorder;
use crate::informer::{Change, Informer, split_key};
use crate::queue::{Action, WorkQueue};

/// The annotation on a Job carrying the time it was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Past this many missed start times, upstream warns.
const TOO_MANY_MISSED: u32 = 100;

/// The name of the Job for the activation at `t`.
pub fn job_name(cronjob: &str, t: Timestamp) -> String {
    format!("{cronjob}-{}", t.as_second().div_euclid(60))
}

/// Where the system's time zone database lives (upstream's Go runtime reads the same).
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The time zone a CronJob's schedule is read in: UTC, or an IANA name from the system's
/// time zone database.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    let n = match name {
        None | Some("") | Some("UTC") | Some("Etc/UTC") => return Ok(TimeZone::UTC),
        Some(n) => n,
    };
    // IANA names are relative paths of letters, digits, `_`, `-`, `+` and `/`.
    let valid = !n.starts_with('/')
        && !n.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-+/".contains(c));
    if !valid {
        return Err(format!("unknown time zone {n}"));
    }
    let data = std::fs::read(std::path::Path::new(ZONEINFO).join(n))
        .map_err(|_| format!("unknown time zone {n}"))?;
    TimeZone::tzif(n, &data).map_err(|e| e.to_string())
}

/// The CronJob controller.
#[derive(Clone)]
pub struct CronJobController {
    ctx: Context,
    cronjobs: Informer<CronJob>,
    jobs: Informer<Job>,
    queue: WorkQueue,
    recorder: Recorder,
}

fn job_ref(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: j.metadata.name.clone(),
        namespace: j.metadata.namespace.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: j.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

impl CronJobController {
    /// Runs the controller until `stop`.
    pub async fn run(ctx: Context, stop: CancellationToken) {
        let this = CronJobController {
            cronjobs: ctx.informers.get::<CronJob>(),
            jobs: ctx.informers.get::<Job>(),
            queue: ctx.queue("cronjob"),
            recorder: ctx.recorder("cronjob-controller"),
            ctx,
        };
        let q = this.queue.clone();
        this.cronjobs
            .add_handler(move |c: &Change<'_, CronJob>| q.add_change(c));
        this.jobs
            .add_handler(util::enqueue_controller(this.queue.clone(), "CronJob"));
        this.cronjobs.synced().await;
        this.jobs.synced().await;
        let me = this.clone();
        this.queue
            .run_workers(2, stop, move |key| {
                let me = me.clone();
                async move { me.sync(&key).await }
            })
            .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Action> {
        let Some(cj) = self.cronjobs.get(key) else {
            return Ok(Action::await_change());
        };
        let cj = (*cj).clone();
        let (ns, name) = split_key(key);
        let ns = ns.unwrap_or("default").to_string();
        let name = name.to_string();
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let now = util::now();
        let jobs_api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &ns);

        let mine: Vec<Job> = self
            .jobs
            .list_namespace(&ns)
            .iter()
            .filter(|j| is_controlled_by(&j.metadata, &uid))
            .map(|j| (**j).clone())
            .collect();
        let old_status = cj.status.clone().unwrap_or_default();
        let mut status = old_status.clone();

        // Reconcile `active` with the Jobs that exist.
        let mut active: Vec<ObjectReference> = Vec::new();
        for j in &mine {
            let listed = old_status
                .active
                .iter()
                .flatten()
                .any(|r| r.uid == j.metadata.uid);
            match is_finished(j) {
                Some((kind, _)) => {
                    if listed {
                        self.recorder.normal(
                            &cj,
                            "SawCompletedJob",
                            &format!(
                                "Saw completed job: {}, status: {kind}",
                                j.metadata.name.as_deref().unwrap_or("")
                            ),
                        );
                    }
                    if kind == "Complete" {
                        let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                        if done.as_ref().map(|t| t.0)
                            > status.last_successful_time.as_ref().map(|t| t.0)
                        {
                            status.last_successful_time = done;
                        }
                    }
                }
                None => {
                    // Jobs created by an earlier sync show up here even if the status write
                    // was lost.
                    if j.metadata.deletion_timestamp.is_none() {
                        // Keep the reference as written, so an unchanged list is not rewritten.
                        let existing = old_status
                            .active
                            .iter()
                            .flatten()
                            .find(|r| r.uid == j.metadata.uid)
                            .cloned();
                        active.push(existing.unwrap_or_else(|| job_ref(j)));
                    }
                }
            }
        }
        status.active = if active.is_empty() {
            None
        } else {
            Some(active)
        };

        let mut requeue = None;
        if cj.metadata.deletion_timestamp.is_none() {
            requeue = self
                .schedule(&cj, &name, &ns, &jobs_api, &mut status, now)
                .await?;
            self.cleanup(&cj, &jobs_api, &mine).await?;
        }

        if !util::same_status(Some(&old_status), &status) {
            let api: Api<CronJob> = Api::namespaced(self.ctx.client.clone(), &ns);
            util::update_status(&api, &cj, serde_json::to_value(&status)?).await?;
        }
        Ok(match requeue {
            Some(d) => Action::requeue(d),
            None => Action::await_change(),
        })
    }

    /// Starts the Job due now, if any; returns when to look again.
    async fn schedule(
        &self,
        cj: &CronJob,
        name: &str,
        ns: &str,
        jobs_api: &Api<Job>,
        status: &mut k8s_openapi::api::batch::v1::CronJobStatus,
        now: Timestamp,
    ) -> anyhow::Result<Option<Duration>> {
        let spec = cj.spec.clone().unwrap_or_default();
        let tz = match time_zone(spec.time_zone.as_deref()) {
            Ok(tz) => tz,
            Err(e) => {
                let tzn = spec.time_zone.clone().unwrap_or_default();
                self.recorder.warning(
                    cj,
                    "UnknownTimeZone",
                    &format!("invalid timeZone: {tzn:?}: {e}"),
                );
                return Ok(None);
            }
        };
        let sched = match cron::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                self.recorder.warning(
                    cj,
                    "UnparseableSchedule",
                    &format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok(None);
            }
        };
        if spec.suspend.unwrap_or(false) {
            return Ok(None);
        }
        let next_in = |after: Timestamp| {
            sched.next(after, &tz).map(|t| {
                Duration::from_millis(
                    ((t.as_millisecond() - now.as_millisecond()).max(0) + 100) as u64,
                )
            })
        };

        let created = cj
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(now);
        let mut earliest = status
            .last_schedule_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(created);
        if let Some(d) = spec.starting_deadline_seconds {
            let floor = Timestamp::from_second(now.as_second() - d).unwrap_or(now);
            if earliest < floor {
                earliest = floor;
            }
        }
        if earliest > now {
            return Ok(next_in(now));
        }
        let (scheduled, missed) = cron::most_recent(&sched, &tz, earliest, now);
        let Some(scheduled) = scheduled else {
            return Ok(next_in(now));
        };
        if missed > TOO_MANY_MISSED {
            self.recorder.warning(
                cj,
                "TooManyMissedTimes",
                &format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
            );
        }
        if let Some(d) = spec.starting_deadline_seconds
            && scheduled.as_second() + d < now.as_second()
        {
            let when = scheduled
                .to_zoned(tz.clone())
                .strftime("%a, %d %b %Y %H:%M:%S %z")
                .to_string();
            self.recorder.warning(
                cj,
                "MissSchedule",
                &format!("Missed scheduled time to start a job: {when}"),
            );
            return Ok(next_in(now));
        }
        let jname = job_name(name, scheduled);
        if status
            .active
            .iter()
            .flatten()
            .any(|r| r.name.as_deref() == Some(jname.as_str()))
            || self.jobs.get_in(Some(ns), &jname).is_some()
        {
            return Ok(next_in(now));
        }
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        let running = status.active.clone().unwrap_or_default();
        if policy == "Forbid" && !running.is_empty() {
            self.recorder.normal(
                cj,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            );
            return Ok(next_in(now));
        }
        if policy == "Replace" {
            for r in &running {
                let n = r.name.clone().unwrap_or_default();
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                match jobs_api.delete(&n, &dp).await {
                    Ok(_) => {
                        self.recorder
                            .normal(cj, "SuccessfulDelete", &format!("Deleted job {n}"));
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            status.active = None;
        }

        let tmpl = spec.job_template.clone();
        let tmeta = tmpl.metadata.clone().unwrap_or_default();
        let mut annotations = tmeta.annotations.clone().unwrap_or_default();
        annotations.insert(
            SCHEDULED_TIMESTAMP.into(),
            scheduled
                .to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
        );
        let job = Job {
            metadata: ObjectMeta {
                name: Some(jname.clone()),
                namespace: Some(ns.to_string()),
                labels: tmeta.labels.clone(),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref(&cj.metadata, "batch/v1", "CronJob")]),
                ..ObjectMeta::default()
            },
            spec: tmpl.spec.clone(),
            status: None,
        };
        match jobs_api.create(&PostParams::default(), &job).await {
            Ok(j) => {
                self.recorder
                    .normal(cj, "SuccessfulCreate", &format!("Created job {jname}"));
                status.active.get_or_insert_with(Vec::new).push(job_ref(&j));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                self.recorder
                    .warning(cj, "FailedCreate", &format!("Error creating job: {e}"));
                return Err(e.into());
            }
        }
        status.last_schedule_time = Some(Time(scheduled));
        Ok(next_in(now))
    }

    /// Deletes the oldest finished Jobs beyond the history limits.
    async fn cleanup(&self, cj: &CronJob, api: &Api<Job>, mine: &[Job]) -> anyhow::Result<()> {
        let spec = cj.spec.clone().unwrap_or_default();
        for (kind, limit) in [
            ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
            ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
        ] {
            let mut done: Vec<&Job> = mine
                .iter()
                .filter(|j| is_finished(j).is_some_and(|(k, _)| k == kind))
                .filter(|j| j.metadata.deletion_timestamp.is_none())
                .collect();
            let excess = done.len() as i64 - i64::from(limit.max(0));
            if excess <= 0 {
                continue;
            }
            let start = |j: &Job| {
                j.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .or(j.metadata.creation_timestamp.as_ref())
                    .map(|t| t.0)
            };
            done.sort_by_key(|j| start(j));
            for j in done.iter().take(excess as usize) {
                let n = j.meta().name.clone().unwrap_or_default();
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                match api.delete(&n, &dp).await {
                    Ok(_) => {
                        self.recorder
                            .normal(cj, "SuccessfulDelete", &format!("Deleted job {n}"))
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_count_minutes_since_the_epoch() {
        let t: Timestamp = "2026-01-01T00:05:00Z".parse().expect("time");
        assert_eq!(
            job_name("hello", t),
            format!("hello-{}", t.as_second() / 60)
        );
    }

    #[test]
    fn time_zones_resolve_or_fail() {
        assert!(time_zone(None).is_ok());
        assert!(time_zone(Some("Europe/Berlin")).is_ok());
        assert!(time_zone(Some("Mars/Olympus")).is_err());
        assert!(time_zone(Some("../../etc/passwd")).is_err());
    }
}
