//! What both shippers' tables share: batch and timeout checks, secret files (the
//! environment variable wins over the config), CA and client certificate files read
//! and checked at load time.

use std::path::{Path, PathBuf};

use crate::config::key::KeyError;

pub(crate) fn default_batch_max_events() -> usize {
    1000
}
pub(crate) fn default_timeout_secs() -> u64 {
    30
}

/// TLS material for a shipper, read and checked at load time.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM CA bundle; `None` = the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and its key, read (and checked) at load time.
    pub client: Option<ClientCertificate>,
}

/// A client certificate chain and its key, PEM.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl ClientCertificate {
    /// The chain followed by the key: what reqwest's `Identity::from_pem` takes.
    pub fn identity_pem(&self) -> Vec<u8> {
        let mut pem = self.cert_pem.clone();
        pem.push(b'\n');
        pem.extend_from_slice(&self.key_pem);
        pem
    }
}

pub(crate) fn check_batch(key: &'static str, n: usize) -> Result<(), KeyError> {
    if !(1..=100_000).contains(&n) {
        return Err(KeyError::new(key, "must be between 1 and 100000"));
    }
    Ok(())
}

pub(crate) fn check_timeout(key: &'static str, secs: u64) -> Result<(), KeyError> {
    if secs == 0 {
        return Err(KeyError::new(key, "must be at least 1"));
    }
    Ok(())
}

/// A secret file's path: the environment variable wins over the config (so secrets can
/// live outside configuration management).
pub(crate) fn secret_path(env: &str, configured: &Option<PathBuf>) -> Option<PathBuf> {
    std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| configured.clone())
}

/// Reads a secret: the first line of the file that is neither blank nor a `#` comment,
/// trimmed.
pub(crate) fn read_secret(key: &'static str, path: &Path) -> Result<String, KeyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KeyError::new(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("")
        .to_string();
    if secret.is_empty() {
        return Err(KeyError::new(key, format!("{} is empty", path.display())));
    }
    Ok(secret)
}

/// Reads and checks CA and client certificate files.
pub(crate) fn tls_files(
    prefix: &'static [&'static str; 3],
    ca_file: &Option<PathBuf>,
    cert_file: &Option<PathBuf>,
    key_file: &Option<PathBuf>,
) -> Result<TlsFiles, KeyError> {
    let [ca_key, cert_key, key_key] = *prefix;
    let read = |key: &'static str, path: &Path| {
        std::fs::read(path)
            .map_err(|e| KeyError::new(key, format!("cannot read {}: {e}", path.display())))
    };
    let ca_pem = match ca_file {
        Some(path) => {
            let pem = read(ca_key, path)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| KeyError::new(ca_key, format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(KeyError::new(
                    ca_key,
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
            Some(pem)
        }
        None => None,
    };
    let client = match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let client = ClientCertificate {
                cert_pem: read(cert_key, cert)?,
                key_pem: read(key_key, key)?,
            };
            reqwest::Identity::from_pem(&client.identity_pem()).map_err(|e| {
                KeyError::new(
                    key_key,
                    format!(
                        "{} and {} are not a PEM certificate and key: {e}",
                        cert.display(),
                        key.display()
                    ),
                )
            })?;
            Some(client)
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(KeyError::new(
                key_key,
                "must be set with the client certificate",
            ));
        }
        (None, Some(_)) => return Err(KeyError::new(cert_key, "must be set with the client key")),
    };
    Ok(TlsFiles { ca_pem, client })
}
