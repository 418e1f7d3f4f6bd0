//! `kox image`: OCI image archives built with no registry and no other tool — from a folder
//! (a root filesystem) or from a static busybox — for `DATA_DIR/agent/images/`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use kox_kubelet::oci::{self, ImageConfig};

/// What `kox image` does.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// An image whose filesystem is a folder's contents.
    Build(BuildArgs),
    /// A busybox image from a static busybox binary (Debian's busybox-static).
    Busybox(BusyboxArgs),
}

/// Flags of `kox image build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The image's name, e.g. `example.com/app:1.0`.
    pub name: String,
    /// The folder that becomes the image's `/`.
    #[arg(long)]
    pub rootfs: PathBuf,
    /// The default command (repeatable, one word each).
    #[arg(long = "cmd")]
    pub cmd: Vec<String>,
    /// The entrypoint (repeatable, one word each).
    #[arg(long = "entrypoint")]
    pub entrypoint: Vec<String>,
    /// An environment variable `NAME=value` (repeatable).
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// The working directory.
    #[arg(long)]
    pub workdir: Option<String>,
    /// Where to write the archive.
    #[arg(long, short)]
    pub output: PathBuf,
}

/// Flags of `kox image busybox`.
#[derive(Args, Debug)]
pub struct BusyboxArgs {
    /// The image's name.
    #[arg(default_value = "docker.io/library/busybox:1.35")]
    pub name: String,
    /// The static busybox binary.
    #[arg(long, default_value = "/bin/busybox")]
    pub busybox: PathBuf,
    /// Where to write the archive.
    #[arg(long, short)]
    pub output: PathBuf,
}

pub async fn run(command: ImageCommand) -> Result<()> {
    let (name, output, archive) = match command {
        ImageCommand::Build(a) => {
            let config = ImageConfig {
                entrypoint: a.entrypoint,
                cmd: a.cmd,
                env: a.env,
                working_dir: a.workdir,
            };
            let layer = oci::layer_from_dir(&a.rootfs)?;
            let name = kox_kubelet::images::normalize(&a.name);
            let archive = oci::archive(&name, &config, &[layer])?;
            (name, a.output, archive)
        }
        ImageCommand::Busybox(a) => {
            let name = kox_kubelet::images::normalize(&a.name);
            let archive = kox_kubelet::images::busybox_archive(&name, &a.busybox)?;
            (name, a.output, archive)
        }
    };
    std::fs::write(&output, archive).with_context(|| format!("writing {}", output.display()))?;
    println!("{name} written to {}", output.display());
    Ok(())
}
