//! OCI image archives written by kox itself: the pause image, and images users build from a
//! root filesystem (`kox image build`) — with no registry and no other tool.
//!
//! The archive is an OCI image layout in a tar (`oci-layout`, `index.json`, `blobs/sha256/…`)
//! with one uncompressed layer; the index names the image with containerd's
//! `io.containerd.image.name` annotation, so `ctr images import` tags it as given.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// What a container of the image runs by default.
#[derive(Clone, Debug, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
}

/// One file of a layer.
pub enum Entry<'a> {
    Dir(&'a str),
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    Symlink {
        path: &'a str,
        target: &'a str,
    },
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    let _ = h.set_path(path);
    h
}

/// A layer (an uncompressed tar) holding `entries`.
pub fn layer(entries: &[Entry<'_>]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            Entry::Dir(path) => {
                let mut h = header(path, tar::EntryType::Directory, 0o755, 0);
                h.set_cksum();
                b.append(&h, std::io::empty())?;
            }
            Entry::File { path, mode, data } => {
                let mut h = header(path, tar::EntryType::Regular, *mode, data.len() as u64);
                h.set_cksum();
                b.append(&h, *data)?;
            }
            Entry::Symlink { path, target } => {
                let mut h = header(path, tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, path, target)?;
            }
        }
    }
    Ok(b.into_inner()?)
}

/// A layer holding the directory tree `root` (its contents at `/`), symlinks kept as links.
pub fn layer_from_dir(root: &Path) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Deterministic);
    b.append_dir_all(".", root)
        .with_context(|| format!("reading {}", root.display()))?;
    Ok(b.into_inner()?)
}

fn blob(tar: &mut tar::Builder<Vec<u8>>, data: &[u8]) -> Result<(String, usize)> {
    let digest = sha256_hex(data);
    let mut h = header(
        &format!("blobs/sha256/{digest}"),
        tar::EntryType::Regular,
        0o644,
        data.len() as u64,
    );
    h.set_cksum();
    tar.append(&h, data)?;
    Ok((format!("sha256:{digest}"), data.len()))
}

fn config_json(config: &ImageConfig, layer_digests: &[String]) -> Value {
    let mut c = json!({});
    if !config.entrypoint.is_empty() {
        c["Entrypoint"] = json!(config.entrypoint);
    }
    if !config.cmd.is_empty() {
        c["Cmd"] = json!(config.cmd);
    }
    let env = if config.env.is_empty() {
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()]
    } else {
        config.env.clone()
    };
    c["Env"] = json!(env);
    if let Some(dir) = &config.working_dir {
        c["WorkingDir"] = json!(dir);
    }
    json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": c,
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
        "history": [{"created_by": "kox image build"}],
    })
}

/// Go's name of this machine's architecture, as image configs say it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An OCI archive of the image `name` (e.g. `localhost/kox/pause:3.10`) with `layers`.
pub fn archive(name: &str, config: &ImageConfig, layers: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let layer_descs: Vec<(String, usize)> = layers
        .iter()
        .map(|l| blob(&mut tar, l))
        .collect::<Result<_>>()?;
    let digests: Vec<String> = layer_descs.iter().map(|(d, _)| d.clone()).collect();
    let config_bytes = serde_json::to_vec(&config_json(config, &digests))?;
    let (config_digest, config_size) = blob(&mut tar, &config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": layer_descs.iter().map(|(d, s)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s,
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let (manifest_digest, manifest_size) = blob(&mut tar, &manifest_bytes)?;
    let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "platform": {"architecture": go_arch(), "os": "linux"},
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
        }],
    });
    for (path, data) in [
        (
            "oci-layout",
            serde_json::to_vec(&json!({"imageLayoutVersion": "1.0.0"}))?,
        ),
        ("index.json", serde_json::to_vec(&index)?),
    ] {
        let mut h = header(path, tar::EntryType::Regular, 0o644, data.len() as u64);
        h.set_cksum();
        tar.append(&h, data.as_slice())?;
    }
    let mut out = tar.into_inner()?;
    out.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut a = tar::Archive::new(archive);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (path, data)
            })
            .collect()
    }

    #[test]
    fn archive_is_an_oci_layout_whose_blobs_match_their_digests() {
        let l = layer(&[
            Entry::Dir("bin"),
            Entry::File {
                path: "bin/x",
                mode: 0o755,
                data: b"hi",
            },
            Entry::Symlink {
                path: "bin/y",
                target: "x",
            },
        ])
        .unwrap();
        let a = archive("localhost/t:1", &ImageConfig::default(), &[l]).unwrap();
        let files = entries(&a);
        for (path, data) in &files {
            if let Some(d) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(d, sha256_hex(data));
            }
        }
        let index: Value =
            serde_json::from_slice(&files.iter().find(|(p, _)| p == "index.json").unwrap().1)
                .unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "localhost/t:1"
        );
        assert!(files.iter().any(|(p, _)| p == "oci-layout"));
    }
}
