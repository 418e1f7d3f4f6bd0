//! API clients built from kubeconfig files, and clients that follow their kubeconfig as it
//! changes: `kox server` renews the components' client certificates before they expire and
//! rewrites their kubeconfigs, and a component keeps working by switching to the new
//! credential (as client-go re-reads rotated certificate files), without a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use kox_component::ClientSwitch;

/// How often a following client looks at its kubeconfig: one `stat`, and a read only when the
/// file changed, so it can be often enough to pick up even short-lived certificates in time.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The User-Agent of a component's requests, worded as upstream's clients word theirs
/// (`kube-scheduler/v1.32.4+kox (linux/amd64) kox/0.1.0`), so that audit logs and metrics say
/// who asked.
pub fn user_agent(component: &str) -> String {
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    format!(
        "{component}/{}+kox (linux/{arch}) kox/{}",
        kox_apiserver::KUBERNETES_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// A kube-rs client from the kubeconfig `text` read from `path`, sending `agent`.
async fn client_from_text(path: &Path, text: &str, agent: &str) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(text)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    let mut config = config;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(agent).context("the User-Agent")?,
    ));
    kube::Client::try_from(config).context("building the API client")
}

/// A client from the kubeconfig at `path` that switches to the file's new credentials
/// whenever it changes, for as long as the client (or a clone) is in use. A file that cannot
/// be read or used is reported and the client keeps its last good credentials. Requests carry
/// `component`'s [`user_agent`].
pub async fn following(path: &Path, component: &str) -> Result<kube::Client> {
    following_every(path, &user_agent(component), CHECK_EVERY).await
}

async fn following_every(path: &Path, agent: &str, every: Duration) -> Result<kube::Client> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let client = client_from_text(path, &text, agent).await?;
    let (front, switch) = ClientSwitch::new(client);
    tokio::spawn(follow(
        path.to_path_buf(),
        text,
        agent.to_string(),
        switch,
        every,
    ));
    Ok(front)
}

/// What a file looked like at the last look, to tell cheaply whether it changed.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

async fn follow(
    path: PathBuf,
    mut text: String,
    agent: String,
    switch: ClientSwitch,
    every: Duration,
) {
    let mut seen = stamp(&path);
    loop {
        tokio::time::sleep(every).await;
        if switch.unused() {
            return;
        }
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        let Ok(new) = std::fs::read_to_string(&path) else {
            tracing::warn!(
                "kubeconfig {} is gone; keeping its last credentials",
                path.display()
            );
            continue;
        };
        if new == text {
            continue;
        }
        match client_from_text(&path, &new, &agent).await {
            Ok(client) => {
                switch.set(client);
                text = new;
                tracing::info!(
                    "kubeconfig {} changed: using its new credentials",
                    path.display()
                );
            }
            Err(e) => tracing::warn!("{e:#}; keeping the last credentials"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(server: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
        )
    }

    /// A one-shot HTTP server answering every request with the port it listens on, so a
    /// client's requests show which kubeconfig they followed.
    async fn server() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| async move {
                        let body = format!("{{\"port\":{port}}}");
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                .unwrap(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        port
    }

    async fn port_of(client: &kube::Client) -> u16 {
        let req = http::Request::get("/version").body(Vec::new()).unwrap();
        let v: serde_json::Value = client.request(req).await.unwrap();
        v["port"].as_u64().unwrap() as u16
    }

    #[tokio::test]
    async fn a_following_client_switches_when_its_kubeconfig_changes() {
        let (a, b) = (server().await, server().await);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("component.kubeconfig");
        std::fs::write(&path, kubeconfig(&format!("http://127.0.0.1:{a}"))).unwrap();
        let client = following_every(&path, "test", Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(port_of(&client).await, a);

        // A kubeconfig that does not parse is ignored: the last credentials stay in use.
        std::fs::write(&path, "not: [a kubeconfig").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(port_of(&client).await, a);

        std::fs::write(&path, kubeconfig(&format!("http://127.0.0.1:{b}"))).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while port_of(&client).await != b {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never switched to {b}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Clones made before the switch follow too.
        let api = client.clone();
        assert_eq!(port_of(&api).await, b);
    }
}
