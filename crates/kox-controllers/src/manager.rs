//! The controller manager's main loop: serve `/healthz` and `/metrics`, take part in leader
//! election, and while leading run the selected controllers with fresh shared informers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use k8s_openapi::api::coordination::v1::Lease;
use kox_component::delegated_auth::DelegatedAuth;
use kox_component::{healthz, leader};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client_builder::ClientBuilder;
use crate::context::{Context, ControllerManagerConfig, Metrics};
use crate::{Controller, all_controllers};

/// Picks the controllers `--controllers` names (`*`, `name`, `-name`), as upstream's
/// `IsControllerEnabled`: an explicit `-name` or `name` wins, else `*` enables those on by
/// default. Unknown names are an error.
pub fn select(
    names: &[String],
    available: Vec<Box<dyn Controller>>,
) -> anyhow::Result<Vec<Box<dyn Controller>>> {
    let known = |n: &str| {
        available
            .iter()
            .any(|c| c.name() == n || c.aliases().contains(&n))
    };
    for n in names {
        let bare = n.strip_prefix('-').unwrap_or(n);
        if bare != "*" && !known(bare) {
            let mut all: Vec<&str> = available.iter().map(|c| c.name()).collect();
            all.sort();
            bail!(
                "{bare:?} is not in the list of known controllers: {}",
                all.join(", ")
            );
        }
    }
    let star = names.iter().any(|n| n == "*");
    Ok(available
        .into_iter()
        .filter(|c| {
            let is = |n: &str| n == c.name() || c.aliases().contains(&n);
            if names.iter().any(|n| n.strip_prefix('-').is_some_and(is)) {
                return false;
            }
            if names.iter().any(|n| is(n)) {
                return true;
            }
            star && c.enabled_by_default()
        })
        .collect())
}

/// Runs the controller manager until `stop` is cancelled.
pub async fn run(
    client: Client,
    config: ControllerManagerConfig,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let controllers: Vec<Arc<dyn Controller>> = select(&config.controllers, all_controllers())?
        .into_iter()
        .map(Arc::from)
        .collect();
    let names: Vec<&str> = controllers.iter().map(|c| c.name()).collect();
    tracing::info!("controller manager: controllers {}", names.join(", "));
    if config.use_service_account_credentials && config.api_server.is_none() {
        bail!("service-account credentials need the API server's connection (api_server)");
    }
    if config.use_service_account_credentials {
        tracing::info!(
            "controller manager: each controller acts as its own service account in {}",
            crate::client_builder::NAMESPACE
        );
    }
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::default());
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = config.health_address {
        tasks.spawn(healthz::serve(
            "controller-manager",
            addr,
            metrics.clone(),
            Arc::new(DelegatedAuth::new(client.clone())),
            stop.clone(),
        ));
    }
    let (leading_tx, mut leading) = watch::channel(config.leader_election.is_none());
    if let Some(le) = config.leader_election.clone() {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &le.namespace);
        tasks.spawn(leader::run(leases, le, leading_tx, stop.clone()));
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            r = leading.wait_for(|l| *l) => if r.is_err() { break },
        }
        metrics.set_leading(true);
        let term = stop.child_token();
        let ctx = Context::new(
            client.clone(),
            config.clone(),
            metrics.clone(),
            term.clone(),
        );
        let clients = match (&config.api_server, config.use_service_account_credentials) {
            (Some(base), true) => {
                ClientBuilder::service_accounts(client.clone(), base.clone(), term.clone())
            }
            _ => ClientBuilder::manager(client.clone()),
        };
        let mut running = tokio::task::JoinSet::new();
        for c in &controllers {
            running.spawn(supervise(
                c.clone(),
                ctx.clone(),
                clients.clone(),
                term.clone(),
            ));
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = leading.wait_for(|l| !*l) => {}
        }
        term.cancel();
        while running.join_next().await.is_some() {}
        metrics.set_leading(false);
        if stop.is_cancelled() {
            break;
        }
        tracing::warn!("controller manager: leadership lost; controllers stopped, standing by");
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Runs one controller with its own client, restarting it after a pause if it (or getting
/// its client) fails, until `stop`.
async fn supervise(
    c: Arc<dyn Controller>,
    ctx: Context,
    clients: ClientBuilder,
    stop: CancellationToken,
) {
    loop {
        tracing::debug!(controller = c.name(), "starting");
        let client = tokio::select! {
            _ = stop.cancelled() => return,
            r = clients.client(c.service_account()) => r,
        };
        let result = match client {
            Ok(client) => c.run(ctx.with_client(client), stop.clone()).await,
            Err(e) => Err(e.context(format!(
                "getting the credentials of kube-system/{}",
                c.service_account().unwrap_or_default()
            ))),
        };
        if stop.is_cancelled() {
            return;
        }
        match result {
            Ok(()) => return,
            Err(e) => tracing::error!(controller = c.name(), "stopped: {e:#}; restarting"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(&'static str, bool);

    #[async_trait::async_trait]
    impl Controller for Fake {
        fn name(&self) -> &'static str {
            self.0
        }
        fn aliases(&self) -> &'static [&'static str] {
            if self.0 == "namespace" {
                &["namespace-controller"]
            } else {
                &[]
            }
        }
        fn enabled_by_default(&self) -> bool {
            self.1
        }
        async fn run(&self, _: Context, _: CancellationToken) -> anyhow::Result<()> {
            Ok(())
        }
    }

    fn check(flags: &[&str], want: &[&str]) {
        let available: Vec<Box<dyn Controller>> = vec![
            Box::new(Fake("namespace", true)),
            Box::new(Fake("podgc", true)),
            Box::new(Fake("bootstrapsigner", false)),
        ];
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let got: Vec<&str> = select(&flags, available)
            .unwrap()
            .iter()
            .map(|c| c.name())
            .collect();
        assert_eq!(got, want, "--controllers={}", flags.join(","));
    }

    #[test]
    fn controllers_flag_selects_as_upstream() {
        check(&["*"], &["namespace", "podgc"]);
        check(&["*", "-podgc"], &["namespace"]);
        check(
            &["*", "bootstrapsigner"],
            &["namespace", "podgc", "bootstrapsigner"],
        );
        check(&["podgc"], &["podgc"]);
        check(&["*", "-namespace-controller"], &["podgc"]);
    }

    #[test]
    fn unknown_controller_is_an_error() {
        let err = select(&["nope".into()], vec![Box::new(Fake("podgc", true))])
            .err()
            .expect("unknown name fails");
        assert!(
            err.to_string()
                .contains("not in the list of known controllers")
        );
    }
}
