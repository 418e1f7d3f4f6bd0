//! X.509 client certificates: the TLS layer verifies the chain against the cluster CA; this
//! reads the identity out of the verified leaf (CN = user name, O = groups), as upstream's
//! `x509.CommonNameUserConversion`.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::user::UserInfo;

/// The user a verified client certificate names, or `None` when it names nobody (no CN).
pub fn user_from_der(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(UserInfo {
        name,
        groups,
        ..Default::default()
    })
}
