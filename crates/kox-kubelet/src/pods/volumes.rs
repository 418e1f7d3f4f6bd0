//! A pod's volumes on the node, under `DATA_DIR/agent/pods/<uid>/volumes/<name>`: emptyDir
//! (disk, or tmpfs for `medium: Memory`), configMap, secret, downwardAPI and projected
//! (service-account token, configMap, secret, downwardAPI) written atomically as upstream's
//! `..data` swap so a change is seen whole; hostPath with its type checks; and claims bound to
//! hostPath or local volumes.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Volume,
};
use kube::Api;
use serde_json::json;

use super::env::{
    ConfigError, Sources, config_map_data, container_resource, pod_field, secret_data,
};
use crate::Agent;

/// Where each prepared volume is on the node.
pub type Prepared = HashMap<String, PathBuf>;

/// The pod's folder on the node.
pub fn pod_dir(agent: &Agent, pod: &Pod) -> PathBuf {
    agent
        .config
        .pods_dir()
        .join(pod.metadata.uid.as_deref().unwrap_or("unknown"))
}

/// When each projected token must be fetched again.
#[derive(Default)]
pub struct Tokens {
    refresh_at: HashMap<String, Instant>,
}

/// Sets up (or refreshes) every volume of the pod; an error names the volume as upstream's
/// `MountVolume.SetUp failed for volume "x" : …`.
pub async fn prepare(agent: &Agent, pod: &Pod, tokens: &mut Tokens) -> Result<Prepared, String> {
    let mut prepared = Prepared::new();
    let dir = pod_dir(agent, pod).join("volumes");
    let fs_group = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group);
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = dir.join(&v.name);
        let result = prepare_one(agent, pod, v, &path, tokens).await;
        match result {
            Ok(p) => {
                if let Some(gid) = fs_group
                    && (v.empty_dir.is_some()
                        || v.config_map.is_some()
                        || v.secret.is_some()
                        || v.projected.is_some())
                {
                    give_group(&p, gid as u32);
                }
                prepared.insert(v.name.clone(), p);
            }
            Err(e) => {
                return Err(format!(
                    "MountVolume.SetUp failed for volume \"{}\" : {e}",
                    v.name
                ));
            }
        }
    }
    Ok(prepared)
}

async fn prepare_one(
    agent: &Agent,
    pod: &Pod,
    v: &Volume,
    path: &Path,
    tokens: &mut Tokens,
) -> Result<PathBuf, ConfigError> {
    let sources = Sources {
        agent,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
    };
    if let Some(e) = &v.empty_dir {
        return empty_dir(
            path,
            e.medium.as_deref() == Some("Memory"),
            e.size_limit.as_ref().map(|q| q.0.clone()),
        );
    }
    if let Some(h) = &v.host_path {
        return host_path(&h.path, h.type_.as_deref().unwrap_or(""));
    }
    if let Some(c) = &v.persistent_volume_claim {
        return claim_path(agent, &sources.namespace, &c.claim_name).await;
    }
    let mode = |m: Option<i32>| m.unwrap_or(0o644) as u32;
    let files = if let Some(cm) = &v.config_map {
        match sources.config_map(&cm.name).await? {
            Some(obj) => pick(
                &config_map_data(&obj),
                cm.items.as_deref(),
                mode(cm.default_mode),
                "configmap",
                &cm.name,
            )?,
            None if cm.optional == Some(true) => BTreeMap::new(),
            None => return Err(format!("configmap \"{}\" not found", cm.name)),
        }
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        match sources.secret(&name).await? {
            Some(obj) => pick(
                &secret_data(&obj),
                s.items.as_deref(),
                mode(s.default_mode),
                "secret",
                &name,
            )?,
            None if s.optional == Some(true) => BTreeMap::new(),
            None => return Err(format!("secret \"{name}\" not found")),
        }
    } else if let Some(d) = &v.downward_api {
        downward(
            agent,
            pod,
            d.items.as_deref().unwrap_or_default(),
            mode(d.default_mode),
        )?
    } else if let Some(p) = &v.projected {
        projected(
            agent,
            pod,
            &sources,
            p,
            mode(p.default_mode),
            &v.name,
            tokens,
        )
        .await?
    } else {
        return Err("this volume type is not supported by kox yet".into());
    };
    write_atomically(path, &files).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path.to_path_buf())
}

fn empty_dir(path: &Path, memory: bool, size: Option<String>) -> Result<PathBuf, ConfigError> {
    std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777));
    if memory && !is_mount_point(path) {
        let mut options = "mode=0777".to_string();
        if let Some(size) = size {
            let bytes = kox_api::quantity::Quantity::parse(&size)
                .map(|q| q.value())
                .unwrap_or(0);
            if bytes > 0 {
                options.push_str(&format!(",size={bytes}"));
            }
        }
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(path)
            .status()
            .map_err(|e| format!("mounting tmpfs: {e}"))?;
        if !status.success() {
            return Err(format!("mounting a tmpfs on {} failed", path.display()));
        }
    }
    Ok(path.to_path_buf())
}

/// Whether `path` is a mount point (listed in `/proc/self/mountinfo`).
pub fn is_mount_point(path: &Path) -> bool {
    let target = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(4) == Some(target.as_ref()))
        })
        .unwrap_or(false)
}

fn host_path(path: &str, kind: &str) -> Result<PathBuf, ConfigError> {
    let p = PathBuf::from(path);
    let meta = std::fs::metadata(&p);
    use std::os::unix::fs::FileTypeExt;
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(p.clone())
        } else {
            Err(format!(
                "hostPath type check failed: {path} is not a {what}"
            ))
        }
    };
    match kind {
        "DirectoryOrCreate" => {
            std::fs::create_dir_all(&p).map_err(|e| e.to_string())?;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            Ok(p)
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                std::fs::File::create(&p).map_err(|e| e.to_string())?;
            }
            Ok(p)
        }
        "Directory" => check(meta.as_ref().is_ok_and(|m| m.is_dir()), "directory"),
        "File" => check(meta.as_ref().is_ok_and(|m| m.is_file()), "file"),
        "Socket" => check(
            meta.as_ref().is_ok_and(|m| m.file_type().is_socket()),
            "socket",
        ),
        "CharDevice" => check(
            meta.as_ref().is_ok_and(|m| m.file_type().is_char_device()),
            "character device",
        ),
        "BlockDevice" => check(
            meta.as_ref().is_ok_and(|m| m.file_type().is_block_device()),
            "block device",
        ),
        _ => Ok(p),
    }
}

async fn claim_path(agent: &Agent, ns: &str, claim: &str) -> Result<PathBuf, ConfigError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(agent.client.clone(), ns);
    let pvc = claims
        .get_opt(claim)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" not found"))?;
    let volume = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("PersistentVolumeClaim \"{claim}\" is not bound"))?;
    let pvs: Api<PersistentVolume> = Api::all(agent.client.clone());
    let pv = pvs.get(&volume).await.map_err(|e| e.to_string())?;
    let spec = pv.spec.unwrap_or_default();
    if let Some(h) = spec.host_path {
        return host_path(&h.path, h.type_.as_deref().unwrap_or(""));
    }
    if let Some(l) = spec.local {
        return Ok(PathBuf::from(l.path));
    }
    Err(format!(
        "persistentvolume \"{volume}\" is neither hostPath nor local, which kox can mount"
    ))
}

/// The files of a configMap or secret volume: every key, or the `items` asked for.
fn pick(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    kind: &str,
    name: &str,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, ConfigError> {
    match items {
        None | Some([]) => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), (v.clone(), default_mode)))
            .collect()),
        Some(items) => items
            .iter()
            .map(|i| {
                let v = data
                    .get(&i.key)
                    .ok_or_else(|| {
                        format!("configmap references non-existent config key: {}", i.key)
                    })
                    .map_err(|e| {
                        if kind == "secret" {
                            format!("references non-existent secret key: {}", i.key)
                        } else {
                            e
                        }
                    })
                    .map_err(|e| format!("{e} ({kind} {name})"))?;
                Ok((
                    i.path.clone(),
                    (v.clone(), i.mode.map_or(default_mode, |m| m as u32)),
                ))
            })
            .collect(),
    }
}

fn downward(
    agent: &Agent,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, ConfigError> {
    let host_ip = agent.config.node_ip.to_string();
    items
        .iter()
        .map(|i| {
            let value = if let Some(f) = &i.field_ref {
                pod_field(pod, &f.field_path, &host_ip)?
            } else if let Some(r) = &i.resource_field_ref {
                let container = pod
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter())
                    .find(|c| Some(c.name.as_str()) == r.container_name.as_deref())
                    .ok_or_else(|| format!("container {:?} not found", r.container_name))?;
                container_resource(
                    agent,
                    container,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                )?
            } else {
                String::new()
            };
            Ok((
                i.path.clone(),
                (
                    value.into_bytes(),
                    i.mode.map_or(default_mode, |m| m as u32),
                ),
            ))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn projected(
    agent: &Agent,
    pod: &Pod,
    sources: &Sources<'_>,
    p: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    default_mode: u32,
    volume: &str,
    tokens: &mut Tokens,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, ConfigError> {
    let mut files = BTreeMap::new();
    for s in p.sources.iter().flatten() {
        if let Some(cm) = &s.config_map {
            match sources.config_map(&cm.name).await? {
                Some(obj) => files.extend(pick(
                    &config_map_data(&obj),
                    cm.items.as_deref(),
                    default_mode,
                    "configmap",
                    &cm.name,
                )?),
                None if cm.optional == Some(true) => {}
                None => return Err(format!("configmap \"{}\" not found", cm.name)),
            }
        }
        if let Some(sec) = &s.secret {
            match sources.secret(&sec.name).await? {
                Some(obj) => files.extend(pick(
                    &secret_data(&obj),
                    sec.items.as_deref(),
                    default_mode,
                    "secret",
                    &sec.name,
                )?),
                None if sec.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", sec.name)),
            }
        }
        if let Some(d) = &s.downward_api {
            files.extend(downward(
                agent,
                pod,
                d.items.as_deref().unwrap_or_default(),
                default_mode,
            )?);
        }
        if let Some(t) = &s.service_account_token {
            let key = format!("{volume}/{}", t.path);
            let current = current_file(&agent.config.pods_dir(), pod, volume, &t.path);
            let due = tokens
                .refresh_at
                .get(&key)
                .is_none_or(|at| Instant::now() >= *at);
            let token = match (due, current) {
                (false, Some(existing)) => existing,
                _ => {
                    let (token, ttl) =
                        request_token(agent, pod, t.audience.as_deref(), t.expiration_seconds)
                            .await?;
                    // As the kubelet: fetch again once 80% of the lifetime (at most 24 h) passed.
                    let refresh = ttl.min(Duration::from_secs(24 * 3600)).mul_f64(0.8);
                    tokens.refresh_at.insert(key, Instant::now() + refresh);
                    token.into_bytes()
                }
            };
            files.insert(t.path.clone(), (token, default_mode));
        }
    }
    Ok(files)
}

fn current_file(pods_dir: &Path, pod: &Pod, volume: &str, file: &str) -> Option<Vec<u8>> {
    let uid = pod.metadata.uid.as_deref()?;
    std::fs::read(pods_dir.join(uid).join("volumes").join(volume).join(file)).ok()
}

/// A bound service-account token for the pod (TokenRequest), and how long it lives.
async fn request_token(
    agent: &Agent,
    pod: &Pod,
    audience: Option<&str>,
    expiration: Option<i64>,
) -> Result<(String, Duration), ConfigError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {
            "audiences": audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
            "expirationSeconds": expiration.unwrap_or(3607),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid},
        },
    });
    let url = format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token");
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let answer: serde_json::Value = agent
        .client
        .request(request)
        .await
        .map_err(|e| format!("failed to fetch token: {e}"))?;
    let token = answer["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ttl = answer["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(3600)
        .max(60) as u64;
    Ok((token, Duration::from_secs(ttl)))
}

/// Writes `files` under `dir` as upstream's AtomicWriter: into a new timestamped folder, then
/// `..data` is switched to it by a rename, and each top-level name links through `..data`.
pub fn write_atomically(
    dir: &Path,
    files: &BTreeMap<String, (Vec<u8>, u32)>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    let current = std::fs::read_link(&data_link).ok();
    if let Some(cur) = &current
        && same_contents(&dir.join(cur), files)
    {
        return Ok(());
    }
    let stamp = format!(
        "..{}",
        jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f")
    );
    let fresh = dir.join(&stamp);
    std::fs::create_dir_all(&fresh)?;
    for (name, (data, mode)) in files {
        let path = fresh.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data_link)?;
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .map(|k| k.split('/').next().unwrap_or(k).to_string())
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_link = !name.starts_with("..") && !tops.contains(&name);
        let old_data = name.starts_with("..") && name != "..data" && name != stamp;
        if stale_link {
            let _ = std::fs::remove_file(entry.path());
        } else if old_data {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

fn same_contents(dir: &Path, files: &BTreeMap<String, (Vec<u8>, u32)>) -> bool {
    let count = walk(dir).len();
    count == files.len()
        && files.iter().all(|(name, (data, mode))| {
            let p = dir.join(name);
            std::fs::read(&p).is_ok_and(|d| d == *data)
                && std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o7777 == *mode)
        })
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Gives a volume's files to `gid` (the pod's `fsGroup`), group-writable where they were
/// owner-writable, as the kubelet's volume ownership change.
fn give_group(path: &Path, gid: u32) {
    let _ = std::os::unix::fs::chown(path, None, Some(gid));
    for p in walk(path) {
        let _ = std::os::unix::fs::lchown(&p, None, Some(gid));
    }
    if let Ok(m) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode(m.permissions().mode() | 0o2070),
        );
    }
}

/// The first disk-backed emptyDir of `pod` that holds more than its `sizeLimit`, as the
/// kubelet's eviction message: `Usage of EmptyDir volume "x" exceeds the limit "1Mi". `.
pub fn empty_dir_over_limit(agent: &Agent, pod: &Pod) -> Option<String> {
    let dir = pod_dir(agent, pod).join("volumes");
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find_map(|v| {
            let e = v
                .empty_dir
                .as_ref()
                .filter(|e| e.medium.as_deref() != Some("Memory"))?;
            let limit = e.size_limit.as_ref()?;
            let bytes = kox_api::quantity::Quantity::parse(&limit.0).ok()?.value();
            let used: u64 = walk(&dir.join(&v.name))
                .iter()
                .filter_map(|p| std::fs::symlink_metadata(p).ok())
                .map(|m| m.len())
                .sum();
            (used as i64 > bytes).then(|| {
                format!(
                    "Usage of EmptyDir volume \"{}\" exceeds the limit \"{}\". ",
                    v.name, limit.0
                )
            })
        })
}

/// Unmounts the pod's memory-backed volumes and removes its folder.
pub fn tear_down(agent: &Agent, pod_uid: &str) {
    let dir = agent.config.pods_dir().join(pod_uid);
    let volumes = dir.join("volumes");
    for e in std::fs::read_dir(&volumes).into_iter().flatten().flatten() {
        if is_mount_point(&e.path()) {
            let _ = std::process::Command::new("umount").arg(e.path()).status();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
