//! `kox datastore`: snapshots of the cluster state and migration between engines.
//!
//! - `snapshot save FILE` / `snapshot restore FILE`: a consistent copy of every key at one
//!   revision, restorable into an empty store of either engine.
//! - `migrate --to-endpoint URL,…`: moves a single-server cluster from the embedded engine in
//!   its data directory to etcd.
//!
//! The embedded engine is a file only one process may open: stop `kox server` first. etcd can
//! be snapshotted while servers run.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kox_store::snapshot;

use crate::server::{DatastoreArgs, open_store};

/// `kox datastore …`.
#[derive(Subcommand, Debug)]
pub enum DatastoreCommand {
    /// Save or restore a snapshot of the cluster state.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Move the cluster state from the embedded store in --data-dir to an (empty) etcd.
    Migrate(MigrateArgs),
}

/// `kox datastore snapshot …`.
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Write every object, as of one revision, to FILE.
    Save(SnapshotArgs),
    /// Load FILE into an empty store (a fresh --data-dir, or an empty etcd).
    Restore(SnapshotArgs),
}

/// Where the store is, and the snapshot file.
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// The data directory of the embedded store
    /// [default: /var/lib/kox as root, else ~/.local/share/kox].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The etcd datastore instead of the embedded store.
    #[command(flatten)]
    pub datastore: Box<DatastoreArgs>,
}

/// Flags of `kox datastore migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The data directory whose embedded store is moved
    /// [default: /var/lib/kox as root, else ~/.local/share/kox].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The etcd members' client URLs to move to (comma-separated); etcd must hold no keys.
    #[arg(long, value_delimiter = ',', required = true)]
    pub to_endpoint: Vec<String>,
    /// CA bundle that signs the etcd members' certificates.
    #[arg(long)]
    pub to_cafile: Option<PathBuf>,
    /// Client certificate presented to etcd.
    #[arg(long)]
    pub to_certfile: Option<PathBuf>,
    /// Key of `--to-certfile`.
    #[arg(long)]
    pub to_keyfile: Option<PathBuf>,
}

pub async fn run(command: DatastoreCommand) -> Result<()> {
    match command {
        DatastoreCommand::Snapshot(SnapshotCommand::Save(args)) => save(args).await,
        DatastoreCommand::Snapshot(SnapshotCommand::Restore(args)) => restore(args).await,
        DatastoreCommand::Migrate(args) => migrate(args).await,
    }
}

fn data_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(crate::server::default_data_dir)
}

/// Opens the store for an offline tool, explaining the usual cause when the embedded store is
/// taken.
async fn open(
    dir: &std::path::Path,
    datastore: &DatastoreArgs,
) -> Result<std::sync::Arc<dyn kox_store::Store>> {
    let embedded = datastore.datastore_endpoint.is_empty();
    if embedded && !dir.join("db").exists() {
        bail!(
            "no embedded store in {}: pass the server's --data-dir (or --datastore-endpoint for etcd)",
            dir.display()
        );
    }
    open_store(dir, datastore).await.map_err(|e| {
        if embedded {
            e.context(format!(
                "the embedded store in {} can only be opened while no kox server uses it: stop the server first",
                dir.display()
            ))
        } else {
            e
        }
    })
}

async fn save(args: SnapshotArgs) -> Result<()> {
    let dir = data_dir(args.data_dir);
    let store = open(&dir, &args.datastore).await?;
    let tmp = args.file.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let info = snapshot::save(store.as_ref(), &mut out).await?;
    let file = out.into_inner().context("writing the snapshot")?;
    file.sync_all().context("syncing the snapshot")?;
    std::fs::rename(&tmp, &args.file)
        .with_context(|| format!("renaming {} to {}", tmp.display(), args.file.display()))?;
    println!(
        "snapshot of {} keys at revision {} saved to {}",
        info.keys,
        info.revision,
        args.file.display()
    );
    Ok(())
}

async fn restore(args: SnapshotArgs) -> Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let dir = data_dir(args.data_dir);
    let embedded = args.datastore.datastore_endpoint.is_empty();
    if embedded {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let store = if embedded {
        open_store(&dir, &args.datastore).await?
    } else {
        open(&dir, &args.datastore).await?
    };
    let info = snapshot::restore(store.as_ref(), std::io::BufReader::new(file)).await?;
    println!(
        "restored {} keys (snapshot revision {}) from {}",
        info.keys,
        info.revision,
        args.file.display()
    );
    Ok(())
}

async fn migrate(args: MigrateArgs) -> Result<()> {
    let dir = data_dir(args.data_dir);
    let from = open(&dir, &DatastoreArgs::default()).await?;
    let to = open_store(
        &dir,
        &DatastoreArgs {
            datastore_endpoint: args.to_endpoint.clone(),
            datastore_cafile: args.to_cafile,
            datastore_certfile: args.to_certfile,
            datastore_keyfile: args.to_keyfile,
        },
    )
    .await?;
    let mut buffer = Vec::new();
    let saved = snapshot::save(from.as_ref(), &mut buffer).await?;
    let restored = snapshot::restore(to.as_ref(), &buffer[..]).await?;
    println!(
        "moved {} keys (revision {} of the embedded store) to etcd at {}; start the server with --data-dir {} --datastore-endpoint {}",
        restored.keys,
        saved.revision,
        args.to_endpoint.join(","),
        dir.display(),
        args.to_endpoint.join(",")
    );
    Ok(())
}
