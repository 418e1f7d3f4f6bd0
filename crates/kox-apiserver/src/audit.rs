//! The audit log (`--audit-log-path`): one JSON line per request at the Metadata level, in
//! upstream's `audit.k8s.io/v1` `Event` shape (who, what, on which object, with which answer;
//! never bodies). Lines are appended by one writer task, so requests never wait on the disk.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::authz::RequestInfo;
use crate::user::UserInfo;

/// Sends events to the writer task.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::UnboundedSender<Value>,
}

impl AuditLog {
    /// Opens (appending) the log file and starts its writer.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Who did what is for administrators only: the log is the owner's alone, whatever
        // mode an earlier file had.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening the audit log {}", path.display()))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting the audit log {}", path.display()))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
        std::thread::spawn(move || {
            while let Some(event) = rx.blocking_recv() {
                let mut line = event.to_string();
                line.push('\n');
                if let Err(e) = file.write_all(line.as_bytes()) {
                    tracing::warn!("writing the audit log: {e}");
                }
            }
            let _ = file.flush();
        });
        Ok(Self { tx })
    }

    /// Records one request at the Metadata level, with the admission plugins' `annotations`:
    /// made by `impersonator` as `user` when it impersonates, else by `user`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        received: jiff::Timestamp,
        uri: &str,
        info: &RequestInfo,
        user: &UserInfo,
        impersonator: Option<&UserInfo>,
        source_ip: Option<std::net::IpAddr>,
        user_agent: &str,
        code: u16,
        decision: &str,
        annotations: &[(String, String)],
    ) {
        let ts = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": uuid::Uuid::new_v4().to_string(),
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": info.verb,
            "user": impersonator.unwrap_or(user).to_json(),
            "sourceIPs": source_ip.map(|ip| vec![ip.to_string()]).unwrap_or_default(),
            "userAgent": user_agent,
            "responseStatus": { "metadata": {}, "code": code },
            "requestReceivedTimestamp": ts(received),
            "stageTimestamp": ts(jiff::Timestamp::now()),
            "annotations": { "authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": "" },
        });
        if impersonator.is_some() {
            event["impersonatedUser"] = user.to_json();
        }
        for (k, v) in annotations {
            event["annotations"][k] = json!(v);
        }
        if info.is_resource_request {
            let mut obj = json!({ "resource": info.resource, "apiVersion": info.api_version });
            for (k, v) in [
                ("namespace", &info.namespace),
                ("name", &info.name),
                ("apiGroup", &info.api_group),
                ("subresource", &info.subresource),
            ] {
                if !v.is_empty() {
                    obj[k] = json!(v);
                }
            }
            event["objectRef"] = obj;
        }
        let _ = self.tx.send(event);
    }
}

/// The name of the object a create made, which its audit event names as upstream's does (the
/// request's URL does not).
#[derive(Clone, Debug)]
pub struct ObjectName(pub String);

/// Audit annotations a response carries (in its extensions) from admission to the audit log.
#[derive(Clone, Debug, Default)]
pub struct Annotations(pub Vec<(String, String)>);
