//! What every controller is given: the API client, the shared informers, the manager's
//! configuration, and makers of event recorders and work queues.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kox_component::{LeaderElectionConfig, MetricsSource};
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::informer::InformerFactory;
use crate::queue::WorkQueue;

/// How the controller manager and its controllers run.
#[derive(Clone, Debug)]
pub struct ControllerManagerConfig {
    /// Which controllers run, as `--controllers`: `*` (every controller on by default), `name`
    /// (also one that is off by default), `-name` (not this one). Default `["*"]`.
    pub controllers: Vec<String>,
    /// Where `/healthz` and `/metrics` are served over HTTPS (default `0.0.0.0:10257`);
    /// `None` serves nothing.
    pub health_address: Option<SocketAddr>,
    /// Leader election through a Lease (default: `kube-system/kube-controller-manager`);
    /// `None` runs the controllers unconditionally.
    pub leader_election: Option<LeaderElectionConfig>,
    /// The cluster CA (PEM) the root-ca-cert-publisher writes into every namespace's
    /// `kube-root-ca.crt` ConfigMap (default none: that controller does nothing).
    pub root_ca_pem: Option<String>,
    /// How long a node may go without renewing its Lease or posting status before it is
    /// marked `Ready=Unknown` (default 40 s, upstream's `--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// How often node health is checked (default 5 s, `--node-monitor-period`).
    pub node_monitor_period: Duration,
    /// Pods evicted per second from unhealthy nodes (default 0.1, `--node-eviction-rate`).
    pub node_eviction_rate: f64,
    /// Terminated pods kept before the oldest are deleted (default 12500,
    /// `--terminated-pod-gc-threshold`; 0 keeps all).
    pub terminated_pod_gc_threshold: usize,
    /// Each controller acts as its own ServiceAccount in `kube-system`, with tokens the
    /// manager requests for it (default false, upstream's
    /// `--use-service-account-credentials`: every controller acts with the manager's
    /// credential, which then needs every controller's role). Needs `api_server`.
    pub use_service_account_credentials: bool,
    /// How the controllers' own clients reach the API server: the manager's connection (URL,
    /// CA) whose credentials each controller's token replaces (default none).
    pub api_server: Option<kube::Config>,
}

impl Default for ControllerManagerConfig {
    fn default() -> Self {
        ControllerManagerConfig {
            controllers: vec!["*".into()],
            health_address: Some(SocketAddr::from(([0, 0, 0, 0], 10257))),
            leader_election: Some(LeaderElectionConfig::for_lease("kube-controller-manager")),
            root_ca_pem: None,
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            node_eviction_rate: 0.1,
            terminated_pod_gc_threshold: 12500,
            use_service_account_credentials: false,
            api_server: None,
        }
    }
}

/// The queues whose counters `/metrics` serves, and whether this process leads.
#[derive(Debug, Default)]
pub struct Metrics {
    queues: Mutex<Vec<WorkQueue>>,
    leading: AtomicBool,
}

impl Metrics {
    /// Records whether this process is the leader.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }

    fn register(&self, q: &WorkQueue) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        // A new leader term replaces the queues of the last.
        queues.retain(|old| old.name() != q.name());
        queues.push(q.clone());
    }
}

impl MetricsSource for Metrics {
    fn render(&self) -> String {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out += "# HELP leader_election_master_status Whether this process leads (1) or stands by (0).\n# TYPE leader_election_master_status gauge\n";
        out += &format!(
            "leader_election_master_status{{name=\"kube-controller-manager\"}} {}\n",
            u8::from(self.leading.load(Ordering::Relaxed))
        );
        out += "# HELP workqueue_adds_total Total number of adds handled by workqueue.\n# TYPE workqueue_adds_total counter\n";
        for q in queues.iter() {
            out += &format!(
                "workqueue_adds_total{{name=\"{}\"}} {}\n",
                q.name(),
                q.metrics().adds.load(Ordering::Relaxed)
            );
        }
        out += "# HELP workqueue_depth Current depth of workqueue.\n# TYPE workqueue_depth gauge\n";
        for q in queues.iter() {
            out += &format!("workqueue_depth{{name=\"{}\"}} {}\n", q.name(), q.len());
        }
        out += "# HELP workqueue_retries_total Total number of retries handled by workqueue.\n# TYPE workqueue_retries_total counter\n";
        for q in queues.iter() {
            out += &format!(
                "workqueue_retries_total{{name=\"{}\"}} {}\n",
                q.name(),
                q.metrics().retries.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// Everything a controller needs. Cloning is cheap; all clones share the informers.
#[derive(Clone)]
pub struct Context {
    /// The controller's API client: its ServiceAccount's under
    /// `use_service_account_credentials`, else the manager's. Its writes and events go
    /// through it; the informers use the manager's client.
    pub client: Client,
    /// The shared informers: one watch per resource for all controllers.
    pub informers: InformerFactory,
    /// The manager's configuration.
    pub config: Arc<ControllerManagerConfig>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("informers", &self.informers)
            .field("config", &self.config)
            .finish()
    }
}

impl Context {
    /// A context whose informers' watches end with `stop`.
    pub fn new(
        client: Client,
        config: Arc<ControllerManagerConfig>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Self {
        Context {
            informers: InformerFactory::new(client.clone(), stop),
            client,
            config,
            metrics,
        }
    }

    /// This context for a controller acting with `client`.
    pub fn with_client(&self, client: Client) -> Self {
        Context {
            client,
            ..self.clone()
        }
    }

    /// An event recorder writing as `component` (upstream's source component, e.g.
    /// `namespace-controller`).
    pub fn recorder(&self, component: &str) -> Recorder {
        Recorder::new(self.client.clone(), component)
    }

    /// A rate-limited work queue named `name` (upstream's queue name, e.g. `replicaset`),
    /// whose counters `/metrics` serves.
    pub fn queue(&self, name: &str) -> WorkQueue {
        let q = WorkQueue::new(name);
        self.metrics.register(&q);
        q
    }
}
