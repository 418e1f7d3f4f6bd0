//! The token cleaner (upstream's `tokencleaner`, `pkg/controller/bootstrap/tokencleaner.go`):
//! deletes bootstrap-token Secrets (`kube-system`, type `bootstrap.kubernetes.io/token`) whose
//! `expiration` has passed, and looks at each unexpired one again when it expires. An
//! `expiration` that is not RFC 3339 counts as passed; a Secret without one never expires.
//!
//! Upstream leaves this controller off unless asked for (kubeadm turns it on). kox joins nodes
//! with bootstrap tokens, so here it runs by default: `--controllers '*,-tokencleaner'` turns it
//! off.
//!
//! It watches only `kube-system`'s bootstrap-token Secrets (a field selector on `type`), not
//! every Secret of the cluster through the shared informers: that is all it reads, and all its
//! role (`system:controller:token-cleaner`, a Role in `kube-system`) lets it read.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::informer::Informer;
use crate::{Action, Context, Controller};

/// Where bootstrap tokens live.
pub const NAMESPACE: &str = "kube-system";
/// Their Secrets' type.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The `data` key of a token's expiry time (RFC 3339).
const EXPIRATION: &str = "expiration";

/// The token cleaner (`--controllers` name `tokencleaner`).
#[derive(Debug, Default)]
pub struct TokenCleaner;

/// What to do with a token Secret at `now`.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Its expiration has passed (or does not parse): delete it.
    Expired,
    /// It expires after this long: look again then.
    ExpiresIn(Duration),
    /// It never expires.
    Keep,
}

/// Upstream's `GetExpiration`: the `expiration` of `data`, judged at `now`.
fn verdict(secret: &Secret, now: Timestamp) -> Verdict {
    let expiration = secret
        .data
        .as_ref()
        .and_then(|d| d.get(EXPIRATION))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default();
    if expiration.is_empty() {
        return Verdict::Keep;
    }
    let Ok(at) = expiration.parse::<Timestamp>() else {
        return Verdict::Expired;
    };
    match Duration::try_from(at.duration_since(now)) {
        Ok(left) if !left.is_zero() => Verdict::ExpiresIn(left),
        _ => Verdict::Expired,
    }
}

/// Deletes `secret` if it is still the object the cache saw (a UID precondition, so a Secret
/// re-created under the same name is judged afresh).
async fn delete(client: &Client, secret: &Secret) -> anyhow::Result<()> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let params = DeleteParams {
        preconditions: secret.metadata.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            tracing::info!(secret = %format!("{NAMESPACE}/{name}"), "token cleaner: deleted expired bootstrap token");
            Ok(())
        }
        // Gone already, or replaced by another object of that name.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[async_trait::async_trait]
impl Controller for TokenCleaner {
    fn name(&self) -> &'static str {
        "tokencleaner"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["token-cleaner-controller"]
    }

    /// Its Role (secrets in `kube-system`) is bound to this account; its own watch of the
    /// bootstrap-token Secrets uses it too, as upstream's.
    fn service_account(&self) -> Option<&'static str> {
        Some("token-cleaner")
    }

    async fn run(&self, ctx: Context, stop: CancellationToken) -> anyhow::Result<()> {
        let secrets: Informer<Secret> = Informer::new();
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), NAMESPACE);
        let config = watcher::Config::default().fields(&format!("type={SECRET_TYPE}"));
        let stream = watcher(api, config).default_backoff();
        tokio::spawn(secrets.clone().run(
            stream,
            format!("{NAMESPACE} bootstrap-token secrets"),
            stop.clone(),
        ));
        let queue = ctx.queue("token_cleaner");
        let q = queue.clone();
        secrets.add_handler(move |change| {
            if matches!(change, crate::Change::Deleted(_)) {
                return;
            }
            let s = change.object();
            if s.type_.as_deref() == Some(SECRET_TYPE) {
                q.add(s.metadata.name.clone().unwrap_or_default());
            }
        });
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = secrets.synced() => {}
        }
        let client = ctx.client.clone();
        queue
            .run_workers(1, stop, move |name| {
                let client = client.clone();
                let secrets = secrets.clone();
                async move {
                    let Some(secret) = secrets.get_in(Some(NAMESPACE), &name) else {
                        return Ok(Action::await_change());
                    };
                    if secret.type_.as_deref() != Some(SECRET_TYPE) {
                        return Ok(Action::await_change());
                    }
                    match verdict(&secret, Timestamp::now()) {
                        Verdict::Expired => {
                            delete(&client, &secret).await?;
                            Ok(Action::await_change())
                        }
                        Verdict::ExpiresIn(left) => Ok(Action::requeue(left)),
                        Verdict::Keep => Ok(Action::await_change()),
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
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn token(expiration: Option<&str>) -> Secret {
        let mut data = BTreeMap::from([("token-id".to_string(), ByteString(b"abcdef".to_vec()))]);
        if let Some(e) = expiration {
            data.insert(EXPIRATION.into(), ByteString(e.as_bytes().to_vec()));
        }
        Secret {
            type_: Some(SECRET_TYPE.into()),
            data: Some(data),
            ..Secret::default()
        }
    }

    fn check(expiration: Option<&str>, now: &str, expect: Verdict) {
        let now: Timestamp = now.parse().unwrap();
        assert_eq!(
            verdict(&token(expiration), now),
            expect,
            "expiration {expiration:?} at {now}"
        );
    }

    #[test]
    fn passed_or_unreadable_expirations_are_expired() {
        let now = "2026-01-01T12:00:00Z";
        check(Some("2026-01-01T11:59:59Z"), now, Verdict::Expired);
        check(Some("2026-01-01T12:00:00Z"), now, Verdict::Expired);
        check(Some("2026-01-01T13:00:00+02:00"), now, Verdict::Expired);
        check(Some("tomorrow"), now, Verdict::Expired);
        check(Some("2026-01-01"), now, Verdict::Expired);
    }

    #[test]
    fn future_expirations_are_looked_at_again_when_they_come() {
        let now = "2026-01-01T12:00:00Z";
        check(
            Some("2026-01-01T12:00:30Z"),
            now,
            Verdict::ExpiresIn(Duration::from_secs(30)),
        );
        check(
            Some("2026-01-01T13:30:00+01:00"),
            now,
            Verdict::ExpiresIn(Duration::from_secs(1800)),
        );
    }

    #[test]
    fn a_token_without_expiration_is_kept() {
        let now = "2026-01-01T12:00:00Z";
        check(None, now, Verdict::Keep);
        check(Some(""), now, Verdict::Keep);
    }
}
