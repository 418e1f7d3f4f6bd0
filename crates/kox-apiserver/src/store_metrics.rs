//! A `Store` wrapper that records how long each store operation takes, for `/metrics`
//! (`etcd_request_duration_seconds`, as upstream names the store latency).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use kox_store::{
    Condition, KeyRange, RangeRequest, RangeResponse, Result, Revision, Store, StoreStatus,
    WatchStream, WriteOutcome,
};

use crate::metrics::Metrics;

/// Forwards to the inner store and observes every call's latency.
pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Store for InstrumentedStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let started = Instant::now();
        let r = self.inner.range(req).await;
        self.metrics.observe_store("range", started.elapsed());
        r
    }

    async fn put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        condition: Condition,
    ) -> Result<WriteOutcome> {
        let started = Instant::now();
        let r = self.inner.put(key, value, condition).await;
        self.metrics.observe_store("put", started.elapsed());
        r
    }

    async fn delete(&self, key: Vec<u8>, condition: Condition) -> Result<WriteOutcome> {
        let started = Instant::now();
        let r = self.inner.delete(key, condition).await;
        self.metrics.observe_store("delete", started.elapsed());
        r
    }

    async fn watch(&self, range: KeyRange, start_revision: Revision) -> Result<WatchStream> {
        self.inner.watch(range, start_revision).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.compact(revision).await;
        self.metrics.observe_store("compact", started.elapsed());
        r
    }

    async fn status(&self) -> Result<StoreStatus> {
        self.inner.status().await
    }

    async fn member_health(&self) -> Vec<Result<()>> {
        self.inner.member_health().await
    }
}
