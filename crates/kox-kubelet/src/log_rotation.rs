//! Container log rotation, as the kubelet's container log manager: every few seconds, a
//! running container's log file over `--container-log-max-size` is renamed to
//! `<file>.<YYYYMMDD-HHMMSS>` and the runtime told to reopen it (CRI `ReopenContainerLog`);
//! at most `--container-log-max-files` files (the current one included) are kept, the oldest
//! removed first. Rotated files stay uncompressed (upstream gzips all but the newest).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Agent;
use crate::cri::api;

/// How often log sizes are checked (upstream's monitoring period).
const CHECK_EVERY: Duration = Duration::from_secs(10);

/// The rotation limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// A log file is rotated past this many bytes.
    pub max_size: u64,
    /// Files kept per container, the current one included (at least 2).
    pub max_files: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_size: 10 << 20,
            max_files: 5,
        }
    }
}

/// Rotates the node's container logs until `stop`.
pub async fn run(agent: Arc<Agent>, stop: CancellationToken) {
    let limits = agent.config.log_limits;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        for (id, path) in running_logs(&agent.cri).await {
            if let Err(e) = rotate_if_full(&agent.cri, &id, &path, limits).await {
                tracing::warn!(container = %id, error = %e, "rotating a container log failed");
            }
        }
    }
}

/// The log files of the running containers.
async fn running_logs(cri: &crate::cri::Cri) -> Vec<(String, PathBuf)> {
    let filter = api::ContainerFilter {
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    let Ok(listed) = cri
        .runtime
        .clone()
        .list_containers(api::ListContainersRequest {
            filter: Some(filter),
        })
        .await
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in listed.into_inner().containers {
        let status = cri.container_status(&c.id).await;
        if let Some(s) = status.filter(|s| !s.log_path.is_empty()) {
            out.push((c.id, PathBuf::from(s.log_path)));
        }
    }
    out
}

async fn rotate_if_full(
    cri: &crate::cri::Cri,
    id: &str,
    path: &Path,
    limits: LogLimits,
) -> anyhow::Result<()> {
    let size = tokio::fs::metadata(path).await?.len();
    if size <= limits.max_size {
        return Ok(());
    }
    let rotated = rotated_files(path)?;
    let keep = limits.max_files.saturating_sub(2);
    for old in &rotated[..rotated.len().saturating_sub(keep)] {
        let _ = tokio::fs::remove_file(old).await;
    }
    let to = rotated_name(
        path,
        &jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string(),
    );
    tokio::fs::rename(path, &to).await?;
    let reopened = cri
        .runtime
        .clone()
        .reopen_container_log(api::ReopenContainerLogRequest {
            container_id: id.to_string(),
        })
        .await;
    if let Err(e) = reopened {
        // The runtime still writes to the renamed file: give it its name back.
        tokio::fs::rename(&to, path).await?;
        anyhow::bail!("the runtime did not reopen the log: {}", e.message());
    }
    Ok(())
}

/// `<path>.<stamp>`, the name a rotated log gets.
fn rotated_name(path: &Path, stamp: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".");
    name.push(stamp);
    PathBuf::from(name)
}

/// The rotated files of the log at `path`, oldest first (their stamps sort by time).
fn rotated_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", base.to_string_lossy());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_are_found_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        for name in [
            "0.log",
            "0.log.20240102-000000",
            "0.log.20240101-000000",
            "1.log",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let found = rotated_files(&log).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["0.log.20240101-000000", "0.log.20240102-000000"]);
        assert_eq!(
            rotated_name(&log, "20240103-000000"),
            dir.path().join("0.log.20240103-000000")
        );
    }
}
