//! The service account controller: every active namespace has a `default` ServiceAccount
//! (recreated if deleted), as upstream's `serviceaccount` controller.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

use crate::{Action, Change, Context, Controller};

/// The accounts every namespace gets.
const ACCOUNTS: &[&str] = &["default"];

/// The service account controller (`--controllers` name `serviceaccount`).
#[derive(Debug, Default)]
pub struct ServiceAccountController;

#[async_trait::async_trait]
impl Controller for ServiceAccountController {
    fn name(&self) -> &'static str {
        "serviceaccount"
    }

    fn service_account(&self) -> Option<&'static str> {
        Some("service-account-controller")
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["serviceaccount-controller"]
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let namespaces = ctx.informers.get::<Namespace>();
        let accounts = ctx.informers.get::<ServiceAccount>();
        let queue = ctx.queue("serviceaccount");
        let q = queue.clone();
        namespaces.add_handler(move |change| {
            if !matches!(change, Change::Deleted(_)) {
                q.add(change.object().metadata.name.clone().unwrap_or_default());
            }
        });
        let q = queue.clone();
        accounts.add_handler(move |change| {
            let sa = change.object();
            if matches!(change, Change::Deleted(_))
                && ACCOUNTS.contains(&sa.metadata.name.as_deref().unwrap_or(""))
            {
                q.add(sa.metadata.namespace.clone().unwrap_or_default());
            }
        });
        namespaces.synced().await;
        accounts.synced().await;
        let client = ctx.client.clone();
        queue
            .run_workers(5, stop, move |ns| {
                let client = client.clone();
                let namespaces = namespaces.clone();
                let accounts = accounts.clone();
                async move {
                    let Some(namespace) = namespaces.get(&ns) else {
                        return Ok(Action::await_change());
                    };
                    if namespace.metadata.deletion_timestamp.is_some() {
                        return Ok(Action::await_change());
                    }
                    let api: Api<ServiceAccount> = Api::namespaced(client, &ns);
                    for name in ACCOUNTS {
                        if accounts.get_in(Some(&ns), name).is_some() {
                            continue;
                        }
                        let sa = ServiceAccount {
                            metadata: ObjectMeta {
                                name: Some(name.to_string()),
                                namespace: Some(ns.clone()),
                                ..ObjectMeta::default()
                            },
                            ..ServiceAccount::default()
                        };
                        match api.create(&PostParams::default(), &sa).await {
                            Ok(_) => {}
                            // Already there (the cache lags), or the namespace is closing.
                            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Ok(Action::await_change())
                }
            })
            .await;
        Ok(())
    }
}
