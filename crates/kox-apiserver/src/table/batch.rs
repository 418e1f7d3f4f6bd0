//! Tables of the `batch` group.

use serde_json::{Value, json};

use super::{
    AGE, CONTAINERS, IMAGES, NAME, TableDef, age, bool_ptr, col, containers_and_images,
    format_label_selector, human_duration, i64_at, items, len_of, name, since_time, time_at,
};
use crate::strategy::str_at;

/// Whether the first condition of `ty` is true (upstream's `hasJobCondition`).
fn has_condition(v: &Value, ty: &str) -> bool {
    items(v, "/status/conditions")
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

pub static JOB: TableDef = TableDef {
    columns: &[
        NAME,
        col("Status", "string", 0).about("Status of the job."),
        col("Completions", "string", 0),
        col("Duration", "string", 0).about("Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        col("Selector", "string", 1),
    ],
    row: |v, now| {
        let succeeded = i64_at(v, "/status/succeeded");
        let completions = match v.pointer("/spec/completions").and_then(Value::as_i64) {
            Some(c) => format!("{succeeded}/{c}"),
            None => match i64_at(v, "/spec/parallelism") {
                p if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let duration = match (
            time_at(v, "/status/startTime"),
            time_at(v, "/status/completionTime"),
        ) {
            (None, _) => String::new(),
            (Some(start), None) => human_duration(now.as_second() - start.as_second()),
            (Some(start), Some(end)) => human_duration(end.as_second() - start.as_second()),
        };
        let status = if has_condition(v, "Complete") {
            "Complete"
        } else if has_condition(v, "Failed") {
            "Failed"
        } else if v.pointer("/metadata/deletionTimestamp").is_some() {
            "Terminating"
        } else if has_condition(v, "Suspended") {
            "Suspended"
        } else if has_condition(v, "FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let (c, i) = containers_and_images(v.pointer("/spec/template/spec/containers"));
        vec![
            name(v),
            json!(status),
            json!(completions),
            json!(duration),
            age(v, now),
            c,
            i,
            json!(format_label_selector(v.pointer("/spec/selector"))),
        ]
    },
};

pub static CRON_JOB: TableDef = TableDef {
    columns: &[
        NAME,
        col("Schedule", "string", 0),
        col("Timezone", "string", 0),
        col("Suspend", "boolean", 0),
        col("Active", "integer", 0),
        col("Last Schedule", "string", 0),
        AGE,
        CONTAINERS,
        IMAGES,
        col("Selector", "string", 1),
    ],
    row: |v, now| {
        let last = match time_at(v, "/status/lastScheduleTime") {
            Some(t) => since_time(Some(t), now),
            None => "<none>".into(),
        };
        let (c, i) =
            containers_and_images(v.pointer("/spec/jobTemplate/spec/template/spec/containers"));
        vec![
            name(v),
            json!(str_at(v, "spec.schedule").unwrap_or("")),
            json!(str_at(v, "spec.timeZone").unwrap_or("<none>")),
            json!(bool_ptr(v.pointer("/spec/suspend"))),
            json!(len_of(v.pointer("/status/active"))),
            json!(last),
            age(v, now),
            c,
            i,
            json!(format_label_selector(
                v.pointer("/spec/jobTemplate/spec/selector")
            )),
        ]
    },
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{ago, check, headers};

    fn job(spec: serde_json::Value, status: serde_json::Value) -> serde_json::Value {
        let mut spec = spec;
        spec["template"] = json!({"spec": {"containers": [{"name": "pi", "image": "perl"}]}});
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}});
        json!({"metadata": {"name": "pi", "creationTimestamp": ago(600)}, "spec": spec, "status": status})
    }

    fn cells(status: &str, completions: &str, duration: &str) -> serde_json::Value {
        json!([
            "pi",
            status,
            completions,
            duration,
            "10m",
            "pi",
            "perl",
            "batch.kubernetes.io/controller-uid=u1"
        ])
    }

    #[test]
    fn job_columns_match_upstream() {
        assert_eq!(
            headers("jobs.batch"),
            "NAME STATUS COMPLETIONS DURATION AGE CONTAINERS* IMAGES* SELECTOR*"
        );
    }

    #[test]
    fn jobs_show_status_completions_and_duration() {
        check(
            "jobs.batch",
            job(
                json!({"completions": 1, "parallelism": 1}),
                json!({"startTime": ago(600), "completionTime": ago(540), "succeeded": 1,
                    "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
            ),
            cells("Complete", "1/1", "60s"),
        );
        check(
            "jobs.batch",
            job(
                json!({"completions": 5, "parallelism": 2}),
                json!({"startTime": ago(150), "succeeded": 2}),
            ),
            cells("Running", "2/5", "2m30s"),
        );
        check(
            "jobs.batch",
            job(json!({"parallelism": 3}), json!({})),
            cells("Running", "0/1 of 3", ""),
        );
        check(
            "jobs.batch",
            job(
                json!({"completions": 1}),
                json!({"conditions": [{"type": "Failed", "status": "True"}]}),
            ),
            cells("Failed", "0/1", ""),
        );
        check(
            "jobs.batch",
            job(
                json!({"completions": 1, "suspend": true}),
                json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
            ),
            cells("Suspended", "0/1", ""),
        );
        check(
            "jobs.batch",
            job(
                json!({"completions": 1}),
                json!({"conditions": [{"type": "FailureTarget", "status": "True"}]}),
            ),
            cells("FailureTarget", "0/1", ""),
        );
        let mut deleted = job(json!({"completions": 1}), json!({}));
        deleted["metadata"]["deletionTimestamp"] = json!(ago(1));
        check("jobs.batch", deleted, cells("Terminating", "0/1", ""));
    }

    #[test]
    fn cronjobs_show_schedule_timezone_and_last_run() {
        assert_eq!(
            headers("cronjobs.batch"),
            "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE CONTAINERS* IMAGES* SELECTOR*"
        );
        let template = json!({"spec": {"template": {"spec": {"containers": [{"name": "hello", "image": "busybox"}]}}}});
        check(
            "cronjobs.batch",
            json!({"metadata": {"name": "hello", "creationTimestamp": ago(7200)},
                "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "suspend": false, "jobTemplate": template},
                "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(120)}}),
            json!([
                "hello",
                "*/5 * * * *",
                "Etc/UTC",
                "False",
                1,
                "2m",
                "120m",
                "hello",
                "busybox",
                "<none>"
            ]),
        );
        check(
            "cronjobs.batch",
            json!({"metadata": {"name": "new"}, "spec": {"schedule": "@daily", "jobTemplate": template}}),
            json!([
                "new",
                "@daily",
                "<none>",
                "<unset>",
                0,
                "<none>",
                "<unknown>",
                "hello",
                "busybox",
                "<none>"
            ]),
        );
    }
}
