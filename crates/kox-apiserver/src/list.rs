//! LIST: paging with consistent snapshots, resource version semantics, and selectors.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use kox_api::field_selector::FieldSelector;
use kox_api::label_selector::Selector;
use kox_store::{KeyRange, RangeRequest, prefix_end};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::registry::{Registry, decode};
use crate::resources::ResourceDef;

/// Most objects read from the store per round trip while filtering.
const CHUNK: usize = 500;

/// The query parameters of a list or watch.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub allow_watch_bookmarks: bool,
    pub timeout_seconds: Option<u64>,
    pub send_initial_events: Option<bool>,
}

/// Compiled selectors for one request.
pub struct Filter {
    labels: Option<Selector>,
    fields: Option<FieldSelector>,
    def: &'static ResourceDef,
}

impl Filter {
    pub fn new(def: &'static ResourceDef, q: &ListQuery) -> ApiResult<Self> {
        let labels = match q.label_selector.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(Selector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?),
            None => None,
        };
        let fields = match q.field_selector.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let f =
                    FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                let mut supported = vec!["metadata.name", "metadata.namespace"];
                supported.extend_from_slice(def.strategy.field_names);
                f.check_supported(&supported)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(f)
            }
            None => None,
        };
        Ok(Self {
            labels,
            fields,
            def,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// Whether `obj` passes the selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(sel) = &self.labels {
            let labels: BTreeMap<String, String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect();
            if !sel.matches(&labels) {
                return false;
            }
        }
        if let Some(fields) = &self.fields {
            let lookup = |field: &str| -> Option<String> {
                match field {
                    "metadata.name" => obj
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    "metadata.namespace" => Some(
                        obj.pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    ),
                    other => (self.def.strategy.field)(obj, other),
                }
            };
            if !fields.matches(&lookup) {
                return false;
            }
        }
        true
    }
}

/// A continue token: the snapshot revision and the next key (base64 JSON, opaque to clients).
fn encode_continue(rv: i64, next_key: &[u8]) -> String {
    let body =
        json!({ "v": "meta.k8s.io/v1", "rv": rv, "start": String::from_utf8_lossy(next_key) });
    base64::engine::general_purpose::URL_SAFE.encode(body.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(i64, Vec<u8>)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, start.as_bytes().to_vec()))
}

/// The store key prefix for a list in `namespace` (all namespaces when `None`).
pub fn list_prefix(def: &ResourceDef, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if def.namespaced => format!("{}{ns}/", def.key_prefix()),
        _ => def.key_prefix(),
    }
}

/// The result of a list before it is rendered. Items are shared: a list served from the watch
/// cache hands out the cache's objects without copying them.
pub struct Listed {
    pub items: Vec<Arc<Value>>,
    pub resource_version: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

impl Listed {
    /// The items as owned values (copied only where still shared with the watch cache).
    pub fn into_owned(self) -> Vec<Value> {
        self.items.into_iter().map(Arc::unwrap_or_clone).collect()
    }
}

impl Registry {
    /// Lists objects, as upstream's LIST with `limit`/`continue`/`resourceVersion`.
    pub async fn list(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        q: &ListQuery,
    ) -> ApiResult<Listed> {
        let filter = Filter::new(def, q)?;
        let prefix = list_prefix(def, namespace);
        // resourceVersion=0 means "any version": served from the watch cache, limit ignored,
        // as upstream's cacher does.
        if q.resource_version.as_deref() == Some("0")
            && q.continue_token.as_deref().is_none_or(str::is_empty)
            && q.resource_version_match.as_deref() != Some("Exact")
        {
            let (objects, revision) = self.caches.get(def).snapshot(prefix.as_bytes()).await;
            let items = objects.into_iter().filter(|o| filter.matches(o)).collect();
            return Ok(Listed {
                items,
                resource_version: revision,
                continue_token: None,
                remaining: None,
            });
        }
        let end = prefix_end(prefix.as_bytes());
        let (revision, mut start) = match q.continue_token.as_deref().filter(|s| !s.is_empty()) {
            Some(token) => {
                let (rv, start) = decode_continue(token)?;
                if !start.starts_with(prefix.as_bytes()) {
                    return Err(ApiError::bad_request(
                        "continue key is not valid: the continue token does not belong to this list",
                    ));
                }
                (Some(rv), start)
            }
            None => {
                let exact = q.resource_version_match.as_deref() == Some("Exact");
                let rv = crate::meta::requested_resource_version(q.resource_version.as_deref())?;
                let status = self.store.status().await?;
                match rv {
                    Some(rv) if rv > status.revision => {
                        // Upstream's NewTooLargeResourceVersionError: a 504 with a
                        // ResourceVersionTooLarge cause and a one-second Retry-After.
                        return Err(kox_api::status::too_large_resource_version(
                            rv as u64,
                            status.revision.max(0) as u64,
                            1,
                        )
                        .into());
                    }
                    Some(rv) if exact => (Some(rv), prefix.as_bytes().to_vec()),
                    _ => (None, prefix.as_bytes().to_vec()),
                }
            }
        };
        let limit = q.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut snapshot = revision;
        let mut continue_token = None;
        let mut remaining = None;
        loop {
            let want = match limit {
                Some(l) if filter.is_empty() => l - items.len() + 1,
                _ => CHUNK,
            };
            let mut req =
                RangeRequest::new(KeyRange::between(start.clone(), end.clone())).limit(want);
            req.revision = snapshot;
            let resp = self.store.range(req).await.map_err(|e| match (e, &q.continue_token) {
                (kox_store::Error::Compacted { .. }, Some(_)) => ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."),
                (e, _) => e.into(),
            })?;
            snapshot = Some(resp.revision);
            let mut last_key = None;
            let total_in_range = resp.count;
            for (i, kv) in resp.kvs.iter().enumerate() {
                if let Some(l) = limit
                    && items.len() == l
                {
                    // One more object exists beyond the page.
                    continue_token = Some(encode_continue(resp.revision, &kv.key));
                    if filter.is_empty() {
                        remaining = Some(total_in_range - i);
                    }
                    break;
                }
                let obj = decode(kv)?;
                if filter.matches(&obj) {
                    items.push(Arc::new(obj));
                }
                last_key = Some(kv.key.clone());
            }
            if continue_token.is_some() || !resp.more {
                break;
            }
            match last_key {
                Some(mut k) => {
                    k.push(0);
                    start = k;
                }
                None => break,
            }
        }
        Ok(Listed {
            items,
            resource_version: snapshot.unwrap_or_default(),
            continue_token,
            remaining,
        })
    }
}

/// A list as `<Kind>List`, serialized straight from the listed objects: each item is written
/// without its `kind` and `apiVersion` (as upstream's list items), and nothing is copied, so a
/// 10,000-object list from the watch cache costs its encoding only.
pub struct ListBody<'a> {
    pub def: &'a ResourceDef,
    pub listed: &'a Listed,
}

impl serde::Serialize for ListBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("kind", &format!("{}List", self.def.kind))?;
        map.serialize_entry("apiVersion", &self.def.api_version())?;
        map.serialize_entry("metadata", &list_metadata(self.listed))?;
        map.serialize_entry("items", &Items(&self.listed.items))?;
        map.end()
    }
}

/// A list's `metadata`: its resource version, and where the next page starts.
fn list_metadata(listed: &Listed) -> Value {
    let mut metadata = json!({ "resourceVersion": listed.resource_version.to_string() });
    if let Some(c) = &listed.continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(r) = listed.remaining {
        metadata["remainingItemCount"] = json!(r);
    }
    metadata
}

/// About how many bytes of a list's encoding are made at a time.
const LIST_CHUNK: usize = 64 * 1024;
/// How many objects a whole-collection list reads from the store at a time when streamed.
const STREAM_PAGE: usize = 100;

impl Registry {
    /// A list's JSON, made as the client reads it. A consistent list of a whole collection
    /// (no `limit`, not `resourceVersion=0`) is read from the store a page at a time at one
    /// revision, as if the client paged through it: a list in flight holds one page and one
    /// chunk of its encoding, not the collection, however large it is and however slowly it is
    /// read. A list from the watch cache holds the cache's shared objects.
    pub async fn list_json(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        q: &ListQuery,
    ) -> ApiResult<impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        use futures::StreamExt;
        let whole = q.limit.is_none()
            && q.continue_token.as_deref().is_none_or(str::is_empty)
            && q.resource_version.as_deref() != Some("0");
        if !whole {
            let listed = self.list(def, namespace, q).await?;
            let metadata = list_metadata(&listed);
            let pages = futures::stream::iter([Ok(listed.items)]);
            return Ok(json_chunks(def, metadata, pages.boxed()));
        }
        let paged = ListQuery {
            limit: Some(STREAM_PAGE),
            ..q.clone()
        };
        let first = self.list(def, namespace, &paged).await?;
        let metadata = json!({ "resourceVersion": first.resource_version.to_string() });
        let (reg, namespace) = (self.clone(), namespace.map(str::to_string));
        let rest = futures::stream::unfold(first.continue_token, move |token| {
            let (reg, namespace) = (reg.clone(), namespace.clone());
            let mut q = paged.clone();
            async move {
                q.continue_token = Some(token?);
                match reg.list(def, namespace.as_deref(), &q).await {
                    Ok(page) => Some((Ok(page.items), page.continue_token)),
                    Err(e) => Some((Err(std::io::Error::other(e.message().to_string())), None)),
                }
            }
        });
        let pages = futures::stream::iter([Ok(first.items)]).chain(rest);
        Ok(json_chunks(def, metadata, pages.boxed()))
    }
}

/// A list's JSON (the bytes [`ListBody`] serializes to, and a newline) from its `metadata` and
/// its items' `pages`, made a chunk at a time as the client reads. A page that cannot be read ends the
/// body with an error, so the client sees a failed response rather than a short list.
fn json_chunks(
    def: &'static ResourceDef,
    metadata: Value,
    pages: futures::stream::BoxStream<'static, std::io::Result<Vec<Arc<Value>>>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let mut head = Vec::with_capacity(256);
    let kind = format!("{}List", def.kind);
    head.extend_from_slice(b"{\"kind\":");
    let _ = serde_json::to_writer(&mut head, &kind);
    head.extend_from_slice(b",\"apiVersion\":");
    let _ = serde_json::to_writer(&mut head, &def.api_version());
    head.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut head, &metadata);
    head.extend_from_slice(b",\"items\":[");
    let state = Chunker {
        chunk: head,
        page: Vec::new().into_iter(),
        pages,
        first: true,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            if st.chunk.len() >= LIST_CHUNK {
                let chunk = std::mem::replace(&mut st.chunk, Vec::with_capacity(LIST_CHUNK));
                return Some((Ok(Bytes::from(chunk)), Some(st)));
            }
            if let Some(item) = st.page.next() {
                if !std::mem::take(&mut st.first) {
                    st.chunk.push(b',');
                }
                let _ = serde_json::to_writer(&mut st.chunk, &WithoutTypeMeta(&item));
                continue;
            }
            match futures::StreamExt::next(&mut st.pages).await {
                Some(Ok(page)) => st.page = page.into_iter(),
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    // Upstream's encoder ends every body with a newline.
                    st.chunk.extend_from_slice(b"]}\n");
                    return Some((Ok(Bytes::from(st.chunk)), None));
                }
            }
        }
    })
}

/// Where [`json_chunks`] is: the chunk being filled, the page being encoded, the pages to come.
struct Chunker {
    chunk: Vec<u8>,
    page: std::vec::IntoIter<Arc<Value>>,
    pages: futures::stream::BoxStream<'static, std::io::Result<Vec<Arc<Value>>>>,
    first: bool,
}

struct Items<'a>(&'a [Arc<Value>]);

impl serde::Serialize for Items<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|o| WithoutTypeMeta(o)))
    }
}

/// An object without its `kind` and `apiVersion`.
struct WithoutTypeMeta<'a>(&'a Value);

impl serde::Serialize for WithoutTypeMeta<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(m) => s.collect_map(
                m.iter()
                    .filter(|(k, _)| k.as_str() != "kind" && k.as_str() != "apiVersion"),
            ),
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_list_streamed_in_chunks_is_the_list_serialized_whole() {
        let def = crate::resources::find("", "v1", "configmaps").unwrap();
        let items: Vec<Arc<Value>> = (0..500)
            .map(|i| {
                Arc::new(json!({"kind": "ConfigMap", "apiVersion": "v1",
                    "metadata": {"name": format!("cm-{i}"), "namespace": "default"},
                    "data": {"k": "v".repeat(300)}}))
            })
            .collect();
        for items in [items.clone(), Vec::new()] {
            let listed = || Listed {
                items: items.clone(),
                resource_version: 42,
                continue_token: Some("next".into()),
                remaining: Some(7),
            };
            let whole = serde_json::to_vec(&ListBody {
                def,
                listed: &listed(),
            })
            .unwrap();
            let pages =
                futures::stream::iter(items.chunks(70).map(|p| Ok(p.to_vec())).collect::<Vec<_>>());
            let chunks: Vec<Bytes> = json_chunks(def, list_metadata(&listed()), pages.boxed())
                .map(Result::unwrap)
                .collect()
                .await;
            assert!(chunks.iter().all(|c| c.len() < LIST_CHUNK + 1024));
            assert_eq!(chunks.len(), whole.len() / LIST_CHUNK + 1);
            assert_eq!(chunks.concat(), [whole, b"\n".to_vec()].concat());
        }
    }
}
