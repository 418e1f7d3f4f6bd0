//! `kox server` as a child process of a benchmark: started on a free port with its own data
//! directory, waited for until `/readyz` answers, measured through `/proc`, stopped with SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http::{Method, StatusCode};

use super::client::{Conn, Credentials, Protocol};

/// How long a server may take to become ready before the benchmark gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `kox server`.
pub struct ServerProcess {
    child: Child,
    creds: Credentials,
    /// From just before the process was spawned to the first `/readyz` that answered 200.
    pub ready_after: Duration,
    data_dir: PathBuf,
    log: PathBuf,
}

/// A port nobody listens on right now.
pub(super) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("binding an ephemeral port")?;
    Ok(l.local_addr()?.port())
}

impl ServerProcess {
    /// Starts the API server alone (`kox server --disable-scheduler --disable-controller-manager`) on `data_dir` (created if
    /// absent), logging to `log`, and waits until `/readyz` answers 200.
    pub async fn start(data_dir: &Path, log: &Path) -> Result<Self> {
        Self::spawn(data_dir, log, false, &[]).await
    }

    /// Starts the API server alone with extra flags (e.g. `--datastore-endpoint`).
    pub async fn start_with_flags(data_dir: &Path, log: &Path, flags: &[String]) -> Result<Self> {
        Self::spawn(data_dir, log, false, flags).await
    }

    /// Starts `kox server` as shipped, with the scheduler in the process.
    pub async fn start_with_scheduler(data_dir: &Path, log: &Path) -> Result<Self> {
        Self::spawn(data_dir, log, true, &[]).await
    }

    /// Starts `kox server` with the scheduler in the process and extra flags (e.g.
    /// `--disable-controller-manager`).
    pub async fn start_with_scheduler_and_flags(
        data_dir: &Path,
        log: &Path,
        flags: &[String],
    ) -> Result<Self> {
        Self::spawn(data_dir, log, true, flags).await
    }

    async fn spawn(data_dir: &Path, log: &Path, scheduler: bool, flags: &[String]) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the kox binary")?;
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let kubeconfig = data_dir.join("admin.kubeconfig");
        let mut command = Command::new(exe);
        command
            .arg("server")
            .arg("--disable-agent")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--bind-address", "127.0.0.1", "--secure-port"])
            .arg(port.to_string());
        if !scheduler {
            // The API benchmarks measure the API server alone: the scheduler and the controllers
            // would add their own requests and CPU to the server's figures.
            command.args(["--disable-scheduler", "--disable-controller-manager"]);
        }
        command.args(flags);
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("starting kox server")?;
        let creds = loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "kox server exited with {status} before it was ready:\n{}",
                    log_tail(log)
                );
            }
            // Written before the server answers; a half-written file fails to parse: retry.
            if let Ok(c) = Credentials::from_kubeconfig(&kubeconfig, addr) {
                break c;
            }
            if started.elapsed() > READY_TIMEOUT {
                let _ = child.kill();
                bail!("kox server wrote no kubeconfig within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        loop {
            if is_ready(&creds).await {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "kox server exited with {status} before it was ready:\n{}",
                    log_tail(log)
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                let _ = child.kill();
                bail!(
                    "kox server was not ready within {READY_TIMEOUT:?}:\n{}",
                    log_tail(log)
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Self {
            ready_after: started.elapsed(),
            child,
            creds,
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Opens `n` connections to the server.
    pub async fn connect(&self, protocol: Protocol, n: usize) -> Result<Vec<Conn>> {
        self.creds.connect_many(protocol, n).await
    }

    /// The server's resident set size now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.pid(), "VmRSS")
    }

    /// The server's peak resident set size (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.pid(), "VmHWM")
    }

    /// CPU time the server has used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        proc_cpu_seconds(&self.pid().to_string())
    }

    /// Where the admin kubeconfig is.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("admin.kubeconfig")
    }

    /// Stops the server with SIGTERM (a clean shutdown, so the next start does not repair the
    /// database) and waits for it to exit.
    pub async fn stop(mut self) -> Result<()> {
        terminate(&mut self.child, "kox server", &self.log).await
    }
}

/// Sends SIGTERM to a child and waits (up to a minute) for it to exit successfully.
async fn terminate(child: &mut Child, what: &str, log: &Path) -> Result<()> {
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .context("running kill")?;
    if !sent.success() {
        bail!("kill -TERM {pid} failed");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{what} exited with {status}:\n{}", log_tail(log));
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{what} did not stop within 60 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A helper `kox` process of a benchmark (`kox fake-nodes`, `kox scheduler`), an API client of
/// the server; stopped with SIGTERM, killed if dropped.
pub struct Helper {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Helper {
    /// `count` simulated nodes joining the cluster of `kubeconfig`: they run the pods bound to
    /// them.
    pub fn fake_nodes(kubeconfig: &Path, count: usize, log: &Path) -> Result<Self> {
        Self::fake_nodes_with(kubeconfig, count, &[], log)
    }

    /// `kox fake-nodes` with extra flags (e.g. `--zones 3`).
    pub fn fake_nodes_with(
        kubeconfig: &Path,
        count: usize,
        flags: &[String],
        log: &Path,
    ) -> Result<Self> {
        let count = count.to_string();
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "fake-nodes".as_ref(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
            "--count".as_ref(),
            count.as_ref(),
        ];
        args.extend(flags.iter().map(|f| std::ffi::OsStr::new(f.as_str())));
        Self::spawn("kox fake-nodes", &args, log)
    }

    /// A node agent (`kox agent`) keeping its runtime and pods under `data_dir`.
    pub fn agent(kubeconfig: &Path, data_dir: &Path, node: &str, log: &Path) -> Result<Self> {
        Self::spawn(
            "kox agent",
            &[
                "agent".as_ref(),
                "--kubeconfig".as_ref(),
                kubeconfig.as_os_str(),
                "--data-dir".as_ref(),
                data_dir.as_os_str(),
                "--node-name".as_ref(),
                node.as_ref(),
                "--kubelet-port".as_ref(),
                "0".as_ref(),
            ],
            log,
        )
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The scheduler in a process of its own.
    pub fn scheduler(kubeconfig: &Path, log: &Path) -> Result<Self> {
        let port = free_port()?.to_string();
        Self::spawn(
            "kox scheduler",
            &[
                "scheduler".as_ref(),
                "--kubeconfig".as_ref(),
                kubeconfig.as_os_str(),
                "--bind-address".as_ref(),
                "127.0.0.1".as_ref(),
                "--secure-port".as_ref(),
                port.as_ref(),
                "--leader-elect=false".as_ref(),
            ],
            log,
        )
    }

    /// The controller manager in a process of its own, leader-elected (the only candidate, it
    /// takes the Lease at once), its health endpoint on a free port.
    pub fn controller_manager(kubeconfig: &Path, log: &Path) -> Result<Self> {
        let port = free_port()?.to_string();
        Self::spawn(
            "kox controller-manager",
            &[
                "controller-manager".as_ref(),
                "--kubeconfig".as_ref(),
                kubeconfig.as_os_str(),
                "--bind-address".as_ref(),
                "127.0.0.1".as_ref(),
                "--secure-port".as_ref(),
                port.as_ref(),
            ],
            log,
        )
    }

    fn spawn(what: &'static str, args: &[&std::ffi::OsStr], log: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the kox binary")?;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        Ok(Self {
            child,
            what,
            log: log.to_path_buf(),
        })
    }

    /// The process's resident set size now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.child.id(), "VmRSS")
    }

    /// The process's peak resident set size (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.child.id(), "VmHWM")
    }

    /// CPU time the process has used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        proc_cpu_seconds(&self.child.id().to_string())
    }

    /// Fails with the end of the process's log if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited with {status}:\n{}",
                self.what,
                log_tail(&self.log)
            );
        }
        Ok(())
    }

    pub async fn stop(mut self) -> Result<()> {
        terminate(&mut self.child, self.what, &self.log).await
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time (user + system) of a process — `self` or a pid — in seconds.
pub fn proc_cpu_seconds(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The fields after the command name, which is parenthesized and may contain spaces.
    let (_, rest) = stat.rsplit_once(')').context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line, 12th and 13th after the name.
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .context("malformed /proc stat")
    };
    // USER_HZ is 100 on every Linux architecture kox builds for.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `/readyz` answers 200 on a fresh connection.
async fn is_ready(creds: &Credentials) -> bool {
    let attempt = async {
        let conn = creds.connect(Protocol::Http1).await?;
        let (status, _) = conn.call(Method::GET, "/readyz", None).await?;
        anyhow::Ok(status == StatusCode::OK)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await,
        Ok(Ok(true))
    )
}

/// A `kB` field of `/proc/<pid>/status`.
pub fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
