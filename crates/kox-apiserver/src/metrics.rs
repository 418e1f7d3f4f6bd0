//! `/metrics` in Prometheus text format: requests by verb/resource/code, request latency, store
//! latency, open watches.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use parking_lot::Mutex;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    total: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        let idx = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[idx] += 1;
        self.sum += secs;
        self.total += 1;
    }

    /// Appends the `_bucket`, `_sum` and `_count` series; `labels` is `a="x",b="y"`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i];
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.total);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.total);
    }
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    store: Mutex<BTreeMap<String, Histogram>>,
    open_watches: Arc<AtomicI64>,
}

/// Decrements the open-watch gauge when the watch ends.
pub struct WatchGuard(Arc<AtomicI64>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .entry((verb.to_string(), resource.to_string(), code))
            .or_default() += 1;
        self.latency
            .lock()
            .entry((verb.to_string(), resource.to_string()))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Records one store operation.
    pub fn observe_store(&self, operation: &str, elapsed: Duration) {
        self.store
            .lock()
            .entry(operation.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn watch_opened(&self) -> WatchGuard {
        self.open_watches.fetch_add(1, Ordering::Relaxed);
        WatchGuard(self.open_watches.clone())
    }

    pub fn render(&self) -> Response {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), n) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{code}\",resource=\"{resource}\",verb=\"{verb}\"}} {n}"
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb and resource.\n# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource), h) in self.latency.lock().iter() {
            h.render(
                &mut out,
                "apiserver_request_duration_seconds",
                &format!("resource=\"{resource}\",verb=\"{verb}\""),
            );
        }
        out.push_str("# HELP etcd_request_duration_seconds Store request latency in seconds for each operation.\n# TYPE etcd_request_duration_seconds histogram\n");
        for (operation, h) in self.store.lock().iter() {
            h.render(
                &mut out,
                "etcd_request_duration_seconds",
                &format!("operation=\"{operation}\""),
            );
        }
        out.push_str("# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests (watches).\n# TYPE apiserver_longrunning_requests gauge\n");
        let _ = writeln!(
            out,
            "apiserver_longrunning_requests{{verb=\"WATCH\"}} {}",
            self.open_watches.load(Ordering::Relaxed)
        );
        let mut r = out.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(0.0005);
        h.observe(0.03);
        h.observe(100.0);
        let mut out = String::new();
        h.render(&mut out, "x", "op=\"put\"");
        assert!(
            out.contains("x_bucket{op=\"put\",le=\"0.001\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{op=\"put\",le=\"0.05\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("x_bucket{op=\"put\",le=\"60\"} 2\n"), "{out}");
        assert!(
            out.contains("x_bucket{op=\"put\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("x_count{op=\"put\"} 3\n"), "{out}");
    }
}
