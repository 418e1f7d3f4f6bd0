//! Listers: reads that admission plugins make on every request (the namespace, its service
//! account, PriorityClasses, LimitRanges), served from the watch caches as upstream serves them
//! from informer listers, instead of a store round trip and a decode per request. A cache can
//! lag a write by the watch delay; an object the cache has not seen yet is looked up in the
//! store (upstream's "live lookup"), so a namespace or service account created a moment ago is
//! found.

use std::sync::Arc;

use serde_json::Value;

use crate::error::ApiResult;
use crate::list::ListQuery;
use crate::registry::{ObjectRef, Registry};
use crate::resources::ResourceDef;

impl Registry {
    /// One object from the watch cache, or from the store when the cache does not have it or
    /// is not following the store right now (a broken watch must not hold requests up); a 404
    /// when neither has it.
    pub async fn lister_get(&self, r: ObjectRef<'_>) -> ApiResult<Arc<Value>> {
        let key = r.key();
        if let Some(Some(v)) = self.caches.get(r.def).try_get(key.as_bytes()) {
            return Ok(v);
        }
        self.get(r).await.map(Arc::new)
    }

    /// The objects of one namespace (`None`: all, or a cluster-scoped resource) as the watch
    /// cache holds them, or from the store while the cache is not synced.
    pub async fn lister_list(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
    ) -> ApiResult<Vec<Arc<Value>>> {
        let prefix = crate::list::list_prefix(def, namespace);
        if let Some(items) = self.caches.get(def).try_snapshot(prefix.as_bytes()) {
            return Ok(items);
        }
        let listed = self.list(def, namespace, &ListQuery::default()).await?;
        Ok(listed.items)
    }
}
