//! The root CA publisher: every active namespace has the ConfigMap `kube-root-ca.crt` whose
//! `ca.crt` is the cluster CA, so pods can verify the API server (upstream's
//! `root-ca-cert-publisher`). Edited or deleted copies are put back.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

use crate::{Action, Change, Context, Controller};

/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its key holding the CA bundle.
pub const KEY: &str = "ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The root CA publisher (`--controllers` name `root-ca-cert-publisher`).
#[derive(Debug, Default)]
pub struct RootCaPublisher;

/// What the ConfigMap should hold, or `None` if `current` already does.
fn desired(current: Option<&ConfigMap>, namespace: &str, ca: &str) -> Option<ConfigMap> {
    let data = BTreeMap::from([(KEY.to_string(), ca.to_string())]);
    let annotations = BTreeMap::from([(
        "kubernetes.io/description".to_string(),
        DESCRIPTION.to_string(),
    )]);
    match current {
        Some(cm)
            if cm.data.as_ref() == Some(&data)
                && cm
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/description"))
                    .is_some() =>
        {
            None
        }
        Some(cm) => {
            let mut cm = cm.clone();
            cm.data = Some(data);
            cm.binary_data = None;
            cm.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .extend(annotations);
            Some(cm)
        }
        None => Some(ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIG_MAP.into()),
                namespace: Some(namespace.into()),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        }),
    }
}

#[async_trait::async_trait]
impl Controller for RootCaPublisher {
    fn name(&self) -> &'static str {
        "root-ca-cert-publisher"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("root-ca-cert-publisher")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["root-ca-certificate-publisher-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let Some(ca) = ctx.config.root_ca_pem.clone() else {
            tracing::info!("root-ca-cert-publisher: no cluster CA configured; not running");
            return Ok(());
        };
        let namespaces = ctx.informers.get::<Namespace>();
        let config_maps = ctx.informers.get::<ConfigMap>();
        let queue = ctx.queue("root_ca_cert_publisher");
        let q = queue.clone();
        namespaces.add_handler(move |change| {
            if !matches!(change, Change::Deleted(_)) {
                q.add(change.object().metadata.name.clone().unwrap_or_default());
            }
        });
        let q = queue.clone();
        config_maps.add_handler(move |change| {
            let cm = change.object();
            if cm.metadata.name.as_deref() == Some(CONFIG_MAP) {
                q.add(cm.metadata.namespace.clone().unwrap_or_default());
            }
        });
        namespaces.synced().await;
        config_maps.synced().await;
        let client = ctx.client.clone();
        queue
            .run_workers(5, stop, move |ns| {
                let client = client.clone();
                let namespaces = namespaces.clone();
                let config_maps = config_maps.clone();
                let ca = ca.clone();
                async move {
                    let Some(namespace) = namespaces.get(&ns) else {
                        return Ok(Action::await_change());
                    };
                    if namespace.metadata.deletion_timestamp.is_some() {
                        return Ok(Action::await_change());
                    }
                    let current = config_maps.get_in(Some(&ns), CONFIG_MAP);
                    let Some(want) = desired(current.as_deref(), &ns, &ca) else {
                        return Ok(Action::await_change());
                    };
                    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
                    let written = if current.is_some() {
                        api.replace(CONFIG_MAP, &PostParams::default(), &want).await
                    } else {
                        api.create(&PostParams::default(), &want).await
                    };
                    match written {
                        Ok(_) => Ok(Action::await_change()),
                        // The namespace is closing.
                        Err(kube::Error::Api(s)) if s.code == 403 => Ok(Action::await_change()),
                        Err(e) => Err(e.into()),
                    }
                }
            })
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_edited_config_map_is_rewritten_and_a_good_one_left_alone() {
        let created = desired(None, "team", "PEM").expect("missing: create");
        assert_eq!(created.metadata.name.as_deref(), Some(CONFIG_MAP));
        assert_eq!(created.data.as_ref().unwrap()[KEY], "PEM");
        assert!(desired(Some(&created), "team", "PEM").is_none());
        let mut edited = created.clone();
        edited.data = Some(BTreeMap::from([(KEY.to_string(), "junk".to_string())]));
        let fixed = desired(Some(&edited), "team", "PEM").expect("edited: rewrite");
        assert_eq!(fixed.data.unwrap()[KEY], "PEM");
    }
}
