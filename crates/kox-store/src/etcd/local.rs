//! A throw-away one-member etcd on loopback, for tests and benchmarks.
//!
//! [`LocalEtcd::start`] runs the `etcd` binary (Debian's `etcd-server`) listening only on
//! 127.0.0.1, on free ports, with its own data directory; dropping the guard kills the process and
//! removes the directory, also when a test panics.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `etcd-server` installs the binary.
pub const ETCD_BINARY: &str = "/usr/bin/etcd";

/// How the local member is run.
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

/// A running etcd member; killed (and its data removed) on drop.
pub struct LocalEtcd {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    options: LocalEtcdOptions,
}

impl std::fmt::Debug for LocalEtcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEtcd")
            .field("endpoint", &self.endpoint())
            .field("dir", &self.dir)
            .finish()
    }
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
        let mut etcd = Self {
            child: None,
            dir,
            client_port: 0,
            peer_port: 0,
            options,
        };
        // Another process may take a "free" port before etcd binds it: try again with new ones.
        let mut last_error = None;
        for _ in 0..5 {
            match etcd.spawn() {
                Ok(()) => return Ok(etcd),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("etcd did not start")))
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        self.kill();
        self.client_port = free_port()?;
        self.peer_port = free_port()?;
        let data = self.dir.join("data");
        let _ = std::fs::remove_dir_all(&data);
        let log = std::fs::File::create(self.dir.join("etcd.log"))?;
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let progress = format!("{}ms", self.options.progress_notify_interval.as_millis());
        let child = Command::new(ETCD_BINARY)
            .arg("--name=kox")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=kox={peer}"))
            .arg("--initial-cluster-state=new")
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
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.client_port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(std::io::Error::other(format!(
                    "etcd exited with {status}: {}",
                    self.log()
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(format!(
            "etcd did not listen on {addr} within 20 s: {}",
            self.log()
        )))
    }

    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// What etcd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    /// Kills the member (its data directory stays until the guard is dropped).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
