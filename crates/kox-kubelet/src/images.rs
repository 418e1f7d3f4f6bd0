//! Images on a node with no registry: kox's own pause image, archives dropped in
//! `DATA_DIR/agent/images/` (k3s's air-gap convention), images built from Debian binaries, and
//! the kubelet's pull decision (`imagePullPolicy`), worded as upstream.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;

use crate::cri::{Cri, api};
use crate::oci::{self, Entry, ImageConfig};

/// The pause program, built from `src/pause.c` by the build script.
const PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));
/// The sandbox image kox provides.
pub const PAUSE_IMAGE: &str = "localhost/kox/pause:3.10";

/// The pause image as an OCI archive.
pub fn pause_archive(name: &str) -> Result<Vec<u8>> {
    let layer = oci::layer(&[Entry::File {
        path: "pause",
        mode: 0o755,
        data: PAUSE,
    }])?;
    let config = ImageConfig {
        entrypoint: vec!["/pause".into()],
        ..ImageConfig::default()
    };
    oci::archive(name, &config, &[layer])
}

/// A busybox image from a static busybox binary: `/bin/busybox`, a link per applet, and the
/// few files programs expect (`/etc/passwd` with root and nobody, `/tmp`).
pub fn busybox_archive(name: &str, busybox: &Path) -> Result<Vec<u8>> {
    let binary = std::fs::read(busybox).with_context(|| {
        format!(
            "reading {} (apt-get install busybox-static)",
            busybox.display()
        )
    })?;
    let applets = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", busybox.display()))?;
    let applets = String::from_utf8_lossy(&applets.stdout).into_owned();
    let links: Vec<String> = applets
        .lines()
        .filter(|a| !a.is_empty() && *a != "busybox")
        .map(|a| format!("bin/{a}"))
        .collect();
    let mut entries = vec![
        Entry::Dir("bin"),
        Entry::Dir("etc"),
        Entry::Dir("tmp"),
        Entry::Dir("root"),
        Entry::Dir("var"),
        Entry::File { path: "bin/busybox", mode: 0o755, data: &binary },
        Entry::File {
            path: "etc/passwd",
            mode: 0o644,
            data: b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        },
        Entry::File { path: "etc/group", mode: 0o644, data: b"root:x:0:\nnogroup:x:65534:\n" },
    ];
    entries.extend(links.iter().map(|l| Entry::Symlink {
        path: l,
        target: "busybox",
    }));
    let config = ImageConfig {
        cmd: vec!["sh".into()],
        ..ImageConfig::default()
    };
    oci::archive(name, &config, &[oci::layer(&entries)?])
}

/// `busybox`, `library/busybox:1`, `localhost/x` → the full reference containerd stores.
pub fn normalize(image: &str) -> String {
    let (name, tag_or_digest) = split_reference(image);
    let first = name.split('/').next().unwrap_or("");
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let name = if has_domain {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{name}{}", tag_or_digest.unwrap_or(":latest".into()))
}

fn split_reference(image: &str) -> (&str, Option<String>) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, Some(format!("@{digest}")));
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(format!(":{tag}"))),
        _ => (image, None),
    }
}

/// Imports an archive (docker-save or OCI; `.tar`, `.tar.gz`, `.tar.zst`) into the runtime's
/// `k8s.io` namespace, where CRI sees it.
pub async fn import(socket: &Path, archive: &Path) -> Result<()> {
    let name = archive.to_string_lossy();
    let decompress = if name.ends_with(".gz") || name.ends_with(".tgz") {
        Some("gzip")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else {
        None
    };
    let mut ctr = tokio::process::Command::new("ctr");
    ctr.arg("--address").arg(socket).args([
        "-n",
        "k8s.io",
        "images",
        "import",
        "--all-platforms",
        "-",
    ]);
    ctr.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = ctr
        .spawn()
        .context("running ctr (apt-get install containerd)")?;
    let mut stdin = child.stdin.take().context("ctr's stdin")?;
    let data = match decompress {
        None => tokio::fs::read(archive).await?,
        Some(tool) => {
            let out = tokio::process::Command::new(tool)
                .arg("-dc")
                .arg(archive)
                .output()
                .await
                .with_context(|| format!("running {tool} (apt-get install {tool})"))?;
            if !out.status.success() {
                bail!(
                    "{tool} -dc {}: {}",
                    archive.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            out.stdout
        }
    };
    let writer = tokio::spawn(async move {
        let r = stdin.write_all(&data).await;
        drop(stdin);
        r
    });
    let out = child.wait_with_output().await?;
    writer.await??;
    if !out.status.success() {
        bail!(
            "importing {}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Imports `bytes` (an archive) through a temporary file.
pub async fn import_bytes(socket: &Path, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(format!(".{name}.tar"));
    tokio::fs::write(&path, bytes).await?;
    let r = import(socket, &path).await;
    let _ = tokio::fs::remove_file(&path).await;
    r
}

/// Whether the runtime holds `image`; its id then.
pub async fn present(cri: &Cri, image: &str) -> Result<Option<String>> {
    let status = cri
        .images
        .clone()
        .image_status(api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await?
        .into_inner();
    Ok(status.image.map(|i| i.id))
}

/// Makes sure the pause image is in the runtime: built and imported when missing.
pub async fn ensure_pause(cri: &Cri, socket: &Path, work: &Path, name: &str) -> Result<()> {
    if present(cri, name).await?.is_some() {
        return Ok(());
    }
    if name != PAUSE_IMAGE {
        tracing::warn!(
            image = name,
            "the sandbox image is not present; containerd will try to pull it"
        );
        return Ok(());
    }
    import_bytes(socket, work, "pause", &pause_archive(name)?).await
}

/// Watches `dir` for image archives and imports each new or changed one.
pub async fn import_dir_loop(
    socket: PathBuf,
    dir: PathBuf,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut seen: HashMap<PathBuf, (SystemTime, u64)> = HashMap::new();
    loop {
        for (path, stamp) in archives(&dir) {
            if seen.get(&path) == Some(&stamp) {
                continue;
            }
            match import(&socket, &path).await {
                Ok(()) => tracing::info!(archive = %path.display(), "image archive imported"),
                Err(e) => tracing::warn!("{e:#}"),
            }
            seen.insert(path, stamp);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

fn archives(dir: &Path) -> Vec<(PathBuf, (SystemTime, u64))> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_name()?.to_str()?.to_string();
            let is_archive = [".tar", ".tar.gz", ".tgz", ".tar.zst"]
                .iter()
                .any(|s| name.ends_with(s));
            let meta = e.metadata().ok()?;
            let modified = meta.modified().ok()?;
            (is_archive && !name.starts_with('.') && meta.is_file())
                .then_some((path, (modified, meta.len())))
        })
        .collect();
    found.sort();
    found
}

/// Why a container's image is not there, worded as the kubelet's waiting reasons.
#[derive(Debug, Clone)]
pub struct PullFailure {
    pub reason: &'static str,
    pub message: String,
}

/// The kubelet's decision and pull for one container: returns the image's reference (id).
/// `events` receives (type, reason, message) as the kubelet records them.
pub async fn ensure_image(
    cri: &Cri,
    image: &str,
    policy: &str,
    auth: Vec<api::AuthConfig>,
    mut event: impl FnMut(&str, &str, String),
) -> Result<String, PullFailure> {
    let held = present(cri, image).await.map_err(|e| PullFailure {
        reason: "ErrImageInspect",
        message: format!("Failed to inspect image \"{image}\": {e}"),
    })?;
    match (policy, held) {
        ("Never", None) => {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            event("Warning", "ErrImageNeverPull", message.clone());
            Err(PullFailure {
                reason: "ErrImageNeverPull",
                message,
            })
        }
        ("Never" | "IfNotPresent", Some(id)) => {
            event(
                "Normal",
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            Ok(id)
        }
        _ => pull(cri, image, auth, event).await,
    }
}

async fn pull(
    cri: &Cri,
    image: &str,
    auth: Vec<api::AuthConfig>,
    mut event: impl FnMut(&str, &str, String),
) -> Result<String, PullFailure> {
    event("Normal", "Pulling", format!("Pulling image \"{image}\""));
    let started = std::time::Instant::now();
    let mut last_error = None;
    for auth in auth.into_iter().map(Some).chain(std::iter::once(None)) {
        let request = api::PullImageRequest {
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            auth,
            sandbox_config: None,
        };
        match cri.images.clone().pull_image(request).await {
            Ok(r) => {
                let took = started.elapsed();
                event(
                    "Normal",
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {took:.3?} ({took:.3?} including waiting)"
                    ),
                );
                return Ok(r.into_inner().image_ref);
            }
            Err(e) => last_error = Some(e.message().to_string()),
        }
    }
    let message = format!(
        "rpc error: code = Unknown desc = {}",
        last_error.unwrap_or_default()
    );
    event(
        "Warning",
        "Failed",
        format!("Failed to pull image \"{image}\": {message}"),
    );
    event("Warning", "Failed", "Error: ErrImagePull".into());
    Err(PullFailure {
        reason: "ErrImagePull",
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize_as_containerd_stores_them() {
        for (given, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.35", "docker.io/library/busybox:1.35"),
            ("me/app:2", "docker.io/me/app:2"),
            ("localhost/kox/pause:3.10", "localhost/kox/pause:3.10"),
            ("registry:5000/app", "registry:5000/app:latest"),
            ("quay.io/a/b@sha256:abc", "quay.io/a/b@sha256:abc"),
        ] {
            assert_eq!(normalize(given), want, "{given}");
        }
    }
}

/// The registry host of an image reference (`docker.io` for Docker Hub names).
pub fn registry_of(image: &str) -> String {
    let full = normalize(image);
    full.split('/').next().unwrap_or("docker.io").to_string()
}

/// Whether a key of a docker config (`https://index.docker.io/v1/`, `registry:5000`,
/// `https://r.example/v2/`) names `registry`.
fn config_key_matches(key: &str, registry: &str) -> bool {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    host == registry
        || (registry == "docker.io" && matches!(host, "index.docker.io" | "registry-1.docker.io"))
}

/// Credentials for `image` from the data of the pod's image pull secrets (their
/// `.dockerconfigjson` or `.dockercfg`), as the kubelet's keyring matches them.
pub fn pull_auth(
    image: &str,
    secrets: &[std::collections::BTreeMap<String, Vec<u8>>],
) -> Vec<api::AuthConfig> {
    let registry = registry_of(image);
    let mut found = Vec::new();
    for data in secrets {
        let entries = if let Some(json) = data.get(".dockerconfigjson") {
            serde_json::from_slice::<serde_json::Value>(json)
                .ok()
                .map(|v| v["auths"].clone())
        } else {
            data.get(".dockercfg")
                .and_then(|json| serde_json::from_slice(json).ok())
        };
        let Some(serde_json::Value::Object(entries)) = entries else {
            continue;
        };
        for (key, entry) in entries {
            if !config_key_matches(&key, &registry) {
                continue;
            }
            let text = |k: &str| entry[k].as_str().unwrap_or("").to_string();
            found.push(api::AuthConfig {
                username: text("username"),
                password: text("password"),
                auth: text("auth"),
                server_address: key.clone(),
                ..Default::default()
            });
        }
    }
    found
}

#[cfg(test)]
mod pull_secret_tests {
    use super::*;

    #[test]
    fn pull_secrets_match_the_images_registry() {
        let secret = std::collections::BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            br#"{"auths": {"https://index.docker.io/v1/": {"username": "u", "password": "p"}, "r.example:5000": {"auth": "dTpw"}}}"#.to_vec(),
        )]);
        let hub = pull_auth("busybox:1", std::slice::from_ref(&secret));
        assert_eq!(hub.len(), 1);
        assert_eq!(
            (hub[0].username.as_str(), hub[0].password.as_str()),
            ("u", "p")
        );
        let private = pull_auth("r.example:5000/app:1", std::slice::from_ref(&secret));
        assert_eq!(private[0].auth, "dTpw");
        assert!(pull_auth("quay.io/x:1", &[secret]).is_empty());
    }
}
