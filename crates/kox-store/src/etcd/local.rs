//! Throw-away etcd on loopback, for tests and benchmarks: one member ([`LocalEtcd`]) or a
//! cluster of several ([`LocalEtcdCluster`], whose members can be killed and restarted).
//!
//! Each member is the `etcd` binary (Debian's `etcd-server`) listening only on 127.0.0.1, on free
//! ports, with its own data directory; dropping the guard kills the processes and removes the
//! directories, also when a test panics.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `etcd-server` installs the binary.
pub const ETCD_BINARY: &str = "/usr/bin/etcd";

/// How local members are run.
#[derive(Debug, Clone)]
pub struct LocalEtcdOptions {
    /// Parent of the data directory; `None`: `/dev/shm` when it exists (fsync is free there,
    /// which keeps tests fast), else the system's temporary directory.
    pub parent_dir: Option<PathBuf>,
    /// etcd's `--experimental-watch-progress-notify-interval`.
    pub progress_notify_interval: Duration,
}

impl Default for LocalEtcdOptions {
    fn default() -> Self {
        Self {
            parent_dir: None,
            progress_notify_interval: Duration::from_secs(1),
        }
    }
}

/// A running one-member etcd; killed (and its data removed) on drop.
#[derive(Debug)]
pub struct LocalEtcd {
    cluster: LocalEtcdCluster,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether the etcd binary is installed.
pub fn etcd_available() -> bool {
    Path::new(ETCD_BINARY).exists()
}

impl LocalEtcd {
    /// Starts a fresh member and waits until its client port accepts connections.
    pub fn start(options: LocalEtcdOptions) -> std::io::Result<Self> {
        Ok(Self {
            cluster: LocalEtcdCluster::start(1, options)?,
        })
    }

    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        self.cluster.endpoint(0)
    }

    /// What etcd logged.
    pub fn log(&self) -> String {
        self.cluster.log(0)
    }

    /// Kills the member (its data directory stays until the guard is dropped).
    pub fn kill(&mut self) {
        self.cluster.kill(0);
    }
}

/// One member of a [`LocalEtcdCluster`].
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// A throw-away etcd cluster of `n` members on loopback, each its own process with its own data
/// directory: members can be killed and restarted (with their data) to test failures.
#[derive(Debug)]
pub struct LocalEtcdCluster {
    dir: PathBuf,
    members: Vec<Member>,
    options: LocalEtcdOptions,
}

impl LocalEtcdCluster {
    /// Starts `n` fresh members forming one cluster and waits until every client port accepts
    /// connections.
    pub fn start(n: usize, options: LocalEtcdOptions) -> std::io::Result<Self> {
        let parent = options.parent_dir.clone().unwrap_or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            if shm.is_dir() {
                shm
            } else {
                std::env::temp_dir()
            }
        });
        let unique = format!(
            "kox-etcd-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let dir = parent.join(unique);
        std::fs::create_dir_all(&dir)?;
        let mut cluster = Self {
            dir,
            members: Vec::new(),
            options,
        };
        // Another process may take a "free" port before etcd binds it: try again with new ones.
        let mut last_error = None;
        for _ in 0..5 {
            match cluster.spawn_new(n) {
                Ok(()) => return Ok(cluster),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("etcd did not start")))
    }

    fn spawn_new(&mut self, n: usize) -> std::io::Result<()> {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir)?;
        self.members = (0..n)
            .map(|i| {
                Ok(Member {
                    name: format!("kox-{i}"),
                    client_port: free_port()?,
                    peer_port: free_port()?,
                    child: None,
                })
            })
            .collect::<std::io::Result<_>>()?;
        for i in 0..n {
            self.spawn(i)?;
        }
        for i in 0..n {
            self.wait_listening(i)?;
        }
        Ok(())
    }

    fn member_dir(&self, i: usize) -> PathBuf {
        self.dir.join(&self.members[i].name)
    }

    /// Runs member `i` on its data directory: a new member joins the initial cluster, a
    /// restarted one resumes from its data (etcd ignores the initial-cluster flags then).
    fn spawn(&mut self, i: usize) -> std::io::Result<()> {
        let member_dir = self.member_dir(i);
        std::fs::create_dir_all(&member_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(member_dir.join("etcd.log"))?;
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let progress = format!("{}ms", self.options.progress_notify_interval.as_millis());
        let member = &self.members[i];
        let client = member.client_url();
        let peer = member.peer_url();
        let child = Command::new(ETCD_BINARY)
            .arg(format!("--name={}", member.name))
            .arg(format!("--data-dir={}", member_dir.join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=kox-local")
            // Room for a value of MAX_VALUE_SIZE plus its key and the request's framing.
            .arg("--max-request-bytes=2097152")
            .arg(format!(
                "--experimental-watch-progress-notify-interval={progress}"
            ))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.members[i].child = Some(child);
        Ok(())
    }

    fn wait_listening(&mut self, i: usize) -> std::io::Result<()> {
        let addr: SocketAddr = ([127, 0, 0, 1], self.members[i].client_port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = self.members[i].child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.members[i].child = None;
                return Err(std::io::Error::other(format!(
                    "etcd member {i} exited with {status}: {}",
                    self.log(i)
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(format!(
            "etcd member {i} did not listen on {addr} within 20 s: {}",
            self.log(i)
        )))
    }

    /// How many members the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members (never, once started).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `i`'s client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].client_url()
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// What member `i` logged.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.member_dir(i).join("etcd.log")).unwrap_or_default()
    }

    /// Kills member `i` with SIGKILL; its data stays, so [`restart`](Self::restart) resumes it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether member `i`'s process is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// The member that is the Raft leader now, as the running members report it
    /// (`etcd_server_is_leader` on their `/metrics`).
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .find(|&i| self.metric(i, "etcd_server_is_leader") == Some(1.0))
    }

    /// Waits up to `timeout` for a leader among the running members.
    pub fn wait_for_leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader() {
                return Some(i);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One gauge of member `i`'s Prometheus `/metrics`.
    fn metric(&self, i: usize, name: &str) -> Option<f64> {
        use std::io::{Read, Write};
        let addr: SocketAddr = ([127, 0, 0, 1], self.members[i].client_port).into();
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        conn.read_to_string(&mut body).ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Starts a killed member again on its data and waits until it listens.
    pub fn restart(&mut self, i: usize) -> std::io::Result<()> {
        if self.members[i].child.is_none() {
            self.spawn(i)?;
        }
        self.wait_listening(i)
    }
}

impl Drop for LocalEtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
