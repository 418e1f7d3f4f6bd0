//! The embedded engine: a durable store in one redb file. (Being written.)
