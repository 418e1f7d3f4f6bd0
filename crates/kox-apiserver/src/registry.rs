//! The generic registry: create, read, update, patch, delete and list for every resource, over
//! the store. Per-kind behaviour comes from the resource's [`Strategy`](crate::strategy::Strategy).
//!
//! Objects are stored as JSON without `metadata.resourceVersion`; the store's `mod_revision` of
//! the key is the resource version, set on every read.

use std::sync::Arc;

use kox_store::{Condition, KeyRange, KeyValue, RangeRequest, Store, WriteOutcome};
use serde_json::{Value, json};

use crate::admission::{self, Attributes, Operation, UserInfo};
use crate::allocator::Allocators;
use crate::error::{ApiError, ApiResult, Target};
use crate::meta;
use crate::resources::ResourceDef;

/// How strictly unknown fields are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

/// Options shared by writes.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions<'a> {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    /// Who writes, for admission; `None` for the server's own writes.
    pub user: Option<&'a UserInfo>,
    /// The resource the client named, when it is served by conversion from the stored one
    /// (`convert.rs`): its strategy validates, as upstream validates with the request's
    /// group version.
    pub requested: Option<&'static ResourceDef>,
}

/// What a write returns: the object, and warnings for the `Warning` header.
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    /// Annotations admission plugins add to the request's audit event
    /// (e.g. `pod-security.kubernetes.io/audit-violations`).
    pub audit_annotations: Vec<(String, String)>,
    /// 201 for a create, 200 otherwise.
    pub created: bool,
}

/// The generic registry.
#[derive(Clone)]
pub struct Registry {
    pub store: Arc<dyn Store>,
    pub allocators: Arc<Allocators>,
    /// One watch cache per resource, fed by one store watch each.
    pub caches: Arc<crate::watch_cache::WatchCaches>,
    /// The admission plugins every create, update and delete passes.
    pub admission: Arc<admission::Chain>,
}

/// One object addressed by a request.
#[derive(Clone, Copy)]
pub struct ObjectRef<'a> {
    pub def: &'static ResourceDef,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl<'a> ObjectRef<'a> {
    pub fn key(&self) -> String {
        self.def.key(self.namespace, self.name)
    }

    pub fn with_target<T>(&self, f: impl FnOnce(Target<'_>) -> T) -> T {
        let q = self.def.qualified();
        f(Target {
            qualified_resource: &q,
            group: self.def.group,
            resource: self.def.plural,
            name: self.name,
        })
    }

    fn not_found(&self) -> ApiError {
        self.with_target(ApiError::not_found)
    }
}

/// A PUT's uid is a precondition (upstream's `DefaultUpdatedObjectInfo.Preconditions`),
/// checked against the stored object before anything else: another uid is a 409. A PATCH has
/// none; a uid it changes is refused by validation (422).
pub fn uid_precondition(r: ObjectRef<'_>, current: &Value, new: &Value) -> ApiResult<()> {
    let current_uid = str_at(current, "/metadata/uid");
    match str_at(new, "/metadata/uid") {
        uid if uid.is_empty() || uid == current_uid => Ok(()),
        uid => {
            let key = r.key();
            Err(r.with_target(|t| {
                ApiError::conflict(
                    t,
                    &format!(
                        "StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {uid}, UID in object meta: {current_uid}"
                    ),
                )
            }))
        }
    }
}

/// Decodes a stored value and stamps its resource version.
pub fn decode(kv: &KeyValue) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!(
            "stored object at {} is corrupt: {e}",
            String::from_utf8_lossy(&kv.key)
        ))
    })?;
    meta::set_resource_version(&mut v, kv.mod_revision);
    Ok(v)
}

/// A string at a JSON pointer, or empty.
fn str_at<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn encode(obj: &Value) -> ApiResult<Vec<u8>> {
    let mut obj = obj.clone();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).map_err(ApiError::internal)
}

impl Registry {
    /// Reads one object.
    pub async fn get(&self, r: ObjectRef<'_>) -> ApiResult<Value> {
        self.get_kv(r)
            .await?
            .as_ref()
            .map(decode)
            .transpose()?
            .ok_or_else(|| r.not_found())
    }

    async fn get_kv(&self, r: ObjectRef<'_>) -> ApiResult<Option<KeyValue>> {
        let resp = self
            .store
            .range(RangeRequest::new(KeyRange::key(r.key())))
            .await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Normalizes an incoming object through the kind's typed form, checking apiVersion/kind and
    /// reporting unknown fields as `fieldValidation` asks.
    pub fn admit_body(
        &self,
        def: &ResourceDef,
        body: Value,
        opts: WriteOptions<'_>,
    ) -> ApiResult<(Value, Vec<String>)> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: the object must be a JSON object",
                def.kind, def.version, def.kind
            )));
        }
        let api_version = def.api_version();
        let mut body = body;
        match body.get("apiVersion").and_then(Value::as_str) {
            Some(v) if v != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
            Some(_) => {}
            None => body["apiVersion"] = json!(api_version),
        }
        match body.get("kind").and_then(Value::as_str) {
            Some(k) if k != def.kind => {
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: the kind in the data ({k}) does not match the expected kind ({})",
                    def.kind, def.version, def.kind, def.kind
                )));
            }
            Some(_) => {}
            None => body["kind"] = json!(def.kind),
        }
        let normalized = (def.strategy.normalize)(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                def.kind, def.version, def.kind
            ))
        })?;
        let unknown = meta::unknown_fields(&body, &normalized);
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            match opts.field_validation {
                FieldValidation::Strict => {
                    let list: Vec<String> = unknown
                        .iter()
                        .map(|f| format!("unknown field \"{f}\""))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        def.kind,
                        def.version,
                        def.kind,
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => {
                    warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")))
                }
                FieldValidation::Ignore => {}
            }
        }
        Ok((normalized, warnings))
    }

    /// Creates an object in `namespace`.
    pub async fn create(
        &self,
        def: &'static ResourceDef,
        namespace: Option<&str>,
        body: Value,
        opts: WriteOptions<'_>,
    ) -> ApiResult<Written> {
        let (mut obj, warnings) = self.admit_body(def, body, opts)?;
        let meta = meta::metadata_mut(&mut obj);
        if def.namespaced {
            let ns = namespace.unwrap_or_default();
            match meta.get("namespace").and_then(Value::as_str) {
                Some(given) if !given.is_empty() && given != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let generate = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let has_name = meta
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name && !generate.is_empty() {
            meta.insert("name".into(), json!(meta::generate_name(&generate)));
        }
        // The storage layer refuses a create that names a version (below, after validation).
        let names_version = meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .and_then(|rv| rv.parse::<u64>().ok())
            .is_some_and(|rv| rv != 0);
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if def.strategy.tracks_generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        (def.strategy.defaults)(&mut obj);
        // Mutating admission sees the decoded, defaulted object; the kind's validation sees
        // what admission made of it.
        let mut attrs = Attributes::new(Operation::Create, def, namespace);
        attrs.name = str_at(&obj, "/metadata/name").to_string();
        attrs.dry_run = opts.dry_run;
        attrs.user = opts.user;
        attrs.object = Some(obj);
        self.admission.mutate(self, &mut attrs).await?;
        let mut obj = attrs.object.take().unwrap_or_default();
        if def.group.is_empty() && def.kind == "Pod" {
            // Computed from what admission made of the resources (LimitRange defaults).
            crate::validation::pods::set_qos_class(&mut obj);
        }
        let name = str_at(&obj, "/metadata/name").to_string();
        let errs = (opts.requested.unwrap_or(def).strategy.validate)(&obj);
        if !errs.is_empty() {
            return Err(ApiError::invalid(def.kind, def.group, &name, &errs.0));
        }
        // The kind's own checks first, then the metadata checks every kind gets (BeforeCreate).
        let errs = meta::validate_common(&obj, def.namespaced);
        if !errs.is_empty() {
            return Err(ApiError::invalid(def.kind, def.group, &name, &errs.0));
        }
        attrs.name = name.clone();
        attrs.object = Some(obj);
        self.admission.validate(self, &mut attrs).await?;
        let mut obj = attrs.object.take().unwrap_or_default();
        kox_proto::go_json::shape(&def.api_version(), def.kind, &mut obj);
        let mut warnings = warnings;
        warnings.append(&mut attrs.warnings);
        let audit_annotations = std::mem::take(&mut attrs.audit_annotations);
        let r = ObjectRef {
            def,
            namespace,
            name: &name,
        };
        if opts.dry_run {
            if self.get_kv(r).await?.is_some() {
                return Err(r.with_target(ApiError::already_exists));
            }
            return Ok(Written {
                object: obj,
                warnings,
                audit_annotations,
                created: true,
            });
        }
        // Upstream's storage Create: a plain error (500, no reason), before the key is checked.
        // A dry run never reaches it.
        if names_version {
            return Err(ApiError::new(
                500,
                "",
                "resourceVersion should not be set on objects to be created",
            ));
        }
        // An existing name is AlreadyExists, not an allocation error for its address.
        if self.get_kv(r).await?.is_some() {
            return Err(r.with_target(ApiError::already_exists));
        }
        let claims = self.allocators.allocate(def, &mut obj, None).await?;
        let value = encode(&obj)?;
        match self
            .store
            .put(r.key().into_bytes(), value, Condition::Absent)
            .await
        {
            Ok(WriteOutcome::Committed { revision, .. }) => {
                meta::set_resource_version(&mut obj, revision);
                if def.group.is_empty() && def.kind == "Namespace" {
                    admission::service_account::ensure_default(self, &name).await;
                }
                Ok(Written {
                    object: obj,
                    warnings,
                    audit_annotations,
                    created: true,
                })
            }
            Ok(WriteOutcome::Failed { .. }) => {
                self.allocators.release(claims).await;
                Err(r.with_target(ApiError::already_exists))
            }
            Err(e) => {
                self.allocators.release(claims).await;
                Err(e.into())
            }
        }
    }

    /// Reads, transforms and writes back one object with compare-and-swap, retrying on races
    /// unless the caller pinned a resource version (then a race is a 409).
    ///
    /// `mutate` gets the current object (with its resourceVersion) and returns the new one, or
    /// `None` to write nothing. `subresource` is `None` for the main resource, `Some("status")` …
    pub async fn update_with<F>(
        &self,
        r: ObjectRef<'_>,
        subresource: Option<&str>,
        opts: WriteOptions<'_>,
        mut mutate: F,
    ) -> ApiResult<Written>
    where
        F: FnMut(&Value) -> ApiResult<(Value, Vec<String>)>,
    {
        let def = r.def;
        for _attempt in 0..16 {
            let Some(kv) = self.get_kv(r).await? else {
                return Err(r.not_found());
            };
            let current = decode(&kv)?;
            let (mut new, warnings) = mutate(&current)?;
            let pinned = new
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(rv) = pinned.as_deref().filter(|s| !s.is_empty())
                && meta::parse_resource_version(rv) != Some(kv.mod_revision)
            {
                return Err(r.with_target(ApiError::stale));
            }
            self.prepare_update(def, subresource, &mut new, &current)?;
            let mut attrs = Attributes::new(Operation::Update, def, r.namespace);
            attrs.subresource = subresource;
            attrs.name = r.name.to_string();
            attrs.dry_run = opts.dry_run;
            attrs.user = opts.user;
            attrs.old_object = Some(current.clone());
            attrs.object = Some(new);
            self.admission.mutate(self, &mut attrs).await?;
            let new_admitted = attrs.object.take().unwrap_or_default();
            // Metadata checks for every kind first, then the kind's own (BeforeUpdate).
            let mut errs = meta::validate_common_update(&new_admitted, &current, def.namespaced);
            let validate_update = match subresource {
                Some("ephemeralcontainers") => crate::validation::pods::ephemeral_containers_update,
                _ => opts.requested.unwrap_or(def).strategy.validate_update,
            };
            errs.extend(validate_update(&new_admitted, &current));
            if !errs.is_empty() {
                return Err(ApiError::invalid(def.kind, def.group, r.name, &errs.0));
            }
            attrs.object = Some(new_admitted);
            self.admission.validate(self, &mut attrs).await?;
            let mut new = attrs.object.take().unwrap_or_default();
            kox_proto::go_json::shape(&def.api_version(), def.kind, &mut new);
            let mut warnings = warnings;
            warnings.append(&mut attrs.warnings);
            let audit_annotations = std::mem::take(&mut attrs.audit_annotations);
            if strip_rv(&new) == strip_rv(&current) {
                return Ok(Written {
                    object: current,
                    warnings,
                    audit_annotations,
                    created: false,
                });
            }
            if opts.dry_run {
                return Ok(Written {
                    object: new,
                    warnings,
                    audit_annotations,
                    created: false,
                });
            }
            // The last finalizer gone from an object being deleted: it goes now. A namespace
            // also waits for its `spec.finalizers` (the namespace controller's `kubernetes`).
            if new.pointer("/metadata/deletionTimestamp").is_some()
                && finalizers(&new).is_empty()
                && !graceful_pending(&new)
                && !(def.kind == "Namespace"
                    && def.group.is_empty()
                    && new
                        .pointer("/spec/finalizers")
                        .and_then(Value::as_array)
                        .is_some_and(|f| !f.is_empty()))
            {
                return match self
                    .store
                    .delete(
                        r.key().into_bytes(),
                        Condition::ModRevision(kv.mod_revision),
                    )
                    .await?
                {
                    WriteOutcome::Committed { revision, .. } => {
                        self.allocators.release_for(def, &new).await;
                        meta::set_resource_version(&mut new, revision);
                        Ok(Written {
                            object: new,
                            warnings,
                            audit_annotations,
                            created: false,
                        })
                    }
                    WriteOutcome::Failed { .. } if pinned.is_some() => {
                        Err(r.with_target(ApiError::stale))
                    }
                    WriteOutcome::Failed { .. } => continue,
                };
            }
            let claims = self
                .allocators
                .allocate(def, &mut new, Some(&current))
                .await?;
            match self
                .store
                .put(
                    r.key().into_bytes(),
                    encode(&new)?,
                    Condition::ModRevision(kv.mod_revision),
                )
                .await?
            {
                WriteOutcome::Committed { revision, .. } => {
                    meta::set_resource_version(&mut new, revision);
                    return Ok(Written {
                        object: new,
                        warnings,
                        audit_annotations,
                        created: false,
                    });
                }
                WriteOutcome::Failed { current: None } => {
                    self.allocators.release(claims).await;
                    return Err(r.not_found());
                }
                WriteOutcome::Failed { .. } => {
                    self.allocators.release(claims).await;
                    if pinned.as_deref().is_some_and(|s| !s.is_empty()) {
                        return Err(r.with_target(ApiError::stale));
                    }
                }
            }
        }
        Err(r.with_target(|t| ApiError::conflict(t, "too many concurrent updates; try again")))
    }

    /// Keeps what the request may not change: identity, server-set metadata, and the part of the
    /// object that belongs to the other side of the spec/status split.
    fn prepare_update(
        &self,
        def: &ResourceDef,
        subresource: Option<&str>,
        new: &mut Value,
        old: &Value,
    ) -> ApiResult<()> {
        let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
        if let Some(name) = new.pointer("/metadata/name").and_then(Value::as_str)
            && Some(name) != old_meta.get("name").and_then(Value::as_str)
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                old_meta.get("name").and_then(Value::as_str).unwrap_or("")
            )));
        }
        let meta = meta::metadata_mut(new);
        // A uid the request leaves out is the stored one; another is refused by validation
        // (a PUT's was a precondition already, `uid_precondition`).
        if meta
            .get("uid")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && let Some(uid) = old_meta.get("uid")
        {
            meta.insert("uid".into(), uid.clone());
        }
        for k in [
            "name",
            "namespace",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        match subresource {
            // The server's own subresources build the whole new object themselves.
            Some("binding") => {}
            Some("ephemeralcontainers") => {
                // Only the ephemeral containers change (upstream's
                // podEphemeralContainersStrategy).
                let mut kept = old.clone();
                match new.pointer("/spec/ephemeralContainers") {
                    Some(e) => kept["spec"]["ephemeralContainers"] = e.clone(),
                    None => {
                        kept["spec"]
                            .as_object_mut()
                            .map(|m| m.remove("ephemeralContainers"));
                    }
                }
                kept["metadata"] = new["metadata"].clone();
                *new = kept;
            }
            Some("status") => {
                // Only status changes; the rest stays as stored.
                let status = new.get("status").cloned();
                let mut kept = old.clone();
                match status {
                    Some(s) => kept["status"] = s,
                    None => {
                        kept.as_object_mut().map(|m| m.remove("status"));
                    }
                }
                kept["metadata"] = new["metadata"].clone();
                // Metadata a kind's status strategy keeps from the stored object: deployments
                // their labels, pods their owner references (upstream's
                // deploymentStatusStrategy / podStatusStrategy PrepareForUpdate).
                let kept_meta: &[&str] = match (def.group, def.kind) {
                    ("apps", "Deployment") => &["labels"],
                    ("", "Pod") => &["ownerReferences"],
                    _ => &[],
                };
                for k in kept_meta {
                    let m = meta::metadata_mut(&mut kept);
                    match old.pointer(&format!("/metadata/{k}")) {
                        Some(v) => m.insert((*k).into(), v.clone()),
                        None => m.remove(*k),
                    };
                }
                *new = kept;
            }
            _ if def.strategy.has_status => {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                }
                (def.strategy.defaults)(new);
            }
            _ => (def.strategy.defaults)(new),
        }
        // Deployments also count annotation changes, as upstream's deployment strategy does:
        // their annotations are copied to the ReplicaSets they roll out.
        let annotations_tracked =
            subresource.is_none() && def.group == "apps" && def.kind == "Deployment";
        let annotations_changed = annotations_tracked && annotations(new) != annotations(old);
        // Compared in the shape they are written in, so a client leaving out an empty struct
        // (`resources: {}`) changes nothing.
        let shaped = |v: &Value| {
            let mut v = v.clone();
            kox_proto::go_json::shape(&def.api_version(), def.kind, &mut v);
            spec_of(&v)
        };
        if def.strategy.tracks_generation && (shaped(new) != shaped(old) || annotations_changed) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta::metadata_mut(new).insert("generation".into(), json!(g));
        }
        Ok(())
    }

    /// Deletes an object, honouring finalizers, graceful pod deletion and preconditions.
    pub async fn delete(
        &self,
        r: ObjectRef<'_>,
        options: &Value,
        opts: WriteOptions<'_>,
    ) -> ApiResult<Value> {
        let dry_run = opts.dry_run;
        let pre_uid = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str);
        let pre_rv = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str);
        // DeleteOptions may ask for a dry run in the body (`"dryRun": ["All"]`, as client
        // libraries send it) as well as in the query.
        let dry_run = dry_run
            || options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|d| d.as_str() == Some("All")));
        let grace = options.get("gracePeriodSeconds").and_then(Value::as_i64);
        let orphan = options.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
            || options.get("orphanDependents").and_then(Value::as_bool) == Some(true);
        let foreground =
            options.get("propagationPolicy").and_then(Value::as_str) == Some("Foreground");
        for _attempt in 0..16 {
            let Some(kv) = self.get_kv(r).await? else {
                return Err(r.not_found());
            };
            let mut obj = decode(&kv)?;
            let current_uid = obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(uid) = pre_uid
                && current_uid != uid
            {
                return Err(precondition_failed(
                    r,
                    format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({current_uid}). The object might have been deleted and then recreated"
                    ),
                    format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {current_uid}"
                    ),
                ));
            }
            if let Some(rv) = pre_rv
                && meta::parse_resource_version(rv) != Some(kv.mod_revision)
            {
                let current = kv.mod_revision;
                return Err(precondition_failed(
                    r,
                    format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({current}). The object might have been modified"
                    ),
                    format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {current}"
                    ),
                ));
            }
            let mut attrs = Attributes::new(Operation::Delete, r.def, r.namespace);
            attrs.name = r.name.to_string();
            attrs.dry_run = dry_run;
            attrs.user = opts.user;
            attrs.old_object = Some(obj.clone());
            self.admission.mutate(self, &mut attrs).await?;
            self.admission.validate(self, &mut attrs).await?;
            let mut fins = finalizers(&obj);
            if orphan && !fins.iter().any(|f| f == "orphan") {
                fins.push("orphan".into());
            }
            if foreground && !fins.iter().any(|f| f == "foregroundDeletion") {
                fins.push("foregroundDeletion".into());
            }
            let bound_pod = r.def.kind == "Pod"
                && r.def.group.is_empty()
                && obj
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty())
                && !matches!(
                    obj.pointer("/status/phase").and_then(Value::as_str),
                    Some("Succeeded" | "Failed")
                );
            let pod_grace = if bound_pod {
                grace
                    .or_else(|| {
                        obj.pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                    })
                    .unwrap_or(30)
            } else {
                0
            };
            // A namespace waits for its `spec.finalizers` (upstream deletes one without any at
            // once).
            let namespace_delete = r.def.kind == "Namespace"
                && r.def.group.is_empty()
                && obj
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty());
            let soft = !fins.is_empty() || pod_grace > 0 || namespace_delete;
            if !soft {
                if dry_run {
                    return Ok(obj);
                }
                match self
                    .store
                    .delete(
                        r.key().into_bytes(),
                        Condition::ModRevision(kv.mod_revision),
                    )
                    .await?
                {
                    WriteOutcome::Committed { revision, .. } => {
                        self.allocators.release_for(r.def, &obj).await;
                        meta::set_resource_version(&mut obj, revision);
                        return Ok(obj);
                    }
                    WriteOutcome::Failed { current: None } => return Err(r.not_found()),
                    WriteOutcome::Failed { .. } => continue,
                }
            }
            // Soft delete: mark it; finalizers, the node's agent or the namespace controller finish.
            let already = obj.pointer("/metadata/deletionTimestamp").is_some();
            let m = meta::metadata_mut(&mut obj);
            if !already {
                m.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
                m.insert("deletionGracePeriodSeconds".into(), json!(pod_grace));
            } else if bound_pod {
                // A shorter grace period may replace a longer one (as `--grace-period` can).
                let cur = m
                    .get("deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(pod_grace);
                m.insert(
                    "deletionGracePeriodSeconds".into(),
                    json!(cur.min(pod_grace)),
                );
            }
            if !fins.is_empty() {
                m.insert("finalizers".into(), json!(fins));
            }
            if r.def.kind == "Namespace" && r.def.group.is_empty() {
                obj["status"]["phase"] = json!("Terminating");
            }
            if dry_run {
                return Ok(obj);
            }
            match self
                .store
                .put(
                    r.key().into_bytes(),
                    encode(&obj)?,
                    Condition::ModRevision(kv.mod_revision),
                )
                .await?
            {
                WriteOutcome::Committed { revision, .. } => {
                    meta::set_resource_version(&mut obj, revision);
                    return Ok(obj);
                }
                WriteOutcome::Failed { current: None } => return Err(r.not_found()),
                WriteOutcome::Failed { .. } => continue,
            }
        }
        Err(r.with_target(|t| ApiError::conflict(t, "too many concurrent updates; try again")))
    }
}

/// A delete precondition that does not hold. Upstream's `rest.BeforeDelete` names the kind (not
/// the resource) in this conflict; namespaces have their own delete, which names the resource and
/// words it as the storage layer does.
fn precondition_failed(r: ObjectRef<'_>, generic: String, namespace: String) -> ApiError {
    if r.def.group.is_empty() && r.def.kind == "Namespace" {
        return r.with_target(|t| ApiError::conflict(t, &namespace));
    }
    let qualified = if r.def.group.is_empty() {
        r.def.kind.to_string()
    } else {
        format!("{}.{}", r.def.kind, r.def.group)
    };
    ApiError::conflict(
        Target {
            qualified_resource: &qualified,
            group: r.def.group,
            resource: r.def.kind,
            name: r.name,
        },
        &generic,
    )
}

fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

/// A pod whose graceful deletion still waits for its node's agent.
fn graceful_pending(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("Pod")
        && v.pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0
}

fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

/// The annotations, with none and empty alike (as upstream's semantic equality has them).
fn annotations(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_of(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}
