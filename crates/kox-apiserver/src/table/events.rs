//! The event table, for core events and `events.k8s.io` events alike.

use serde_json::{Value, json};

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

/// The fields of an event the table shows, whichever API version it came from.
struct EventView<'a> {
    first: Option<jiff::Timestamp>,
    last: Option<jiff::Timestamp>,
    event_time: Option<jiff::Timestamp>,
    series: Option<(i64, Option<jiff::Timestamp>)>,
    count: i64,
    kind: &'a str,
    object: &'a str,
    field_path: &'a str,
    ty: &'a str,
    reason: &'a str,
    message: &'a str,
    component: &'a str,
    host: &'a str,
    controller: &'a str,
    instance: &'a str,
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// Upstream's `printEvent` (wide).
fn event_row(v: &Value, e: EventView<'_>, now: jiff::Timestamp) -> Vec<Value> {
    let first = match e.first {
        Some(t) => since_time(Some(t), now),
        None => since_time(e.event_time, now),
    };
    let mut last = match e.last {
        Some(t) => since_time(Some(t), now),
        None => first.clone(),
    };
    let mut count = e.count;
    if let Some((n, observed)) = e.series {
        last = since_time(observed, now);
        count = n;
    } else if count == 0 {
        // Singleton events have no count in the new API.
        count = 1;
    }
    let target = if e.object.is_empty() {
        e.kind.to_lowercase()
    } else {
        format!("{}/{}", e.kind.to_lowercase(), e.object)
    };
    let component = first_non_empty(e.component, e.controller);
    let host = first_non_empty(e.host, e.instance);
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(e.ty),
        json!(e.reason),
        json!(target),
        json!(e.field_path),
        json!(source),
        json!(e.message.trim()),
        json!(first),
        json!(count),
        name(v),
    ]
}

pub static EVENT: TableDef = TableDef {
    columns: EVENT_COLUMNS,
    row: |v, now| {
        let s = |p: &str| str_ptr(v, p).unwrap_or("");
        let view = EventView {
            first: time_at(v, "/firstTimestamp"),
            last: time_at(v, "/lastTimestamp"),
            event_time: time_at(v, "/eventTime"),
            series: v
                .get("series")
                .filter(|s| !s.is_null())
                .map(|s| (i64_at(s, "/count"), time_at(s, "/lastObservedTime"))),
            count: i64_at(v, "/count"),
            kind: s("/involvedObject/kind"),
            object: s("/involvedObject/name"),
            field_path: s("/involvedObject/fieldPath"),
            ty: s("/type"),
            reason: s("/reason"),
            message: s("/message"),
            component: s("/source/component"),
            host: s("/source/host"),
            controller: s("/reportingComponent"),
            instance: s("/reportingInstance"),
        };
        event_row(v, view, now)
    },
};

/// `events.k8s.io/v1` events print as core events do (upstream serves both from one store).
pub static EVENTS_V1: TableDef = TableDef {
    columns: EVENT_COLUMNS,
    row: |v, now| {
        let s = |p: &str| str_ptr(v, p).unwrap_or("");
        let view = EventView {
            first: time_at(v, "/deprecatedFirstTimestamp"),
            last: time_at(v, "/deprecatedLastTimestamp"),
            event_time: time_at(v, "/eventTime"),
            series: v
                .get("series")
                .filter(|s| !s.is_null())
                .map(|s| (i64_at(s, "/count"), time_at(s, "/lastObservedTime"))),
            count: i64_at(v, "/deprecatedCount"),
            kind: s("/regarding/kind"),
            object: s("/regarding/name"),
            field_path: s("/regarding/fieldPath"),
            ty: s("/type"),
            reason: s("/reason"),
            message: s("/note"),
            component: s("/deprecatedSource/component"),
            host: s("/deprecatedSource/host"),
            controller: s("/reportingController"),
            instance: s("/reportingInstance"),
        };
        event_row(v, view, now)
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
        check(
            "events.events.k8s.io",
            json!({"metadata": {"name": "e3"}, "type": "Normal", "reason": "Scheduled",
                "regarding": {"kind": "Pod", "name": "p"}, "note": "assigned",
                "eventTime": "2025-01-10T11:58:00.000000Z", "reportingController": "default-scheduler",
                "reportingInstance": "sched-1"}),
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
