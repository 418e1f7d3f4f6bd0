//! containerd as the agent's child (as k3s runs it): a config the agent writes (its own root,
//! state and socket under the data directory; the CRI plugin with runc on cgroupfs, the CNI
//! folders and kox's pause image), started, waited for until CRI answers, restarted when it
//! dies, stopped when the agent stops. Pods keep running across all of this: their processes
//! belong to containerd's shims, not to containerd.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// Where a containerd of the agent keeps everything.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `DATA_DIR/agent/containerd`.
    pub dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dir: PathBuf,
}

impl Layout {
    pub fn new(agent_dir: &Path, cni_bin_dir: PathBuf) -> Layout {
        Layout {
            dir: agent_dir.join("containerd"),
            cni_conf_dir: agent_dir.join("cni/net.d"),
            cni_bin_dir,
        }
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    /// A user's template that replaces the generated config (as k3s's `config.toml.tmpl`).
    pub fn template(&self) -> PathBuf {
        self.dir.join("config.toml.tmpl")
    }
    fn pid_file(&self) -> PathBuf {
        self.dir.join("containerd.pid")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }
    /// runc's state of this containerd's containers.
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("state/runc")
    }
}

/// The packages that provide what the agent runs.
const PACKAGES: &str = "containerd runc containernetworking-plugins";

/// The folder with the CNI plugins: Debian's, or the conventional `/opt/cni/bin`.
pub fn find_cni_bin_dir() -> Result<PathBuf> {
    ["/usr/lib/cni", "/opt/cni/bin"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("bridge").exists())
        .with_context(|| {
            format!("the CNI plugins (bridge, host-local, portmap, loopback) are not installed: apt-get install {PACKAGES}")
        })
}

/// Fails with one line naming the packages when a program the agent runs is missing.
pub fn check_binaries() -> Result<()> {
    for bin in ["containerd", "runc", "ctr"] {
        if which(bin).is_none() {
            bail!("{bin} is not installed: apt-get install {PACKAGES}");
        }
    }
    Ok(())
}

pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// The generated config (containerd 1.6, config version 2).
pub fn config_toml(layout: &Layout, pause_image: &str) -> String {
    let d = layout.dir.display();
    format!(
        r#"# Written by the kox agent; put a config.toml.tmpl beside it to replace it.
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = {restrict_oom}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
"#,
        socket = layout.socket().display(),
        runc_root = layout.runc_root().display(),
        bin = layout.cni_bin_dir.display(),
        conf = layout.cni_conf_dir.display(),
        restrict_oom = !can_lower_oom_score(),
    )
}

/// Whether this host lets a process lower its OOM score (the sandbox runs at -998). Some
/// sandboxed hosts refuse it, and runc then fails every sandbox; containerd's
/// `restrict_oom_score_adj` keeps containers at or above its own score there.
fn can_lower_oom_score() -> bool {
    std::process::Command::new("sh")
        .args(["-c", "echo -998 > /proc/self/oom_score_adj"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes the config (or the user's template, with `{{ .NodeConfig... }}`-free text taken as
/// is), creating the folders.
pub fn write_config(layout: &Layout, pause_image: &str) -> Result<()> {
    std::fs::create_dir_all(&layout.dir)
        .with_context(|| format!("creating {}", layout.dir.display()))?;
    std::fs::create_dir_all(&layout.cni_conf_dir)?;
    let text = match std::fs::read_to_string(layout.template()) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => config_toml(layout, pause_image),
        Err(e) => return Err(e).context(format!("reading {}", layout.template().display())),
    };
    std::fs::write(layout.config(), text)
        .with_context(|| format!("writing {}", layout.config().display()))
}

/// Stops a containerd an earlier agent left behind (killed with `-9`): the new one needs its
/// root. Its pods keep running under their shims and are adopted.
pub fn stop_leftover(layout: &Layout) {
    let Some(pid) = std::fs::read_to_string(layout.pid_file())
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let is_containerd = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("containerd"))
        .unwrap_or(false);
    if !is_containerd {
        return;
    }
    tracing::info!(pid, "stopping the containerd an earlier agent left running");
    signal(pid, libc::SIGTERM);
    for _ in 0..100 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(pid, libc::SIGKILL);
}

fn signal(pid: i32, sig: i32) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn start(layout: &Layout) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.log())
        .with_context(|| format!("opening {}", layout.log().display()))?;
    let child = Command::new("containerd")
        .arg("--config")
        .arg(layout.config())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false)
        .spawn()
        .with_context(|| format!("starting containerd (apt-get install {PACKAGES})"))?;
    if let Some(pid) = child.id() {
        std::fs::write(layout.pid_file(), pid.to_string())?;
    }
    Ok(child)
}

/// Starts containerd and returns once it is running; the returned task keeps it running
/// (restarting it when it dies) until `stop`, then stops it.
pub fn spawn(layout: Layout, stop: CancellationToken) -> Result<tokio::task::JoinHandle<()>> {
    stop_leftover(&layout);
    let _ = std::fs::remove_file(layout.socket());
    let child = start(&layout)?;
    Ok(tokio::spawn(supervise(layout, child, stop)))
}

async fn supervise(layout: Layout, mut child: Child, stop: CancellationToken) {
    loop {
        tokio::select! {
            status = child.wait() => {
                tracing::warn!(?status, log = %layout.log().display(), "containerd exited; starting it again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                match start(&layout) {
                    Ok(c) => child = c,
                    Err(e) => {
                        tracing::error!("restarting containerd: {e:#}");
                        tokio::time::sleep(Duration::from_secs(4)).await;
                    }
                }
            }
            _ = stop.cancelled() => {
                if let Some(pid) = child.id() {
                    signal(pid as i32, libc::SIGTERM);
                }
                if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
                let _ = std::fs::remove_file(layout.pid_file());
                return;
            }
        }
    }
}
