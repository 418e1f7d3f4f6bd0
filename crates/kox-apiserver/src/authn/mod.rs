//! Authentication: turns a request's credentials into a [`UserInfo`].
//!
//! Like upstream's union authenticator, the methods are tried in order and the first that
//! recognises the request wins: the verified X.509 client certificate (CN = user, O = groups),
//! then a bearer token (the static token file, then service-account JWTs, then bootstrap
//! tokens). A request with no credentials is `system:anonymous` in `system:unauthenticated`;
//! credentials that are present but not valid (unknown token, bad signature, expired) are a
//! 401 `Unauthorized`. Every authenticated user gets `system:authenticated`.

pub mod bootstrap_token;
pub mod impersonation;
pub mod review;
pub mod service_account;
pub mod token_file;
pub mod x509;

use http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::registry::Registry;
use crate::user::UserInfo;

pub use service_account::TokenSigner;
pub use token_file::TokenFile;

/// The configured authentication methods.
#[derive(Default)]
pub struct Authenticator {
    /// Static tokens of `--token-auth-file` (default: none).
    pub token_file: Option<TokenFile>,
    /// The service-account token signer (default: none, so no such tokens are issued or
    /// accepted).
    pub service_accounts: Option<TokenSigner>,
}

/// 401 as upstream's authentication filter writes it.
pub fn unauthorized() -> ApiError {
    kox_api::status::unauthorized("Unauthorized").into()
}

impl Authenticator {
    /// Authenticates a request. `client_cert` is what the connection's client certificate
    /// says, if it presented one.
    pub async fn authenticate(
        &self,
        registry: &Registry,
        client_cert: &x509::ClientCert,
        headers: &HeaderMap,
    ) -> Result<UserInfo, ApiError> {
        let failed_certificate = match client_cert {
            x509::ClientCert::Verified { user, not_after }
                if jiff::Timestamp::now().as_second() <= *not_after =>
            {
                return Ok(user.clone().with_authenticated_group());
            }
            x509::ClientCert::Verified { .. } => Some("client certificate expired"),
            x509::ClientCert::Invalid => Some("client certificate not signed by the cluster CA"),
            x509::ClientCert::None => None,
        };
        let Some(token) = bearer_token(headers)? else {
            // A certificate that does not verify is a failed credential, not an anonymous
            // request.
            if let Some(why) = failed_certificate {
                tracing::debug!("authentication failed: {why}");
                return Err(unauthorized());
            }
            return Ok(UserInfo::anonymous());
        };
        match self.authenticate_token(registry, token, &[]).await {
            Ok(user) => Ok(user),
            Err(why) => {
                tracing::debug!("authentication failed: {why}");
                Err(unauthorized())
            }
        }
    }

    /// Authenticates a bearer token for `audiences` (empty: the API server's own audiences).
    /// The error says why the token is not valid.
    pub async fn authenticate_token(
        &self,
        registry: &Registry,
        token: &str,
        audiences: &[String],
    ) -> Result<UserInfo, String> {
        if let Some(user) = self.token_file.as_ref().and_then(|f| f.lookup(token)) {
            return Ok(user.clone().with_authenticated_group());
        }
        // Only a JWT (three dot-separated parts) can be a service-account token.
        if let Some(signer) = &self.service_accounts
            && token.split('.').count() == 3
        {
            return service_account::authenticate(signer, registry, token, audiences).await;
        }
        // Bootstrap tokens are not audience-scoped: upstream accepts them only for the API
        // server's own audiences.
        if let Some((id, secret)) = bootstrap_token::parse(token)
            && audiences.is_empty()
        {
            return bootstrap_token::authenticate(registry, id, secret).await;
        }
        Err("invalid bearer token".to_string())
    }

    /// The `status` of a TokenReview of `token`.
    pub async fn review_token(
        &self,
        registry: &Registry,
        token: &str,
        audiences: &[String],
    ) -> Value {
        match self.authenticate_token(registry, token, audiences).await {
            Ok(user) => {
                let mut status = json!({ "authenticated": true, "user": user.to_json() });
                if !audiences.is_empty() {
                    status["audiences"] = json!(audiences);
                }
                status
            }
            Err(why) => json!({ "user": {}, "error": why }),
        }
    }
}

/// The bearer token of an `Authorization` header: `None` without the header (or with another
/// scheme, which no authenticator here understands), an error for an empty token.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| unauthorized())?.trim();
    let Some((scheme, token)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(unauthorized());
    }
    Ok(Some(token))
}
