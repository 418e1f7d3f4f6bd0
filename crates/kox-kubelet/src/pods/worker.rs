//! One pod's worker, the kubelet's `syncPod`: each time the pod or its containers change it
//! makes the runtime match the spec — a sandbox, init containers one at a time, then the app
//! containers, restarts by `restartPolicy` with back-off — and reports the status; on
//! deletion it stops the containers within the grace period and removes the pod.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::probes::Probers;
use super::status::{self, ContainerView, Waiting};
use super::volumes::{self, Prepared, Tokens};
use super::{CONTAINER_NAME, Desired, POD_UID, env, spec};
use crate::Agent;
use crate::cri::api;
use crate::events::PodEvents;
use crate::images;

/// How often a quiet pod is synced anyway (volumes follow their ConfigMaps and Secrets).
const RESYNC: Duration = Duration::from_secs(10);

struct PodWorker {
    agent: Arc<Agent>,
    uid: String,
    events: PodEvents,
    backoff: Backoff,
    /// Why containers that are not running wait.
    waiting: HashMap<String, Waiting>,
    /// Termination messages of exited containers, by container id.
    messages: HashMap<String, String>,
    volumes: Option<Prepared>,
    tokens: Tokens,
    last_status: Option<Value>,
    /// The pod reached Succeeded or Failed: nothing more runs.
    finished: bool,
    /// The earliest moment something waits for (a back-off ending).
    wake_at: Option<Instant>,
    probers: Probers,
    /// Wakes the worker (the runtime relist, a probe's verdict).
    wake: Arc<Notify>,
}

/// What the runtime holds for the pod.
#[derive(Default)]
struct Observed {
    sandbox: Option<api::PodSandboxStatus>,
    sandboxes: u32,
    /// Instances by container name, newest first.
    containers: HashMap<String, Vec<api::ContainerStatus>>,
}

impl Observed {
    fn sandbox_ready(&self) -> Option<&api::PodSandboxStatus> {
        self.sandbox
            .as_ref()
            .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
    }
    fn pod_ip(&self) -> String {
        self.sandbox_ready()
            .and_then(|s| s.network.as_ref())
            .map(|n| n.ip.clone())
            .unwrap_or_default()
    }
    fn latest(&self, name: &str) -> Option<&api::ContainerStatus> {
        self.containers.get(name).and_then(|v| v.first())
    }
}

const RUNNING: i32 = api::ContainerState::ContainerRunning as i32;
const EXITED: i32 = api::ContainerState::ContainerExited as i32;

/// Runs the worker of one pod until the pod is gone (or the agent stops).
pub async fn run(
    agent: Arc<Agent>,
    mut desired: watch::Receiver<Desired>,
    wake: Arc<Notify>,
    evict: super::Evict,
    stop: CancellationToken,
) {
    let first = match &*desired.borrow() {
        Desired::Pod(p) => (**p).clone(),
        Desired::Gone => return,
    };
    let mut w = PodWorker {
        events: PodEvents::new(agent.client.clone(), &agent.config.node_name, &first),
        uid: first.metadata.uid.clone().unwrap_or_default(),
        agent,
        backoff: Backoff::default(),
        waiting: HashMap::new(),
        messages: HashMap::new(),
        volumes: None,
        tokens: Tokens::default(),
        last_status: None,
        finished: false,
        wake_at: None,
        probers: Probers::default(),
        wake: wake.clone(),
    };
    let mut last_pod = first;
    let mut volumes_refreshed = Instant::now();
    loop {
        let current = desired.borrow_and_update().clone();
        let eviction = evict
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .filter(|_| !w.finished);
        match current {
            Desired::Gone => {
                w.terminate(&last_pod, Some(0)).await;
                return;
            }
            Desired::Pod(pod) if pod.metadata.deletion_timestamp.is_some() => {
                let grace = pod.metadata.deletion_grace_period_seconds;
                w.terminate(&pod, grace).await;
                w.delete(&pod).await;
                return;
            }
            Desired::Pod(pod) if let Some(message) = &eviction => {
                if let Err(e) = w.evict(&pod, message).await {
                    tracing::warn!(pod = %key(&pod), "evicting pod: {e:#}");
                }
                last_pod = *pod;
            }
            Desired::Pod(pod) => {
                let due_volumes = volumes_refreshed.elapsed() >= RESYNC;
                if due_volumes {
                    volumes_refreshed = Instant::now();
                }
                if let Err(e) = w.sync(&pod, due_volumes).await {
                    tracing::warn!(pod = %key(&pod), "syncing pod: {e:#}");
                }
                last_pod = *pod;
            }
        }
        let sleep = w.wake_at.map_or(RESYNC, |at| {
            at.saturating_duration_since(Instant::now()).min(RESYNC)
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = desired.changed() => if changed.is_err() { return },
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether a container that exited with `code` runs again under the pod's policy.
fn restarts(policy: &str, code: i32) -> bool {
    policy == "Always" || (policy == "OnFailure" && code != 0)
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// An `Instant` for a CRI timestamp in the past.
fn instant_of(nanos: i64) -> Instant {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let ago = Duration::from_nanos(now_ns.saturating_sub(nanos).max(0) as u64);
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

impl PodWorker {
    async fn observe(&self) -> anyhow::Result<Observed> {
        let mut runtime = self.agent.cri.runtime.clone();
        let labels = HashMap::from([(POD_UID.to_string(), self.uid.clone())]);
        let sandboxes = runtime
            .list_pod_sandbox(api::ListPodSandboxRequest {
                filter: Some(api::PodSandboxFilter {
                    label_selector: labels.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .items;
        let mut obs = Observed {
            sandboxes: sandboxes.len() as u32,
            ..Default::default()
        };
        if let Some(newest) = sandboxes.iter().max_by_key(|s| s.created_at) {
            obs.sandbox = runtime
                .pod_sandbox_status(api::PodSandboxStatusRequest {
                    pod_sandbox_id: newest.id.clone(),
                    verbose: false,
                })
                .await?
                .into_inner()
                .status;
        }
        let containers = runtime
            .list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    label_selector: labels,
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .containers;
        for c in containers {
            let status = runtime
                .container_status(api::ContainerStatusRequest {
                    container_id: c.id.clone(),
                    verbose: false,
                })
                .await?
                .into_inner()
                .status;
            if let Some(s) = status {
                let name = c.labels.get(CONTAINER_NAME).cloned().unwrap_or_default();
                obs.containers.entry(name).or_default().push(s);
            }
        }
        for list in obs.containers.values_mut() {
            list.sort_by_key(|s| {
                std::cmp::Reverse((s.metadata.as_ref().map_or(0, |m| m.attempt), s.created_at))
            });
        }
        Ok(obs)
    }

    async fn sync(&mut self, pod: &Pod, refresh_volumes: bool) -> anyhow::Result<()> {
        let reported_done = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if self.finished || reported_done {
            self.finished = true;
            return Ok(());
        }
        self.wake_at = None;
        let mut obs = self.observe().await?;
        if let Some(message) = self.refused(pod, &obs) {
            return self.report_failed(pod, &obs, "Evicted", &message).await;
        }
        if let Some(reason) = self.past_deadline(pod) {
            self.kill_containers(pod, &obs, Some(0)).await;
            return self
                .report_failed(pod, &obs, "DeadlineExceeded", &reason)
                .await;
        }
        if obs.sandbox_ready().is_none() && !self.all_done(pod, &obs) {
            if !self.start_sandbox(pod, &obs).await {
                return self.report(pod, &obs).await;
            }
            obs = self.observe().await?;
        } else if refresh_volumes
            && obs.sandbox_ready().is_some()
            && let Ok(v) = volumes::prepare(&self.agent, pod, &mut self.tokens).await
        {
            self.volumes = Some(v);
        }
        if self.restart_unhealthy(pod, &obs).await {
            obs = self.observe().await?;
        }
        if obs.sandbox_ready().is_some() && self.run_containers(pod, &obs).await {
            obs = self.observe().await?;
        }
        self.follow_probes(pod, &obs).await;
        self.report(pod, &obs).await
    }

    /// Starts probers for running containers, stops those of containers gone, and records
    /// probe failures as `Unhealthy` events.
    async fn follow_probes(&mut self, pod: &Pod, obs: &Observed) {
        let spec = pod.spec.clone().unwrap_or_default();
        let pod_ip = obs.pod_ip();
        let mut running = Vec::new();
        let mut fields = HashMap::new();
        let probed = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c))
            .map(|c| (c, true))
            .chain(spec.containers.iter().map(|c| (c, false)));
        for (c, init) in probed {
            if let Some(s) = obs.latest(&c.name).filter(|s| s.state == RUNNING) {
                self.probers
                    .ensure(&self.agent, c, &s.id, &pod_ip, &self.wake);
                running.push(s.id.clone());
                fields.insert(s.id.clone(), field_path(c, init));
            }
        }
        self.probers
            .retain(&running.iter().map(String::as_str).collect::<Vec<_>>());
        for (id, message) in self.probers.drain_unhealthy() {
            let field = fields.get(&id).cloned();
            self.events
                .record(field.as_deref(), "Warning", "Unhealthy", &message);
        }
    }

    /// Stops containers whose liveness (or startup) probe failed; their restart policy and
    /// back-off then decide whether they run again.
    async fn restart_unhealthy(&mut self, pod: &Pod, obs: &Observed) -> bool {
        let spec = pod.spec.clone().unwrap_or_default();
        let grace = spec.termination_grace_period_seconds.unwrap_or(30).max(0);
        let mut stopped = false;
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let Some(s) = obs.latest(&c.name).filter(|s| s.state == RUNNING) else {
                continue;
            };
            let Some((kind, _)) = self.probers.peek(&s.id).and_then(|r| r.failed) else {
                continue;
            };
            let message = format!(
                "Container {} failed {} probe, will be restarted",
                c.name,
                kind.to_lowercase()
            );
            self.events
                .record(Some(&field_path(c, false)), "Normal", "Killing", &message);
            let deadline = Instant::now() + Duration::from_secs(grace as u64);
            super::hooks::stop_gracefully(&self.agent, c, &s.id, &obs.pod_ip(), deadline).await;
            stopped = true;
        }
        stopped
    }

    /// Evicts the pod under node pressure: its containers stop at once and it fails with
    /// reason `Evicted` (the object stays, as upstream's evicted pods do).
    async fn evict(&mut self, pod: &Pod, message: &str) -> anyhow::Result<()> {
        let obs = self.observe().await?;
        self.kill_containers(pod, &obs, Some(0)).await;
        let obs = self.observe().await?;
        self.report_failed(pod, &obs, "Evicted", message).await
    }

    /// Why the node refuses a pod it has not started (node pressure), as upstream's admission.
    fn refused(&self, pod: &Pod, obs: &Observed) -> Option<String> {
        let never_started = obs.sandbox.is_none() && obs.containers.is_empty();
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !never_started || running || is_static(pod) {
            return None;
        }
        self.agent.pressure.refuses(is_best_effort(pod))
    }

    /// `activeDeadlineSeconds` passed since the pod started.
    fn past_deadline(&self, pod: &Pod) -> Option<String> {
        let deadline = pod.spec.as_ref()?.active_deadline_seconds?;
        let started = pod.status.as_ref()?.start_time.as_ref()?.0;
        let elapsed = jiff::Timestamp::now().duration_since(started).as_secs();
        (elapsed >= deadline)
            .then(|| "Pod was active on the node longer than the specified deadline".into())
    }

    /// Whether every app container ran and will not run again (no new sandbox is needed).
    fn all_done(&self, pod: &Pod, obs: &Observed) -> bool {
        let policy = restart_policy(pod);
        let spec = pod.spec.as_ref();
        let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
        !containers.is_empty()
            && containers.iter().all(|c| {
                obs.latest(&c.name)
                    .is_some_and(|s| s.state == EXITED && !restarts(policy, s.exit_code))
            })
    }

    async fn start_sandbox(&mut self, pod: &Pod, obs: &Observed) -> bool {
        let prepared = match volumes::prepare(&self.agent, pod, &mut self.tokens).await {
            Ok(v) => v,
            Err(message) => {
                self.events.record(None, "Warning", "FailedMount", &message);
                return false;
            }
        };
        self.volumes = Some(prepared);
        let log_dir = self.log_dir(pod);
        let _ = std::fs::create_dir_all(&log_dir);
        if let Some(old) = &obs.sandbox {
            // A sandbox that died takes its containers with it: they start again in the new one.
            self.agent.cri.stop_sandbox(&old.id).await;
            self.events.record(
                None,
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            );
        }
        let config = spec::sandbox_config(pod, obs.sandboxes, &log_dir);
        let started = Instant::now();
        let request = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        match self
            .agent
            .cri
            .runtime
            .clone()
            .run_pod_sandbox(request)
            .await
        {
            Ok(_) => {
                tracing::debug!(pod = %key(pod), took = ?started.elapsed(), "sandbox running");
                true
            }
            Err(e) => {
                let message = format!("Failed to create pod sandbox: {}", e.message());
                self.events
                    .record(None, "Warning", "FailedCreatePodSandBox", &message);
                self.wake_at = Some(Instant::now() + Duration::from_secs(5));
                false
            }
        }
    }

    fn log_dir(&self, pod: &Pod) -> PathBuf {
        volumes::pod_dir(&self.agent, pod).join("logs")
    }

    /// Init containers in order, then the app containers; true when something was started.
    async fn run_containers(&mut self, pod: &Pod, obs: &Observed) -> bool {
        let Some(spec) = pod.spec.as_ref() else {
            return false;
        };
        let policy = restart_policy(pod);
        for c in spec.init_containers.iter().flatten() {
            let latest = obs.latest(&c.name);
            if is_sidecar(c) {
                match latest {
                    Some(s) if s.state == RUNNING => continue,
                    _ => return self.start_or_back_off(pod, c, obs, true).await,
                }
            }
            match latest {
                Some(s) if s.state == EXITED && s.exit_code == 0 => continue,
                Some(s) if s.state == EXITED && policy == "Never" => return false,
                Some(s) if s.state != EXITED => return false,
                _ => return self.start_or_back_off(pod, c, obs, true).await,
            }
        }
        let mut started = false;
        for c in &spec.containers {
            let needs_start = match obs.latest(&c.name) {
                None => true,
                Some(s) if s.state == EXITED => restarts(policy, s.exit_code),
                Some(s) if s.state == api::ContainerState::ContainerCreated as i32 => true,
                Some(_) => {
                    if obs.latest(&c.name).is_some_and(|s| {
                        instant_of(s.started_at).elapsed() > super::backoff::RESET_AFTER
                    }) {
                        self.backoff.reset(&c.name);
                    }
                    false
                }
            };
            if needs_start {
                started |= self.start_or_back_off(pod, c, obs, false).await;
            }
        }
        // Ephemeral containers run once, never restarted (`kubectl debug`).
        for (c, _) in spec::ephemeral_containers(pod) {
            if obs.latest(&c.name).is_none() {
                started |= self.start_or_back_off(pod, &c, obs, false).await;
            }
        }
        started
    }

    /// Starts `c` unless its last instance failed too recently (then: CrashLoopBackOff).
    async fn start_or_back_off(
        &mut self,
        pod: &Pod,
        c: &Container,
        obs: &Observed,
        init: bool,
    ) -> bool {
        if let Some(last) = obs.latest(&c.name).filter(|s| s.state == EXITED) {
            if let Some(left) = self.backoff.waiting(&c.name, instant_of(last.finished_at)) {
                let delay = self.backoff.delay(&c.name);
                let message = format!(
                    "back-off {} restarting failed container={} pod={}_{}({})",
                    go_duration(delay),
                    c.name,
                    pod.metadata.name.as_deref().unwrap_or(""),
                    pod.metadata.namespace.as_deref().unwrap_or(""),
                    self.uid
                );
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: message.clone(),
                    },
                );
                self.events.record(
                    Some(&field_path(c, init)),
                    "Warning",
                    "BackOff",
                    "Back-off restarting failed container",
                );
                self.wake_at = Some(
                    self.wake_at
                        .map_or(Instant::now() + left, |w| w.min(Instant::now() + left)),
                );
                return false;
            }
            self.backoff.next(&c.name);
        }
        let attempt = obs
            .latest(&c.name)
            .map_or(0, |s| s.metadata.as_ref().map_or(0, |m| m.attempt) + 1);
        match self.start_container(pod, c, obs, attempt, init).await {
            Ok(()) => {
                self.waiting.remove(&c.name);
                true
            }
            Err(w) => {
                self.events.record(
                    Some(&field_path(c, init)),
                    "Warning",
                    "Failed",
                    &format!("Error: {}", w.reason),
                );
                if w.reason != "ErrImagePull" && w.reason != "ImagePullBackOff" {
                    self.backoff.next(&c.name);
                }
                self.wake_at =
                    Some(Instant::now() + self.backoff.delay(&c.name).min(Duration::from_secs(10)));
                self.waiting.insert(c.name.clone(), w);
                false
            }
        }
    }

    async fn start_container(
        &mut self,
        pod: &Pod,
        c: &Container,
        obs: &Observed,
        attempt: u32,
        init: bool,
    ) -> Result<(), Waiting> {
        let field = field_path(c, init);
        let image = c.image.clone().unwrap_or_default();
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        let mut pull_events = Vec::new();
        let pull_key = format!("pull/{}", c.name);
        if let Some(left) = self.backoff.waiting(&pull_key, Instant::now()) {
            let _ = left;
            return Err(Waiting {
                reason: "ImagePullBackOff".into(),
                message: format!("Back-off pulling image \"{image}\""),
            });
        }
        let auth = self.pull_auth(pod, &image).await;
        let pulled = images::ensure_image(&self.agent.cri, &image, &policy, auth, |t, r, m| {
            pull_events.push((t.to_string(), r.to_string(), m))
        })
        .await;
        for (t, r, m) in pull_events {
            self.events.record(Some(&field), &t, &r, &m);
        }
        let image_ref = match pulled {
            Ok(r) => {
                self.backoff.reset(&pull_key);
                r
            }
            Err(f) => {
                // Only a pull that failed backs off; a missing image under `Never` stays so.
                if f.reason == "ErrImagePull" {
                    self.backoff.next(&pull_key);
                }
                return Err(Waiting {
                    reason: f.reason.into(),
                    message: f.message,
                });
            }
        };
        let config = self
            .container_config(pod, c, obs, attempt, image_ref)
            .await
            .map_err(|message| Waiting {
                reason: "CreateContainerConfigError".into(),
                message,
            })?;
        let sandbox = obs.sandbox_ready().cloned().unwrap_or_default();
        let sandbox_config = spec::sandbox_config(
            pod,
            sandbox.metadata.as_ref().map_or(0, |m| m.attempt),
            &self.log_dir(pod),
        );
        let mut runtime = self.agent.cri.runtime.clone();
        let started = Instant::now();
        let created = runtime
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox.id.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await
            .map_err(|e| Waiting {
                reason: "CreateContainerError".into(),
                message: e.message().to_string(),
            })?
            .into_inner()
            .container_id;
        self.events.record(
            Some(&field),
            "Normal",
            "Created",
            &format!("Created container {}", c.name),
        );
        if let Err(e) = runtime
            .start_container(api::StartContainerRequest {
                container_id: created.clone(),
            })
            .await
        {
            return Err(Waiting {
                reason: "RunContainerError".into(),
                message: e.message().to_string(),
            });
        }
        tracing::debug!(pod = %key(pod), container = %c.name, took = ?started.elapsed(), "container created and started");
        if let Err(message) =
            super::hooks::post_start(&self.agent, c, &created, &obs.pod_ip()).await
        {
            // As the kubelet: a failed postStart hook kills the container, which then restarts
            // by its policy.
            self.events
                .record(Some(&field), "Warning", "FailedPostStartHook", &message);
            let grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30);
            let request = api::StopContainerRequest {
                container_id: created,
                timeout: grace.max(0),
            };
            let _ = runtime.stop_container(request).await;
            return Err(Waiting {
                reason: "PostStartHookError".into(),
                message,
            });
        }
        self.events.record(
            Some(&field),
            "Normal",
            "Started",
            &format!("Started container {}", c.name),
        );
        Ok(())
    }

    /// The pod's `/etc/hosts`, written by the agent as the kubelet's managed hosts file (the
    /// pod's own name and FQDN, `hostAliases`); none with host networking.
    fn hosts_file(&self, pod: &Pod, pod_ip: &str) -> Result<Option<PathBuf>, String> {
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.host_network.unwrap_or(false) || pod_ip.is_empty() {
            return Ok(None);
        }
        let path = volumes::pod_dir(&self.agent, pod).join("etc-hosts");
        std::fs::write(&path, spec::hosts_file(pod, pod_ip))
            .map_err(|e| format!("writing /etc/hosts: {e}"))?;
        let _ =
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        Ok(Some(path))
    }

    /// Registry credentials for `image` from the pod's `imagePullSecrets`.
    async fn pull_auth(&self, pod: &Pod, image: &str) -> Vec<api::AuthConfig> {
        let sources = env::Sources {
            agent: &self.agent,
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        };
        let mut secrets = Vec::new();
        for r in pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
        {
            match sources.secret(&r.name).await {
                Ok(Some(s)) => secrets.push(env::secret_data(&s)),
                Ok(None) => {
                    tracing::info!(secret = %r.name, "image pull secret not found; pulling without it")
                }
                Err(e) => tracing::info!("{e}"),
            }
        }
        images::pull_auth(image, &secrets)
    }

    async fn container_config(
        &self,
        pod: &Pod,
        c: &Container,
        obs: &Observed,
        attempt: u32,
        image: String,
    ) -> Result<api::ContainerConfig, String> {
        let env = env::container_env(&self.agent, pod, c, &obs.pod_ip()).await?;
        let volumes = self.volumes.clone().unwrap_or_default();
        let term_dir = volumes::pod_dir(&self.agent, pod)
            .join("containers")
            .join(&c.name);
        std::fs::create_dir_all(&term_dir).map_err(|e| e.to_string())?;
        let term_file = term_dir.join(format!("termination-{attempt}"));
        std::fs::write(&term_file, b"").map_err(|e| e.to_string())?;
        let _ = std::fs::set_permissions(
            &term_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        );
        let mut mounts = spec::mounts(c, &volumes, &term_file)?;
        if let Some(hosts) = self.hosts_file(pod, &obs.pod_ip())? {
            mounts.push(api::Mount {
                container_path: "/etc/hosts".into(),
                host_path: hosts.display().to_string(),
                ..Default::default()
            });
        }
        let mut config = spec::container_config(
            &self.agent,
            spec::ContainerInputs {
                pod,
                container: c,
                attempt,
                image,
                env,
                mounts,
            },
        );
        let target = spec::ephemeral_containers(pod)
            .into_iter()
            .find(|(e, _)| e.name == c.name)
            .and_then(|(_, target)| target);
        if let Some(target) = target {
            let running = obs
                .latest(&target)
                .filter(|s| s.state == RUNNING)
                .ok_or_else(|| format!("the target container {target:?} is not running"))?;
            spec::share_processes_with(&mut config, &running.id);
        }
        Ok(config)
    }

    /// The termination message of an exited container: its termination file, or (with
    /// `FallbackToLogsOnError` after a failure) the end of its log.
    fn termination_message(&mut self, pod: &Pod, c: &Container, s: &api::ContainerStatus) {
        if s.state != EXITED || self.messages.contains_key(&s.id) {
            return;
        }
        let attempt = s.metadata.as_ref().map_or(0, |m| m.attempt);
        let dir = volumes::pod_dir(&self.agent, pod);
        let mut message = std::fs::read(
            dir.join("containers")
                .join(&c.name)
                .join(format!("termination-{attempt}")),
        )
        .map(|m| String::from_utf8_lossy(&m[..m.len().min(4096)]).into_owned())
        .unwrap_or_default();
        let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        if message.is_empty() && fallback && s.exit_code != 0 {
            message = log_tail(
                &self
                    .log_dir(pod)
                    .join(&c.name)
                    .join(format!("{attempt}.log")),
                80,
                2048,
            );
        }
        self.messages.insert(s.id.clone(), message);
    }

    async fn report(&mut self, pod: &Pod, obs: &Observed) -> anyhow::Result<()> {
        let status = self.compute_status(pod, obs);
        self.write_status(pod, status).await
    }

    async fn report_failed(
        &mut self,
        pod: &Pod,
        obs: &Observed,
        reason: &str,
        message: &str,
    ) -> anyhow::Result<()> {
        let mut status = self.compute_status(pod, obs);
        status["phase"] = json!("Failed");
        status["reason"] = json!(reason);
        status["message"] = json!(message);
        let type_ = if reason == "Evicted" {
            "Warning"
        } else {
            "Normal"
        };
        self.events.record(None, type_, reason, message);
        self.write_status(pod, status).await
    }

    fn compute_status(&mut self, pod: &Pod, obs: &Observed) -> Value {
        let now = crate::now_rfc3339();
        let spec = pod.spec.clone().unwrap_or_default();
        let runtime = self.agent.runtime_version.0.clone();
        let policy = restart_policy(pod).to_string();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            for s in obs.containers.get(&c.name).into_iter().flatten().take(2) {
                self.termination_message(pod, c, s);
            }
        }
        let view = |c: &Container, waiting: Option<&Waiting>| {
            status::container_status(&ContainerView {
                spec: c,
                instances: obs
                    .containers
                    .get(&c.name)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                waiting,
                runtime: &runtime,
                messages: &self.messages,
                probed: obs
                    .latest(&c.name)
                    .and_then(|s| self.probers.peek(&s.id))
                    .map_or((true, c.readiness_probe.is_none()), |r| {
                        (r.started, r.ready)
                    }),
            })
        };
        let init_statuses: Vec<Value> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| view(c, self.waiting.get(&c.name)))
            .collect();
        let initialized = spec.init_containers.iter().flatten().all(|c| {
            obs.latest(&c.name).is_some_and(|s| {
                if is_sidecar(c) {
                    s.state == RUNNING || s.state == EXITED
                } else {
                    s.state == EXITED && s.exit_code == 0
                }
            })
        });
        let init_failed = policy == "Never"
            && spec.init_containers.iter().flatten().any(|c| {
                !is_sidecar(c)
                    && obs
                        .latest(&c.name)
                        .is_some_and(|s| s.state == EXITED && s.exit_code != 0)
            });
        let pod_initializing = Waiting {
            reason: "PodInitializing".into(),
            message: String::new(),
        };
        let app_statuses: Vec<Value> = spec
            .containers
            .iter()
            .map(|c| {
                let mut w = self.waiting.get(&c.name);
                if w.is_none() && !initialized {
                    w = Some(&pod_initializing);
                }
                view(c, w)
            })
            .collect();
        let tally = status::tally(&app_statuses);
        let phase = status::phase(&policy, initialized, init_failed, &tally);
        let done = matches!(phase, "Succeeded" | "Failed");
        let unready = status::not_ready(&app_statuses);
        let containers_ready = unready.is_empty();
        let list = format!("[{}]", unready.join(" "));
        let incomplete: Vec<String> = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| {
                !obs.latest(&c.name)
                    .is_some_and(|s| s.state == EXITED && s.exit_code == 0)
                    && !is_sidecar(c)
            })
            .map(|c| c.name.clone())
            .collect();
        let gates_ok = self.readiness_gates_ok(pod);
        let (ready, ready_reason) = if done {
            (false, Some("PodCompleted"))
        } else if !containers_ready {
            (false, Some("ContainersNotReady"))
        } else if !gates_ok {
            (false, Some("ReadinessGatesNotReady"))
        } else {
            (true, None)
        };
        let sandbox_ready = obs.sandbox_ready().is_some();
        let mut conditions = vec![
            status::condition(
                pod,
                "PodReadyToStartContainers",
                sandbox_ready,
                None,
                None,
                &now,
            ),
            if initialized || done && incomplete.is_empty() {
                status::condition(
                    pod,
                    "Initialized",
                    true,
                    if done { Some("PodCompleted") } else { None },
                    None,
                    &now,
                )
            } else {
                let m = format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                );
                status::condition(
                    pod,
                    "Initialized",
                    false,
                    Some("ContainersNotInitialized"),
                    Some(&m),
                    &now,
                )
            },
            status::condition(
                pod,
                "Ready",
                ready,
                ready_reason,
                (!ready && !done && !containers_ready)
                    .then(|| format!("containers with unready status: {list}"))
                    .as_deref(),
                &now,
            ),
            status::condition(
                pod,
                "ContainersReady",
                containers_ready && !done,
                if done {
                    Some("PodCompleted")
                } else if containers_ready {
                    None
                } else {
                    Some("ContainersNotReady")
                },
                (!containers_ready && !done)
                    .then(|| format!("containers with unready status: {list}"))
                    .as_deref(),
                &now,
            ),
        ];
        let ours = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
        ];
        for c in pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
        {
            if !ours.contains(&c.type_.as_str()) {
                conditions.push(serde_json::to_value(c).unwrap_or_default());
            }
        }
        let pod_ip = obs.pod_ip();
        let host_ip = self.agent.config.node_ip.to_string();
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| now.clone());
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "startTime": start_time,
            "containerStatuses": app_statuses,
            "qosClass": pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        });
        if !pod_ip.is_empty() {
            status["podIP"] = json!(pod_ip);
            status["podIPs"] = json!([{"ip": pod_ip}]);
        } else if pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
        {
            status["podIP"] = json!(host_ip);
            status["podIPs"] = json!([{"ip": host_ip}]);
        }
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
        }
        let ephemeral: Vec<Value> = spec::ephemeral_containers(pod)
            .iter()
            .map(|(c, _)| {
                // Ephemeral containers are never ready: no probe, no traffic.
                let mut s = view(c, self.waiting.get(&c.name));
                s["ready"] = json!(false);
                s
            })
            .collect();
        if !ephemeral.is_empty() {
            status["ephemeralContainerStatuses"] = json!(ephemeral);
        }
        status
    }

    fn readiness_gates_ok(&self, pod: &Pod) -> bool {
        let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.as_ref());
        gates.into_iter().flatten().all(|g| {
            pod.status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| c.type_ == g.condition_type && c.status == "True")
        })
    }

    async fn write_status(&mut self, pod: &Pod, status: Value) -> anyhow::Result<()> {
        // A static pod's mirror may have been deleted and made again: its status is always sent.
        if self.last_status.as_ref() == Some(&status) && !is_static(pod) {
            return Ok(());
        }
        let done = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
        let api: Api<Pod> = Api::namespaced(
            self.agent.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or(""),
        );
        // A static pod's status goes to its mirror pod, whose uid is not the pod's.
        let patch = if is_static(pod) {
            json!({"status": status})
        } else {
            json!({"metadata": {"uid": self.uid}, "status": status})
        };
        // Strategic, as the kubelet patches: conditions merge by type, so a condition another
        // writer set (a readiness gate's) after the pod this worker last saw is kept.
        api.patch_status(
            pod.metadata.name.as_deref().unwrap_or(""),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
        self.last_status = Some(status);
        if done {
            self.finished = true;
            self.stop_sandbox().await;
        }
        Ok(())
    }

    /// A finished pod keeps its containers (their logs and statuses) but not its sandbox.
    async fn stop_sandbox(&self) {
        let Ok(obs) = self.observe().await else {
            return;
        };
        if let Some(s) = obs.sandbox_ready() {
            self.agent.cri.stop_sandbox(&s.id).await;
        }
    }

    /// Stops every running container: preStop hooks first, then SIGTERM and, after the
    /// grace period, SIGKILL (the runtime's `StopContainer` with a timeout).
    async fn kill_containers(&mut self, pod: &Pod, obs: &Observed, grace: Option<i64>) {
        let spec = pod.spec.clone().unwrap_or_default();
        let grace = grace
            .or(spec.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0);
        let deadline = Instant::now() + Duration::from_secs(grace as u64);
        let mut stops = Vec::new();
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let Some(s) = obs.latest(&c.name).filter(|s| s.state == RUNNING) else {
                continue;
            };
            let agent = self.agent.clone();
            let c = c.clone();
            let id = s.id.clone();
            let pod_ip = obs.pod_ip();
            self.events.record(
                Some(&field_path(&c, false)),
                "Normal",
                "Killing",
                &format!("Stopping container {}", c.name),
            );
            stops.push(tokio::spawn(async move {
                super::hooks::stop_gracefully(&agent, &c, &id, &pod_ip, deadline).await;
            }));
        }
        for s in stops {
            let _ = s.await;
        }
    }

    /// Stops the pod and removes it from the runtime and the node.
    async fn terminate(&mut self, pod: &Pod, grace: Option<i64>) {
        if let Ok(obs) = self.observe().await {
            self.kill_containers(pod, &obs, grace).await;
        }
        remove_from_runtime(&self.agent, &self.uid).await;
        volumes::tear_down(&self.agent, &self.uid);
    }

    /// The kubelet's part of graceful deletion: once the containers are gone, the API object
    /// is deleted for good (grace 0, only this very pod).
    async fn delete(&self, pod: &Pod) {
        let api: Api<Pod> = Api::namespaced(
            self.agent.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or(""),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(e) = api
            .delete(pod.metadata.name.as_deref().unwrap_or(""), &params)
            .await
        {
            tracing::debug!(pod = %key(pod), "deleting the pod: {e}");
        }
    }
}

/// A pod with no resource requests or limits at all (QoS class BestEffort).
fn is_best_effort(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .all(|c| {
            c.resources.as_ref().is_none_or(|r| {
                r.requests.as_ref().is_none_or(|m| m.is_empty())
                    && r.limits.as_ref().is_none_or(|m| m.is_empty())
            })
        })
}

/// Whether the pod comes from a manifest file (a static pod).
pub fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(super::static_pods::CONFIG_SOURCE))
        .is_some_and(|s| s == "file")
}

fn field_path(c: &Container, init: bool) -> String {
    if init {
        format!("spec.initContainers{{{}}}", c.name)
    } else {
        format!("spec.containers{{{}}}", c.name)
    }
}

/// `10s`, `1m20s`, `5m0s`, as Go prints durations.
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// The last `lines` lines (at most `bytes`) of a CRI log file, without the CRI prefixes.
fn log_tail(path: &std::path::Path, lines: usize, bytes: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let content: Vec<&str> = text
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect();
    let tail = content[content.len().saturating_sub(lines)..].join("\n");
    let start = tail.len().saturating_sub(bytes);
    let start = (start..=tail.len())
        .find(|i| tail.is_char_boundary(*i))
        .unwrap_or(tail.len());
    tail[start..].to_string()
}

/// Stops and removes every sandbox of the pod `uid` (their containers go with them).
pub async fn remove_from_runtime(agent: &Agent, uid: &str) {
    let mut runtime = agent.cri.runtime.clone();
    let labels = HashMap::from([(POD_UID.to_string(), uid.to_string())]);
    let Ok(list) = runtime
        .list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: labels,
                ..Default::default()
            }),
        })
        .await
    else {
        return;
    };
    for s in list.into_inner().items {
        agent.cri.remove_sandbox(&s.id).await;
    }
}

/// Removes what the runtime runs for pods that are no longer bound to this node (deleted
/// while the agent was down).
pub async fn remove_orphans(agent: Arc<Agent>, present: Vec<String>) {
    let Ok(list) = agent
        .cri
        .runtime
        .clone()
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
    else {
        return;
    };
    let mut orphans: Vec<String> = list
        .into_inner()
        .items
        .into_iter()
        .filter_map(|s| s.labels.get(POD_UID).cloned())
        .filter(|uid| !present.contains(uid))
        .collect();
    orphans.sort();
    orphans.dedup();
    for uid in orphans {
        tracing::info!(
            uid,
            "removing the containers of a pod no longer on this node"
        );
        remove_from_runtime(&agent, &uid).await;
        volumes::tear_down(&agent, &uid);
    }
}
