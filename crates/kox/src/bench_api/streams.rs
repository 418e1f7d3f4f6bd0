//! `kox bench streams`: the debugging streams through the API server and the node agent, on
//! the real containerd — port-forward throughput against reading the same file from the pod's
//! IP directly (same run, same pod), exec round trips over WebSocket (`v5.channel.k8s.io`, from
//! this client, not a kubectl process) with the agent's descriptors, threads and memory before
//! and after, and `logs -f` latency from the runtime's timestamp of a line to its arrival.
//!
//! It starts `kox server` and `kox agent` as two processes. Needs root, Debian's containerd,
//! runc, containernetworking-plugins, busybox-static, and kubectl (for `port-forward`). It
//! measures; it never fails on a number.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pod_startup::{IMAGE, NAMESPACE, prepare_namespace, start_agent, wait_node_ready};
use super::report::{Table, percentile};
use super::server_proc::{Helper, ServerProcess, proc_status_kib};

/// The project's goal: port-forward at half the direct throughput or better.
const GOAL_FORWARD_SHARE: f64 = 0.5;
const POD: &str = "streams";

/// Flags of `kox bench streams`.
#[derive(Args, Debug)]
pub struct StreamsArgs {
    /// MiB transferred through port-forward and directly.
    #[arg(long, default_value_t = 256)]
    pub transfer_mib: u64,
    /// Sequential exec sessions (`true`) timed.
    #[arg(long, default_value_t = 1000)]
    pub execs: usize,
    /// Log lines whose delivery is timed.
    #[arg(long, default_value_t = 50)]
    pub log_lines: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Figures {
    direct_mib_s: f64,
    forward_mib_s: f64,
    exec_ms: Vec<f64>,
    agent_before: Usage,
    agent_after: Usage,
    log_ms: Vec<f64>,
}

/// A process's descriptors, threads and resident memory.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    fds: usize,
    threads: u64,
    rss_mib: f64,
}

fn usage(pid: u32) -> Result<Usage> {
    Ok(Usage {
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        threads: proc_status_kib(pid, "Threads")?,
        rss_mib: proc_status_kib(pid, "VmRSS")? as f64 / 1024.0,
    })
}

pub async fn run(args: StreamsArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let server_dir = dir.path().join("server");
    let server =
        ServerProcess::start_with_scheduler(&server_dir, &dir.path().join("server.log")).await?;
    let agent_dir = dir.path().join("node");
    let agent = start_agent(&server_dir, &agent_dir, &dir.path().join("agent.log")).await?;
    let client = crate::kubeconfig_client::following(&server.kubeconfig(), "kox-bench").await?;
    let result = measure(&client, &args, &agent, &server_dir, &server.kubeconfig()).await;
    agent.stop().await?;
    server.stop().await?;
    let _ = crate::agent_cmd::killall(crate::agent_cmd::KillallArgs {
        data_dir: Some(agent_dir.clone()),
    })
    .await;
    let figures = result.map_err(|e| {
        e.context(format!(
            "agent log: {}",
            dir.path().join("agent.log").display()
        ))
    })?;
    print(&figures);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&to_json(&figures))?)?;
    }
    Ok(())
}

async fn measure(
    client: &kube::Client,
    args: &StreamsArgs,
    agent: &Helper,
    server_dir: &Path,
    kubeconfig: &Path,
) -> Result<Figures> {
    wait_node_ready(client).await?;
    prepare_namespace(client).await?;
    let pod_ip = start_pod(client, args.transfer_mib).await?;
    let mut f = Figures::default();
    let bytes = args.transfer_mib << 20;
    f.direct_mib_s = transfer_rate(&format!("{pod_ip}:8080"), bytes).await?;
    f.forward_mib_s = forwarded_rate(kubeconfig, bytes).await?;
    f.agent_before = usage(agent.pid())?;
    f.exec_ms = exec_round_trips(server_dir, kubeconfig, args.execs).await?;
    // Let sessions that just ended release what they held.
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.agent_after = usage(agent.pid())?;
    f.log_ms = log_latencies(client, args.log_lines).await?;
    Ok(f)
}

/// A pod serving a file of `mib` MiB over HTTP and printing a line every 100 ms; its IP.
async fn start_pod(client: &kube::Client, mib: u64) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let serve = format!(
        "mkdir -p /www && head -c {} /dev/zero > /www/big && touch /www/ready && exec httpd -f -p 8080 -h /www",
        mib << 20
    );
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": POD},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {"name": "web", "image": IMAGE, "command": ["sh", "-c", serve],
                 "readinessProbe": {"exec": {"command": ["test", "-f", "/www/ready"]}, "periodSeconds": 1}},
                {"name": "ticker", "image": IMAGE,
                 "command": ["sh", "-c", "while true; do echo tick; usleep 100000; done"]},
            ],
        },
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let p = pods.get(POD).await?;
        let status = p.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if let (true, Some(ip)) = (ready, status.pod_ip) {
            return Ok(ip);
        }
        if Instant::now() > deadline {
            bail!("pod {POD} was not ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// MiB/s of `GET /big` from `addr`, reading `bytes` of body.
async fn transfer_rate(addr: &str, bytes: u64) -> Result<f64> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let started = Instant::now();
    tcp.write_all(b"GET /big HTTP/1.0\r\nHost: bench\r\n\r\n")
        .await?;
    let mut buf = vec![0u8; 256 << 10];
    let mut read = 0u64;
    loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    if read < bytes {
        bail!("read {read} bytes of {bytes} from {addr}");
    }
    Ok(bytes as f64 / (1 << 20) as f64 / secs)
}

/// The same transfer through `kubectl port-forward` (kubectl → API server → agent → runtime).
async fn forwarded_rate(kubeconfig: &Path, bytes: u64) -> Result<f64> {
    let port = super::server_proc::free_port()?;
    let mut forward = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "port-forward",
            "-n",
            NAMESPACE,
            &format!("pod/{POD}"),
            &format!("{port}:8080"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("running kubectl port-forward (is kubectl installed?)")?;
    let stdout = forward.stdout.take().context("kubectl's output")?;
    let mut lines = tokio::io::BufReader::new(stdout);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line).await? > 0 {
            if line.contains("Forwarding from 127.0.0.1") {
                return Ok::<_, std::io::Error>(());
            }
            line.clear();
        }
        Err(std::io::Error::other("kubectl port-forward ended"))
    })
    .await
    .context("kubectl port-forward did not start within 30 s")??;
    let rate = transfer_rate(&format!("127.0.0.1:{port}"), bytes).await;
    let _ = forward.kill().await;
    rate
}

/// Milliseconds of `n` sequential `exec -- true` sessions over WebSocket v5, each from its
/// own TLS connection (as kubectl makes one per exec).
async fn exec_round_trips(server_dir: &Path, kubeconfig: &Path, n: usize) -> Result<Vec<f64>> {
    let read = |f: &str| std::fs::read_to_string(server_dir.join("tls").join(f));
    let connector =
        kox_component::probe_tls::connector_presenting(&read("admin.crt")?, &read("admin.key")?)?;
    let server = crate::kubeconfig_cmd::server_of(kubeconfig)?;
    let authority = server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let path = format!(
        "/api/v1/namespaces/{NAMESPACE}/pods/{POD}/exec?command=true&container=web&stdout=true&stderr=true"
    );
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        exec_once(&connector, &authority, &path).await?;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

async fn exec_once(
    connector: &tokio_rustls::TlsConnector,
    authority: &str,
    path: &str,
) -> Result<()> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tcp = tokio::net::TcpStream::connect(authority).await?;
    let ip: std::net::IpAddr = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .parse()?;
    let tls = connector
        .connect(rustls::pki_types::ServerName::from(ip), tcp)
        .await?;
    let mut req = format!("wss://{authority}{path}").into_client_request()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("v5.channel.k8s.io"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await?;
    let mut status = None;
    while let Some(msg) = ws.next().await {
        match msg? {
            tokio_tungstenite::tungstenite::Message::Binary(b) if b.first() == Some(&3) => {
                status = Some(String::from_utf8_lossy(&b[1..]).into_owned());
            }
            tokio_tungstenite::tungstenite::Message::Close(_) => break,
            _ => {}
        }
    }
    match status {
        Some(s) if s.contains("\"Success\"") => Ok(()),
        other => bail!("exec ended with {other:?}"),
    }
}

/// Milliseconds from the runtime's timestamp of each followed log line to its arrival.
async fn log_latencies(client: &kube::Client, n: usize) -> Result<Vec<f64>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let params = LogParams {
        container: Some("ticker".into()),
        follow: true,
        timestamps: true,
        tail_lines: Some(0),
        ..Default::default()
    };
    let mut lines = pods.log_stream(POD, &params).await?.lines();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next())
            .await
            .context("no log line within 10 s")?
            .context("the log stream ended")??;
        let arrived = jiff::Timestamp::now();
        let stamp: jiff::Timestamp = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("no timestamp in {line:?}"))?;
        out.push((arrived - stamp).total(jiff::Unit::Millisecond)?);
    }
    Ok(out)
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn print(f: &Figures) {
    let share = f.forward_mib_s / f.direct_mib_s;
    let mut t = Table::new("streams", &["measure", "value", "goal"]);
    t.row(vec![
        "direct GET from the pod IP".into(),
        format!("{:.0} MiB/s", f.direct_mib_s),
        String::new(),
    ]);
    t.row(vec![
        "kubectl port-forward (API server + agent)".into(),
        format!(
            "{:.0} MiB/s ({:.0} % of direct)",
            f.forward_mib_s,
            share * 100.0
        ),
        format!(
            "≥ {:.0} % {}",
            GOAL_FORWARD_SHARE * 100.0,
            if share >= GOAL_FORWARD_SHARE {
                "met"
            } else {
                "missed"
            }
        ),
    ]);
    let exec = sorted(&f.exec_ms);
    t.row(vec![
        format!("exec -- true round trip ({} sessions)", exec.len()),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            percentile(&exec, 50.0),
            percentile(&exec, 99.0)
        ),
        String::new(),
    ]);
    t.row(vec![
        "agent after the sessions (fds / threads / RSS)".into(),
        format!(
            "{} → {} fds, {} → {} threads, {:.1} → {:.1} MiB",
            f.agent_before.fds,
            f.agent_after.fds,
            f.agent_before.threads,
            f.agent_after.threads,
            f.agent_before.rss_mib,
            f.agent_after.rss_mib
        ),
        "nothing left behind".into(),
    ]);
    let logs = sorted(&f.log_ms);
    t.row(vec![
        format!("logs -f delivery ({} lines)", logs.len()),
        format!(
            "p50 {:.0} ms, p99 {:.0} ms",
            percentile(&logs, 50.0),
            percentile(&logs, 99.0)
        ),
        String::new(),
    ]);
    t.print();
}

fn to_json(f: &Figures) -> serde_json::Value {
    let exec = sorted(&f.exec_ms);
    let logs = sorted(&f.log_ms);
    json!({
        "machine": super::report::machine(),
        "direct_mib_s": f.direct_mib_s,
        "forward_mib_s": f.forward_mib_s,
        "exec_ms": {"p50": percentile(&exec, 50.0), "p99": percentile(&exec, 99.0)},
        "agent_fds": [f.agent_before.fds, f.agent_after.fds],
        "agent_threads": [f.agent_before.threads, f.agent_after.threads],
        "agent_rss_mib": [f.agent_before.rss_mib, f.agent_after.rss_mib],
        "logs_ms": {"p50": percentile(&logs, 50.0), "p99": percentile(&logs, 99.0)},
    })
}
