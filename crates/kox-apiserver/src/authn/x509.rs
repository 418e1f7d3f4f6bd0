//! X.509 client certificates: the TLS layer verifies the chain against the cluster CA; this
//! reads the identity out of the verified leaf (CN = user name, O = groups), as upstream's
//! `x509.CommonNameUserConversion`.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::user::UserInfo;

/// The user a verified client certificate names, or `None` when it names nobody (no CN).
pub fn user_from_der(der: &[u8]) -> Option<UserInfo> {
    let (name, groups) = kox_component::x509_user::subject_user(der)?;
    Some(UserInfo {
        name,
        groups,
        ..Default::default()
    })
}

/// What a connection's client certificate says about its requests.
#[derive(Clone, Debug, Default)]
pub enum ClientCert {
    /// None was presented.
    #[default]
    None,
    /// A certificate the cluster CA signed, naming this user, valid until `not_after` (Unix
    /// time). The connection may outlive it: requests after that are answered as for an
    /// invalid certificate, as upstream verifies the chain on every request.
    Verified { user: UserInfo, not_after: i64 },
    /// A certificate that does not verify against the cluster CA (another CA's, expired, …):
    /// as upstream, the handshake succeeds and the request is a 401 unless a valid token
    /// authenticates it.
    Invalid,
}

/// The TLS layer's client-certificate policy: certificates are asked for, never required, and
/// a handshake with one the cluster CA did not sign still succeeds (the key's possession is
/// still proven by the handshake signature); the chain is checked per connection with
/// [`ClientCertPolicy::classify`], so such requests are answered 401 as upstream does instead of
/// failing the handshake.
#[derive(Debug)]
pub struct ClientCertPolicy {
    inner: std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl ClientCertPolicy {
    /// `inner` verifies chains against the cluster CA.
    pub fn new(inner: std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>) -> Self {
        Self { inner }
    }

    /// What the presented chain (leaf first) says.
    pub fn classify(&self, chain: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> ClientCert {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return ClientCert::None;
        };
        let now = rustls::pki_types::UnixTime::now();
        if self
            .inner
            .verify_client_cert(leaf, intermediates, now)
            .is_err()
        {
            return ClientCert::Invalid;
        }
        let not_after = X509Certificate::from_der(leaf)
            .map(|(_, cert)| cert.validity().not_after.timestamp())
            .unwrap_or(i64::MIN);
        match user_from_der(leaf) {
            Some(user) => ClientCert::Verified { user, not_after },
            None => ClientCert::None,
        }
    }
}

impl rustls::server::danger::ClientCertVerifier for ClientCertPolicy {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        // Checked per connection by `classify`.
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
