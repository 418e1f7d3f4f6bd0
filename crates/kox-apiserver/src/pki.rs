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

/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long leaf certificates are valid.
const LEAF_VALIDITY: Duration = Duration::days(365);

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
    /// is re-issued (by the same CA) when its names no longer cover `sans`.
    pub fn load_or_create(data_dir: &Path, sans: &[String]) -> Result<Self> {
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
            (Some(cert), Some(key)) if have_sans.as_deref() == Some(wanted_sans.as_str()) => {
                (cert, key)
            }
            _ => {
                let (cert, key) = new_leaf(&issuer, "kox-apiserver", &[], sans, true)?;
                write_secret(&paths.file("serving.key"), &key)?;
                std::fs::write(paths.file("serving.crt"), &cert)?;
                std::fs::write(paths.file("serving.sans"), &wanted_sans)?;
                (cert, key)
            }
        };

        let (admin_cert_pem, admin_key_pem) = match (
            read_opt(&paths.file("admin.crt"))?,
            read_opt(&paths.file("admin.key"))?,
        ) {
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                let (cert, key) =
                    new_leaf(&issuer, "kubernetes-admin", &["system:masters"], &[], false)?;
                write_secret(&paths.file("admin.key"), &key)?;
                std::fs::write(paths.file("admin.crt"), &cert)?;
                (cert, key)
            }
        };

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

/// Issues a client certificate (CN = `user`, O = `groups`) signed by the cluster CA under
/// `data_dir/tls`; returns the certificate and key PEM. At most one group: the certificate
/// library keeps one value per subject attribute.
pub fn issue_client_certificate(
    data_dir: &Path,
    user: &str,
    groups: &[&str],
) -> Result<(String, String)> {
    anyhow::ensure!(
        groups.len() <= 1,
        "a kox-issued certificate names at most one group"
    );
    let dir = data_dir.join("tls");
    let ca_cert = std::fs::read_to_string(dir.join("ca.crt")).context("reading tls/ca.crt")?;
    let ca_key = std::fs::read_to_string(dir.join("ca.key")).context("reading tls/ca.key")?;
    let key = KeyPair::from_pem(&ca_key).context("parsing tls/ca.key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, key).context("parsing tls/ca.crt")?;
    new_leaf(&issuer, user, groups, &[], false)
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
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name, organizations);
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
    params.not_after = now + LEAF_VALIDITY;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
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
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn restrict_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}
