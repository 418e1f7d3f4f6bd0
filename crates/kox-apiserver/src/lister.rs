//! Listers: reads that admission plugins make on every request (the namespace, its service
//! account, PriorityClasses, LimitRanges), served from the watch caches as upstream serves them
//! from informer listers, instead of a store round trip and a decode per request. A cache can
//! lag a write by the watch delay; an object the cache has not seen yet is looked up in the
//! store (upstream's "live lookup"), so a namespace or service account created a moment ago is
//! found.

use std::sync::Arc;

use serde_json::Value;

use crate::error::ApiResult;
use crate::registry::{ObjectRef, Registry};
use crate::resources::ResourceDef;

impl Registry {
    /// One object from the watch cache, or from the store when the cache does not have it;
    /// a 404 when neither has it.
    pub async fn lister_get(&self, r: ObjectRef<'_>) -> ApiResult<Arc<Value>> {
        let key = r.key();
        if let Some(v) = self.caches.get(r.def).get(key.as_bytes()).await {
            return Ok(v);
        }
        self.get(r).await.map(Arc::new)
    }

    /// The objects of one namespace (`None`: all, or a cluster-scoped resource) as the watch
    /// cache holds them.
    pub async fn lister_list(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
    ) -> Vec<Arc<Value>> {
        let prefix = crate::list::list_prefix(def, namespace);
        self.caches.get(def).snapshot(prefix.as_bytes()).await.0
    }
}
