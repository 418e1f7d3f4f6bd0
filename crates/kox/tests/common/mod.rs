//! A real `kox server` process and the real `kubectl` pointed at it.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running `kox server` with its own data directory and port.
pub struct Cluster {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    cache: tempfile::TempDir,
    extra: Vec<String>,
    /// Whether the server runs its node agent (containerd and real pods).
    agent: bool,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl Cluster {
    /// Starts a server and waits until `/readyz` answers.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `kox server` flags and waits until `/readyz` answers. It runs
    /// no node agent: pods stay unscheduled or go to simulated nodes.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_as(extra, false)
    }

    /// Starts a server with its node agent (containerd, real pods) and waits until `/readyz`
    /// answers.
    pub fn start_with_agent(extra: &[&str]) -> Self {
        Self::start_as(extra, true)
    }

    fn start_as(extra: &[&str], agent: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = Cluster {
            child: None,
            dir,
            port: free_port(),
            cache: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            agent,
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kox"))
            .args([
                "server",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &self.port.to_string(),
                "--data-dir",
            ])
            .arg(self.dir.path())
            .args((!self.agent).then_some("--disable-agent"))
            // Clusters run side by side: each agent's API on a free port.
            .args(
                self.agent
                    .then_some(["--kubelet-port", "0"])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.kubeconfig().exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "kox server did not become ready: {}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        sigterm(child.id());
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().expect("wait for server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server with SIGKILL (no chance to clean up), as a crash would.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data directory and port.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        self.kubectl_program_cmd(Path::new("kubectl"), args)
    }

    /// [`Cluster::kubectl_cmd`] with another kubectl binary, e.g. an older release.
    pub fn kubectl_program_cmd(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("KUBECONFIG", self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args);
        cmd
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args)
            .output()
            .expect("run kubectl (is it installed?)")
    }

    /// Runs kubectl with `stdin` as input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_stdin(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The server's resident memory, in MiB.
    pub fn rss_mib(&self) -> u64 {
        let pid = self.child.as_ref().expect("server running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A bearer token that may read components' `/metrics` (a `default/scraper` ServiceAccount in
/// upstream's `system:monitoring` role, created on first use).
pub fn monitoring_token(c: &Cluster) -> String {
    let _ = c.kubectl(&["create", "serviceaccount", "scraper"]);
    let _ = c.kubectl(&[
        "create",
        "clusterrolebinding",
        "scraper-monitoring",
        "--clusterrole=system:monitoring",
        "--serviceaccount=default:scraper",
    ]);
    c.ok(&["create", "token", "scraper"]).trim().to_string()
}

/// `kox kubeconfig --data-dir <cluster> <args>` written to `name`.kubeconfig.
pub fn kox_kubeconfig(c: &Cluster, name: &str, args: &[&str]) -> PathBuf {
    let path = c.data_dir().join(format!("{name}.kubeconfig"));
    let out = Command::new(env!("CARGO_BIN_EXE_kox"))
        .arg("kubeconfig")
        .arg("--data-dir")
        .arg(c.data_dir())
        .args(args)
        .arg("--output")
        .arg(&path)
        .output()
        .expect("run kox kubeconfig");
    assert!(
        out.status.success(),
        "kox kubeconfig {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// `curl` with the admin's client certificate and extra `args` (headers, a method…): the
/// response's head and body.
pub fn curl(c: &Cluster, path: &str, args: &[&std::ffi::OsStr]) -> (String, Vec<u8>) {
    let tls = c.data_dir().join("tls");
    let body = c.data_dir().join("curl.body");
    // curl leaves the file alone when there is no body (a 304).
    let _ = std::fs::remove_file(&body);
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "30", "-D", "-", "-o"])
        .arg(&body)
        .arg("--cert")
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"))
        .args(args)
        .arg(format!("https://127.0.0.1:{}{path}", c.port))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl {path}: {out:?}");
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    (head, std::fs::read(&body).unwrap_or_default())
}

/// A header's value in a response head.
pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// The status code of a response head's status line.
pub fn status(head: &str) -> &str {
    head.split_whitespace().nth(1).unwrap_or("")
}

/// A TCP connection to the server from `source` (another loopback address than kubectl's).
pub async fn connect_from(source: &str, port: u16) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap()
}

/// An HTTP/2 connection to the server as the admin (its client certificate).
pub async fn h2_admin<B>(c: &Cluster) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = c.data_dir().join("tls");
    let pem = |f: &str| std::fs::read(tls.join(f)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem("ca.crt").as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem("admin.crt").as_slice())
        .map(Result::unwrap)
        .collect();
    let key = rustls_pemfile::private_key(&mut pem("admin.key").as_slice())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = connect_from("127.0.0.4", c.port).await;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.agent {
            // The node's pods and containerd outlive a killed server: clear them as a user would.
            let _ = Command::new(env!("CARGO_BIN_EXE_kox"))
                .arg("killall")
                .arg("--data-dir")
                .arg(self.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Column values of a kubectl table: rows of whitespace-separated cells, header included.
pub fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Whether Debian's etcd is installed for the tests that need a real etcd: in CI its absence
/// fails the test (scripts/test.sh installs it); elsewhere the test is skipped loudly.
pub fn etcd_or_skip(what: &str) -> bool {
    if kox_store::etcd::local::etcd_available() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("/usr/bin/etcd is missing in CI: scripts/test.sh installs Debian's etcd-server");
    }
    eprintln!(
        "\n*** SKIPPED: /usr/bin/etcd is missing (apt-get install etcd-server); {what} was NOT tested ***\n"
    );
    false
}

/// A `kox fake-nodes` process (simulated nodes), killed when dropped.
pub struct FakeNodes(Child);

impl FakeNodes {
    /// Starts `kox fake-nodes ARGS` against the cluster, logging to `log` in its data dir.
    pub fn start(c: &Cluster, log: &str, args: &[&str]) -> Self {
        let log = std::fs::File::create(c.data_dir().join(log)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kox"))
            .arg("fake-nodes")
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kox fake-nodes");
        FakeNodes(child)
    }
}

impl Drop for FakeNodes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running command (`kubectl get -w`) whose output lines arrive as it prints them; killed
/// when dropped.
pub struct StreamedLines {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl StreamedLines {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the command");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        StreamedLines { child, lines }
    }

    /// The next line, if one comes within `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// The first line containing `text`, failing the test if none comes within `secs`.
    pub fn line_with(&self, text: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if line.contains(text) => return line,
                Some(_) => {}
                None => panic!("no line with {text:?} within {secs}s"),
            }
        }
    }
}

impl Drop for StreamedLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 200 ms until it returns `Ok`, failing with `what` and the last error after
/// `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}; last: {last}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}
