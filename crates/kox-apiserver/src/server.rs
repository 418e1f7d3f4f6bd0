//! HTTPS serving: TLS with the cluster's certificates, HTTP/1.1 and HTTP/2, request limits,
//! metrics, and graceful shutdown.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use kox_store::Store;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::allocator::Allocators;
use crate::authn::{Authenticator, TokenFile};
use crate::authz::{Authorizer, RequestInfo};
use crate::connections::{
    AcceptBackoff, Activity, ConnectionLimits, ConnectionPermit, HEADER_READ_TIMEOUT, LogEvery,
    TLS_HANDSHAKE_TIMEOUT,
};
use crate::error::ApiError;
use crate::handlers::{self, MAX_BODY_BYTES, Query};
use crate::metrics::Metrics;
use crate::pki::ClusterPki;
use crate::registry::Registry;

/// How long a list waits for one of its user's slots before it is answered 429.
const LIST_SLOT_WAIT: Duration = Duration::from_secs(10);

/// Bytes an HTTP/2 stream may queue ahead of the socket (see `serve`).
const WATCH_SEND_BUFFER: usize = 64 * 1024;

/// How the API server runs. Every field's default is in [`ServerConfig::default`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where certificates and the admin kubeconfig live.
    pub data_dir: PathBuf,
    /// Address to listen on (default 0.0.0.0).
    pub bind_address: IpAddr,
    /// HTTPS port (default 6443).
    pub secure_port: u16,
    /// Extra names for the serving certificate.
    pub tls_sans: Vec<String>,
    /// Service ClusterIP range (default 10.43.0.0/16).
    pub service_cidr: String,
    /// Most non-watch requests served at once; more get 429 (default 400).
    pub max_in_flight: usize,
    /// Most connections one client address may hold open; more are closed at once (default
    /// 1000).
    pub max_connections_per_client: usize,
    /// Most lists one user may have in flight; more wait up to 10 s for a slot, then get a
    /// 429 (default 16).
    pub max_lists_per_user: usize,
    /// Deadline of a non-watch request (default 60 s).
    pub request_timeout: Duration,
    /// The address other cluster members reach this server at, published as the `kubernetes`
    /// service's endpoint (default: none, so the service has no endpoints).
    pub advertise_address: Option<IpAddr>,
    /// Static bearer tokens, upstream's CSV format `token,user,uid,"group1,group2"`
    /// (default: none).
    pub token_auth_file: Option<PathBuf>,
    /// Where to append the audit log, one JSON `audit.k8s.io/v1` Event per request at the
    /// Metadata level (default: no audit log).
    pub audit_log_path: Option<PathBuf>,
    /// The cluster token: with it, the cluster's CA and keys are kept in the datastore,
    /// encrypted with the token, so that servers sharing a datastore share them (`None`: each
    /// server keeps its own; right for the embedded store).
    pub cluster_token: Option<String>,
    /// How long serving certificates are valid (default 365 days). A third of the way before
    /// expiry (at most 30 days before) a new one is issued and served without a restart.
    pub serving_cert_validity: Duration,
    /// How long the client certificates of the admin and of the control plane's components
    /// are valid (default 365 days). They are renewed as the serving certificate is, and their
    /// kubeconfigs rewritten; the components reload a kubeconfig that changes.
    pub client_cert_validity: Duration,
    /// PodSecurity admission's defaults and exemptions (`--admission-control-config-file`).
    pub pod_security: crate::admission::pod_security::PodSecurityConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/kox"),
            bind_address: IpAddr::from([0, 0, 0, 0]),
            secure_port: 6443,
            tls_sans: Vec::new(),
            service_cidr: "10.43.0.0/16".into(),
            max_in_flight: 400,
            max_connections_per_client: 1000,
            max_lists_per_user: 16,
            request_timeout: Duration::from_secs(60),
            advertise_address: None,
            token_auth_file: None,
            audit_log_path: None,
            cluster_token: None,
            serving_cert_validity: Duration::from_secs(365 * 24 * 3600),
            client_cert_validity: Duration::from_secs(365 * 24 * 3600),
            pod_security: Default::default(),
        }
    }
}

/// Shared state of a running server.
pub struct App {
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server stops: ends watches.
    pub shutdown: CancellationToken,
    /// `host:port` clients are told to use.
    pub advertise: String,
    /// Authentication methods.
    pub authn: Authenticator,
    /// The authorizer chain (system:masters, then RBAC).
    pub authz: Authorizer,
    /// The audit log, if configured.
    pub audit: Option<crate::audit::AuditLog>,
    bootstrapped: AtomicBool,
    in_flight: Semaphore,
    /// The client of node agents (logs, exec, proxies).
    pub kubelet: crate::connect::KubeletClient,
    /// Lists in flight per user.
    lists_per_user: crate::fairness::PerUserLimit,
    request_timeout: Duration,
}

impl App {
    pub fn bootstrapped(&self) -> bool {
        self.bootstrapped.load(Ordering::Relaxed)
    }

    pub fn version_info(&self) -> Value {
        let v = crate::KUBERNETES_VERSION.trim_start_matches('v');
        let mut parts = v.split('.');
        json!({
            "major": parts.next().unwrap_or("1"),
            "minor": parts.next().unwrap_or("0"),
            "gitVersion": format!("{}+kox", crate::KUBERNETES_VERSION),
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "",
            "goVersion": "",
            "compiler": "rustc",
            "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
        })
    }
}

/// Certificates issued from the cluster's secrets, re-issued when those change.
const DERIVED_FILES: &[&str] = &[
    "tls/serving.crt",
    "tls/serving.key",
    "tls/serving.sans",
    "tls/admin.crt",
    "tls/admin.key",
    "tls/scheduler.crt",
    "tls/scheduler.key",
    "tls/controller-manager.crt",
    "tls/controller-manager.key",
];

/// Loads (or creates) the PKI; with a cluster token, the CA is the one every server sharing the
/// datastore uses.
async fn load_pki(config: &ServerConfig, sans: &[String], store: &dyn Store) -> Result<ClusterPki> {
    use crate::cluster_secrets::{self, Outcome};
    let validity = validity(config);
    let Some(token) = &config.cluster_token else {
        return ClusterPki::load_or_create_valid_for(&config.data_dir, sans, validity);
    };
    let downloaded =
        cluster_secrets::download(store, &config.data_dir, token, DERIVED_FILES).await?;
    let pki = ClusterPki::load_or_create_valid_for(&config.data_dir, sans, validity)?;
    cluster_secrets::remember_token(&config.data_dir, token)?;
    if downloaded {
        return Ok(pki);
    }
    match cluster_secrets::upload_or_adopt(store, &config.data_dir, token, DERIVED_FILES).await? {
        Outcome::Uploaded => Ok(pki),
        // Another server stored its secrets first: use those.
        Outcome::Downloaded => {
            ClusterPki::load_or_create_valid_for(&config.data_dir, sans, validity)
        }
    }
}

fn validity(config: &ServerConfig) -> crate::pki::Validity {
    let seconds = |d: Duration| time::Duration::seconds(d.as_secs().max(1) as i64);
    crate::pki::Validity {
        serving: seconds(config.serving_cert_validity),
        client: seconds(config.client_cert_validity),
    }
}

/// A server that has bound its port and written its kubeconfig, ready to serve.
pub struct Server {
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    client_certs: Arc<crate::authn::x509::ClientCertPolicy>,
    limits: Arc<ConnectionLimits>,
    /// Path of the admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Path of the scheduler's kubeconfig (user `system:kube-scheduler`).
    pub scheduler_kubeconfig: PathBuf,
    /// Path of the controller manager's kubeconfig (user `system:kube-controller-manager`).
    pub controller_manager_kubeconfig: PathBuf,
    /// The bound address.
    pub local_addr: SocketAddr,
}

impl Server {
    /// Prepares certificates, binds the port and creates the bootstrap objects.
    pub async fn bind(config: ServerConfig, store: Arc<dyn Store>) -> Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let store: Arc<dyn Store> = Arc::new(crate::store_metrics::InstrumentedStore::new(
            store,
            metrics.clone(),
        ));
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let mut sans = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
        ];
        if let Ok(host) = hostname() {
            sans.push(host);
        }
        if !config.bind_address.is_unspecified() {
            sans.push(config.bind_address.to_string());
        }
        let allocators = Allocators::new(store.clone(), &config.service_cidr)?;
        sans.push(allocators.first_ip().to_string());
        sans.extend(config.tls_sans.iter().cloned());
        sans.dedup();
        let pki = load_pki(&config, &sans, store.as_ref()).await?;

        let listener = tokio::net::TcpListener::bind((config.bind_address, config.secure_port))
            .await
            .with_context(|| format!("binding {}:{}", config.bind_address, config.secure_port))?;
        let local_addr = listener.local_addr()?;
        let host = if config.bind_address.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            config.bind_address.to_string()
        };
        let advertise = format!("{host}:{}", local_addr.port());
        let kubeconfig = config.data_dir.join("admin.kubeconfig");
        crate::pki::write_secret_if_changed(
            &kubeconfig,
            &pki.admin_kubeconfig(&format!("https://{advertise}")),
        )?;
        let components = crate::pki::write_component_kubeconfigs(
            &config.data_dir,
            &pki.ca_cert_pem,
            &format!("https://{advertise}"),
            validity(&config).client,
        )?;
        let component_kubeconfig = |stem: &str| {
            components
                .iter()
                .find(|(s, _)| *s == stem)
                .map(|(_, p)| p.clone())
                .unwrap_or_default()
        };
        let scheduler_kubeconfig = component_kubeconfig("scheduler");
        let controller_manager_kubeconfig = component_kubeconfig("controller-manager");

        let serving = Arc::new(ServingCert::new(
            &pki.serving_cert_pem,
            &pki.serving_key_pem,
        )?);
        let (tls, client_certs) = tls_acceptor(&pki, serving.clone())?;
        let authn = Authenticator {
            token_file: config
                .token_auth_file
                .as_deref()
                .map(TokenFile::load)
                .transpose()?,
            service_accounts: Some(crate::authn::TokenSigner::load(&config.data_dir)?),
        };
        let caches = Arc::new(crate::watch_cache::WatchCaches::new(store.clone()));
        let authz = Authorizer::new(caches.clone());
        let registry = Registry {
            store,
            allocators: Arc::new(allocators),
            caches,
            admission: Arc::new(crate::admission::Chain::standard_with(
                config.pod_security.clone(),
            )),
        };
        let app = Arc::new(App {
            registry,
            metrics,
            shutdown: CancellationToken::new(),
            advertise: advertise.clone(),
            authn,
            authz,
            audit: config
                .audit_log_path
                .as_deref()
                .map(crate::audit::AuditLog::open)
                .transpose()?,
            bootstrapped: AtomicBool::new(false),
            in_flight: Semaphore::new(config.max_in_flight),
            kubelet: crate::connect::KubeletClient::new(
                config.data_dir.clone(),
                validity(&config).client,
            ),
            lists_per_user: crate::fairness::PerUserLimit::new(config.max_lists_per_user),
            request_timeout: config.request_timeout,
        });
        let kubernetes = crate::bootstrap::KubernetesService {
            service_ip: app.registry.allocators.first_ip().to_string(),
            secure_port: local_addr.port(),
            advertise_ip: config.advertise_address,
        };
        crate::bootstrap::ensure(&app.registry, &kubernetes)
            .await
            .map_err(|e| anyhow::anyhow!("creating the bootstrap objects: {}", e.message()))?;
        tokio::spawn(kubernetes.run(app.clone()));
        crate::authz::policy::ensure(&app.registry)
            .await
            .map_err(|e| anyhow::anyhow!("reconciling the default RBAC policy: {}", e.message()))?;
        crate::authz::aggregation::aggregate(&app.registry)
            .await
            .map_err(|e| anyhow::anyhow!("aggregating cluster roles: {}", e.message()))?;
        crate::authz::aggregation::spawn(app.clone());
        tokio::spawn(renew_serving_certificate(
            serving,
            config.data_dir.clone(),
            sans,
            validity(&config).serving,
            app.shutdown.clone(),
        ));
        tokio::spawn(renew_client_credentials(
            ClientCredentials {
                data_dir: config.data_dir.clone(),
                ca_cert_pem: pki.ca_cert_pem.clone(),
                server: format!("https://{advertise}"),
                validity: validity(&config).client,
            },
            app.shutdown.clone(),
        ));
        app.bootstrapped.store(true, Ordering::Relaxed);
        Ok(Self {
            app,
            listener,
            tls,
            client_certs,
            limits: ConnectionLimits::new(config.max_connections_per_client),
            kubeconfig,
            scheduler_kubeconfig,
            controller_manager_kubeconfig,
            local_addr,
        })
    }

    /// Serves until `stop` is cancelled, then stops accepting, lets in-flight requests finish
    /// (up to 30 s), ends watches, and returns.
    pub async fn serve(self, stop: CancellationToken) -> Result<()> {
        static ACCEPT_FAILED: LogEvery = LogEvery::new(Duration::from_secs(10));
        static REFUSED: LogEvery = LogEvery::new(Duration::from_secs(10));
        let connections = tokio_util::task::TaskTracker::new();
        let draining = CancellationToken::new();
        let mut backoff = AcceptBackoff::default();
        loop {
            let (tcp, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        ACCEPT_FAILED.log(|repeats| {
                            tracing::warn!(error = %e, repeats, "accept failed; backing off");
                        });
                        tokio::time::sleep(backoff.failed()).await;
                        continue;
                    }
                },
            };
            backoff.succeeded();
            let permit = match self.limits.admit(peer.ip()) {
                Ok(p) => p,
                Err(refusal) => {
                    REFUSED.log(|repeats| {
                        tracing::warn!(client = %peer.ip(), ?refusal, repeats, "too many connections; closing a new one");
                    });
                    continue;
                }
            };
            connections.spawn(serve_connection(
                Connection {
                    app: self.app.clone(),
                    tls: self.tls.clone(),
                    client_certs: self.client_certs.clone(),
                    draining: draining.clone(),
                    _permit: permit,
                },
                tcp,
                peer,
            ));
        }
        drop(self.listener);
        self.app.shutdown.cancel();
        draining.cancel();
        connections.close();
        if tokio::time::timeout(Duration::from_secs(30), connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish within 30 s of shutdown");
        }
        Ok(())
    }
}

/// What one accepted connection is served with.
struct Connection {
    app: Arc<App>,
    tls: tokio_rustls::TlsAcceptor,
    client_certs: Arc<crate::authn::x509::ClientCertPolicy>,
    /// Cancelled when the server stops: the connection finishes its requests and closes.
    draining: CancellationToken,
    /// Counts the connection against its client's share until it closes.
    _permit: ConnectionPermit,
}

/// Serves one TCP connection: the TLS handshake, then HTTP/1.1 or HTTP/2 until the client
/// closes, the connection stalls or idles past its limits, or the server stops.
async fn serve_connection(c: Connection, tcp: tokio::net::TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, c.tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        _ => return,
    };
    // The chain is verified against the cluster CA here, not in the handshake, so that
    // another CA's certificate is a 401 as upstream answers.
    let client_cert = Arc::new(
        c.client_certs
            .classify(stream.get_ref().1.peer_certificates()),
    );
    let activity = Activity::new();
    let service = {
        let (app, activity) = (c.app.clone(), activity.clone());
        hyper::service::service_fn(move |req| {
            let (app, client_cert) = (app.clone(), client_cert.clone());
            let in_flight = activity.begin();
            let head = req.method() == http::Method::HEAD;
            async move {
                let resp = recover(handle(app, &client_cert, Some(peer.ip()), req)).await;
                Ok::<_, std::convert::Infallible>(resp.map(|body| {
                    // A HEAD answer has the GET answer's head and no body (HTTP/2 resets a
                    // stream that sends one).
                    if head {
                        return Body::empty();
                    }
                    // The request counts as in flight until its body (a watch's, say) is done.
                    holding(body, in_flight)
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // Data a stream may have queued in HTTP/2 beyond what reached the socket: a watch stream
    // then takes events from its bounded watcher channel only as fast as the client reads, so
    // a slow client fills that channel and is dropped instead of parking thousands of events
    // per stream in the connection (hyper's default, 400 KiB per stream, let 10,000 slow
    // watches hold gigabytes). Pings find peers that vanished with streams open.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_send_buf_size(WATCH_SEND_BUFFER)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = c.draining.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.idle(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

async fn handle(
    app: Arc<App>,
    client_cert: &crate::authn::x509::ClientCert,
    source_ip: Option<IpAddr>,
    req: hyper::Request<Incoming>,
) -> Response {
    let received = jiff::Timestamp::now();
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let query = Query::parse(parts.uri.query());
    let is_watch = matches!(query.get("watch"), Some("true" | "1"));
    let verb = if is_watch {
        "WATCH".to_string()
    } else {
        parts.method.to_string()
    };
    let resource = metric_resource(parts.uri.path());
    let permit = if is_watch {
        None
    } else {
        match app.in_flight.try_acquire() {
            Ok(p) => Some(p),
            Err(_) => {
                app.metrics
                    .observe(&verb, &resource, 429, started.elapsed());
                return refused(body, ApiError::too_many_requests(1)).await;
            }
        }
    };
    let user = match app
        .authn
        .authenticate(&app.registry, client_cert, &parts.headers)
        .await
    {
        Ok(u) => u,
        Err(e) => {
            drop(permit);
            app.metrics
                .observe(&verb, &resource, 401, started.elapsed());
            return refused(body, e).await;
        }
    };
    let (user, impersonator) =
        match crate::authn::impersonation::apply(&app.authz, user, &parts.headers).await {
            Ok(u) => u,
            Err(e) => {
                drop(permit);
                app.metrics
                    .observe(&verb, &resource, e.code(), started.elapsed());
                return refused(body, e).await;
            }
        };
    let info = RequestInfo::from_request(&parts.method, parts.uri.path(), &query);
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Err(e) = app.authz.check(&user, &info).await {
        drop(permit);
        app.metrics
            .observe(&verb, &resource, 403, started.elapsed());
        if let Some(audit) = &app.audit {
            audit.record(
                received,
                &uri,
                &info,
                &user,
                impersonator.as_ref(),
                source_ip,
                &user_agent,
                403,
                "forbid",
                &[],
            );
        }
        return refused(body, e).await;
    }
    // A list holds one of its user's list slots until its body is sent.
    let list_slot = if info.verb == "list" {
        match app.lists_per_user.acquire(&user.name, LIST_SLOT_WAIT).await {
            Some(slot) => Some(slot),
            None => {
                drop(permit);
                app.metrics
                    .observe(&verb, &resource, 429, started.elapsed());
                return refused(body, ApiError::too_many_requests(1)).await;
            }
        }
    } else {
        None
    };
    let audit_user = app.audit.as_ref().map(|_| user.clone());
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request = handlers::Request {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body,
        user,
        requested: None,
        upgrade: parking_lot::Mutex::new(upgrade),
    };
    let resp = if is_watch {
        handlers::dispatch(app.clone(), request).await
    } else {
        match tokio::time::timeout(
            app.request_timeout,
            handlers::dispatch(app.clone(), request),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => ApiError::timeout(
                "request did not complete within requested timeout - context deadline exceeded",
            )
            .into_response(),
        }
    };
    drop(permit);
    app.metrics
        .observe(&verb, &resource, resp.status().as_u16(), started.elapsed());
    if let (Some(audit), Some(user)) = (&app.audit, &audit_user) {
        let code = resp.status().as_u16();
        let annotations = resp
            .extensions()
            .get::<crate::audit::Annotations>()
            .map(|a| a.0.as_slice())
            .unwrap_or_default();
        let named;
        let info = match resp.extensions().get::<crate::audit::ObjectName>() {
            Some(created) if info.name.is_empty() => {
                named = RequestInfo {
                    name: created.0.clone(),
                    ..info.clone()
                };
                &named
            }
            _ => &info,
        };
        audit.record(
            received,
            &uri,
            info,
            user,
            impersonator.as_ref(),
            source_ip,
            &user_agent,
            code,
            "allow",
            annotations,
        );
    }
    resp.map(|body| match list_slot {
        Some(slot) => holding(Body::new(body), slot),
        None => Body::new(body),
    })
}

/// `body`, keeping `held` (a slot, a count) until the body is sent or dropped.
fn holding<T: Send + Sync + 'static>(body: Body, held: T) -> Body {
    Body::new(body.map_frame(move |frame| {
        let _ = &held;
        frame
    }))
}

/// The answer of `handling`, or a 500 if it panicked (upstream's panic recovery): a bug in one
/// request's handling must not reset the client's stream without a word, nor go unlogged.
async fn recover(handling: impl std::future::Future<Output = Response>) -> Response {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(handling).catch_unwind().await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::error!("a request's handling panicked; answered 500");
            ApiError::new(
                500,
                "InternalError",
                "an error on the server has prevented the request from succeeding",
            )
            .into_response()
            .map(Body::new)
        }
    }
}

/// A request's body, at most [`MAX_BODY_BYTES`]; a larger one is answered 413 once the client
/// has sent it (read and dropped, bounded: see [`refused`]).
async fn read_body(mut body: Incoming) -> Result<Bytes, Response> {
    let mut read = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ApiError::bad_request("the request body could not be read").into_response());
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if read.len() + data.len() > MAX_BODY_BYTES {
            let too_large = ApiError::too_large(format!("limit is {MAX_BODY_BYTES}"));
            return Err(refused(body, too_large).await);
        }
        read.extend_from_slice(&data);
    }
    Ok(read.freeze())
}

/// Answers a request refused before its body was read (401, 403, 429), having read and
/// dropped what the client sends of the body first — at most [`MAX_BODY_BYTES`], for at most
/// 5 s: an HTTP/2 stream answered while its body is still arriving is reset, and clients
/// then report the reset instead of the answer.
async fn refused(mut body: Incoming, e: ApiError) -> Response {
    let drain = async {
        let mut read = 0;
        while read <= MAX_BODY_BYTES
            && let Some(Ok(frame)) = body.frame().await
        {
            read += frame.data_ref().map_or(0, |d| d.len());
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    e.into_response().map(Body::new)
}

/// The resource a path addresses, for metric labels.
fn metric_resource(path: &str) -> String {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segs.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return String::new(),
    };
    match rest {
        ["namespaces", _, r, ..] => r.to_string(),
        [r, ..] => r.to_string(),
        [] => String::new(),
    }
}

/// The serving certificate the TLS acceptor presents, replaced when it is renewed.
#[derive(Debug)]
struct ServingCert(std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>);

impl ServingCert {
    fn new(cert_pem: &str, key_pem: &str) -> Result<Self> {
        Ok(Self(std::sync::RwLock::new(certified_key(
            cert_pem, key_pem,
        )?)))
    }

    fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        let key = certified_key(cert_pem, key_pem)?;
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for ServingCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::sign::CertifiedKey>> {
    let certs: Vec<_> =
        rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key =
        rustls_pemfile::private_key(&mut key_pem.as_bytes())?.context("serving key missing")?;
    let provider = rustls::crypto::ring::default_provider();
    Ok(Arc::new(rustls::sign::CertifiedKey::from_der(
        certs, key, &provider,
    )?))
}

/// Runs `renew` whenever the Unix time `due()` names has come (`None`: now), until `stop`:
/// wakes at the due time and at least hourly (clocks jump, machines sleep), retries a failure
/// after a minute, and never renews more than once a second, whatever the clock does.
async fn renew_when_due(
    what: &str,
    due: impl Fn() -> Option<i64>,
    mut renew: impl FnMut() -> Result<()>,
    stop: CancellationToken,
) {
    loop {
        let now = jiff::Timestamp::now().as_second();
        let wait =
            Duration::from_secs(due().unwrap_or(now).saturating_sub(now).clamp(0, 3600) as u64);
        if !wait.is_zero() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let pause = match renew() {
            Ok(()) => {
                tracing::info!("renewed {what}");
                Duration::from_secs(1)
            }
            Err(e) => {
                tracing::error!("renewing {what}: {e:#}");
                Duration::from_secs(60)
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Issues a new serving certificate when the one in `data_dir/tls` is due (see
/// [`crate::pki::renew_at`]) and hands it to the TLS acceptor: new connections get it, no
/// restart needed. Runs until `stop`.
async fn renew_serving_certificate(
    serving: Arc<ServingCert>,
    data_dir: PathBuf,
    sans: Vec<String>,
    validity: time::Duration,
    stop: CancellationToken,
) {
    let cert_path = data_dir.join("tls/serving.crt");
    renew_when_due(
        "the serving certificate",
        || {
            let cert = std::fs::read_to_string(&cert_path).ok()?;
            crate::pki::renew_at(&cert, validity)
        },
        || {
            let (cert, key) = crate::pki::renew_serving_certificate(&data_dir, &sans, validity)?;
            serving.replace(&cert, &key)
        },
        stop,
    )
    .await
}

/// Where the admin's and the components' kubeconfigs are kept, and what they hold.
struct ClientCredentials {
    data_dir: PathBuf,
    ca_cert_pem: String,
    server: String,
    validity: time::Duration,
}

impl ClientCredentials {
    /// Issues again whichever certificates are due and rewrites the kubeconfigs that change.
    fn renew(&self) -> Result<()> {
        let (cert, key) =
            crate::pki::ensure_client_credential(&self.data_dir, crate::pki::ADMIN, self.validity)?;
        crate::pki::write_secret_if_changed(
            &self.data_dir.join("admin.kubeconfig"),
            &crate::pki::client_kubeconfig(
                &self.server,
                &self.ca_cert_pem,
                "kox-admin",
                &cert,
                &key,
            ),
        )?;
        crate::pki::write_component_kubeconfigs(
            &self.data_dir,
            &self.ca_cert_pem,
            &self.server,
            self.validity,
        )?;
        Ok(())
    }
}

/// Renews the admin's and the components' client certificates before they expire, as
/// [`renew_serving_certificate`] does the serving certificate: kubectl reads the new admin
/// kubeconfig on its next run; the in-process scheduler and controller manager (and
/// standalone ones given these files) notice their kubeconfig changed and switch to it.
async fn renew_client_credentials(credentials: ClientCredentials, stop: CancellationToken) {
    renew_when_due(
        "the control plane's client certificates",
        || crate::pki::client_credentials_renew_at(&credentials.data_dir, credentials.validity),
        || credentials.renew(),
        stop,
    )
    .await
}

fn tls_acceptor(
    pki: &ClusterPki,
    serving: Arc<ServingCert>,
) -> Result<(
    tokio_rustls::TlsAcceptor,
    Arc<crate::authn::x509::ClientCertPolicy>,
)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes()) {
        roots.add(ca?)?;
    }
    // Client certificates are asked for but not required (token and anonymous requests are
    // authenticated later in the pipeline) and checked against the cluster CA per connection.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let policy = Arc::new(crate::authn::x509::ClientCertPolicy::new(verifier));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(policy.clone())
        .with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), policy))
}

fn hostname() -> Result<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(h.trim().to_string())
}
