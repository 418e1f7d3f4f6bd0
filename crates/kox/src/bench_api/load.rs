//! Filling the server: many small objects created concurrently through the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use http::{Method, StatusCode};

use super::client::Conn;

/// The namespace every benchmark object lives in.
pub const NAMESPACE: &str = "default";

/// A small pod: one container, two labels (`half` splits the pods in two for selector lists).
pub fn pod(name: &str, half: bool) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"bench","half":"{}"}}}},"spec":{{"containers":[{{"name":"c","image":"registry.k8s.io/pause:3.10"}}]}}}}"#,
        if half { "a" } else { "b" }
    ))
}

/// A small ConfigMap.
pub fn configmap(name: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"key":"value-{name}"}}}}"#
    ))
}

/// The collection path of pods (`resource = "pods"`) or another core resource in [`NAMESPACE`].
pub fn collection(resource: &str) -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/{resource}")
}

/// Creates `total` objects with `clients` concurrent clients spread over `conns`; `body(i)` is
/// the i-th object. Returns how long it took. Fails on any answer but 201 (429s are retried).
pub async fn create_many(
    conns: &[Conn],
    clients: usize,
    path: &str,
    total: usize,
    body: impl Fn(usize) -> Bytes + Send + Sync + 'static,
) -> Result<Duration> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(body);
    let mut tasks = Vec::new();
    for w in 0..clients.max(1) {
        let conn = conns[w % conns.len()].clone();
        let next = next.clone();
        let body = body.clone();
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(());
                }
                let b = body(i);
                loop {
                    let (status, resp) = conn.call(Method::POST, &path, Some(b.clone())).await?;
                    match status {
                        StatusCode::CREATED => break,
                        StatusCode::TOO_MANY_REQUESTS => {
                            tokio::time::sleep(Duration::from_millis(10)).await
                        }
                        _ => bail!(
                            "POST {path}: {status}: {}",
                            String::from_utf8_lossy(&resp[..resp.len().min(500)])
                        ),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}
