//! The resources the server offers: names, scope, discovery data and each kind's strategy.

use crate::convert::Conversion;
use crate::strategy::{self, Strategy};

/// One REST resource (a kind at a group-version).
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served under `<plural>/<name>/<sub>`.
    pub subresources: &'static [&'static str],
    /// Read-only resources (computed by the server) offer only get and list.
    pub read_only: bool,
    /// Create-only resources (reviews: TokenReview, SubjectAccessReview, …) are computed
    /// answers to a question, never stored; they offer only create.
    pub create_only: bool,
    pub strategy: &'static Strategy,
    /// For a version in [`CONVERTED`]: how it converts to and from the stored version.
    pub conversion: Option<&'static Conversion>,
}

impl std::fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceDef")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("plural", &self.plural)
            .finish_non_exhaustive()
    }
}

impl ResourceDef {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`, as error messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The store key prefix for all objects of this resource (ends with `/`).
    pub fn key_prefix(&self) -> String {
        if self.group.is_empty()
            || matches!(self.group, "apps" | "batch" | "autoscaling" | "policy")
        {
            format!("/registry/{}/", self.plural)
        } else {
            format!("/registry/{}/{}/", self.group, self.plural)
        }
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }

    /// The verbs discovery lists.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.read_only {
            &["get", "list"]
        } else if self.create_only {
            &["create"]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }
}

const ALL: &[&str] = &["all"];

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr, $short:expr, $cat:expr, $sub:expr, $strategy:expr) => {
        ResourceDef {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            read_only: false,
            create_only: false,
            strategy: $strategy,
            conversion: None,
        }
    };
}

/// Every resource the server offers, in discovery order.
pub static RESOURCES: &[ResourceDef] = &[
    // core/v1
    res!(
        "",
        "v1",
        "Binding",
        "bindings",
        "binding",
        true,
        &[],
        &[],
        &[],
        &strategy::BINDING
    ),
    ResourceDef {
        read_only: true,
        ..res!(
            "",
            "v1",
            "ComponentStatus",
            "componentstatuses",
            "componentstatus",
            false,
            &["cs"],
            &[],
            &[],
            &strategy::COMPONENT_STATUS
        )
    },
    res!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        &[],
        &[],
        &strategy::CONFIG_MAP
    ),
    res!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        &["ep"],
        &[],
        &[],
        &strategy::ENDPOINTS
    ),
    res!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        &[],
        &[],
        &strategy::EVENT
    ),
    res!(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        "limitrange",
        true,
        &["limits"],
        &[],
        &[],
        &strategy::LIMIT_RANGE
    ),
    res!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        &[],
        &["finalize", "status"],
        &strategy::NAMESPACE
    ),
    res!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        &["no"],
        &[],
        &["proxy", "status"],
        &strategy::NODE
    ),
    res!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        &["pvc"],
        &[],
        &["status"],
        &strategy::PVC
    ),
    res!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
        &["pv"],
        &[],
        &["status"],
        &strategy::PV
    ),
    res!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        ALL,
        &[
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "status"
        ],
        &strategy::POD
    ),
    res!(
        "",
        "v1",
        "PodTemplate",
        "podtemplates",
        "podtemplate",
        true,
        &[],
        &[],
        &[],
        &strategy::POD_TEMPLATE
    ),
    res!(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        true,
        &["rc"],
        ALL,
        &["scale", "status"],
        &strategy::REPLICATION_CONTROLLER
    ),
    res!(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        true,
        &["quota"],
        &[],
        &["status"],
        &strategy::RESOURCE_QUOTA
    ),
    res!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        true,
        &[],
        &[],
        &[],
        &strategy::SECRET
    ),
    res!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        &[],
        &["token"],
        &strategy::SERVICE_ACCOUNT
    ),
    res!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        ALL,
        &["proxy", "status"],
        &strategy::SERVICE
    ),
    // apps/v1
    res!(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        true,
        &[],
        &[],
        &[],
        &strategy::CONTROLLER_REVISION
    ),
    res!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
        ALL,
        &["status"],
        &strategy::DAEMON_SET
    ),
    res!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        ALL,
        &["scale", "status"],
        &strategy::DEPLOYMENT
    ),
    res!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        ALL,
        &["scale", "status"],
        &strategy::REPLICA_SET
    ),
    res!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
        ALL,
        &["scale", "status"],
        &strategy::STATEFUL_SET
    ),
    // authentication.k8s.io/v1
    ResourceDef {
        create_only: true,
        ..res!(
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
            "selfsubjectreviews",
            "selfsubjectreview",
            false,
            &[],
            &[],
            &[],
            &strategy::SELF_SUBJECT_REVIEW
        )
    },
    ResourceDef {
        create_only: true,
        ..res!(
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            "tokenreview",
            false,
            &[],
            &[],
            &[],
            &strategy::TOKEN_REVIEW
        )
    },
    // authorization.k8s.io/v1
    ResourceDef {
        create_only: true,
        ..res!(
            "authorization.k8s.io",
            "v1",
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            "localsubjectaccessreview",
            true,
            &[],
            &[],
            &[],
            &strategy::LOCAL_SUBJECT_ACCESS_REVIEW
        )
    },
    ResourceDef {
        create_only: true,
        ..res!(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            "selfsubjectaccessreview",
            false,
            &[],
            &[],
            &[],
            &strategy::SELF_SUBJECT_ACCESS_REVIEW
        )
    },
    ResourceDef {
        create_only: true,
        ..res!(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            "selfsubjectrulesreview",
            false,
            &[],
            &[],
            &[],
            &strategy::SELF_SUBJECT_RULES_REVIEW
        )
    },
    ResourceDef {
        create_only: true,
        ..res!(
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            "subjectaccessreview",
            false,
            &[],
            &[],
            &[],
            &strategy::SUBJECT_ACCESS_REVIEW
        )
    },
    // autoscaling/v2
    res!(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        &["hpa"],
        ALL,
        &["status"],
        &strategy::HPA
    ),
    // batch/v1
    res!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        &["cj"],
        ALL,
        &["status"],
        &strategy::CRON_JOB
    ),
    res!(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        true,
        &[],
        ALL,
        &["status"],
        &strategy::JOB
    ),
    // coordination.k8s.io/v1
    res!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        &[],
        &[],
        &[],
        &strategy::LEASE
    ),
    // discovery.k8s.io/v1
    res!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        &[],
        &[],
        &[],
        &strategy::ENDPOINT_SLICE
    ),
    // networking.k8s.io/v1
    res!(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        false,
        &[],
        &[],
        &[],
        &strategy::INGRESS_CLASS
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        true,
        &["ing"],
        &[],
        &["status"],
        &strategy::INGRESS
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        true,
        &["netpol"],
        &[],
        &[],
        &strategy::NETWORK_POLICY
    ),
    // policy/v1
    res!(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        &["pdb"],
        &[],
        &["status"],
        &strategy::PDB
    ),
    // rbac.authorization.k8s.io/v1
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        &[],
        &[],
        &[],
        &strategy::CLUSTER_ROLE_BINDING
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        &[],
        &[],
        &[],
        &strategy::CLUSTER_ROLE
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        &[],
        &[],
        &[],
        &strategy::ROLE_BINDING
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        true,
        &[],
        &[],
        &[],
        &strategy::ROLE
    ),
    // scheduling.k8s.io/v1
    // admissionregistration.k8s.io/v1
    res!(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        false,
        &[],
        &["api-extensions"],
        &[],
        &strategy::MUTATING_WEBHOOK_CONFIGURATION
    ),
    res!(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        false,
        &[],
        &["api-extensions"],
        &[],
        &strategy::VALIDATING_WEBHOOK_CONFIGURATION
    ),
    res!(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        false,
        &["pc"],
        &[],
        &[],
        &strategy::PRIORITY_CLASS
    ),
    // storage.k8s.io/v1
    res!(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        false,
        &["sc"],
        &[],
        &[],
        &strategy::STORAGE_CLASS
    ),
];

/// Resources served by converting to and from a stored one in [`RESOURCES`] (`convert.rs`):
/// `autoscaling/v1` HorizontalPodAutoscalers, stored as `autoscaling/v2` (`hpa_v1.rs`), and
/// `events.k8s.io/v1` Events, stored as core `v1` Events (`events_v1.rs`).
pub static CONVERTED: &[ResourceDef] = &[
    ResourceDef {
        conversion: Some(&crate::hpa_v1::CONVERSION),
        ..res!(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            true,
            &["hpa"],
            ALL,
            &["status"],
            &strategy::HPA_V1
        )
    },
    ResourceDef {
        conversion: Some(&crate::events_v1::CONVERSION),
        ..res!(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            "event",
            true,
            &["ev"],
            &[],
            &[],
            &strategy::EVENTS_V1
        )
    },
];

/// The API groups in discovery order, each with its served versions, the preferred (stored)
/// one first.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in RESOURCES
        .iter()
        .chain(CONVERTED)
        .filter(|r| !r.group.is_empty())
    {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The resources served at one group-version, converted ones included.
pub fn served_at(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceDef> {
    RESOURCES
        .iter()
        .chain(CONVERTED)
        .filter(move |r| r.group == group && r.version == version)
}

/// Looks up a resource served by conversion ([`CONVERTED`]) by group, version and plural name.
pub fn find_converted(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    CONVERTED
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks up a stored resource by group, version and plural name.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Whether a group-version is served.
pub fn serves(group: &str, version: &str) -> bool {
    served_at(group, version).next().is_some()
}
