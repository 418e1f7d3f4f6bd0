//! The cluster's certificates: a CA, the API server's serving certificate and the admin client
//! certificate, created on first start and reused on every restart.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long leaf certificates are valid.
const LEAF_VALIDITY: Duration = Duration::days(365);

/// How long the certificates the cluster CA issues are valid.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// The API server's serving certificate.
    pub serving: Duration,
    /// Client certificates of the admin and of the control plane's components.
    pub client: Duration,
}

impl Default for Validity {
    fn default() -> Self {
        Self {
            serving: LEAF_VALIDITY,
            client: LEAF_VALIDITY,
        }
    }
}

/// A client credential kept under `tls/`: file stem (`tls/<stem>.{crt,key}`, and
/// `<stem>.kubeconfig` for components), user, groups.
pub type Credential = (&'static str, &'static str, &'static [&'static str]);

/// The admin's credential, written to `admin.kubeconfig`.
pub const ADMIN: Credential = ("admin", "kubernetes-admin", &["system:masters"]);

/// PEM material of the cluster's PKI, as files under `DIR/tls`.
#[derive(Clone)]
pub struct ClusterPki {
    pub ca_cert_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

/// File locations of the PKI under a data directory.
struct PkiPaths {
    dir: PathBuf,
}

impl PkiPaths {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl ClusterPki {
    /// Loads the PKI from `data_dir/tls`, creating whatever is missing. The serving certificate
    /// is re-issued (by the same CA) when its names no longer cover `sans`; a certificate due
    /// for renewal (see [`renew_at`]) is issued again.
    pub fn load_or_create(data_dir: &Path, sans: &[String]) -> Result<Self> {
        Self::load_or_create_valid_for(data_dir, sans, Validity::default())
    }

    /// [`Self::load_or_create`] with certificates valid for `validity`.
    pub fn load_or_create_valid_for(
        data_dir: &Path,
        sans: &[String],
        validity: Validity,
    ) -> Result<Self> {
        let paths = PkiPaths {
            dir: data_dir.join("tls"),
        };
        std::fs::create_dir_all(&paths.dir)
            .with_context(|| format!("creating {}", paths.dir.display()))?;
        restrict_dir(&paths.dir)?;

        let (ca_cert_pem, ca_key_pem) = match (
            read_opt(&paths.file("ca.crt"))?,
            read_opt(&paths.file("ca.key"))?,
        ) {
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                let (cert, key) = new_ca()?;
                write_secret(&paths.file("ca.key"), &key)?;
                std::fs::write(paths.file("ca.crt"), &cert)?;
                (cert, key)
            }
        };
        crate::authn::service_account::ensure_key(data_dir)?;
        let ca_key = KeyPair::from_pem(&ca_key_pem).context("parsing tls/ca.key")?;
        let issuer =
            Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).context("parsing tls/ca.crt")?;

        let wanted_sans = sans.join(",");
        let have_sans = read_opt(&paths.file("serving.sans"))?;
        let (serving_cert_pem, serving_key_pem) = match (
            read_opt(&paths.file("serving.crt"))?,
            read_opt(&paths.file("serving.key"))?,
        ) {
            (Some(cert), Some(key))
                if have_sans.as_deref() == Some(wanted_sans.as_str())
                    && !needs_renewal(&cert, validity.serving) =>
            {
                (cert, key)
            }
            _ => issue_serving(data_dir, &issuer, sans, validity.serving)?,
        };

        let (admin_cert_pem, admin_key_pem) =
            ensure_client_credential(data_dir, ADMIN, validity.client)?;

        Ok(Self {
            ca_cert_pem,
            serving_cert_pem,
            serving_key_pem,
            admin_cert_pem,
            admin_key_pem,
        })
    }

    /// A kubeconfig for the admin user against `server` (e.g. `https://127.0.0.1:6443`).
    pub fn admin_kubeconfig(&self, server: &str) -> String {
        client_kubeconfig(
            server,
            &self.ca_cert_pem,
            "kox-admin",
            &self.admin_cert_pem,
            &self.admin_key_pem,
        )
    }
}

/// A kubeconfig that authenticates with a client certificate.
pub fn client_kubeconfig(
    server: &str,
    ca_cert_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kox\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: kox\n  context:\n    cluster: kox\n    user: {user}\ncurrent-context: kox\npreferences: {{}}\n",
        ca = b64(ca_cert_pem),
        cert = b64(cert_pem),
        key = b64(key_pem),
    )
}

/// Issues a client certificate (CN = `user`, one O per group) signed by the cluster CA under
/// `data_dir/tls`; returns the certificate and key PEM.
pub fn issue_client_certificate(
    data_dir: &Path,
    user: &str,
    groups: &[&str],
) -> Result<(String, String)> {
    issue_client_certificate_valid_for(data_dir, user, groups, LEAF_VALIDITY)
}

/// [`issue_client_certificate`] valid for `validity`.
pub fn issue_client_certificate_valid_for(
    data_dir: &Path,
    user: &str,
    groups: &[&str],
    validity: Duration,
) -> Result<(String, String)> {
    let issuer = cluster_ca(data_dir)?;
    new_leaf_valid_for(&issuer, user, groups, &[], false, validity)
}

/// A new self-signed CA (certificate and key PEM), e.g. to show that another CA's
/// certificates are refused.
pub fn new_certificate_authority() -> Result<(String, String)> {
    new_ca()
}

/// Issues a client certificate signed by the given CA (certificate and key PEM).
pub fn issue_client_certificate_by(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    user: &str,
    groups: &[&str],
) -> Result<(String, String)> {
    let key = KeyPair::from_pem(ca_key_pem).context("parsing the CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_cert_pem, key).context("parsing the CA certificate")?;
    new_leaf(&issuer, user, groups, &[], false)
}

/// Issues the serving certificate for `sans` and writes it under `data_dir/tls`.
fn issue_serving(
    data_dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    sans: &[String],
    validity: Duration,
) -> Result<(String, String)> {
    let dir = data_dir.join("tls");
    let (cert, key) = new_leaf_valid_for(issuer, "kox-apiserver", &[], sans, true, validity)?;
    write_secret(&dir.join("serving.key"), &key)?;
    write_file(&dir.join("serving.crt"), &cert)?;
    write_file(&dir.join("serving.sans"), &sans.join(","))?;
    Ok((cert, key))
}

/// Issues a new serving certificate for `sans` (valid for `validity`) with the CA under
/// `data_dir/tls`, writes it there and returns it (certificate and key PEM).
pub fn renew_serving_certificate(
    data_dir: &Path,
    sans: &[String],
    validity: Duration,
) -> Result<(String, String)> {
    let issuer = cluster_ca(data_dir)?;
    issue_serving(data_dir, &issuer, sans, validity)
}

/// Issues a serving certificate for a node agent's API (`system:node:<node>`, for `sans`) with
/// the CA under `data_dir/tls`; returns it (certificate and key PEM) without storing it.
pub fn issue_node_serving_certificate(
    data_dir: &Path,
    node: &str,
    sans: &[String],
) -> Result<(String, String)> {
    let issuer = cluster_ca(data_dir)?;
    let user = format!("system:node:{node}");
    new_leaf_valid_for(
        &issuer,
        &user,
        &["system:nodes"],
        sans,
        true,
        Validity::default().serving,
    )
}

/// The cluster CA under `data_dir/tls`, to issue certificates with.
fn cluster_ca(data_dir: &Path) -> Result<Issuer<'static, KeyPair>> {
    let dir = data_dir.join("tls");
    let ca_cert = std::fs::read_to_string(dir.join("ca.crt")).context("reading tls/ca.crt")?;
    let ca_key = std::fs::read_to_string(dir.join("ca.key")).context("reading tls/ca.key")?;
    let key = KeyPair::from_pem(&ca_key).context("parsing tls/ca.key")?;
    Issuer::from_ca_cert_pem(&ca_cert, key).context("parsing tls/ca.crt")
}

/// The Unix time a PEM certificate expires at.
pub fn not_after(cert_pem: &str) -> Option<i64> {
    let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .next()
        .and_then(Result::ok)?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// When a certificate issued for `validity` is renewed: with a third of it (at most 30 days)
/// left, as upstream's certificate managers renew well before expiry.
pub fn renew_at(cert_pem: &str, validity: Duration) -> Option<i64> {
    let third: Duration = validity / 3_i32;
    let margin = third.min(RENEW_BEFORE);
    Some(not_after(cert_pem)? - margin.whole_seconds())
}

/// Whether a certificate issued for `validity` is due for renewal.
fn needs_renewal(cert_pem: &str, validity: Duration) -> bool {
    renew_at(cert_pem, validity).is_none_or(|at| at <= OffsetDateTime::now_utc().unix_timestamp())
}

/// Client certificates issued to the control plane's own components, each written to
/// `DATA_DIR/<stem>.kubeconfig`. Each user is bound to its upstream role by the default RBAC
/// policy.
pub const COMPONENTS: &[Credential] = &[
    ("scheduler", "system:kube-scheduler", &[]),
    ("controller-manager", "system:kube-controller-manager", &[]),
];

/// A certificate is issued again when less than this much of its validity is left (or less
/// than a third, for short-lived ones).
const RENEW_BEFORE: Duration = Duration::days(30);

/// The client certificate and key `data_dir/tls/<stem>.{crt,key}`, issued by the cluster CA
/// (valid for `validity`) when missing, naming someone else, not matching its key, or due for
/// renewal.
pub fn ensure_client_credential(
    data_dir: &Path,
    (stem, user, groups): Credential,
    validity: Duration,
) -> Result<(String, String)> {
    let dir = data_dir.join("tls");
    let (cert_path, key_path) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    if let (Some(cert), Some(key)) = (read_opt(&cert_path)?, read_opt(&key_path)?)
        && still_good(&cert, &key, user, groups, validity)
    {
        return Ok((cert, key));
    }
    let (cert, key) = issue_client_certificate_valid_for(data_dir, user, groups, validity)?;
    write_secret(&key_path, &key)?;
    write_file(&cert_path, &cert)?;
    Ok((cert, key))
}

/// Whether a stored client certificate names `user` in `groups`, belongs to `key_pem`, and is
/// not due for renewal.
fn still_good(
    cert_pem: &str,
    key_pem: &str,
    user: &str,
    groups: &[&str],
    validity: Duration,
) -> bool {
    let Some(der) = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .next()
        .and_then(Result::ok)
    else {
        return false;
    };
    let Some(identity) = crate::authn::x509::user_from_der(&der) else {
        return false;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&der) else {
        return false;
    };
    let Ok(key) = KeyPair::from_pem(key_pem) else {
        return false;
    };
    identity.name == user
        && identity.groups == groups
        && cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
        && !needs_renewal(cert_pem, validity)
}

/// Writes `DATA_DIR/<stem>.kubeconfig` for each of the control plane's [`COMPONENTS`], with its
/// own client certificate (issued again when due), against `server`; returns their paths by
/// stem. A kubeconfig is rewritten only when its contents change, so that components watching
/// the file reload it only for a new certificate.
pub fn write_component_kubeconfigs(
    data_dir: &Path,
    ca_cert_pem: &str,
    server: &str,
    validity: Duration,
) -> Result<Vec<(&'static str, PathBuf)>> {
    COMPONENTS
        .iter()
        .map(|&credential @ (stem, user, _)| {
            let (cert, key) = ensure_client_credential(data_dir, credential, validity)?;
            let path = data_dir.join(format!("{stem}.kubeconfig"));
            write_secret_if_changed(
                &path,
                &client_kubeconfig(server, ca_cert_pem, user, &cert, &key),
            )?;
            Ok((stem, path))
        })
        .collect()
}

/// When the next of the admin's and the components' client certificates is due for renewal
/// (Unix time); `None` when one is missing or unreadable (so: now).
pub fn client_credentials_renew_at(data_dir: &Path, validity: Duration) -> Option<i64> {
    std::iter::once(ADMIN)
        .chain(COMPONENTS.iter().copied())
        .map(|(stem, _, _)| {
            let cert = read_opt(&data_dir.join("tls").join(format!("{stem}.crt"))).ok()??;
            renew_at(&cert, validity)
        })
        .try_fold(i64::MAX, |soonest, at| Some(soonest.min(at?)))
}

fn new_ca() -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn("kox-ca", &[]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + CA_VALIDITY;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn new_leaf(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    organizations: &[&str],
    sans: &[String],
    server: bool,
) -> Result<(String, String)> {
    new_leaf_valid_for(
        issuer,
        common_name,
        organizations,
        sans,
        server,
        LEAF_VALIDITY,
    )
}

fn new_leaf_valid_for(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    organizations: &[&str],
    sans: &[String],
    server: bool,
    validity: Duration,
) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    // The certificate library keeps one value per subject attribute: with several groups the
    // subject is written below, and the certificate signed again.
    params.distinguished_name = if organizations.len() > 1 {
        dn(common_name, &[])
    } else {
        dn(common_name, organizations)
    };
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(s.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
    let cert = params.signed_by(&key, issuer)?;
    if organizations.len() > 1 {
        let der = der::with_subject(
            cert.der(),
            &der::subject(common_name, organizations),
            issuer.key(),
        )?;
        let pem = pem_encode("CERTIFICATE", &der);
        return Ok((pem, key.serialize_pem()));
    }
    Ok((cert.pem(), key.serialize_pem()))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Just enough DER to give a signed certificate another subject (several O values) and sign it
/// again with the issuer's key.
mod der {
    use anyhow::{Context, Result, bail};
    use rcgen::{KeyPair, SigningKey};

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const UTF8_STRING: u8 = 0x0c;
    const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    const OID_ORGANIZATION: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];

    /// A TLV with a definite length.
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// The first TLV of `b`: (tag, header length, content length).
    pub fn header(b: &[u8]) -> Result<(u8, usize, usize)> {
        let (&tag, rest) = b.split_first().context("empty DER")?;
        let (&first, rest) = rest.split_first().context("truncated DER")?;
        if first < 0x80 {
            return Ok((tag, 2, first as usize));
        }
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            bail!("unsupported DER length");
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        Ok((tag, 2 + n, len))
    }

    /// Splits `b` into its consecutive TLVs (each whole, header included).
    fn elements(mut b: &[u8]) -> Result<Vec<&[u8]>> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let (_, h, len) = header(b)?;
            if b.len() < h + len {
                bail!("truncated DER");
            }
            out.push(&b[..h + len]);
            b = &b[h + len..];
        }
        Ok(out)
    }

    fn content(b: &[u8]) -> Result<&[u8]> {
        let (_, h, len) = header(b)?;
        b.get(h..h + len).context("truncated DER")
    }

    /// A subject: one RDN per organization, then the common name.
    pub fn subject(common_name: &str, organizations: &[&str]) -> Vec<u8> {
        let rdn = |oid: &[u8], value: &str| {
            let mut atv = oid.to_vec();
            atv.extend(tlv(UTF8_STRING, value.as_bytes()));
            tlv(SET, &tlv(SEQUENCE, &atv))
        };
        let mut rdns = Vec::new();
        for o in organizations {
            rdns.extend(rdn(OID_ORGANIZATION, o));
        }
        rdns.extend(rdn(OID_COMMON_NAME, common_name));
        tlv(SEQUENCE, &rdns)
    }

    /// `cert` with its subject replaced, signed again by `key` (the issuer's, whose algorithm
    /// the certificate already names).
    pub fn with_subject(cert: &[u8], subject: &[u8], key: &KeyPair) -> Result<Vec<u8>> {
        let parts = elements(content(cert)?)?;
        let [tbs, algorithm, _signature] = parts[..] else {
            bail!("not a certificate");
        };
        let mut fields = elements(content(tbs)?)?;
        // version [0], serialNumber, signature, issuer, validity, subject, …
        let explicit_version = fields.first().is_some_and(|f| f[0] == 0xa0);
        let at = if explicit_version { 5 } else { 4 };
        if fields.len() <= at {
            bail!("certificate without a subject");
        }
        fields[at] = subject;
        let tbs = tlv(SEQUENCE, &fields.concat());
        let signature = key.sign(&tbs).context("signing the certificate")?;
        let mut bits = vec![0u8];
        bits.extend(signature);
        let mut body = tbs;
        body.extend_from_slice(algorithm);
        body.extend(tlv(0x03, &bits));
        Ok(tlv(SEQUENCE, &body))
    }
}

fn dn(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn read_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a file only its owner can read, synced to disk.
pub(crate) fn write_secret(path: &Path, contents: &str) -> Result<()> {
    write_atomically(path, contents, 0o600)
}

/// Writes a non-secret file (a certificate) atomically.
fn write_file(path: &Path, contents: &str) -> Result<()> {
    write_atomically(path, contents, 0o644)
}

/// [`write_secret`], unless the file already holds `contents`.
pub(crate) fn write_secret_if_changed(path: &Path, contents: &str) -> Result<()> {
    if read_opt(path)?.as_deref() == Some(contents) {
        return Ok(());
    }
    write_secret(path, contents)
}

/// Writes `contents` to a temporary file beside `path` and renames it over `path`, so that a
/// reader (kubectl, a component reloading its kubeconfig) sees the old or the new file, never
/// half of one.
fn write_atomically(path: &Path, contents: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn restrict_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULER: Credential = COMPONENTS[0];

    fn cluster() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        ClusterPki::load_or_create(dir.path(), &["localhost".into()]).unwrap();
        dir
    }

    #[test]
    fn a_client_credential_is_kept_until_due() {
        let dir = cluster();
        let year = Duration::days(365);
        let first = ensure_client_credential(dir.path(), SCHEDULER, year).unwrap();
        let again = ensure_client_credential(dir.path(), SCHEDULER, year).unwrap();
        assert_eq!(first, again, "a fresh certificate is reused");
        // With a validity of 30 s the 365-day certificate's renewal point (a third before its
        // end) is far off, so only one issued for 30 s is due within 30 s.
        let short = Duration::seconds(30);
        let soon = ensure_client_credential(dir.path(), SCHEDULER, short).unwrap();
        assert_eq!(
            soon, first,
            "not due: a third of 30 s before a year from now"
        );
        assert_eq!(
            client_credentials_renew_at(dir.path(), year),
            None,
            "the controller manager's is missing: due now"
        );
        let ca = std::fs::read_to_string(dir.path().join("tls/ca.crt")).unwrap();
        write_component_kubeconfigs(dir.path(), &ca, "https://127.0.0.1:6443", year).unwrap();
        let due_at = client_credentials_renew_at(dir.path(), year).unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!(
            due_at > now + Duration::days(300).whole_seconds(),
            "the next renewal is ~335 days away, got {}",
            due_at - now
        );
    }

    #[test]
    fn a_certificate_close_to_expiry_is_issued_again() {
        let dir = cluster();
        let (old, _) =
            ensure_client_credential(dir.path(), SCHEDULER, Duration::seconds(3)).unwrap();
        // Issued for 3 s it is due with 1 s left, so after 2 s it is renewed.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let (new, _) =
            ensure_client_credential(dir.path(), SCHEDULER, Duration::seconds(3)).unwrap();
        assert_ne!(old, new);
        assert!(not_after(&new).unwrap() > not_after(&old).unwrap());
    }

    #[test]
    fn a_certificate_for_someone_else_or_another_key_is_issued_again() {
        let dir = cluster();
        let year = Duration::days(365);
        let (cert, key) = ensure_client_credential(dir.path(), SCHEDULER, year).unwrap();
        let tls = dir.path().join("tls");
        // A key that does not belong to the certificate (a write cut short, say).
        let (_, other_key) = issue_client_certificate(dir.path(), "x", &[]).unwrap();
        write_secret(&tls.join("scheduler.key"), &other_key).unwrap();
        let (cert2, key2) = ensure_client_credential(dir.path(), SCHEDULER, year).unwrap();
        assert_ne!(cert2, cert);
        assert_ne!(key2, key);
        // A certificate naming another user.
        let (cert3, _) =
            ensure_client_credential(dir.path(), ("scheduler", "someone", &[]), year).unwrap();
        assert_ne!(cert3, cert2);
        let der = rustls_pemfile::certs(&mut cert3.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            crate::authn::x509::user_from_der(&der).unwrap().name,
            "someone"
        );
    }

    #[test]
    fn kubeconfigs_are_rewritten_only_when_they_change() {
        let dir = cluster();
        let ca = std::fs::read_to_string(dir.path().join("tls/ca.crt")).unwrap();
        let year = Duration::days(365);
        let written =
            write_component_kubeconfigs(dir.path(), &ca, "https://127.0.0.1:6443", year).unwrap();
        let path = &written[0].1;
        let modified = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        let before = modified(path);
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_component_kubeconfigs(dir.path(), &ca, "https://127.0.0.1:6443", year).unwrap();
        assert_eq!(modified(path), before, "unchanged file not rewritten");
        write_component_kubeconfigs(dir.path(), &ca, "https://127.0.0.1:7443", year).unwrap();
        assert!(
            std::fs::read_to_string(path)
                .unwrap()
                .contains("127.0.0.1:7443")
        );
    }
}
