//! The clients the controllers act with (upstream's `clientbuilder`).
//!
//! By default every controller uses the manager's own client. With
//! `use_service_account_credentials` (upstream's `--use-service-account-credentials`) each
//! controller acts as its own ServiceAccount in `kube-system` (`deployment-controller`,
//! `replicaset-controller`, …), which the API server's controller policy binds to that
//! controller's `system:controller:*` role: the manager makes sure the account exists, asks
//! for a token through TokenRequest (`serviceaccounts/<name>/token`, one hour), and builds a
//! client presenting it — the manager's server URL and CA, no client certificate. The
//! controller keeps that one client ([`ClientSwitch`]); a task replaces the token underneath
//! once 80 % of its lifetime has passed, as upstream's cached token source does, or at once
//! when the server answers it 401 (its account deleted: the account is created again), at
//! most every [`MIN_RENEWAL_INTERVAL`]. The shared informers and the leader Lease stay on the
//! manager's client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kox_component::ClientSwitch;
use kube::api::PostParams;
use kube::config::AuthInfo;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

/// The namespace of the controllers' ServiceAccounts.
pub const NAMESPACE: &str = "kube-system";

/// How long a requested token lives (upstream's `defaultExpirationSeconds`).
pub const TOKEN_EXPIRATION: Duration = Duration::from_secs(3600);

/// The share of a token's lifetime left when it is replaced (upstream's
/// `defaultLeewayPercent`).
const LEEWAY_PERCENT: u32 = 20;

/// A token said to live less than this is taken to live this long: a shorter remaining
/// lifetime means the clocks disagree (upstream pins the same minimum).
const MIN_LIFETIME: Duration = Duration::from_secs(600);

/// A token refused with a 401 is replaced, but no sooner than this after the last one.
pub const MIN_RENEWAL_INTERVAL: Duration = Duration::from_secs(5);

/// How long after its issue a token whose remaining lifetime was `lifetime` is replaced:
/// when a fifth of that lifetime is left.
pub fn refresh_after(lifetime: Duration) -> Duration {
    let lifetime = lifetime.max(MIN_LIFETIME);
    lifetime - lifetime * LEEWAY_PERCENT / 100
}

/// How long to wait before the `attempt`th retry (from 1) of a failed refresh: 1 s,
/// doubling, at most a minute. The old token stays valid meanwhile.
pub fn retry_after(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// Hands each controller the client it acts with. Cloning is cheap; clones share the clients.
#[derive(Clone)]
pub struct ClientBuilder {
    root: Client,
    /// The manager's connection, whose credentials each token replaces; `None`: every
    /// controller uses `root`.
    accounts: Option<Arc<Accounts>>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("service_accounts", &self.accounts.is_some())
            .finish()
    }
}

struct Accounts {
    base: kube::Config,
    /// One client per account for the builder's life, so a restarted controller keeps its
    /// client and two controllers sharing an account share one token.
    clients: Mutex<HashMap<String, Client>>,
    stop: CancellationToken,
}

impl ClientBuilder {
    /// Every controller acts with `root`, the manager's own client.
    pub fn manager(root: Client) -> Self {
        ClientBuilder {
            root,
            accounts: None,
        }
    }

    /// Controllers with an account act with its tokens, requested through `root`, on clients
    /// connecting as `base` does (its credentials dropped); tokens stop being refreshed at
    /// `stop`.
    pub fn service_accounts(root: Client, base: kube::Config, stop: CancellationToken) -> Self {
        ClientBuilder {
            root,
            accounts: Some(Arc::new(Accounts {
                base,
                clients: Mutex::default(),
                stop,
            })),
        }
    }

    /// The manager's own client.
    pub fn root(&self) -> &Client {
        &self.root
    }

    /// The client a controller whose ServiceAccount is `account` acts with: the manager's own
    /// when there is no account or service-account credentials are off.
    pub async fn client(&self, account: Option<&str>) -> anyhow::Result<Client> {
        let (Some(accounts), Some(name)) = (&self.accounts, account) else {
            return Ok(self.root.clone());
        };
        if let Some(c) = accounts.cached(name) {
            return Ok(c);
        }
        let (client, lifetime) = issue(&self.root, &accounts.base, name).await?;
        let (front, switch) = ClientSwitch::new(client);
        let mut clients = accounts.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(name) {
            // Another controller of the same account got there first.
            return Ok(c.clone());
        }
        clients.insert(name.to_string(), front.clone());
        drop(clients);
        tokio::spawn(keep_fresh(
            self.root.clone(),
            accounts.base.clone(),
            name.to_string(),
            switch,
            lifetime,
            accounts.stop.clone(),
        ));
        Ok(front)
    }
}

impl Accounts {
    fn cached(&self, name: &str) -> Option<Client> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.get(name).cloned()
    }
}

/// Replaces the token behind `switch` before it expires, until `stop` or until nobody uses
/// the client any more.
async fn keep_fresh(
    root: Client,
    base: kube::Config,
    name: String,
    switch: ClientSwitch,
    mut lifetime: Duration,
    stop: CancellationToken,
) {
    let mut wait = refresh_after(lifetime);
    let mut failures = 0;
    loop {
        let since = tokio::time::Instant::now();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = switch.unauthorized() => {
                tracing::info!(account = %name, "the service-account token was refused; renewing it");
                let next = since + MIN_RENEWAL_INTERVAL;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(next) => {}
                }
            }
        }
        if switch.unused() {
            return;
        }
        match issue(&root, &base, &name).await {
            Ok((client, l)) => {
                switch.set(client);
                lifetime = l;
                failures = 0;
                wait = refresh_after(lifetime);
                tracing::debug!(account = %name, "service-account token refreshed");
            }
            Err(e) => {
                failures += 1;
                wait = retry_after(failures);
                tracing::warn!(
                    account = %name,
                    "refreshing the service-account token failed (retrying in {wait:?}): {e:#}"
                );
            }
        }
    }
}

/// Makes sure the account exists, requests a token for it and builds a client presenting
/// that token; also returns how long the token lives from now.
async fn issue(
    root: &Client,
    base: &kube::Config,
    name: &str,
) -> anyhow::Result<(Client, Duration)> {
    use anyhow::Context as _;
    let accounts: Api<ServiceAccount> = Api::namespaced(root.clone(), NAMESPACE);
    if accounts
        .get_opt(name)
        .await
        .with_context(|| format!("reading ServiceAccount {NAMESPACE}/{name}"))?
        .is_none()
    {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(NAMESPACE.to_string()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating ServiceAccount {NAMESPACE}/{name}"));
            }
        }
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(TOKEN_EXPIRATION.as_secs() as i64),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {NAMESPACE}/{name}"))?;
    let status = issued
        .status
        .with_context(|| format!("the token request for {NAMESPACE}/{name} has no status"))?;
    let left = status.expiration_timestamp.0.as_second() - Timestamp::now().as_second();
    let lifetime = Duration::from_secs(u64::try_from(left).unwrap_or(0));
    let mut config = base.clone();
    config.auth_info = AuthInfo {
        token: Some(status.token.into()),
        ..AuthInfo::default()
    };
    let user = format!("system:serviceaccount:{NAMESPACE}:{name}");
    if let (Ok(name), Ok(agent)) = (
        "user-agent".parse(),
        format!("kox-controller-manager/{user}").parse(),
    ) {
        config.headers.push((name, agent));
    }
    let client = Client::try_from(config)
        .with_context(|| format!("building the client of ServiceAccount {NAMESPACE}/{name}"))?;
    Ok((client, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_replaced_when_a_fifth_of_its_lifetime_is_left() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(2880)
        );
        // Issued a little late: still 80 % of what is left.
        assert_eq!(
            refresh_after(Duration::from_secs(3590)),
            Duration::from_secs(2872)
        );
    }

    #[test]
    fn a_token_said_to_expire_soon_counts_as_living_ten_minutes() {
        assert_eq!(refresh_after(Duration::ZERO), Duration::from_secs(480));
        assert_eq!(
            refresh_after(Duration::from_secs(60)),
            Duration::from_secs(480)
        );
    }

    #[test]
    fn failed_refreshes_back_off_to_a_minute() {
        assert_eq!(retry_after(1), Duration::from_secs(1));
        assert_eq!(retry_after(2), Duration::from_secs(2));
        assert_eq!(retry_after(5), Duration::from_secs(16));
        assert_eq!(retry_after(7), Duration::from_secs(60));
        assert_eq!(retry_after(100), Duration::from_secs(60));
    }
}
