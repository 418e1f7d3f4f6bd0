//! Who a client certificate names, as upstream's `x509.CommonNameUserConversion`: the subject's
//! common name is the user, each organization a group. Shared by the API server and the node
//! agent's API.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The user (common name) and groups (organizations) of a DER certificate; `None` when it
/// does not parse or names nobody.
pub fn subject_user(der: &[u8]) -> Option<(String, Vec<String>)> {
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
    Some((name, groups))
}

/// A DER certificate's validity, as Unix times (not before, not after).
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let v = cert.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}
