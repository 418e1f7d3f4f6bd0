//! The scheduler's counters, served at `/metrics` by `kox_component::healthz`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters served at `/metrics`.
#[derive(Default, Debug)]
pub struct Metrics {
    /// Pods bound.
    pub scheduled: AtomicU64,
    /// Attempts where no node fitted.
    pub unschedulable: AtomicU64,
    /// Attempts that failed on an API error.
    pub errors: AtomicU64,
    /// Pods deleted to make room for higher-priority pods.
    pub preemption_victims: AtomicU64,
}

impl kox_component::MetricsSource for Metrics {
    fn render(&self) -> String {
        let mut out = String::from(
            "# HELP scheduler_schedule_attempts_total Number of attempts to schedule pods, by the result.\n# TYPE scheduler_schedule_attempts_total counter\n",
        );
        for (result, v) in [
            ("scheduled", &self.scheduled),
            ("unschedulable", &self.unschedulable),
            ("error", &self.errors),
        ] {
            out += &format!(
                "scheduler_schedule_attempts_total{{profile=\"default-scheduler\",result=\"{result}\"}} {}\n",
                v.load(Ordering::Relaxed)
            );
        }
        out += &format!(
            "# HELP scheduler_preemption_victims_total Number of pods evicted by preemption.\n# TYPE scheduler_preemption_victims_total counter\nscheduler_preemption_victims_total {}\n",
            self.preemption_victims.load(Ordering::Relaxed)
        );
        out
    }
}
