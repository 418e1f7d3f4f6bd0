//! Lifecycle hooks, as the kubelet runs them: `postStart` right after a container starts (a
//! failure kills it: `FailedPostStartHook`), `preStop` before it is stopped, bounded by what is
//! left of the grace period; each an exec in the container, an HTTP GET, or a sleep.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use crate::Agent;
use crate::cri::api;

/// Runs the container's `preStop` hook, giving up at `deadline`.
async fn pre_stop(agent: &Agent, c: &Container, id: &str, pod_ip: &str, deadline: Instant) {
    let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
        return;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if let Ok(Err(e)) = tokio::time::timeout(left, run(agent, c, hook, id, pod_ip, left)).await {
        tracing::info!(container = %c.name, "preStop hook failed: {e}");
    }
}

/// Stops a container as the kubelet does: its `preStop` hook, then SIGTERM and, once
/// `deadline` passed, SIGKILL (the runtime's `StopContainer` timeout).
pub async fn stop_gracefully(
    agent: &Agent,
    c: &Container,
    id: &str,
    pod_ip: &str,
    deadline: Instant,
) {
    pre_stop(agent, c, id, pod_ip, deadline).await;
    let request = api::StopContainerRequest {
        container_id: id.into(),
        timeout: seconds_left(deadline),
    };
    let _ = agent.cri.runtime.clone().stop_container(request).await;
}

/// Whole seconds left until `deadline`, rounded up (the runtime's stop timeout).
fn seconds_left(deadline: Instant) -> i64 {
    deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .div_ceil(1000) as i64
}

/// Runs the container's `postStart` hook; the error is the event's message.
pub async fn post_start(
    agent: &Agent,
    c: &Container,
    id: &str,
    pod_ip: &str,
) -> Result<(), String> {
    let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
        return Ok(());
    };
    run(agent, c, hook, id, pod_ip, Duration::from_secs(30)).await
}

async fn run(
    agent: &Agent,
    c: &Container,
    hook: &LifecycleHandler,
    id: &str,
    pod_ip: &str,
    left: Duration,
) -> Result<(), String> {
    if let Some(exec) = &hook.exec {
        let command = exec.command.clone().unwrap_or_default();
        let (code, out) = agent.cri.exec(id, command.clone(), left).await?;
        if code != 0 {
            return Err(format!(
                "Exec lifecycle hook ({command:?}) for Container {:?} failed - error: command '{}' exited with {code}: {out}",
                c.name,
                command.join(" "),
            ));
        }
        return Ok(());
    }
    if let Some(http) = &hook.http_get {
        let port = super::probes::port_of(c, &http.port)?;
        let host = http
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(pod_ip);
        let ip: std::net::IpAddr = host
            .parse()
            .map_err(|_| format!("invalid hook host {host:?}"))?;
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let path = http.path.as_deref().unwrap_or("/");
        let https = http.scheme.as_deref() == Some("HTTPS");
        return super::probes::http_get(https, std::net::SocketAddr::new(ip, port), path, &headers)
            .await
            .map_err(|e| {
                format!(
                    "HTTP lifecycle hook ({path}) for Container {:?} failed - error: {e}",
                    c.name
                )
            });
    }
    if let Some(sleep) = &hook.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
    }
    Ok(())
}
