//! `/metrics` in Prometheus text format: requests by verb/resource/code, latency, open watches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use parking_lot::Mutex;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; 12],
    sum: f64,
    total: u64,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
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
        let secs = elapsed.as_secs_f64();
        let mut lat = self.latency.lock();
        let h = lat
            .entry((verb.to_string(), resource.to_string()))
            .or_default();
        let idx = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        h.counts[idx] += 1;
        h.sum += secs;
        h.total += 1;
    }

    pub fn watch_opened(&self) -> WatchGuard {
        self.open_watches.fetch_add(1, Ordering::Relaxed);
        WatchGuard(self.open_watches.clone())
    }

    pub fn render(&self) -> Response {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), n) in self.requests.lock().iter() {
            out.push_str(&format!("apiserver_request_total{{code=\"{code}\",resource=\"{resource}\",verb=\"{verb}\"}} {n}\n"));
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb and resource.\n# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource), h) in self.latency.lock().iter() {
            let mut cumulative = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                out.push_str(&format!("apiserver_request_duration_seconds_bucket{{resource=\"{resource}\",verb=\"{verb}\",le=\"{b}\"}} {cumulative}\n"));
            }
            out.push_str(&format!("apiserver_request_duration_seconds_bucket{{resource=\"{resource}\",verb=\"{verb}\",le=\"+Inf\"}} {}\n", h.total));
            out.push_str(&format!("apiserver_request_duration_seconds_sum{{resource=\"{resource}\",verb=\"{verb}\"}} {}\n", h.sum));
            out.push_str(&format!("apiserver_request_duration_seconds_count{{resource=\"{resource}\",verb=\"{verb}\"}} {}\n", h.total));
        }
        out.push_str("# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests (watches).\n# TYPE apiserver_longrunning_requests gauge\n");
        out.push_str(&format!(
            "apiserver_longrunning_requests{{verb=\"WATCH\"}} {}\n",
            self.open_watches.load(Ordering::Relaxed)
        ));
        let mut r = out.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    }
}
