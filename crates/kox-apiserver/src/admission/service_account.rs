//! ServiceAccount: a new pod runs as a service account (`default` unless it names one), which
//! must exist; unless automounting is turned off, every container mounts the projected
//! `kube-api-access-*` volume (a bound token, the cluster CA, the namespace) at
//! `/var/run/secrets/kubernetes.io/serviceaccount`; the account's image pull secrets are copied
//! to a pod that has none.

use std::time::Duration;

use async_trait::async_trait;
use kox_api::pod_refs::is_mirror;
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin, forbidden};
use crate::error::ApiResult;
use crate::registry::{FieldValidation, ObjectRef, Registry, WriteOptions};

/// The service account of a pod that names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Where the token volume is mounted in every container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the token volume's name.
pub const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// Upstream's bound token lifetime for the automounted volume (one hour and seven seconds, so
/// the kubelet's refresh is told apart from a legacy token).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// The ServiceAccount plugin.
pub struct ServiceAccount {
    /// How often a missing `default` account is looked up again before the pod is refused (it
    /// is created with its namespace, or by a controller shortly after).
    pub default_lookups: u32,
    /// The pause between those lookups.
    pub retry_interval: Duration,
}

impl Default for ServiceAccount {
    fn default() -> Self {
        Self {
            default_lookups: 10,
            retry_interval: Duration::from_millis(150),
        }
    }
}

#[async_trait]
impl Plugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn admit(&self, reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !a.is_pod() || a.operation != Operation::Create {
            return Ok(());
        }
        let Some(pod) = a.object.as_ref() else {
            return Ok(());
        };
        if is_mirror(pod) {
            return Ok(());
        }
        let sa_name = pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
            .to_string();
        let ns = a.namespace.unwrap_or("default").to_string();
        let sa = match self.lookup(reg, &ns, &sa_name).await? {
            Some(sa) => sa,
            None => {
                return Err(forbidden(
                    a,
                    &format!(
                        "error looking up service account {ns}/{sa_name}: serviceaccount \"{sa_name}\" not found"
                    ),
                ));
            }
        };
        let Some(pod) = a.object.as_mut() else {
            return Ok(());
        };
        pod["spec"]["serviceAccountName"] = json!(sa_name);
        crate::validation::pods::service_account_alias(&mut pod["spec"]);
        if should_automount(&sa, pod) {
            mount_token(pod);
        }
        let pod_pull_secrets = pod
            .pointer("/spec/imagePullSecrets")
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty());
        if !pod_pull_secrets
            && let Some(secrets) = sa
                .get("imagePullSecrets")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
        {
            let names: Vec<Value> = secrets
                .iter()
                .map(|s| json!({ "name": s.get("name").cloned().unwrap_or(json!("")) }))
                .collect();
            pod["spec"]["imagePullSecrets"] = json!(names);
        }
        Ok(())
    }

    async fn validate(&self, _reg: &Registry, a: &mut Attributes<'_>) -> ApiResult<()> {
        if !a.is_pod() || a.operation != Operation::Create {
            return Ok(());
        }
        let Some(pod) = a.object.as_ref() else {
            return Ok(());
        };
        if is_mirror(pod) {
            let names_account = pod
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if names_account {
                return Err(forbidden(
                    a,
                    "a mirror pod may not reference service accounts",
                ));
            }
        }
        Ok(())
    }
}

impl ServiceAccount {
    /// The service account, looked up again a few times if it is the missing `default`.
    async fn lookup(&self, reg: &Registry, ns: &str, name: &str) -> ApiResult<Option<Value>> {
        let def = crate::resources::find("", "v1", "serviceaccounts").expect("served");
        let attempts = if name == DEFAULT_SERVICE_ACCOUNT {
            self.default_lookups.max(1)
        } else {
            1
        };
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry_interval).await;
            }
            match reg
                .lister_get(ObjectRef {
                    def,
                    namespace: Some(ns),
                    name,
                })
                .await
            {
                Ok(sa) => return Ok(Some(Value::clone(&sa))),
                Err(e) if e.code() == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// The pod's choice wins, then the service account's; automounting is the default.
fn should_automount(sa: &Value, pod: &Value) -> bool {
    pod.pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true)
}

/// The projected volume of an automounted token, as upstream's `TokenVolumeSource`.
pub fn token_volume_source() -> Value {
    json!({
        "defaultMode": 420,
        "sources": [
            { "serviceAccountToken": { "expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token" } },
            { "configMap": { "name": "kube-root-ca.crt", "items": [{ "key": "ca.crt", "path": "ca.crt" }] } },
            { "downwardAPI": { "items": [{ "path": "namespace", "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" } }] } },
        ],
    })
}

/// Mounts the token volume in every init and app container that has nothing at the mount path,
/// adding the volume if one of them needs it.
fn mount_token(pod: &mut Value) {
    let existing = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .and_then(|vols| {
            vols.iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .find(|n| n.starts_with(TOKEN_VOLUME_PREFIX))
                .map(str::to_string)
        });
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| crate::meta::generate_name(TOKEN_VOLUME_PREFIX));
    let mount = json!({ "name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH });
    let mut needs_volume = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = pod
            .get_mut("spec")
            .and_then(|s| s.get_mut(list))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            let has_mount = c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .is_some_and(|ms| {
                    ms.iter().any(|m| {
                        m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH)
                    })
                });
            if has_mount {
                continue;
            }
            match c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                Some(ms) => ms.push(mount.clone()),
                None => c["volumeMounts"] = json!([mount.clone()]),
            }
            needs_volume = true;
        }
    }
    if needs_volume && existing.is_none() {
        let volume = json!({ "name": volume_name, "projected": token_volume_source() });
        match pod
            .get_mut("spec")
            .and_then(|s| s.get_mut("volumes"))
            .and_then(Value::as_array_mut)
        {
            Some(vols) => vols.push(volume),
            None => pod["spec"]["volumes"] = json!([volume]),
        }
    }
}

/// Creates the `default` service account of a namespace unless it exists. The API server does
/// this when it creates a namespace, so pods can be created in it at once; a service-account
/// controller that does the same finds it there.
pub fn ensure_default<'a>(
    reg: &'a Registry,
    namespace: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
    // Boxed with a declared type: this runs inside the namespace's own create.
    Box::pin(async move {
        let def = crate::resources::find("", "v1", "serviceaccounts").expect("served");
        let body = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": { "name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace },
        });
        let opts = WriteOptions {
            dry_run: false,
            field_validation: FieldValidation::Strict,
            user: None,
            requested: None,
        };
        match reg.create(def, Some(namespace), body, opts).await {
            Ok(_) => {}
            Err(e) if e.code() == 409 => {}
            Err(e) => tracing::warn!(
                namespace,
                error = e.message(),
                "creating the default service account"
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::testing;

    fn pods() -> &'static crate::resources::ResourceDef {
        crate::resources::find("", "v1", "pods").unwrap()
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}],
                        "initContainers": [{"name": "i", "image": "busybox"}]}})
    }

    fn plugin() -> ServiceAccount {
        ServiceAccount {
            default_lookups: 2,
            retry_interval: Duration::from_millis(1),
        }
    }

    async fn admit(reg: &Registry, pod: Value) -> ApiResult<Value> {
        let mut a = Attributes::new(Operation::Create, pods(), Some("ns"));
        a.object = Some(pod);
        plugin().admit(reg, &mut a).await?;
        Ok(a.object.unwrap())
    }

    #[tokio::test]
    async fn pods_get_the_default_account_and_its_token_volume() {
        let (reg, _dir) = testing::registry().await;
        ensure_default(&reg, "ns").await;
        let p = admit(&reg, pod()).await.unwrap();
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["serviceAccount"], "default");
        let vol = &p["spec"]["volumes"][0];
        let name = vol["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(vol["projected"], token_volume_source());
        for list in ["containers", "initContainers"] {
            assert_eq!(
                p["spec"][list][0]["volumeMounts"],
                json!([{"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}])
            );
        }
    }

    #[tokio::test]
    async fn automount_false_on_the_pod_or_the_account_mounts_nothing() {
        let (reg, _dir) = testing::registry().await;
        ensure_default(&reg, "ns").await;
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(false);
        let p = admit(&reg, p).await.unwrap();
        assert!(p["spec"].get("volumes").is_none());
        testing::put(
            &reg,
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "quiet", "namespace": "ns"},
                   "automountServiceAccountToken": false,
                   "imagePullSecrets": [{"name": "regcred"}]}),
        )
        .await;
        let mut p = pod();
        p["spec"]["serviceAccountName"] = json!("quiet");
        let p = admit(&reg, p).await.unwrap();
        assert!(p["spec"].get("volumes").is_none());
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
    }

    #[tokio::test]
    async fn a_missing_account_is_refused_as_upstream() {
        let (reg, _dir) = testing::registry().await;
        let mut p = pod();
        p["spec"]["serviceAccountName"] = json!("robot");
        let err = admit(&reg, p).await.unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.message(),
            "pods \"p\" is forbidden: error looking up service account ns/robot: serviceaccount \"robot\" not found"
        );
    }

    #[tokio::test]
    async fn an_existing_mount_at_the_path_is_kept() {
        let (reg, _dir) = testing::registry().await;
        ensure_default(&reg, "ns").await;
        let mut p = pod();
        p["spec"]["initContainers"] = json!([]);
        p["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]);
        p["spec"]["volumes"] = json!([{"name": "mine", "emptyDir": {}}]);
        let p = admit(&reg, p).await.unwrap();
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
    }
}
