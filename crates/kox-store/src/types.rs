use std::pin::Pin;

use futures::Stream;

use crate::Result;

/// A store revision. Revision numbers are positive; 0 is used as "unset" in requests.
pub type Revision = i64;

/// A key and its value as of some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
    /// Number of writes since creation; 1 after the create.
    pub version: i64,
}

/// A half-open key range `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Vec<u8>,
    /// `None` selects the single key `start`.
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// The single key `key`.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        Self {
            start: key.into(),
            end: None,
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let start = prefix.into();
        let end = prefix_end(&start);
        Self {
            start,
            end: Some(end),
        }
    }

    /// Keys in `[start, end)`.
    pub fn between(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        Self {
            start: start.into(),
            end: Some(end.into()),
        }
    }

    /// Whether `key` falls within this range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            None => key == self.start.as_slice(),
            // An empty end means "no upper bound", as `prefix_end` of an all-0xff prefix.
            Some(end) => key >= self.start.as_slice() && (end.is_empty() || key < end.as_slice()),
        }
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's `GetPrefixRangeEnd`).
/// An empty result means "no upper bound".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// A range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRequest {
    pub range: KeyRange,
    /// At most this many keys (in key order); `None` = all.
    pub limit: Option<usize>,
    /// Read as of this revision; `None` = current.
    pub revision: Option<Revision>,
    /// Only count the keys; `kvs` stays empty.
    pub count_only: bool,
}

impl RangeRequest {
    /// All keys of `range` at the current revision.
    pub fn new(range: KeyRange) -> Self {
        Self {
            range,
            limit: None,
            revision: None,
            count_only: false,
        }
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn at_revision(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }
}

/// The result of a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResponse {
    /// Keys in ascending key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at (the current revision when none was asked).
    pub revision: Revision,
    /// Whether keys beyond `limit` exist in the range.
    pub more: bool,
    /// Total number of keys in the range at that revision (ignoring `limit`).
    pub count: usize,
}

/// The precondition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Unconditional.
    None,
    /// The key must not exist (create).
    Absent,
    /// The key must exist with this `mod_revision` (compare-and-swap).
    ModRevision(Revision),
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written at `revision`.
    Committed {
        revision: Revision,
        /// The key's value before the write, if it existed.
        prev: Option<KeyValue>,
    },
    /// The condition did not hold; nothing was written. `current` is the key's current value,
    /// so the caller can report the conflict without reading again.
    Failed { current: Option<KeyValue> },
}

/// One change seen by a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// `kv` was written at `kv.mod_revision`; `prev` is the value before, if any.
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// `prev.key` was deleted at `revision`; `prev` is its last value.
    Delete { prev: KeyValue, revision: Revision },
    /// Nothing in the range changed up to `revision` (a progress notification).
    Progress { revision: Revision },
}

impl WatchEvent {
    /// The revision this event reports.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } | WatchEvent::Progress { revision } => *revision,
        }
    }
}

/// A watch: ordered events, ending with an error if the watcher is dropped by the store.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// The store's revision bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStatus {
    /// The revision of the last committed write (1 for an empty store).
    pub revision: Revision,
    /// The oldest revision still readable.
    pub compact_revision: Revision,
}
