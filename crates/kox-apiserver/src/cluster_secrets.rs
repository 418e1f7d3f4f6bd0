//! The cluster's secrets (its CA and signing keys), shared by every API server of one cluster
//! through the datastore, encrypted with the cluster token — as k3s keeps its bootstrap data.
//!
//! The first server to start with a token uploads its secret files; every later server with
//! the same datastore and token downloads them into its own data directory before it loads its
//! certificates, so all servers present certificates of one CA and sign with the same keys. A
//! wrong token cannot decrypt the record and is refused with advice. The record is created with
//! a create-if-absent write, so two servers starting at once agree on one set of secrets.
//!
//! Encryption: a key derived from the token with PBKDF2-HMAC-SHA256 (random salt), then
//! AES-256-GCM with a random nonce; the record is JSON with base64 fields.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kox_store::{Condition, KeyRange, RangeRequest, Store, WriteOutcome};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Files under the data directory that every server of a cluster must hold the same copy of.
pub const SHARED_FILES: &[&str] = &["tls/ca.crt", "tls/ca.key", "tls/service-account.key"];

/// Where the encrypted record lives in the datastore (outside `/registry/`, so no API lists it).
pub const RECORD_KEY: &[u8] = b"/kox/bootstrap/cluster-secrets";

/// PBKDF2 rounds: slow enough to make guessing a token from a stolen record expensive.
const PBKDF2_ROUNDS: u32 = 100_000;
const SALT_LEN: usize = 16;

/// The record as stored.
#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    kdf: String,
    rounds: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

/// Whether this server took the cluster's secrets from the datastore or gave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The datastore had no record: this server's files are now the cluster's.
    Uploaded,
    /// The datastore's record was written into the data directory.
    Downloaded,
}

fn derive_key(token: &str, salt: &[u8], rounds: u32) -> Result<LessSafeKey> {
    let mut key = [0u8; 32];
    let rounds = NonZeroU32::new(rounds).context("the cluster secrets record has 0 rounds")?;
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        token.as_bytes(),
        &mut key,
    );
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| anyhow::anyhow!("bad key"))?;
    Ok(LessSafeKey::new(unbound))
}

/// Encrypts `files` (path → contents) with `token`.
fn seal(token: &str, files: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut salt)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    rng.fill(&mut nonce)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let key = derive_key(token, &salt, PBKDF2_ROUNDS)?;
    let mut data = serde_json::to_vec(files)?;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(RECORD_KEY),
        &mut data,
    )
    .map_err(|_| anyhow::anyhow!("encrypting the cluster secrets failed"))?;
    let record = Record {
        version: 1,
        kdf: "pbkdf2-hmac-sha256".into(),
        rounds: PBKDF2_ROUNDS,
        salt: B64.encode(salt),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(data),
    };
    Ok(serde_json::to_vec(&record)?)
}

/// Decrypts a record; a wrong token is an error that says what to do.
fn open(token: &str, stored: &[u8]) -> Result<BTreeMap<String, String>> {
    let record: Record =
        serde_json::from_slice(stored).context("the cluster secrets record is not readable")?;
    if record.version != 1 {
        bail!(
            "the cluster secrets record has version {}, which this kox does not know; upgrade kox",
            record.version
        );
    }
    let salt = B64.decode(&record.salt).context("record salt")?;
    let nonce: [u8; NONCE_LEN] = B64
        .decode(&record.nonce)
        .context("record nonce")?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the cluster secrets record has a bad nonce"))?;
    let mut data = B64
        .decode(&record.ciphertext)
        .context("record ciphertext")?;
    let key = derive_key(token, &salt, record.rounds)?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(RECORD_KEY),
            &mut data,
        )
        .map_err(|_| {
            anyhow::anyhow!(
                "the datastore holds the secrets of a cluster created with a different token: \
                 start this server with the same --token as the cluster's first server (its \
                 data directory has it in the file `token`)"
            )
        })?;
    serde_json::from_slice(plain).context("the decrypted cluster secrets are not readable")
}

async fn read_record(store: &dyn Store) -> Result<Option<Vec<u8>>> {
    let resp = store
        .range(RangeRequest::new(KeyRange::key(RECORD_KEY.to_vec())))
        .await
        .context("reading the cluster secrets from the datastore")?;
    Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
}

/// Writes the record's files into `data_dir`. Local copies that differ are replaced, together
/// with the certificates they signed (named in `derived`), which are then issued again.
fn write_files(data_dir: &Path, files: &BTreeMap<String, String>, derived: &[&str]) -> Result<()> {
    let mut changed = false;
    for (rel, contents) in files {
        let path = data_dir.join(rel);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(contents.as_str()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::pki::write_secret(&path, contents)?;
        changed = true;
    }
    if changed {
        for rel in derived {
            let _ = std::fs::remove_file(data_dir.join(rel));
        }
    }
    Ok(())
}

/// Before the server loads its certificates: if the datastore has the cluster's secrets, put
/// them into `data_dir` (removing the `derived` files issued from other secrets).
pub async fn download(
    store: &dyn Store,
    data_dir: &Path,
    token: &str,
    derived: &[&str],
) -> Result<bool> {
    let Some(stored) = read_record(store).await? else {
        return Ok(false);
    };
    let files = open(token, &stored)?;
    write_files(data_dir, &files, derived)?;
    Ok(true)
}

/// After the server created its secrets: offer them as the cluster's. If another server was
/// first, its secrets are written into `data_dir` instead ([`Outcome::Downloaded`]): the caller
/// then loads its certificates again.
pub async fn upload_or_adopt(
    store: &dyn Store,
    data_dir: &Path,
    token: &str,
    derived: &[&str],
) -> Result<Outcome> {
    let mut files = BTreeMap::new();
    for rel in SHARED_FILES {
        let path = data_dir.join(rel);
        let contents = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        files.insert(rel.to_string(), contents);
    }
    let sealed = seal(token, &files)?;
    let outcome = store
        .put(RECORD_KEY.to_vec(), sealed, Condition::Absent)
        .await
        .context("writing the cluster secrets to the datastore")?;
    match outcome {
        WriteOutcome::Committed { .. } => Ok(Outcome::Uploaded),
        WriteOutcome::Failed { current } => {
            let current = current.context("the cluster secrets record vanished")?;
            let theirs = open(token, &current.value)?;
            if theirs != files {
                write_files(data_dir, &theirs, derived)?;
            }
            Ok(Outcome::Downloaded)
        }
    }
}

/// A new random cluster token (32 hex characters), or the one kept in `data_dir/token`.
pub fn load_or_create_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    let mut raw = [0u8; 16];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    crate::pki::write_secret(&path, &token)?;
    Ok(token)
}

/// Keeps the token a server was started with in `data_dir/token`, so a restart without
/// `--token` still joins the same cluster.
pub fn remember_token(data_dir: &Path, token: &str) -> Result<()> {
    let path = data_dir.join("token");
    if std::fs::read_to_string(&path)
        .ok()
        .as_deref()
        .map(str::trim)
        == Some(token)
    {
        return Ok(());
    }
    crate::pki::write_secret(&path, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("tls/ca.crt".to_string(), "CERT".to_string()),
            ("tls/ca.key".to_string(), "KEY".to_string()),
        ])
    }

    #[test]
    fn a_sealed_record_opens_with_its_token_only() {
        let sealed = seal("s3cret", &files()).unwrap();
        assert_eq!(open("s3cret", &sealed).unwrap(), files());
        let err = open("other", &sealed).unwrap_err().to_string();
        assert!(err.contains("different token"), "{err}");
        // The secrets are not readable in the record.
        assert!(!String::from_utf8_lossy(&sealed).contains("CERT"));
    }

    #[test]
    fn two_seals_of_the_same_files_differ() {
        assert_ne!(
            seal("t", &files()).unwrap(),
            seal("t", &files()).unwrap(),
            "salt and nonce are random"
        );
    }
}
