//! The embedded engine against the shared conformance suite.

use std::sync::Arc;
use std::time::Duration;

use kox_store::Store;
use kox_store::embedded::{EmbeddedOptions, EmbeddedStore};

async fn fresh_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = EmbeddedOptions {
        progress_notify_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let store = EmbeddedStore::open(dir.path(), options).expect("open embedded store");
    (Arc::new(store), dir)
}

kox_store::conformance_tests!(fresh_store());
