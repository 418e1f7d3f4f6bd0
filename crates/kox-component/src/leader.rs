//! Lease-based leader election (upstream's `leaderelection` over a `coordination.k8s.io`
//! Lease): the leader renews the lease every retry period; a candidate takes the lease once
//! its holder has not renewed it for the lease duration; a leader that cannot renew within
//! the renew deadline (each attempt is cut off at that deadline) steps down at once. Upstream's
//! components exit when they lose the lease; kox's stop acting, stand by and campaign again.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Timing and identity of an elector.
#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    /// Namespace of the lease (default `kube-system`).
    pub namespace: String,
    /// Name of the lease, the component's name (`kube-scheduler`, `kube-controller-manager`).
    pub name: String,
    /// This candidate's identity, unique per process.
    pub identity: String,
    /// How long a lease is valid after its last renewal (default 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before stepping down (default 10 s).
    pub renew_deadline: Duration,
    /// Pause between attempts (default 2 s).
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// Upstream's defaults for the lease `kube-system/<name>`: 15 s lease, 10 s renew deadline,
    /// 2 s retry period, and an identity of the host name and a random suffix.
    pub fn for_lease(name: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "kox".to_string());
        LeaderElectionConfig {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: format!("{host}_{}", uuid::Uuid::new_v4()),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Runs the election until `stop`; `leading` is `true` exactly while this process holds the
/// lease.
pub async fn run(
    leases: Api<Lease>,
    config: LeaderElectionConfig,
    leading: watch::Sender<bool>,
    stop: CancellationToken,
) {
    // The holder record last seen and when it was first seen locally: expiry is judged on
    // the local clock, as upstream, so clock skew between candidates does not matter.
    let mut observed: Option<(LeaseSpec, Instant)> = None;
    let mut last_renew = Instant::now();
    loop {
        let is_leader = *leading.borrow();
        // As upstream's renew, bounded by the renew deadline: a request that hangs (an API
        // server that stopped answering) must not keep a leader acting past the deadline, when
        // a standby may already have taken the lease over.
        let budget = if is_leader {
            config
                .renew_deadline
                .saturating_sub(last_renew.elapsed())
                .max(Duration::from_millis(100))
        } else {
            config.renew_deadline
        };
        let ok = tokio::time::timeout(
            budget,
            try_acquire_or_renew(&leases, &config, &mut observed),
        )
        .await
        .unwrap_or(false);
        match (ok, is_leader) {
            (true, false) => {
                tracing::info!(identity = %config.identity, lease = %config.name, "became leader");
                leading.send_replace(true);
                last_renew = Instant::now();
            }
            (true, true) => last_renew = Instant::now(),
            (false, true)
                if last_renew.elapsed() >= config.renew_deadline
                    || held_by_other(&observed, &config) =>
            {
                tracing::warn!(identity = %config.identity, lease = %config.name, "lost the lease; standing by");
                leading.send_replace(false);
            }
            _ => {}
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(config.retry_period) => {}
        }
    }
    if *leading.borrow() {
        leading.send_replace(false);
        // Release the lease so a standby takes over without waiting for it to expire.
        if let Ok(mut lease) = leases.get(&config.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(config.identity.as_str())
        {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now());
            let _ = leases
                .replace(&config.name, &PostParams::default(), &lease)
                .await;
        }
    }
}

fn held_by_other(observed: &Option<(LeaseSpec, Instant)>, config: &LeaderElectionConfig) -> bool {
    observed.as_ref().is_some_and(|(spec, _)| {
        spec.holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty() && h != config.identity)
    })
}

/// One round: create the lease, renew it, or take it over if it expired. Returns whether this
/// candidate holds it now.
async fn try_acquire_or_renew(
    leases: &Api<Lease>,
    config: &LeaderElectionConfig,
    observed: &mut Option<(LeaseSpec, Instant)>,
) -> bool {
    let ours = |transitions: i32, acquire_time: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.lease_duration.as_secs() as i32),
        acquire_time: Some(acquire_time.unwrap_or_else(now)),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let current = match leases.get_opt(&config.name).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("reading lease: {e}");
            return false;
        }
    };
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(ours(0, None)),
        };
        return leases.create(&PostParams::default(), &lease).await.is_ok();
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let changed = observed.as_ref().is_none_or(|(o, _)| *o != spec);
    if changed {
        *observed = Some((spec.clone(), Instant::now()));
    }
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    let is_ours = holder == config.identity;
    if !is_ours && !holder.is_empty() {
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
        let seen_at = observed
            .as_ref()
            .map(|(_, t)| *t)
            .unwrap_or_else(Instant::now);
        if seen_at.elapsed() < duration {
            return false;
        }
    }
    let transitions = spec.lease_transitions.unwrap_or(0) + if is_ours { 0 } else { 1 };
    let acquire = if is_ours {
        spec.acquire_time.clone()
    } else {
        None
    };
    lease.spec = Some(ours(transitions, acquire));
    // The replace carries the resourceVersion read above: a concurrent candidate's write makes
    // this a conflict, so at most one wins.
    match leases
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(updated) => {
            *observed = updated.spec.map(|s| (s, Instant::now()));
            true
        }
        Err(e) => {
            tracing::debug!("updating lease: {e}");
            false
        }
    }
}
