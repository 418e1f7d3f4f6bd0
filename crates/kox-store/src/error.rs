use crate::Revision;

/// Errors of the store. Each variant names a situation the caller handles differently.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested revision has been compacted away.
    #[error("required revision {requested} has been compacted (compaction point {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },

    /// The requested revision is newer than the store's current revision.
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },

    /// The value exceeds [`crate::MAX_VALUE_SIZE`].
    #[error("value of {size} bytes is larger than the limit of {limit} bytes")]
    ValueTooLarge { size: usize, limit: usize },

    /// A watcher fell behind the writers and its buffer filled; it has been ended.
    #[error("watcher fell behind and was ended; list again and watch from the new revision")]
    WatcherLagged,

    /// The store is shutting down or closed.
    #[error("store is closed")]
    Closed,

    /// The engine could not complete the operation (disk, network, corruption).
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
