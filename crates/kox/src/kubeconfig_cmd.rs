//! `kox kubeconfig`: a kubeconfig for one identity, with a client certificate issued by the
//! cluster CA of a server's data directory — e.g. a node agent's (`--node <name>`:
//! `CN=system:node:<name>`, `O=system:nodes`, as upstream's kubelet credential).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

/// Flags of `kox kubeconfig`.
#[derive(Args, Debug)]
pub struct KubeconfigArgs {
    /// The server's data directory, whose CA signs the certificate
    /// [default: /var/lib/kox as root, else ~/.local/share/kox].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A node's credential: user `system:node:<NODE>` in group `system:nodes`.
    #[arg(long, conflicts_with_all = ["user", "group"])]
    pub node: Option<String>,
    /// The user name (the certificate's CN).
    #[arg(long)]
    pub user: Option<String>,
    /// A group of the user (the certificate's O; repeatable).
    #[arg(long = "group")]
    pub group: Vec<String>,
    /// The API server URL [default: the one in DATA_DIR/admin.kubeconfig].
    #[arg(long)]
    pub server: Option<String>,
    /// Write the kubeconfig here (mode 0600) instead of to standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Prints (or writes) the kubeconfig.
pub async fn run(args: KubeconfigArgs) -> Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::server::default_data_dir);
    let (user, groups) = match (&args.node, &args.user) {
        (Some(node), _) => {
            let errors = kox_api::validation::is_dns1123_subdomain(node);
            if !errors.is_empty() {
                bail!("--node {node:?}: {}", errors.join("; "));
            }
            (
                format!("system:node:{node}"),
                vec!["system:nodes".to_string()],
            )
        }
        (None, Some(user)) if !user.is_empty() => (user.clone(), args.group.clone()),
        _ => bail!("give --node <name> or --user <name>"),
    };
    let server = match &args.server {
        Some(s) => s.clone(),
        None => server_of(&data_dir.join("admin.kubeconfig"))?,
    };
    let ca = std::fs::read_to_string(data_dir.join("tls/ca.crt"))
        .with_context(|| format!("reading the cluster CA under {}", data_dir.display()))?;
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let (cert, key) = kox_apiserver::pki::issue_client_certificate(&data_dir, &user, &groups)?;
    let yaml = kox_apiserver::pki::client_kubeconfig(&server, &ca, &user, &cert, &key);
    match &args.output {
        Some(path) => write_private(path, &yaml)?,
        None => print!("{yaml}"),
    }
    Ok(())
}

/// The server URL of a kubeconfig's first cluster.
pub fn server_of(path: &std::path::Path) -> Result<String> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading {} (or give --server)", path.display()))?;
    kubeconfig
        .clusters
        .iter()
        .find_map(|c| c.cluster.as_ref()?.server.clone())
        .with_context(|| format!("{} names no server", path.display()))
}

pub fn write_private(path: &std::path::Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}
