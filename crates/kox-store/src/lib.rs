//! `kox-store`: the cluster's single source of truth, with etcd v3 semantics.
//!
//! **Architecture invariant:** this crate knows bytes, keys and revisions — nothing about
//! Kubernetes objects. The API server maps `resourceVersion` to [`KeyValue::mod_revision`].
//!
//! The [`Store`] trait is the contract; every engine implements it and passes the conformance
//! suite in [`conformance`]. The embedded engine ([`embedded::EmbeddedStore`]) is the default;
//! the etcd engine ([`etcd::EtcdStore`]) keeps the state in an etcd cluster.
#![forbid(unsafe_code)]

mod error;
mod types;

pub mod bench;
pub mod conformance;
pub mod embedded;
pub mod etcd;
pub mod snapshot;

pub use error::{Error, Result};
pub use types::*;

use async_trait::async_trait;

/// Largest value accepted by a write (etcd's default request limit).
pub const MAX_VALUE_SIZE: usize = 1536 * 1024;

/// A revisioned key-value store with conditional writes, MVCC reads and watch.
///
/// Revision semantics, shared by every engine:
/// - One global revision, starting at 1 for an empty store (nothing has that revision) and
///   increased by exactly one for every successful write. A failed condition writes nothing and
///   does not increase it.
/// - Ranges are `[start, end)`; see [`KeyRange`].
/// - A read at a revision older than the compaction point fails with [`Error::Compacted`]; newer
///   than the current revision fails with [`Error::FutureRevision`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads the keys of `range` as they were at `revision` (`None` = the current revision).
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Writes `value` at `key` if `condition` holds, as one durable transaction.
    ///
    /// `Ok(WriteOutcome::Failed { current })` when the condition did not hold; nothing was written.
    /// Values over [`MAX_VALUE_SIZE`] fail with [`Error::ValueTooLarge`], nothing written.
    async fn put(&self, key: Vec<u8>, value: Vec<u8>, condition: Condition)
    -> Result<WriteOutcome>;

    /// Deletes `key` if it exists and `condition` holds, as one durable transaction.
    ///
    /// Deleting an absent key is `Ok(WriteOutcome::Failed { current: None })`, whatever the
    /// condition, and does not increase the revision.
    async fn delete(&self, key: Vec<u8>, condition: Condition) -> Result<WriteOutcome>;

    /// Watches `range` from `start_revision` (inclusive).
    ///
    /// History from `start_revision` is replayed first, then live events follow with no gap and
    /// no duplicate. `start_revision` of 0 means "from the next write"; a start beyond the
    /// current revision delivers events from that revision on. A start older than the
    /// compaction point fails with [`Error::Compacted`] (as the stream's only item when a
    /// compaction overtakes the replay). While quiet, the stream yields
    /// [`WatchEvent::Progress`] periodically. A watcher that falls behind is ended with
    /// [`Error::WatcherLagged`] as its last item; the caller relists.
    async fn watch(&self, range: KeyRange, start_revision: Revision) -> Result<WatchStream>;

    /// Drops history older than `revision`: reads and watches below it fail with
    /// [`Error::Compacted`] afterwards. Compacting at or below the current compaction point is a
    /// no-op; above the current revision is [`Error::FutureRevision`].
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The current revision and the compaction point.
    async fn status(&self) -> Result<StoreStatus>;

    /// The health of each member that holds the data, in a stable order (what
    /// `componentstatuses` lists as `etcd-0`, `etcd-1`, …). A single-process engine is one
    /// member, healthy when it answers [`status`](Store::status).
    async fn member_health(&self) -> Vec<Result<()>> {
        vec![self.status().await.map(|_| ())]
    }
}
