//! Lifecycle hooks: `preStop` before a container is stopped (exec, httpGet, sleep), bounded by
//! what is left of the grace period, as the kubelet runs them.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use crate::Agent;
use crate::cri::api;

/// Runs the container's `preStop` hook, giving up at `deadline`.
pub async fn pre_stop(agent: &Agent, c: &Container, id: &str, deadline: Instant) {
    let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
        return;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let _ = tokio::time::timeout(left, run(agent, hook, id, left)).await;
}

async fn run(agent: &Agent, hook: &LifecycleHandler, id: &str, left: Duration) {
    if let Some(exec) = &hook.exec {
        let request = api::ExecSyncRequest {
            container_id: id.into(),
            cmd: exec.command.clone().unwrap_or_default(),
            timeout: left.as_secs() as i64,
        };
        let _ = agent.cri.runtime.clone().exec_sync(request).await;
    } else if let Some(sleep) = &hook.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
    }
}
