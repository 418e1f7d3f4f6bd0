//! The event table (`events.k8s.io/v1` events are served from core events, so print alike).

use serde_json::json;

use super::{Column, NAME, TableDef, col, i64_at, name, since_time, str_ptr, time_at};

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", 0),
    col("Type", "string", 0),
    col("Reason", "string", 0),
    col("Object", "string", 0),
    col("Subobject", "string", 1),
    col("Source", "string", 1),
    col("Message", "string", 0),
    col("First Seen", "string", 1),
    col("Count", "string", 1),
    Column {
        priority: 1,
        ..NAME
    },
];

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// Upstream's `printEvent` (wide).
pub static EVENT: TableDef = TableDef {
    columns: EVENT_COLUMNS,
    row: |v, now| {
        let s = |p: &str| str_ptr(v, p).unwrap_or("");
        let first = match time_at(v, "/firstTimestamp") {
            Some(t) => since_time(Some(t), now),
            None => since_time(time_at(v, "/eventTime"), now),
        };
        let mut last = match time_at(v, "/lastTimestamp") {
            Some(t) => since_time(Some(t), now),
            None => first.clone(),
        };
        let mut count = i64_at(v, "/count");
        if let Some(series) = v.get("series").filter(|s| !s.is_null()) {
            last = since_time(time_at(series, "/lastObservedTime"), now);
            count = i64_at(series, "/count");
        } else if count == 0 {
            // Singleton events have no count in the new API.
            count = 1;
        }
        let (kind, object) = (s("/involvedObject/kind"), s("/involvedObject/name"));
        let target = if object.is_empty() {
            kind.to_lowercase()
        } else {
            format!("{}/{object}", kind.to_lowercase())
        };
        let component = first_non_empty(s("/source/component"), s("/reportingComponent"));
        let host = first_non_empty(s("/source/host"), s("/reportingInstance"));
        let source = if host.is_empty() {
            component.to_string()
        } else {
            format!("{component}, {host}")
        };
        vec![
            json!(last),
            json!(s("/type")),
            json!(s("/reason")),
            json!(target),
            json!(s("/involvedObject/fieldPath")),
            json!(source),
            json!(s("/message").trim()),
            json!(first),
            json!(count),
            name(v),
        ]
    },
};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{ago, check, headers};

    #[test]
    fn events_show_series_counts_and_sources() {
        assert_eq!(
            headers("events"),
            "LAST SEEN TYPE REASON OBJECT SUBOBJECT* SOURCE* MESSAGE FIRST SEEN* COUNT* NAME*"
        );
        check(
            "events",
            json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Pulled",
                "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{nginx}"},
                "source": {"component": "kubelet", "host": "n1"}, "message": " pulled \n",
                "firstTimestamp": ago(600), "lastTimestamp": ago(90), "count": 3}),
            json!([
                "90s",
                "Normal",
                "Pulled",
                "pod/web",
                "spec.containers{nginx}",
                "kubelet, n1",
                "pulled",
                "10m",
                3,
                "web.1"
            ]),
        );
        // A new-style event: eventTime, a series, the reporting controller as source.
        check(
            "events",
            json!({"metadata": {"name": "e2"}, "type": "Warning", "reason": "BackOff",
                "involvedObject": {"kind": "Node"}, "eventTime": "2025-01-10T11:00:00.000000Z",
                "series": {"count": 7, "lastObservedTime": "2025-01-10T11:59:00.000000Z"},
                "reportingComponent": "kubelet", "reportingInstance": "n2"}),
            json!([
                "60s",
                "Warning",
                "BackOff",
                "node",
                "",
                "kubelet, n2",
                "",
                "60m",
                7,
                "e2"
            ]),
        );
        // An events.k8s.io/v1 event, as stored.
        check(
            "events",
            crate::events_v1::v1_to_core(json!({"metadata": {"name": "e3"}, "type": "Normal",
                "reason": "Scheduled", "regarding": {"kind": "Pod", "name": "p"}, "note": "assigned",
                "eventTime": "2025-01-10T11:58:00.000000Z", "reportingController": "default-scheduler",
                "reportingInstance": "sched-1"})),
            json!([
                "2m",
                "Normal",
                "Scheduled",
                "pod/p",
                "",
                "default-scheduler, sched-1",
                "assigned",
                "2m",
                1,
                "e3"
            ]),
        );
    }
}
