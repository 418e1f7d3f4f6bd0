//! A hand-made table of upstream's `patchStrategy` / `patchMergeKey` struct tags
//! (k8s.io/api v0.32 `types.go` files and apimachinery's `ObjectMeta`).
//!
//! Each [`TypeSchema`] lists only the fields that matter to a strategic merge patch: lists
//! merged by a key, primitive lists merged as sets, fields replaced wholesale, and the
//! struct-valued fields that lead to any of those. Every other field merges as a map (if
//! an object) or is replaced (lists, scalars). Pod templates are shared nodes, so a
//! Deployment's `spec.template.spec.containers` patches exactly like a Pod's
//! `spec.containers`.

/// How a field's value is combined with the live value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// No tag: objects merge key by key, lists and scalars are replaced.
    Default,
    /// `patchStrategy:"merge"`: lists are merged (by `merge_key` for lists of objects, as
    /// a set for lists of scalars).
    Merge,
    /// `patchStrategy:"replace"`: the value is replaced wholesale, even an object.
    Replace,
}

/// The patch metadata of one field.
#[derive(Clone, Copy, Debug)]
pub struct FieldPatch {
    /// The JSON field name.
    pub name: &'static str,
    /// The patch strategy.
    pub strategy: Strategy,
    /// `patchMergeKey`: the field identifying list items (`name`, `containerPort`, …).
    pub merge_key: Option<&'static str>,
    /// Whether the tag also carries `retainKeys` (only used when building patches).
    pub retain_keys: bool,
    /// The schema of the value (for a list, of each item), if it has tagged fields.
    pub schema: Option<&'static TypeSchema>,
}

/// The tagged fields of one API type.
#[derive(Debug)]
pub struct TypeSchema {
    /// The upstream Go type name, for diagnostics.
    pub name: &'static str,
    /// Fields with patch metadata or leading to some.
    pub fields: &'static [FieldPatch],
}

impl TypeSchema {
    /// No tagged fields: maps merge, lists are replaced (JSON-merge-patch-like lists).
    pub const EMPTY: TypeSchema = TypeSchema {
        name: "Unstructured",
        fields: &[],
    };

    /// The patch metadata of a field, if it has any.
    pub fn field(&self, name: &str) -> Option<&FieldPatch> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A schema-less object that still knows `metadata` (`finalizers` merged as a set,
/// `ownerReferences` by `uid`): the fallback for kinds not in the table.
pub static GENERIC_OBJECT: TypeSchema = TypeSchema {
    name: "Object",
    fields: &[meta()],
};

const fn field(name: &'static str, schema: &'static TypeSchema) -> FieldPatch {
    FieldPatch {
        name,
        strategy: Strategy::Default,
        merge_key: None,
        retain_keys: false,
        schema: Some(schema),
    }
}

const fn merge_by(name: &'static str, key: &'static str) -> FieldPatch {
    FieldPatch {
        name,
        strategy: Strategy::Merge,
        merge_key: Some(key),
        retain_keys: false,
        schema: None,
    }
}

const fn merge_items(
    name: &'static str,
    key: &'static str,
    schema: &'static TypeSchema,
) -> FieldPatch {
    FieldPatch {
        schema: Some(schema),
        ..merge_by(name, key)
    }
}

const fn merge_retain(name: &'static str, key: &'static str) -> FieldPatch {
    FieldPatch {
        retain_keys: true,
        ..merge_by(name, key)
    }
}

const fn merge_set(name: &'static str) -> FieldPatch {
    FieldPatch {
        name,
        strategy: Strategy::Merge,
        merge_key: None,
        retain_keys: false,
        schema: None,
    }
}

const fn replace(name: &'static str) -> FieldPatch {
    FieldPatch {
        name,
        strategy: Strategy::Replace,
        merge_key: None,
        retain_keys: false,
        schema: None,
    }
}

const fn meta() -> FieldPatch {
    field("metadata", &OBJECT_META)
}

const fn conditions() -> FieldPatch {
    merge_by("conditions", "type")
}

static OBJECT_META: TypeSchema = TypeSchema {
    name: "ObjectMeta",
    fields: &[merge_by("ownerReferences", "uid"), merge_set("finalizers")],
};

static CONTAINER: TypeSchema = TypeSchema {
    name: "Container",
    fields: &[
        merge_by("ports", "containerPort"),
        merge_by("env", "name"),
        merge_by("volumeMounts", "mountPath"),
        merge_by("volumeDevices", "devicePath"),
    ],
};

static POD_SPEC: TypeSchema = TypeSchema {
    name: "PodSpec",
    fields: &[
        merge_retain("volumes", "name"),
        merge_items("initContainers", "name", &CONTAINER),
        merge_items("containers", "name", &CONTAINER),
        merge_items("ephemeralContainers", "name", &CONTAINER),
        merge_by("imagePullSecrets", "name"),
        merge_by("hostAliases", "ip"),
        merge_by("topologySpreadConstraints", "topologyKey"),
        merge_by("schedulingGates", "name"),
        merge_retain("resourceClaims", "name"),
    ],
};

static POD_STATUS: TypeSchema = TypeSchema {
    name: "PodStatus",
    fields: &[
        conditions(),
        merge_by("hostIPs", "ip"),
        merge_by("podIPs", "ip"),
        merge_retain("resourceClaimStatuses", "name"),
    ],
};

static POD_TEMPLATE_SPEC: TypeSchema = TypeSchema {
    name: "PodTemplateSpec",
    fields: &[meta(), field("spec", &POD_SPEC)],
};

/// Any status whose only tagged field is `conditions` (merged by `type`).
static CONDITIONS_STATUS: TypeSchema = TypeSchema {
    name: "ConditionsStatus",
    fields: &[conditions()],
};

/// Workload specs whose only tagged path is the pod template.
static TEMPLATED_SPEC: TypeSchema = TypeSchema {
    name: "TemplatedSpec",
    fields: &[field("template", &POD_TEMPLATE_SPEC)],
};

static DEPLOYMENT_SPEC: TypeSchema = TypeSchema {
    name: "DeploymentSpec",
    fields: &[
        field("template", &POD_TEMPLATE_SPEC),
        FieldPatch {
            name: "strategy",
            strategy: Strategy::Default,
            merge_key: None,
            retain_keys: true,
            schema: None,
        },
    ],
};

static JOB_TEMPLATE_SPEC: TypeSchema = TypeSchema {
    name: "JobTemplateSpec",
    fields: &[meta(), field("spec", &TEMPLATED_SPEC)],
};

static CRON_JOB_SPEC: TypeSchema = TypeSchema {
    name: "CronJobSpec",
    fields: &[field("jobTemplate", &JOB_TEMPLATE_SPEC)],
};

static SERVICE_SPEC: TypeSchema = TypeSchema {
    name: "ServiceSpec",
    fields: &[merge_by("ports", "port")],
};

static NODE_SPEC: TypeSchema = TypeSchema {
    name: "NodeSpec",
    fields: &[merge_set("podCIDRs")],
};

static NODE_STATUS: TypeSchema = TypeSchema {
    name: "NodeStatus",
    fields: &[conditions(), merge_by("addresses", "type")],
};

static PDB_SPEC: TypeSchema = TypeSchema {
    name: "PodDisruptionBudgetSpec",
    fields: &[replace("selector")],
};

static WEBHOOK: TypeSchema = TypeSchema {
    name: "Webhook",
    fields: &[merge_by("matchConditions", "name")],
};

static ADMISSION_POLICY_SPEC: TypeSchema = TypeSchema {
    name: "ValidatingAdmissionPolicySpec",
    fields: &[
        merge_by("matchConditions", "name"),
        merge_by("variables", "name"),
    ],
};

static CSI_NODE_SPEC: TypeSchema = TypeSchema {
    name: "CSINodeSpec",
    fields: &[merge_by("drivers", "name")],
};

static POD: TypeSchema = TypeSchema {
    name: "Pod",
    fields: &[
        meta(),
        field("spec", &POD_SPEC),
        field("status", &POD_STATUS),
    ],
};

static POD_TEMPLATE: TypeSchema = TypeSchema {
    name: "PodTemplate",
    fields: &[meta(), field("template", &POD_TEMPLATE_SPEC)],
};

static TEMPLATED_WORKLOAD: TypeSchema = TypeSchema {
    name: "TemplatedWorkload",
    fields: &[
        meta(),
        field("spec", &TEMPLATED_SPEC),
        field("status", &CONDITIONS_STATUS),
    ],
};

static DEPLOYMENT: TypeSchema = TypeSchema {
    name: "Deployment",
    fields: &[
        meta(),
        field("spec", &DEPLOYMENT_SPEC),
        field("status", &CONDITIONS_STATUS),
    ],
};

static CRON_JOB: TypeSchema = TypeSchema {
    name: "CronJob",
    fields: &[meta(), field("spec", &CRON_JOB_SPEC)],
};

static SERVICE: TypeSchema = TypeSchema {
    name: "Service",
    fields: &[
        meta(),
        field("spec", &SERVICE_SPEC),
        field("status", &CONDITIONS_STATUS),
    ],
};

static SERVICE_ACCOUNT: TypeSchema = TypeSchema {
    name: "ServiceAccount",
    fields: &[meta(), merge_by("secrets", "name")],
};

static NODE: TypeSchema = TypeSchema {
    name: "Node",
    fields: &[
        meta(),
        field("spec", &NODE_SPEC),
        field("status", &NODE_STATUS),
    ],
};

static WITH_CONDITIONS_STATUS: TypeSchema = TypeSchema {
    name: "ObjectWithConditions",
    fields: &[meta(), field("status", &CONDITIONS_STATUS)],
};

static COMPONENT_STATUS: TypeSchema = TypeSchema {
    name: "ComponentStatus",
    fields: &[meta(), conditions()],
};

static PDB: TypeSchema = TypeSchema {
    name: "PodDisruptionBudget",
    fields: &[
        meta(),
        field("spec", &PDB_SPEC),
        field("status", &CONDITIONS_STATUS),
    ],
};

static WEBHOOK_CONFIGURATION: TypeSchema = TypeSchema {
    name: "WebhookConfiguration",
    fields: &[meta(), merge_items("webhooks", "name", &WEBHOOK)],
};

static ADMISSION_POLICY: TypeSchema = TypeSchema {
    name: "ValidatingAdmissionPolicy",
    fields: &[meta(), field("spec", &ADMISSION_POLICY_SPEC)],
};

static CSI_NODE: TypeSchema = TypeSchema {
    name: "CSINode",
    fields: &[meta(), field("spec", &CSI_NODE_SPEC)],
};

/// Built-in kinds without tagged fields beyond `metadata`.
const PLAIN_KINDS: &[(&str, &str)] = &[
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "Endpoints"),
    ("", "Event"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("", "PersistentVolume"),
    ("", "Binding"),
    ("apps", "ControllerRevision"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("coordination.k8s.io", "Lease"),
    ("node.k8s.io", "RuntimeClass"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("events.k8s.io", "Event"),
];

/// The patch schema of a built-in kind, by API group (`""` for core, no version) and
/// kind; `None` for kinds the table does not know (custom resources, typos). Callers
/// decide the fallback: [`GENERIC_OBJECT`] or [`TypeSchema::EMPTY`].
pub fn schema_for_kind(group: &str, kind: &str) -> Option<&'static TypeSchema> {
    let schema: &'static TypeSchema = match (group, kind) {
        ("", "Pod") => &POD,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("", "ReplicationController") => &TEMPLATED_WORKLOAD,
        ("", "Service") => &SERVICE,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "Node") => &NODE,
        ("", "Namespace") | ("", "PersistentVolumeClaim") => &WITH_CONDITIONS_STATUS,
        ("", "ComponentStatus") => &COMPONENT_STATUS,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet" | "StatefulSet" | "DaemonSet") => &TEMPLATED_WORKLOAD,
        ("batch", "Job") => &TEMPLATED_WORKLOAD,
        ("batch", "CronJob") => &CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => &WITH_CONDITIONS_STATUS,
        ("policy", "PodDisruptionBudget") => &PDB,
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => &WEBHOOK_CONFIGURATION,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => &ADMISSION_POLICY,
        ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration") => {
            &WITH_CONDITIONS_STATUS
        }
        ("storage.k8s.io", "CSINode") => &CSI_NODE,
        _ if PLAIN_KINDS.contains(&(group, kind)) => &GENERIC_OBJECT,
        _ => return None,
    };
    Some(schema)
}

/// [`schema_for_kind`] from an object's `apiVersion` (`apps/v1`, `v1`) and `kind`.
pub fn schema_for_object(api_version: &str, kind: &str) -> Option<&'static TypeSchema> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    schema_for_kind(group, kind)
}
