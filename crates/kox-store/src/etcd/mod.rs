//! The etcd engine: the [`Store`] trait over a real etcd cluster (etcd v3 API, `etcd-client`).
//!
//! - Keys are passed through unchanged (the API server lays them out as upstream does:
//!   `/registry/<resource>/<namespace>/<name>`); revisions are etcd's own, so an object's
//!   `resourceVersion` is its etcd `mod_revision`, exactly as with kube-apiserver.
//! - Writes are etcd transactions comparing `mod_revision` (a create compares
//!   `create_revision == 0`); the else branch reads the key, so a failed condition returns the
//!   current value without a second round trip.
//! - Every unary request is bounded by [`EtcdOptions::request_timeout`] and fails with
//!   [`Error::Backend`] ("… timed out") instead of hanging.
//! - Watches (`watch.rs`) ask for `prev_kv` and progress notifications.
//! - A background task compacts periodically, as kube-apiserver does: every
//!   [`EtcdOptions::compaction_interval`] it compacts to the revision it saw one interval earlier.
//!
//! etcd must accept requests of [`MAX_VALUE_SIZE`] plus the key: run it with
//! `--max-request-bytes` of at least 2 MiB (etcd's default is 1.5 MiB).

pub mod local;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    KvClient, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchClient,
};

use crate::{
    Condition, Error, KeyRange, MAX_VALUE_SIZE, RangeRequest, RangeResponse, Result, Revision,
    Store, StoreStatus, WatchStream, WriteOutcome,
};

/// Largest gRPC message the client accepts (a list of many large objects).
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// How to reach etcd and how the engine behaves.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs of the members, e.g. `http://127.0.0.1:2379`; requests are balanced across
    /// them and a member that does not answer is skipped.
    pub endpoints: Vec<String>,
    /// CA bundle that signs the members' serving certificates (enables TLS).
    pub ca_file: Option<PathBuf>,
    /// Client certificate presented to etcd (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// Key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Bound of every unary request. Default: 5 s.
    pub request_timeout: Duration,
    /// Bound of establishing a connection. Default: 5 s.
    pub connect_timeout: Duration,
    /// How often the history is compacted (to the revision seen one interval earlier); `None`
    /// disables periodic compaction. Default: 5 minutes, as kube-apiserver.
    pub compaction_interval: Option<Duration>,
    /// How often each watch asks etcd for a progress notification (`RequestProgress`), on top of
    /// the server-side notifications every watch asks for (etcd's
    /// `--experimental-watch-progress-notify-interval`, 10 minutes by default). `None`: only the
    /// server-side ones. Default: `None` — etcd before 3.4.25/3.5.8 may answer a progress request
    /// ahead of events it has not sent yet, whereas server-side notifications are always ordered.
    pub progress_request_interval: Option<Duration>,
    /// gRPC keep-alive: a connection that does not answer a ping within this time is dropped
    /// (and its watches end with an error, so callers relist). Default: 10 s.
    pub keep_alive: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            ca_file: None,
            cert_file: None,
            key_file: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            compaction_interval: Some(Duration::from_secs(300)),
            progress_request_interval: None,
            keep_alive: Duration::from_secs(10),
        }
    }
}

/// A [`Store`] backed by an etcd cluster.
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    options: EtcdOptions,
    /// The last compaction point seen (reads below it fail forever; it only grows).
    compacted: Arc<AtomicI64>,
    compactor: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        if let Some(task) = self.compactor.take() {
            task.abort();
        }
    }
}

fn backend(e: etcd_client::Error) -> Error {
    Error::Backend(format!("etcd: {e}"))
}

/// Pause before trying a request again whose member refused the connection.
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Whether a request failed before anything was sent (the connection to its member could not
/// be made), so trying it again cannot apply it twice.
fn never_sent(e: &etcd_client::Error) -> bool {
    e.to_string().contains("tcp connect error")
}

/// A gRPC error etcd returns for a read or compaction at a compacted or future revision.
enum RevisionError {
    Compacted,
    Future,
    Other(Error),
}

fn classify(e: etcd_client::Error) -> RevisionError {
    let text = match &e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => other.to_string(),
    };
    if text.contains("required revision has been compacted") {
        RevisionError::Compacted
    } else if text.contains("required revision is a future revision") {
        RevisionError::Future
    } else {
        RevisionError::Other(backend(e))
    }
}

fn convert(kv: &etcd_client::KeyValue) -> crate::KeyValue {
    crate::KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    }
}

/// etcd's `(key, range_end)` for a range: an empty start becomes `\0` (etcd refuses empty keys;
/// no key is empty), an empty end means "no upper bound" (`\0` in etcd).
fn etcd_range(range: &KeyRange) -> (Vec<u8>, Option<Vec<u8>>) {
    let start = if range.start.is_empty() {
        vec![0]
    } else {
        range.start.clone()
    };
    let end = match &range.end {
        None => None,
        Some(end) if end.is_empty() => Some(vec![0]),
        Some(end) => Some(end.clone()),
    };
    (start, end)
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| Error::Backend("etcd response without a header".into()))
}

/// The client options every connection to the cluster uses (timeouts, keep-alive, TLS).
fn connect_options(options: &EtcdOptions) -> Result<ConnectOptions> {
    let mut connect = ConnectOptions::new()
        .with_connect_timeout(options.connect_timeout)
        .with_timeout(options.request_timeout)
        .with_keep_alive(options.keep_alive, options.keep_alive)
        .with_keep_alive_while_idle(true);
    if options.ca_file.is_some() || options.cert_file.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &options.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::Backend(format!("reading etcd CA file {}: {e}", ca.display()))
            })?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        match (&options.cert_file, &options.key_file) {
            (Some(cert), Some(key)) => {
                let read = |p: &PathBuf| {
                    std::fs::read(p).map_err(|e| {
                        Error::Backend(format!("reading etcd client TLS file {}: {e}", p.display()))
                    })
                };
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(Error::Backend(
                    "an etcd client certificate needs both a certificate and a key file".into(),
                ));
            }
        }
        connect = connect.with_tls(tls);
    }
    Ok(connect)
}

impl EtcdStore {
    /// Connects to the cluster and checks that it answers (within the connect timeout).
    pub async fn connect(options: EtcdOptions) -> Result<Self> {
        if options.endpoints.is_empty() {
            return Err(Error::Backend("no etcd endpoint given".into()));
        }
        let connect = connect_options(&options)?;
        let endpoints = options.endpoints.clone();
        let client = tokio::time::timeout(
            options.connect_timeout,
            Client::connect(endpoints, Some(connect)),
        )
        .await
        .map_err(|_| Error::Backend("connecting to etcd timed out".into()))?
        .map_err(backend)?;
        let mut store = Self::from_client(&client, options);
        // Fail now, with a clear message, if no member answers.
        store.current_revision().await.map_err(|e| {
            Error::Backend(format!(
                "etcd at {} does not answer: {e}",
                store.options.endpoints.join(",")
            ))
        })?;
        if let Some(interval) = store.options.compaction_interval {
            store.compactor = Some(tokio::spawn(compact_periodically(
                store.kv.clone(),
                interval,
                store.options.request_timeout,
                Arc::clone(&store.compacted),
            )));
        }
        Ok(store)
    }

    fn from_client(client: &Client, options: EtcdOptions) -> Self {
        Self {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES)
                .max_encoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            options,
            compacted: Arc::new(AtomicI64::new(1)),
            compactor: None,
        }
    }

    /// One member's health, as etcd's own `/health` judges it: a linearizable read through that
    /// member alone (it needs a leader and a quorum) within the timeout.
    async fn probe_member(&self, endpoint: &str) -> Result<()> {
        let options = connect_options(&self.options)?;
        let timeout = self.options.connect_timeout.min(Duration::from_secs(2));
        let probe = async {
            let mut client = Client::connect([endpoint], Some(options))
                .await
                .map_err(backend)?;
            client
                .get(vec![0], Some(GetOptions::new().with_count_only()))
                .await
                .map(|_| ())
                .map_err(backend)
        };
        tokio::time::timeout(timeout, probe).await.map_err(|_| {
            Error::Backend(format!(
                "etcd member {endpoint} did not answer within {timeout:?}"
            ))
        })?
    }

    /// Runs `attempt` with a KV client, failing with `Error::Backend("… timed out")` after the
    /// request timeout. An attempt that could not even connect (the member it was balanced to
    /// is down, so nothing was sent) is tried again: a dead member fails at once, and the
    /// balancer would otherwise keep preferring it as the least loaded.
    async fn bounded<T, F, Fut>(
        &self,
        what: &str,
        mut attempt: F,
    ) -> Result<std::result::Result<T, etcd_client::Error>>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.options.request_timeout;
        let timed_out = || {
            Error::Backend(format!(
                "etcd {what} timed out after {:?}",
                self.options.request_timeout
            ))
        };
        loop {
            let out = tokio::time::timeout_at(deadline, attempt(self.kv.clone()))
                .await
                .map_err(|_| timed_out())?;
            match out {
                Err(e)
                    if never_sent(&e)
                        && tokio::time::Instant::now() + CONNECT_RETRY_PAUSE < deadline =>
                {
                    tokio::time::sleep(CONNECT_RETRY_PAUSE).await;
                }
                other => return Ok(other),
            }
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .bounded("read", |mut kv| async move {
                kv.get(vec![0], Some(GetOptions::new().with_count_only()))
                    .await
            })
            .await?
            .map_err(backend)?;
        header_revision(resp.header())
    }

    /// Whether `revision` can still be read (`false`: it has been compacted).
    async fn readable(&self, revision: Revision) -> Result<bool> {
        let options = GetOptions::new().with_count_only().with_revision(revision);
        match self
            .bounded("read", |mut kv| {
                let options = options.clone();
                async move { kv.get(vec![0], Some(options)).await }
            })
            .await?
        {
            Ok(_) => Ok(true),
            Err(e) => match classify(e) {
                RevisionError::Compacted => Ok(false),
                // Not written yet, so not compacted either.
                RevisionError::Future => Ok(true),
                RevisionError::Other(e) => Err(e),
            },
        }
    }

    /// The current compaction point: the oldest readable revision. etcd does not report it, so
    /// it is found from the last one seen (usually one read confirms it is unchanged), searching
    /// upwards when another client compacted since.
    async fn compaction_point(&self) -> Result<Revision> {
        let known = self.compacted.load(Ordering::Acquire).max(1);
        if self.readable(known).await? {
            return Ok(known);
        }
        // `known` is compacted; the current revision never is.
        let (mut lo, mut hi) = (known + 1, self.current_revision().await?);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.readable(mid).await? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.compacted.fetch_max(lo, Ordering::AcqRel);
        Ok(lo)
    }

    async fn compacted_error(&self, requested: Revision) -> Error {
        match self.compaction_point().await {
            Ok(compacted) => Error::Compacted {
                requested,
                compacted,
            },
            Err(e) => e,
        }
    }

    async fn future_error(&self, requested: Revision) -> Error {
        match self.current_revision().await {
            Ok(current) => Error::FutureRevision { requested, current },
            Err(e) => e,
        }
    }

    /// Runs a conditional transaction: `compares` → `then`, else a read of `key`.
    async fn txn(
        &self,
        key: &[u8],
        compares: Vec<Compare>,
        then: TxnOp,
    ) -> Result<std::result::Result<(Revision, Option<crate::KeyValue>), Option<crate::KeyValue>>>
    {
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![then])
            .or_else(vec![TxnOp::get(key.to_vec(), None)]);
        let resp = self
            .bounded("write", |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?
            .map_err(backend)?;
        let revision = header_revision(resp.header())?;
        let op = resp.op_responses().into_iter().next();
        if resp.succeeded() {
            let prev = match op {
                Some(TxnOpResponse::Put(p)) => p.prev_key().map(convert),
                Some(TxnOpResponse::Delete(d)) => d.prev_kvs().first().map(convert),
                _ => None,
            };
            Ok(Ok((revision, prev)))
        } else {
            let current = match op {
                Some(TxnOpResponse::Get(g)) => g.kvs().first().map(convert),
                _ => None,
            };
            Ok(Err(current))
        }
    }
}

fn outcome(
    result: std::result::Result<(Revision, Option<crate::KeyValue>), Option<crate::KeyValue>>,
) -> WriteOutcome {
    match result {
        Ok((revision, prev)) => WriteOutcome::Committed { revision, prev },
        Err(current) => WriteOutcome::Failed { current },
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let (start, end) = etcd_range(&req.range);
        let mut options = GetOptions::new();
        if let Some(end) = end {
            options = options.with_range(end);
        }
        if let Some(rev) = req.revision {
            options = options.with_revision(rev);
        }
        let count_only = req.count_only || req.limit == Some(0);
        if count_only {
            options = options.with_count_only();
        } else if let Some(limit) = req.limit {
            options = options.with_limit(limit as i64);
        }
        let resp = match self
            .bounded("read", |mut kv| {
                let (start, options) = (start.clone(), options.clone());
                async move { kv.get(start, Some(options)).await }
            })
            .await?
        {
            Ok(resp) => resp,
            Err(e) => {
                let requested = req.revision.unwrap_or(0);
                return Err(match classify(e) {
                    RevisionError::Compacted => self.compacted_error(requested).await,
                    RevisionError::Future => self.future_error(requested).await,
                    RevisionError::Other(e) => e,
                });
            }
        };
        let revision = match req.revision {
            Some(rev) if rev > 0 => rev,
            _ => header_revision(resp.header())?,
        };
        let count = resp.count().max(0) as usize;
        let kvs: Vec<crate::KeyValue> = resp.kvs().iter().map(convert).collect();
        let more = if count_only {
            req.limit == Some(0) && count > 0
        } else {
            resp.more()
        };
        Ok(RangeResponse {
            kvs,
            revision,
            more,
            count,
        })
    }

    async fn put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        condition: Condition,
    ) -> Result<WriteOutcome> {
        if value.len() > MAX_VALUE_SIZE {
            return Err(Error::ValueTooLarge {
                size: value.len(),
                limit: MAX_VALUE_SIZE,
            });
        }
        let compares = match condition {
            Condition::None => Vec::new(),
            Condition::Absent => vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)],
            Condition::ModRevision(rev) => {
                vec![Compare::mod_revision(key.clone(), CompareOp::Equal, rev)]
            }
        };
        let put = TxnOp::put(key.clone(), value, Some(PutOptions::new().with_prev_key()));
        Ok(outcome(self.txn(&key, compares, put).await?))
    }

    async fn delete(&self, key: Vec<u8>, condition: Condition) -> Result<WriteOutcome> {
        let compare = match condition {
            // The key must exist: deleting an absent key is a failed condition.
            Condition::None => Compare::mod_revision(key.clone(), CompareOp::Greater, 0),
            // "Must not exist" can never hold for a delete: report the current value.
            Condition::Absent => {
                let resp = self
                    .bounded("read", |mut kv| {
                        let key = key.clone();
                        async move { kv.get(key, None).await }
                    })
                    .await?
                    .map_err(backend)?;
                return Ok(WriteOutcome::Failed {
                    current: resp.kvs().first().map(convert),
                });
            }
            Condition::ModRevision(rev) => {
                Compare::mod_revision(key.clone(), CompareOp::Equal, rev)
            }
        };
        let delete = TxnOp::delete(key.clone(), Some(DeleteOptions::new().with_prev_key()));
        Ok(outcome(self.txn(&key, vec![compare], delete).await?))
    }

    async fn watch(&self, range: KeyRange, start_revision: Revision) -> Result<WatchStream> {
        if start_revision > 0 && !self.readable(start_revision).await? {
            return Err(self.compacted_error(start_revision).await);
        }
        watch::start(self, range, start_revision).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self
            .bounded("compaction", |mut kv| async move {
                kv.compact(revision, None).await
            })
            .await?
        {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => match classify(e) {
                // At or below the compaction point: nothing to do.
                RevisionError::Compacted => Ok(()),
                RevisionError::Future => Err(self.future_error(revision).await),
                RevisionError::Other(e) => Err(e),
            },
        }
    }

    async fn member_health(&self) -> Vec<Result<()>> {
        let probes = self.options.endpoints.iter().map(|e| self.probe_member(e));
        futures::future::join_all(probes).await
    }

    async fn status(&self) -> Result<StoreStatus> {
        let revision = self.current_revision().await?;
        let compact_revision = self.compaction_point().await?;
        Ok(StoreStatus {
            revision,
            compact_revision,
        })
    }
}

/// kube-apiserver's policy: every `interval`, compact to the revision seen one interval ago, so
/// at least one interval of history stays readable for watchers that fall behind.
async fn compact_periodically(
    kv: KvClient,
    interval: Duration,
    timeout: Duration,
    compacted: Arc<AtomicI64>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Option<Revision> = None;
    loop {
        ticker.tick().await;
        let mut client = kv.clone();
        let current = match tokio::time::timeout(
            timeout,
            client.get(vec![0], Some(GetOptions::new().with_count_only())),
        )
        .await
        {
            Ok(Ok(resp)) => resp.header().map(|h| h.revision()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "etcd compaction: reading the revision failed");
                None
            }
            Err(_) => {
                tracing::warn!("etcd compaction: reading the revision timed out");
                None
            }
        };
        if let Some(target) = seen.filter(|&r| r > compacted.load(Ordering::Acquire)) {
            match tokio::time::timeout(timeout, client.compact(target, None)).await {
                Ok(Ok(_)) => {
                    compacted.fetch_max(target, Ordering::AcqRel);
                    tracing::debug!(revision = target, "etcd compacted");
                }
                Ok(Err(e)) => match classify(e) {
                    // Another server compacted past it already.
                    RevisionError::Compacted => {}
                    RevisionError::Future | RevisionError::Other(_) => {
                        tracing::warn!(revision = target, "etcd compaction failed")
                    }
                },
                Err(_) => tracing::warn!(revision = target, "etcd compaction timed out"),
            }
        }
        if current.is_some() {
            seen = current;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_map_to_etcd_keys() {
        assert_eq!(etcd_range(&KeyRange::key("a")), (b"a".to_vec(), None));
        assert_eq!(etcd_range(&KeyRange::prefix("")), (vec![0], Some(vec![0])));
        assert_eq!(
            etcd_range(&KeyRange::prefix(vec![0xff])),
            (vec![0xff], Some(vec![0]))
        );
        assert_eq!(
            etcd_range(&KeyRange::prefix("a/")),
            (b"a/".to_vec(), Some(b"a0".to_vec()))
        );
    }
}
