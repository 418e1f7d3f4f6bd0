//! Per-kind behaviour: the small strategy each resource plugs into the generic registry.
//!
//! A strategy normalizes input through the kind's typed form (reporting unknown fields), fills
//! defaults, validates, tells which part is status, renders table rows and answers selectable
//! fields. Everything else is generic (see `registry`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::table::{self, TableDef};
use crate::validation::{self, FieldErrors};

/// How one kind behaves in the generic registry.
pub struct Strategy {
    /// Round-trips an object through its typed form: the canonical JSON, or a decode error.
    pub normalize: fn(&Value) -> Result<Value, String>,
    /// Whether the kind has a `status` that only the status subresource may change.
    pub has_status: bool,
    /// Whether `metadata.generation` tracks changes outside metadata and status.
    pub tracks_generation: bool,
    /// Fills defaults on create (and on update, for fields the user may clear).
    pub defaults: fn(&mut Value),
    /// Validates a new object (after defaults).
    pub validate: fn(&Value) -> FieldErrors,
    /// Validates an update against the old object (immutable fields).
    pub validate_update: fn(&Value, &Value) -> FieldErrors,
    /// Table columns and rows for `kubectl get`.
    pub table: &'static TableDef,
    /// Kind-specific selectable fields (`spec.nodeName`, …), beyond `metadata.name/namespace`.
    pub field: fn(&Value, &str) -> Option<String>,
    /// The names of those fields, for the "field label not supported" error.
    pub field_names: &'static [&'static str],
    /// Adds the kind's OpenAPI schema to a generator; returns a reference to it.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// Whether an immediate DELETE answers with the deleted object (upstream's
    /// `ReturnDeletedObject`: pods, services, service accounts, namespaces) rather than a
    /// success `Status`.
    pub returns_deleted_object: bool,
}

/// Decodes into `T` and encodes back: drops nothing `T` knows, drops what it does not. A value
/// of the wrong type is reported in upstream's words, naming its field.
pub fn roundtrip<T: Serialize + DeserializeOwned>(v: &Value) -> Result<Value, String> {
    let typed: T =
        serde_path_to_error::deserialize(v).map_err(|e| crate::decode_error::words(v, &e))?;
    let mut out = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    let metadata = out.get("metadata").cloned();
    drop_added_empty_structs(v, &mut out);
    if let (Some(m), Some(o)) = (metadata, out.as_object_mut()) {
        o.entry("metadata").or_insert(m);
    }
    Ok(out)
}

/// Takes out the empty objects the typed form added where the input had nothing: k8s-openapi
/// holds some of Go's optional pointers (`spec.selector`) as required structs, and an absent
/// selector must stay absent for validation (`spec.selector: Required value`). The structs Go
/// always writes come back when the object is written (`go_json::shape`).
fn drop_added_empty_structs(input: &Value, out: &mut Value) {
    match (input, out) {
        (Value::Object(i), Value::Object(o)) => {
            o.retain(|k, value| {
                i.contains_key(k) || !value.as_object().is_some_and(|m| m.is_empty())
            });
            for (k, value) in o.iter_mut() {
                if let Some(iv) = i.get(k) {
                    drop_added_empty_structs(iv, value);
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (iv, ov) in i.iter().zip(o.iter_mut()) {
                drop_added_empty_structs(iv, ov);
            }
        }
        _ => {}
    }
}

fn no_defaults(_: &mut Value) {}
fn no_fields(_: &Value, _: &str) -> Option<String> {
    None
}
fn valid(_: &Value) -> FieldErrors {
    FieldErrors::default()
}
fn valid_update(_: &Value, _: &Value) -> FieldErrors {
    FieldErrors::default()
}

/// Reads a string at a dotted path.
pub fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    path.split('.').try_fold(v, |v, k| v.get(k))?.as_str()
}

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps,
    authentication::v1 as authentication, authorization::v1 as authorization,
    autoscaling::v2 as autoscaling, batch::v1 as batch, coordination::v1 as coordination,
    core::v1 as core, discovery::v1 as discovery, events::v1 as events,
    networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling, storage::v1 as storage,
};

pub static BINDING: Strategy = strategy_of::<core::Binding>(&table::DEFAULT);
pub static COMPONENT_STATUS: Strategy =
    strategy_of::<core::ComponentStatus>(&table::COMPONENT_STATUS);
pub static CONFIG_MAP: Strategy = Strategy {
    validate: validation::config_map,
    validate_update: validation::config_map_update,
    ..strategy_of::<core::ConfigMap>(&table::CONFIG_MAP)
};
pub static ENDPOINTS: Strategy = Strategy {
    defaults: validation::endpoints_defaults,
    validate: validation::endpoints,
    validate_update: validation::endpoints_update,
    ..strategy_of::<core::Endpoints>(&table::ENDPOINTS)
};
pub static LIMIT_RANGE: Strategy = Strategy {
    defaults: validation::limit_range_defaults,
    validate: validation::limit_range,
    validate_update: validation::limit_range_update,
    ..strategy_of::<core::LimitRange>(&table::DEFAULT)
};
pub static POD_TEMPLATE: Strategy = Strategy {
    defaults: validation::pod_template_defaults,
    validate: validation::pod_template_object,
    validate_update: validation::pod_template_object_update,
    ..strategy_of::<core::PodTemplate>(&table::POD_TEMPLATE)
};
pub static SERVICE_ACCOUNT: Strategy = Strategy {
    returns_deleted_object: true,
    validate: validation::service_account,
    validate_update: validation::service_account_update,
    ..strategy_of::<core::ServiceAccount>(&table::SERVICE_ACCOUNT)
};
pub static CONTROLLER_REVISION: Strategy = Strategy {
    validate: validation::controller_revision,
    validate_update: validation::controller_revision_update,
    ..strategy_of::<apps::ControllerRevision>(&table::CONTROLLER_REVISION)
};
pub static LEASE: Strategy = Strategy {
    validate: validation::lease,
    validate_update: validation::lease_update,
    ..strategy_of::<coordination::Lease>(&table::LEASE)
};
pub static ENDPOINT_SLICE: Strategy = Strategy {
    defaults: validation::endpoint_slice_defaults,
    validate: validation::endpoint_slice,
    validate_update: validation::endpoint_slice_update,
    ..strategy_of::<discovery::EndpointSlice>(&table::ENDPOINT_SLICE)
};
pub static INGRESS_CLASS: Strategy = Strategy {
    validate: validation::ingress_class,
    validate_update: validation::ingress_class_update,
    ..strategy_of::<networking::IngressClass>(&table::INGRESS_CLASS)
};
pub static NETWORK_POLICY: Strategy = Strategy {
    defaults: validation::network_policy_defaults,
    validate: validation::network_policy,
    validate_update: validation::network_policy_update,
    ..strategy_of::<networking::NetworkPolicy>(&table::NETWORK_POLICY)
};
pub static CLUSTER_ROLE_BINDING: Strategy = Strategy {
    defaults: validation::binding_defaults,
    validate: validation::cluster_role_binding,
    validate_update: validation::cluster_role_binding_update,
    ..strategy_of::<rbac::ClusterRoleBinding>(&table::CLUSTER_ROLE_BINDING)
};
pub static CLUSTER_ROLE: Strategy = Strategy {
    validate: validation::cluster_role,
    validate_update: validation::cluster_role_update,
    ..strategy_of::<rbac::ClusterRole>(&table::DEFAULT)
};
pub static ROLE_BINDING: Strategy = Strategy {
    defaults: validation::binding_defaults,
    validate: validation::role_binding,
    validate_update: validation::role_binding_update,
    ..strategy_of::<rbac::RoleBinding>(&table::ROLE_BINDING)
};
pub static ROLE: Strategy = Strategy {
    validate: validation::role,
    validate_update: validation::role_update,
    ..strategy_of::<rbac::Role>(&table::DEFAULT)
};
pub static SELF_SUBJECT_REVIEW: Strategy =
    strategy_of::<authentication::SelfSubjectReview>(&table::DEFAULT);
pub static TOKEN_REVIEW: Strategy = strategy_of::<authentication::TokenReview>(&table::DEFAULT);
pub static LOCAL_SUBJECT_ACCESS_REVIEW: Strategy =
    strategy_of::<authorization::LocalSubjectAccessReview>(&table::DEFAULT);
pub static SELF_SUBJECT_ACCESS_REVIEW: Strategy =
    strategy_of::<authorization::SelfSubjectAccessReview>(&table::DEFAULT);
pub static SELF_SUBJECT_RULES_REVIEW: Strategy =
    strategy_of::<authorization::SelfSubjectRulesReview>(&table::DEFAULT);
pub static SUBJECT_ACCESS_REVIEW: Strategy =
    strategy_of::<authorization::SubjectAccessReview>(&table::DEFAULT);
pub static MUTATING_WEBHOOK_CONFIGURATION: Strategy = Strategy {
    defaults: validation::mutating_webhook_configuration_defaults,
    validate: validation::mutating_webhook_configuration,
    validate_update: validation::mutating_webhook_configuration_update,
    tracks_generation: true,
    ..strategy_of::<admissionregistration::MutatingWebhookConfiguration>(
        &table::WEBHOOK_CONFIGURATION,
    )
};
pub static VALIDATING_WEBHOOK_CONFIGURATION: Strategy = Strategy {
    defaults: validation::validating_webhook_configuration_defaults,
    validate: validation::validating_webhook_configuration,
    validate_update: validation::validating_webhook_configuration_update,
    tracks_generation: true,
    ..strategy_of::<admissionregistration::ValidatingWebhookConfiguration>(
        &table::WEBHOOK_CONFIGURATION,
    )
};
pub static PRIORITY_CLASS: Strategy = Strategy {
    defaults: validation::priority_class_defaults,
    validate: validation::priority_class,
    validate_update: validation::priority_class_update,
    ..strategy_of::<scheduling::PriorityClass>(&table::PRIORITY_CLASS)
};
pub static STORAGE_CLASS: Strategy = Strategy {
    defaults: validation::storage_class_defaults,
    validate: validation::storage_class,
    validate_update: validation::storage_class_update,
    ..strategy_of::<storage::StorageClass>(&table::STORAGE_CLASS)
};
pub static PVC: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::pvc_defaults,
    validate: validation::pvc,
    validate_update: validation::pvc_update,
    ..strategy_of::<core::PersistentVolumeClaim>(&table::PVC)
};
pub static PV: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::pv_defaults,
    validate: validation::pv,
    validate_update: validation::pv_update,
    ..strategy_of::<core::PersistentVolume>(&table::PV)
};
pub static REPLICATION_CONTROLLER: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::replication_controller_defaults,
    validate: validation::replication_controller,
    validate_update: validation::replication_controller_update,
    ..strategy_of::<core::ReplicationController>(&table::REPLICATION_CONTROLLER)
};
pub static RESOURCE_QUOTA: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    validate: validation::resource_quota,
    validate_update: validation::resource_quota_update,
    ..strategy_of::<core::ResourceQuota>(&table::RESOURCE_QUOTA)
};
pub static DAEMON_SET: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::daemon_set_defaults,
    validate: validation::daemon_set,
    validate_update: validation::daemon_set_update,
    ..strategy_of::<apps::DaemonSet>(&table::DAEMON_SET)
};
pub static REPLICA_SET: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::replica_set_defaults,
    validate: validation::replica_set,
    validate_update: validation::replica_set_update,
    ..strategy_of::<apps::ReplicaSet>(&table::REPLICA_SET)
};
pub static STATEFUL_SET: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::stateful_set_defaults,
    validate: validation::stateful_set,
    validate_update: validation::stateful_set_update,
    ..strategy_of::<apps::StatefulSet>(&table::STATEFUL_SET)
};
pub static HPA: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::hpa_defaults,
    validate: validation::hpa,
    validate_update: validation::hpa_update,
    ..strategy_of::<autoscaling::HorizontalPodAutoscaler>(&table::HPA)
};
/// `autoscaling/v1` HorizontalPodAutoscalers: v2's behaviour (requests are converted and
/// served at v2, `convert.rs`), with v1's types for request bodies and discovery's documents.
pub static HPA_V1: Strategy = Strategy {
    normalize: roundtrip::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>,
    schema: schema_of::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>,
    ..HPA
};
pub static CRON_JOB: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::cron_job_defaults,
    validate: validation::cron_job,
    validate_update: validation::cron_job_update,
    ..strategy_of::<batch::CronJob>(&table::CRON_JOB)
};
pub static JOB: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::job_defaults,
    validate: validation::job,
    validate_update: validation::job_update,
    ..strategy_of::<batch::Job>(&table::JOB)
};
pub static INGRESS: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    validate: validation::ingress,
    validate_update: validation::ingress_update,
    ..strategy_of::<networking::Ingress>(&table::INGRESS)
};
pub static PDB: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    validate: validation::pdb,
    validate_update: validation::pdb_update,
    ..strategy_of::<policy::PodDisruptionBudget>(&table::PDB)
};

pub static SECRET: Strategy = Strategy {
    defaults: validation::secret_defaults,
    validate: validation::secret,
    validate_update: validation::secret_update,
    field: secret_field,
    field_names: &["type"],
    ..strategy_of::<core::Secret>(&table::SECRET)
};

pub static NAMESPACE: Strategy = Strategy {
    returns_deleted_object: true,
    has_status: true,
    defaults: validation::namespace_defaults,
    validate: validation::namespace,
    validate_update: validation::namespace_update,
    field: namespace_field,
    field_names: &["status.phase"],
    ..strategy_of::<core::Namespace>(&table::NAMESPACE)
};

pub static NODE: Strategy = Strategy {
    has_status: true,
    defaults: validation::node_defaults,
    validate: validation::node,
    validate_update: validation::node_update,
    field: node_field,
    field_names: &["spec.unschedulable"],
    ..strategy_of::<core::Node>(&table::NODE)
};

pub static POD: Strategy = Strategy {
    returns_deleted_object: true,
    has_status: true,
    // 1.32 pods have no `metadata.generation` (PodObservedGenerationTracking came in 1.33).
    tracks_generation: false,
    defaults: validation::pod_defaults,
    validate: validation::pod,
    validate_update: validation::pod_update,
    field: pod_field,
    field_names: &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ],
    ..strategy_of::<core::Pod>(&table::POD)
};

pub static SERVICE: Strategy = Strategy {
    returns_deleted_object: true,
    has_status: true,
    defaults: validation::service_defaults,
    validate: validation::service,
    validate_update: validation::service_update,
    ..strategy_of::<core::Service>(&table::SERVICE)
};

pub static DEPLOYMENT: Strategy = Strategy {
    has_status: true,
    tracks_generation: true,
    defaults: validation::deployment_defaults,
    validate: validation::deployment,
    validate_update: validation::deployment_update,
    ..strategy_of::<apps::Deployment>(&table::DEPLOYMENT)
};

pub static EVENT: Strategy = Strategy {
    validate: validation::event,
    validate_update: validation::event_update,
    field: event_field,
    field_names: &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ],
    ..strategy_of::<core::Event>(&table::EVENT)
};

/// `events.k8s.io/v1` Events: core events' behaviour (requests are converted and served as
/// core events, `convert.rs`), with v1's types for request bodies and discovery's documents,
/// and v1's validation of what is written through it (seeing the stored, core form).
pub static EVENTS_V1: Strategy = Strategy {
    normalize: roundtrip::<events::Event>,
    validate: crate::events_v1::validate,
    validate_update: crate::events_v1::validate_update,
    schema: schema_of::<events::Event>,
    ..EVENT
};

/// A plain strategy for `T`, to be refined with struct-update syntax.
const fn strategy_of<T: Serialize + DeserializeOwned + schemars::JsonSchema>(
    table: &'static TableDef,
) -> Strategy {
    Strategy {
        normalize: roundtrip::<T>,
        has_status: false,
        tracks_generation: false,
        defaults: no_defaults,
        validate: valid,
        validate_update: valid_update,
        table,
        field: no_fields,
        field_names: &[],
        schema: schema_of::<T>,
        returns_deleted_object: false,
    }
}

fn schema_of<T: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    generator.subschema_for::<T>()
}

fn pod_field(v: &Value, field: &str) -> Option<String> {
    match field {
        "spec.hostNetwork" => Some(
            v.pointer("/spec/hostNetwork")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string(),
        ),
        _ => Some(str_at(v, field).unwrap_or("").to_string()),
    }
}

fn node_field(v: &Value, field: &str) -> Option<String> {
    match field {
        "spec.unschedulable" => Some(
            v.pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string(),
        ),
        _ => None,
    }
}

fn namespace_field(v: &Value, field: &str) -> Option<String> {
    Some(str_at(v, field).unwrap_or("").to_string())
}

fn secret_field(v: &Value, field: &str) -> Option<String> {
    Some(str_at(v, field).unwrap_or("").to_string())
}

fn event_field(v: &Value, field: &str) -> Option<String> {
    match field {
        "source" => Some(str_at(v, "source.component").unwrap_or("").to_string()),
        _ => Some(str_at(v, field).unwrap_or("").to_string()),
    }
}
