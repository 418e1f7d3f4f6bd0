//! Lifecycle hooks, as the kubelet runs them: `postStart` right after a container starts (a
//! failure kills it: `FailedPostStartHook`), `preStop` before it is stopped, bounded by what is
//! left of the grace period; each an exec in the container, an HTTP GET, or a sleep.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use crate::Agent;
use crate::cri::api;

/// Runs the container's `preStop` hook, giving up at `deadline`.
pub async fn pre_stop(agent: &Agent, c: &Container, id: &str, pod_ip: &str, deadline: Instant) {
    let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
        return;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if let Ok(Err(e)) = tokio::time::timeout(left, run(agent, c, hook, id, pod_ip, left)).await {
        tracing::info!(container = %c.name, "preStop hook failed: {e}");
    }
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
        let request = api::ExecSyncRequest {
            container_id: id.into(),
            cmd: command.clone(),
            timeout: left.as_secs() as i64,
        };
        let r = agent
            .cri
            .runtime
            .clone()
            .exec_sync(request)
            .await
            .map_err(|e| e.message().to_string())?;
        let r = r.into_inner();
        if r.exit_code != 0 {
            let out = String::from_utf8_lossy(&r.stdout).into_owned()
                + &String::from_utf8_lossy(&r.stderr);
            return Err(format!(
                "Exec lifecycle hook ({command:?}) for Container {:?} failed - error: command '{}' exited with {}: {out}",
                c.name,
                command.join(" "),
                r.exit_code
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
