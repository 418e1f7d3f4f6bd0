//! Probes, as the kubelet's prober: per running container, a task for each of its startup,
//! liveness and readiness probes (exec through the runtime, httpGet, tcpSocket, grpc), with
//! every timing field. Startup gates the other two; readiness drives `ready`; a liveness (or
//! startup) failure asks the worker to restart the container.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Agent;

/// What the probes of one container found so far.
#[derive(Clone, Debug, Default)]
pub struct Results {
    pub started: bool,
    pub ready: bool,
    /// Set when the container must be restarted: (probe kind, last failure's message).
    pub failed: Option<(&'static str, String)>,
    /// Probe failures to report as `Unhealthy` events.
    pub unhealthy: Vec<String>,
}

struct Running {
    results: Arc<Mutex<Results>>,
    stop: CancellationToken,
}

/// The probers of a pod's containers, by container id.
#[derive(Default)]
pub struct Probers {
    running: HashMap<String, Running>,
}

impl Drop for Probers {
    fn drop(&mut self) {
        for r in self.running.values() {
            r.stop.cancel();
        }
    }
}

impl Probers {
    /// Starts the probers of a container that runs (once per container id).
    pub fn ensure(
        &mut self,
        agent: &Arc<Agent>,
        c: &Container,
        id: &str,
        pod_ip: &str,
        wake: &Arc<Notify>,
    ) {
        if self.running.contains_key(id) {
            return;
        }
        let results = Arc::new(Mutex::new(Results {
            started: c.startup_probe.is_none(),
            ready: c.readiness_probe.is_none(),
            ..Results::default()
        }));
        let stop = CancellationToken::new();
        let target = Target {
            agent: agent.clone(),
            container: c.clone(),
            id: id.into(),
            pod_ip: pod_ip.into(),
        };
        for (kind, probe) in [
            (Kind::Startup, &c.startup_probe),
            (Kind::Liveness, &c.liveness_probe),
            (Kind::Readiness, &c.readiness_probe),
        ] {
            if let Some(p) = probe.clone() {
                let task = prober(
                    kind,
                    p,
                    target.clone(),
                    results.clone(),
                    wake.clone(),
                    stop.clone(),
                );
                tokio::spawn(task);
            }
        }
        self.running
            .insert(id.to_string(), Running { results, stop });
    }

    /// Stops the probers of containers no longer running.
    pub fn retain(&mut self, running_ids: &[&str]) {
        self.running.retain(|id, r| {
            let keep = running_ids.contains(&id.as_str());
            if !keep {
                r.stop.cancel();
            }
            keep
        });
    }

    /// The results for a container.
    pub fn peek(&self, id: &str) -> Option<Results> {
        let r = self.running.get(id)?;
        r.results.lock().ok().map(|r| r.clone())
    }

    /// The probe failures not reported yet, by container id (drained).
    pub fn drain_unhealthy(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (id, r) in &self.running {
            if let Ok(mut results) = r.results.lock() {
                out.extend(results.unhealthy.drain(..).map(|m| (id.clone(), m)));
            }
        }
        out
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

#[derive(Clone)]
struct Target {
    agent: Arc<Agent>,
    container: Container,
    id: String,
    pod_ip: String,
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

async fn prober(
    kind: Kind,
    p: Probe,
    target: Target,
    results: Arc<Mutex<Results>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let period = secs(p.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = secs(p.timeout_seconds, 1).max(Duration::from_secs(1));
    let success_threshold = p.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = p.failure_threshold.unwrap_or(3).max(1);
    let started = |r: &Arc<Mutex<Results>>| r.lock().map(|r| r.started).unwrap_or(false);
    let mut waited_start = false;
    let (mut successes, mut failures) = (0, 0);
    loop {
        if kind != Kind::Startup && !started(&results) {
            if stop
                .run_until_cancelled(tokio::time::sleep(Duration::from_millis(200)))
                .await
                .is_none()
            {
                return;
            }
            continue;
        }
        if !waited_start {
            waited_start = true;
            if stop
                .run_until_cancelled(tokio::time::sleep(secs(p.initial_delay_seconds, 0)))
                .await
                .is_none()
            {
                return;
            }
        }
        let outcome = match tokio::time::timeout(timeout, run(&p, &target, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(format!("command timed out after {}s", timeout.as_secs())),
        };
        let mut changed = false;
        match outcome {
            Ok(()) => {
                failures = 0;
                successes += 1;
                if successes >= success_threshold {
                    changed |= set(&results, kind, true, None);
                    if kind == Kind::Startup {
                        wake.notify_one();
                        return;
                    }
                }
            }
            Err(message) => {
                successes = 0;
                failures += 1;
                if let Ok(mut r) = results.lock() {
                    r.unhealthy
                        .push(format!("{} probe failed: {message}", kind.name()));
                }
                changed = true;
                if failures >= failure_threshold {
                    set(&results, kind, false, Some(message));
                    if kind != Kind::Readiness {
                        wake.notify_one();
                        return;
                    }
                }
            }
        }
        if changed {
            wake.notify_one();
        }
        if stop
            .run_until_cancelled(tokio::time::sleep(period))
            .await
            .is_none()
        {
            return;
        }
    }
}

/// Records a probe's verdict; true when it changed what the pod reports.
fn set(results: &Arc<Mutex<Results>>, kind: Kind, ok: bool, message: Option<String>) -> bool {
    let Ok(mut r) = results.lock() else {
        return false;
    };
    match kind {
        Kind::Startup if ok => !std::mem::replace(&mut r.started, true),
        Kind::Readiness => std::mem::replace(&mut r.ready, ok) != ok,
        Kind::Startup | Kind::Liveness => {
            if !ok {
                r.failed = Some((kind.name(), message.unwrap_or_default()));
            }
            !ok
        }
    }
}

pub fn port_of(c: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("couldn't find port {name:?} in container")),
    }
}

fn address(target: &Target, host: Option<&str>, port: u16) -> Result<SocketAddr, String> {
    let host = host.filter(|h| !h.is_empty()).unwrap_or(&target.pod_ip);
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| format!("invalid probe host {host:?}"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Runs a probe once: `Ok` on success, the failure's message otherwise.
async fn run(p: &Probe, target: &Target, timeout: Duration) -> Result<(), String> {
    if let Some(exec) = &p.exec {
        let command = exec.command.clone().unwrap_or_default();
        let (code, out) = target
            .agent
            .cri
            .exec(&target.id, command.clone(), timeout)
            .await?;
        return match code {
            0 => Ok(()),
            _ if out.trim().is_empty() => Err(format!("command {command:?} exited with {code}")),
            _ => Err(out.trim_end().to_string()),
        };
    }
    if let Some(http) = &p.http_get {
        let port = port_of(&target.container, &http.port)?;
        let addr = address(target, http.host.as_deref(), port)?;
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let https = http.scheme.as_deref() == Some("HTTPS");
        return http_get(https, addr, http.path.as_deref().unwrap_or("/"), &headers).await;
    }
    if let Some(tcp) = &p.tcp_socket {
        let port = port_of(&target.container, &tcp.port)?;
        let addr = address(target, tcp.host.as_deref(), port)?;
        return tokio::net::TcpStream::connect(addr)
            .await
            .map(|_| ())
            .map_err(|e| format!("dial tcp {addr}: {}", go_dial_error(&e)));
    }
    if let Some(grpc) = &p.grpc {
        let port = u16::try_from(grpc.port).map_err(|_| format!("invalid port {}", grpc.port))?;
        let addr = address(target, None, port)?;
        return grpc_health(addr, grpc.service.clone().unwrap_or_default()).await;
    }
    Err("probe has no handler".into())
}

/// A connect error as Go words it (`connect: connection refused`).
fn go_dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        std::io::ErrorKind::HostUnreachable => "connect: no route to host".into(),
        _ => format!("connect: {e}"),
    }
}

/// An HTTP/1.1 GET as the kubelet's prober sends it (HTTPS without checking the
/// certificate, as upstream); 200–399 is success.
pub async fn http_get(
    https: bool,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let scheme = if https { "https" } else { "http" };
    let url = format!("{scheme}://{addr}{path}");
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("Get \"{url}\": dial tcp {addr}: {}", go_dial_error(&e)))?;
    let request = http_request(addr, path, headers);
    let code = if https {
        let connector = kox_component::probe_tls::connector().map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        status_code(tls, &request).await?
    } else {
        status_code(tcp, &request).await?
    };
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

fn http_request(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        request.push_str("User-Agent: kube-probe/1.32\r\n");
    }
    if !has("accept") {
        request.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    request
}

/// Sends `request` and reads the status code of the answer.
async fn status_code<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> Result<u16, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 1024];
    let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed HTTP response {line:?}"))
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// The gRPC health check (`grpc.health.v1.Health/Check`); SERVING (1) is success.
async fn grpc_health(addr: SocketAddr, service: String) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::try_from(format!("http://{addr}"))
        .map_err(|e| e.to_string())?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("failed to connect service {addr:?} within 1s: {e}"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let response = grpc
        .unary(
            tonic::Request::new(HealthCheckRequest { service }),
            path,
            codec,
        )
        .await
        .map_err(|e| format!("rpc error: code = {:?} desc = {}", e.code(), e.message()))?;
    match response.into_inner().status {
        1 => Ok(()),
        s => Err(format!(
            "service unhealthy (responded with \"{}\")",
            ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]
                .get(s as usize)
                .unwrap_or(&"UNKNOWN")
        )),
    }
}
