//! The `batch` group: jobs and cron jobs.

use serde_json::{Map, Value, json};

use super::pods::{pod_spec_defaults, pod_template};
use super::{
    FieldError, FieldErrors, child, go_label_selector, go_string_map, go_value, immutable,
    namespaced_meta, nonnegative, p, selector_at, selector_matches, set_default,
};
use crate::strategy::str_at;
use kox_api::field::BadValue;

const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
const LEGACY_JOB_NAME_LABEL: &str = "job-name";
const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";

/// Upstream's `SetDefaults_Job` (v1) on a job spec object.
fn job_spec_defaults(spec: &mut Map<String, Value>) {
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let per_index = spec
        .get("backoffLimitPerIndex")
        .is_some_and(|b| !b.is_null());
    set_default(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let failure_policy = spec.get("podFailurePolicy").is_some_and(|f| !f.is_null());
    if let Some(rules) = spec
        .get_mut("podFailurePolicy")
        .and_then(|f| f.get_mut("rules"))
        .and_then(Value::as_array_mut)
    {
        for pattern in rules
            .iter_mut()
            .filter_map(|r| r.get_mut("onPodConditions"))
            .filter_map(Value::as_array_mut)
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            set_default(pattern, "status", json!("True"));
        }
    }
    set_default(
        spec,
        "podReplacementPolicy",
        json!(if failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
    set_default(spec, "manualSelector", json!(false));
    if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec_defaults(t);
    }
}

/// Job defaults, then the selector upstream generates on create (the job's uid in
/// `batch.kubernetes.io/controller-uid`, set on the template with the job-name labels), then
/// the job's labels copied from its template's when it has none.
pub fn job_defaults(v: &mut Value) {
    let name = str_at(v, "metadata.name").unwrap_or("").to_string();
    let uid = str_at(v, "metadata.uid").unwrap_or("").to_string();
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    job_spec_defaults(spec);
    if spec.get("manualSelector").and_then(Value::as_bool) != Some(true) {
        if let Some(labels) = child(spec, "template")
            .and_then(|t| child(t, "metadata"))
            .and_then(|m| child(m, "labels"))
        {
            for (k, val) in [
                (LEGACY_JOB_NAME_LABEL, &name),
                (JOB_NAME_LABEL, &name),
                (LEGACY_CONTROLLER_UID_LABEL, &uid),
                (CONTROLLER_UID_LABEL, &uid),
            ] {
                labels.entry(k).or_insert_with(|| json!(val));
            }
        }
        if let Some(match_labels) = child(spec, "selector").and_then(|s| child(s, "matchLabels")) {
            match_labels
                .entry(CONTROLLER_UID_LABEL)
                .or_insert_with(|| json!(uid));
        }
    }
    let template_labels = v
        .pointer("/spec/template/metadata/labels")
        .filter(|l| !l.is_null())
        .cloned();
    if let (Some(labels), Some(meta)) = (
        template_labels,
        v.get_mut("metadata").and_then(Value::as_object_mut),
    ) && meta
        .get("labels")
        .is_none_or(|l| l.as_object().is_none_or(Map::is_empty))
    {
        meta.insert("labels".into(), labels);
    }
}

/// Upstream's `validateJobSpec`, shared by jobs and cron jobs' templates, at `ptr`/`path`.
fn job_spec(v: &Value, ptr: &str, path: &str, errs: &mut FieldErrors) {
    let at = |k: &str| format!("{ptr}/{k}");
    let field = |k: &str| format!("{path}.{k}");
    for k in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(v, &at(k), &field(k), errs);
    }
    let present = |k: &str| v.pointer(&at(k)).is_some_and(|x| !x.is_null());
    let int = |k: &str| v.pointer(&at(k)).and_then(Value::as_i64);
    if present("maxFailedIndexes") && !present("backoffLimitPerIndex") {
        errs.push(FieldError::required(
            &p(&field("backoffLimitPerIndex")),
            "when maxFailedIndexes is specified",
        ));
    }
    let mode = v.pointer(&at("completionMode")).and_then(Value::as_str);
    if let Some(m) = mode
        && m != "NonIndexed"
        && m != "Indexed"
    {
        errs.push(FieldError::not_supported(
            &p(&field("completionMode")),
            m,
            &["NonIndexed", "Indexed"],
        ));
    }
    if mode == Some("Indexed") {
        if !present("completions") {
            errs.push(FieldError::required(
                &p(&field("completions")),
                "when completion mode is Indexed",
            ));
        }
        if let Some(par) = int("parallelism").filter(|n| *n > 100_000) {
            errs.push(FieldError::invalid(
                &p(&field("parallelism")),
                par,
                "must be less than or equal to 100000 when completion mode is Indexed",
            ));
        }
        if let (Some(c), Some(m)) = (int("completions"), int("maxFailedIndexes"))
            && m > c
        {
            errs.push(FieldError::invalid(
                &p(&field("maxFailedIndexes")),
                m,
                "must be less than or equal to completions",
            ));
        }
    } else {
        for k in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(n) = int(k) {
                errs.push(FieldError::invalid(
                    &p(&field(k)),
                    n,
                    "requires indexed completion mode",
                ));
            }
        }
    }
    if present("successPolicy") && mode != Some("Indexed") {
        errs.push(FieldError::invalid(
            &p(&field("successPolicy")),
            go_value(v.pointer(&at("successPolicy")).unwrap_or(&Value::Null)),
            "requires indexed completion mode",
        ));
    }
    let failure_policy = present("podFailurePolicy");
    if let Some(policy) = v
        .pointer(&at("podReplacementPolicy"))
        .and_then(Value::as_str)
    {
        if failure_policy {
            if policy != "Failed" {
                errs.push(FieldError::not_supported(
                    &p(&field("podReplacementPolicy")),
                    policy,
                    &["Failed"],
                ));
            }
        } else if policy != "Failed" && policy != "TerminatingOrFailed" {
            errs.push(FieldError::not_supported(
                &p(&field("podReplacementPolicy")),
                policy,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    pod_template(v, &at("template"), &field("template"), errs);
    let restart_path = field("template.spec.restartPolicy");
    match v
        .pointer(&at("template/spec/restartPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "" | "Always" => errs.push(FieldError::required(
            &p(&restart_path),
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" if failure_policy => errs.push(FieldError::invalid(
            &p(&restart_path),
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        "OnFailure" | "Never" => {}
        other => errs.push(FieldError::not_supported(
            &p(&restart_path),
            other,
            &["OnFailure", "Never"],
        )),
    }
}

/// Upstream's `ValidateJob`: metadata, the generated selector and the spec.
pub fn job(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    generated_selector(v, &mut errs);
    job_spec_with_selector(v, &mut errs);
    let name = str_at(v, "metadata.name").unwrap_or("");
    if str_at(v, "spec.completionMode") == Some("Indexed")
        && let Some(c) = v
            .pointer("/spec/completions")
            .and_then(Value::as_i64)
            .filter(|c| *c > 0)
    {
        let host = format!("{name}-{}", c - 1);
        if !kox_api::validation::is_dns1123_label(&host).is_empty() {
            errs.push(FieldError::invalid(
                &p("metadata.name"),
                name,
                format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
    errs
}

/// Upstream's `ValidateJobSpec`: the shared spec rules plus a selector matching the template.
fn job_spec_with_selector(v: &Value, errs: &mut FieldErrors) {
    job_spec(v, "/spec", "spec", errs);
    if v.pointer("/spec/selector").is_none_or(Value::is_null) {
        errs.push(FieldError::required(&p("spec.selector"), ""));
    } else {
        selector_at(v, "/spec/selector", "spec.selector", errs);
    }
    // Unlike the apps controllers, an empty selector must match too (it does).
    let sel = v.pointer("/spec/selector").cloned().unwrap_or(Value::Null);
    let labels = v
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    if !selector_matches(&sel, &labels) {
        errs.push(FieldError::invalid(
            &p("spec.template.metadata.labels"),
            BadValue::Raw(go_string_map(&labels)),
            "`selector` does not match template `labels`",
        ));
    }
}

/// Upstream's `validateGeneratedSelector`: unless the selector is manual, the template carries
/// the generated labels and the selector selects them.
fn generated_selector(v: &Value, errs: &mut FieldErrors) {
    if v.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true)
        || v.pointer("/spec/selector").is_none_or(Value::is_null)
    {
        return;
    }
    let uid = str_at(v, "metadata.uid").unwrap_or("");
    let name = str_at(v, "metadata.name").unwrap_or("");
    if uid.is_empty() {
        errs.push(FieldError::required(&p("metadata.uid"), ""));
    }
    let labels = v
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    for (key, want) in [
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
    ] {
        let path = p(&format!("spec.template.metadata.labels[{key}]"));
        match labels.get(key).and_then(Value::as_str) {
            None => errs.push(FieldError::required(&path, want)),
            Some(have) if have != want => errs.push(FieldError::invalid(
                &path,
                BadValue::Raw(go_string_map(&labels)),
                format!("must be '{want}'"),
            )),
            Some(_) => {}
        }
    }
    let expected = json!({
        CONTROLLER_UID_LABEL: uid, JOB_NAME_LABEL: name,
        LEGACY_CONTROLLER_UID_LABEL: uid, LEGACY_JOB_NAME_LABEL: name,
    });
    let sel = v.pointer("/spec/selector").cloned().unwrap_or(Value::Null);
    if label_selector_converts(&sel) && !selector_matches(&sel, &expected) {
        errs.push(FieldError::invalid(
            &p("spec.selector"),
            go_label_selector(Some(&sel)),
            "`selector` not auto-generated",
        ));
    }
}

fn label_selector_converts(sel: &Value) -> bool {
    serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>(
        sel.clone(),
    )
    .ok()
    .is_some_and(|ls| kox_api::label_selector::Selector::from_label_selector(Some(&ls)).is_ok())
}

/// Upstream's `ValidateJobUpdate`: the spec rules, then what may not change. While a job is
/// suspended its template's scheduling directives, labels and annotations may change.
pub fn job_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(new);
    job_spec_with_selector(new, &mut errs);
    if str_at(new, "spec.completionMode") == Some("Indexed") {
        // Elastic indexed jobs: completions change together with parallelism.
        let c = new.pointer("/spec/completions");
        if c != old.pointer("/spec/completions")
            && let Some(c) = c.and_then(Value::as_i64)
            && Some(c) != new.pointer("/spec/parallelism").and_then(Value::as_i64)
        {
            errs.push(FieldError::invalid(
                &p("spec.completions"),
                c,
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    } else {
        immutable(new, old, "/spec/completions", "spec.completions", &mut errs);
    }
    if new.pointer("/spec/selector") != old.pointer("/spec/selector") {
        errs.push(FieldError::invalid(
            &p("spec.selector"),
            go_label_selector(new.pointer("/spec/selector")),
            "field is immutable",
        ));
    }
    let template = |v: &Value| {
        let mut t = v.pointer("/spec/template").cloned().unwrap_or(Value::Null);
        if new.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
            if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("labels");
                meta.remove("annotations");
            }
            if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
                for k in ["nodeSelector", "tolerations", "schedulingGates"] {
                    spec.remove(k);
                }
                if let Some(a) = spec.get_mut("affinity").and_then(Value::as_object_mut) {
                    a.remove("nodeAffinity");
                }
            }
        }
        t
    };
    if template(new) != template(old) {
        errs.push(FieldError::invalid(
            &p("spec.template"),
            go_value(new.pointer("/spec/template").unwrap_or(&Value::Null)),
            "field is immutable",
        ));
    }
    for (ptr, path) in [
        ("/spec/completionMode", "spec.completionMode"),
        ("/spec/podFailurePolicy", "spec.podFailurePolicy"),
        ("/spec/backoffLimitPerIndex", "spec.backoffLimitPerIndex"),
        ("/spec/managedBy", "spec.managedBy"),
        ("/spec/successPolicy", "spec.successPolicy"),
    ] {
        immutable(new, old, ptr, path, &mut errs);
    }
    errs
}

// ---- cron jobs -------------------------------------------------------------------------------------

/// Upstream's `SetDefaults_CronJob` and the pod defaults of its job template.
pub fn cron_job_defaults(v: &mut Value) {
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(t) = spec
        .get_mut("jobTemplate")
        .and_then(|t| t.pointer_mut("/spec/template/spec"))
    {
        pod_spec_defaults(t);
    }
}

/// Upstream's `ValidateCronJobCreate`: the spec, and names short enough for the jobs'.
pub fn cron_job(v: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(v);
    cron_job_spec(v, None, &mut errs);
    let name = str_at(v, "metadata.name").unwrap_or("");
    if name.len() > 52 {
        errs.push(FieldError::invalid(
            &p("metadata.name"),
            name,
            "must be no more than 52 characters",
        ));
    }
    errs
}

pub fn cron_job_update(new: &Value, old: &Value) -> FieldErrors {
    let mut errs = namespaced_meta(new);
    cron_job_spec(new, Some(old), &mut errs);
    errs
}

fn cron_job_spec(v: &Value, old: Option<&Value>, errs: &mut FieldErrors) {
    let schedule = str_at(v, "spec.schedule").unwrap_or("");
    let time_zone = v.pointer("/spec/timeZone").filter(|t| !t.is_null());
    if schedule.is_empty() {
        errs.push(FieldError::required(&p("spec.schedule"), ""));
    } else {
        if let Err(e) = super::cron::parse_standard(schedule) {
            errs.push(FieldError::invalid(&p("spec.schedule"), schedule, e));
        }
        let allow_tz = old
            .and_then(|o| str_at(o, "spec.schedule"))
            .is_some_and(|s| s.contains("TZ"));
        if allow_tz && schedule.contains("TZ") && time_zone.is_some() {
            errs.push(FieldError::invalid(
                &p("spec.schedule"),
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                &p("spec.schedule"),
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonnegative(
        v,
        "/spec/startingDeadlineSeconds",
        "spec.startingDeadlineSeconds",
        errs,
    );
    if old.is_none_or(|o| o.pointer("/spec/timeZone").filter(|t| !t.is_null()) != time_zone)
        && let Some(tz) = time_zone.and_then(Value::as_str)
    {
        validate_time_zone(tz, errs);
    }
    match str_at(v, "spec.concurrencyPolicy").unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required(&p("spec.concurrencyPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &p("spec.concurrencyPolicy"),
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    job_spec(v, "/spec/jobTemplate/spec", "spec.jobTemplate.spec", errs);
    if let Some(sel) = v
        .pointer("/spec/jobTemplate/spec/selector")
        .filter(|s| !s.is_null())
    {
        errs.push(FieldError::invalid(
            &p("spec.jobTemplate.spec.selector"),
            go_label_selector(Some(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if v.pointer("/spec/jobTemplate/spec/manualSelector")
        .and_then(Value::as_bool)
        == Some(true)
    {
        errs.push(FieldError::not_supported(
            &p("spec.jobTemplate.spec.manualSelector"),
            true,
            &["nil", "false"],
        ));
    }
    nonnegative(
        v,
        "/spec/successfulJobsHistoryLimit",
        "spec.successfulJobsHistoryLimit",
        errs,
    );
    nonnegative(
        v,
        "/spec/failedJobsHistoryLimit",
        "spec.failedJobsHistoryLimit",
        errs,
    );
}

/// Upstream's `validateTimeZone`: an IANA name this machine's time zone database knows.
fn validate_time_zone(tz: &str, errs: &mut FieldErrors) {
    let path = p("spec.timeZone");
    if tz.is_empty() {
        errs.push(FieldError::invalid(
            &path,
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let part_ok = |part: &str| {
        part != "."
            && part != ".."
            && !part.starts_with('-')
            && (1..=14).contains(&part.len())
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
    };
    if !tz.split('/').all(part_ok) {
        errs.push(FieldError::invalid(
            &path,
            tz,
            format!("unknown time zone {tz}"),
        ));
        return;
    }
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(FieldError::invalid(
            &path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if tz != "UTC" && !tz.eq_ignore_ascii_case("Local") && jiff::tz::TimeZone::get(tz).is_err() {
        errs.push(FieldError::invalid(
            &path,
            tz,
            format!("unknown time zone {tz}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{check, with};

    fn job() -> Value {
        let mut v = json!({"metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl"}]}}}});
        super::job_defaults(&mut v);
        v
    }

    #[test]
    fn job_defaults_generate_the_selector_and_labels() {
        let v = job();
        let spec = &v["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let labels = json!({"job-name": "pi", "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "u-1", "batch.kubernetes.io/controller-uid": "u-1"});
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        assert_eq!(v["metadata"]["labels"], labels);
        check(super::job(&v), &[]);
    }

    #[test]
    fn jobs_need_a_restart_policy_other_than_always() {
        let v = with(
            &job(),
            json!({"spec": {"template": {"spec": {"restartPolicy": "Always"}}}}),
        );
        check(
            super::job(&v),
            &[
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ],
        );
    }

    #[test]
    fn job_spec_rules() {
        let v = with(
            &job(),
            json!({"spec": {"parallelism": -1, "completionMode": "Indexed", "completions": null,
                "backoffLimitPerIndex": null, "maxFailedIndexes": 2}}),
        );
        check(
            super::job(&v),
            &[
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
                "spec.completions: Required value: when completion mode is Indexed",
            ],
        );
    }

    #[test]
    fn a_hand_written_selector_must_be_auto_generated_unless_manual() {
        let v = with(
            &job(),
            json!({"spec": {"selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}}}}),
        );
        check(
            super::job(&v),
            &[
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\", \"batch.kubernetes.io/controller-uid\":\"u-1\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated",
            ],
        );
        let manual = with(
            &v,
            json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": null}}}}),
        );
        check(super::job(&manual), &[]);
    }

    #[test]
    fn job_selector_template_and_completions_are_immutable() {
        let old = job();
        check(
            super::job_update(
                &with(&old, json!({"spec": {"activeDeadlineSeconds": 60}})),
                &old,
            ),
            &[],
        );
        let errs = super::job_update(
            &with(
                &old,
                json!({"spec": {"completions": 2, "template": {"spec": {"containers": [{"name": "pi", "image": "perl:2"}]}}}}),
            ),
            &old,
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.completions", "spec.template"]);
        assert_eq!(
            errs.0[0].to_string(),
            "spec.completions: Invalid value: 2: field is immutable"
        );
        // Suspended jobs may move to other nodes.
        let suspended = with(&old, json!({"spec": {"suspend": true}}));
        check(
            super::job_update(
                &with(
                    &suspended,
                    json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}),
                ),
                &suspended,
            ),
            &[],
        );
    }

    fn cron() -> Value {
        let mut v = json!({"metadata": {"name": "hello", "namespace": "default"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "hello", "image": "busybox"}]}}}}}});
        super::cron_job_defaults(&mut v);
        v
    }

    #[test]
    fn cron_job_defaults_match_upstream() {
        let v = cron();
        assert_eq!(v["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(v["spec"]["suspend"], false);
        assert_eq!(v["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(v["spec"]["failedJobsHistoryLimit"], 1);
        check(super::cron_job(&v), &[]);
    }

    #[test]
    fn cron_jobs_need_a_valid_schedule() {
        check(
            super::cron_job(&with(&cron(), json!({"spec": {"schedule": null}}))),
            &["spec.schedule: Required value"],
        );
        check(
            super::cron_job(&with(&cron(), json!({"spec": {"schedule": "61 * * * *"}}))),
            &[
                "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61",
            ],
        );
        check(
            super::cron_job(&with(
                &cron(),
                json!({"spec": {"schedule": "TZ=UTC * * * * *"}}),
            )),
            &[
                "spec.schedule: Invalid value: \"TZ=UTC * * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ],
        );
    }

    #[test]
    fn cron_job_time_zones_policies_and_templates() {
        let v = with(
            &cron(),
            json!({"metadata": {"name": "a-name-that-is-far-too-long-for-the-jobs-it-will-create"},
                "spec": {"timeZone": "Mars/Olympus", "concurrencyPolicy": "Sometimes",
                "jobTemplate": {"spec": {"selector": {"matchLabels": {"a": "b"}}}}}}),
        );
        check(
            super::cron_job(&v),
            &[
                "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus",
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
                "spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"a\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated",
                "metadata.name: Invalid value: \"a-name-that-is-far-too-long-for-the-jobs-it-will-create\": must be no more than 52 characters",
            ],
        );
        check(
            super::cron_job(&with(
                &cron(),
                json!({"spec": {"timeZone": "Europe/Berlin"}}),
            )),
            &[],
        );
    }
}
