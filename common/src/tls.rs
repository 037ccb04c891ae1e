//! TLS material named by config keys (`ca_file`, `client_cert_file`, `client_key_file`):
//! read and checked when the config is loaded, so a bad file is a config error naming
//! its key, and a reconnect never goes back to the disk.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use crate::config::KeyError;

/// Why a PEM file cannot be used.
#[derive(Debug, Error)]
pub enum PemError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not PEM certificates: {message}")]
    NotCertificates { path: String, message: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path}: no usable private key ({message})")]
    NoKey { path: String, message: String },
}

/// Every certificate of a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = std::fs::read(path).map_err(|source| PemError::Read {
        path: path.display().to_string(),
        source,
    })?;
    certificates(path, &pem)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let pem = std::fs::read(path).map_err(|source| PemError::Read {
        path: path.display().to_string(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| PemError::NoKey {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::NotCertificates {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// TLS material for an outgoing connection.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM CA bundle; `None` = the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate for mutual TLS.
    pub client: Option<ClientCertificate>,
}

/// A client certificate chain and its key, PEM. `Debug` does not show the key.
#[derive(Clone)]
pub struct ClientCertificate {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &format_args!("**REDACTED**"))
            .finish()
    }
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

/// The config keys of a table's TLS files, e.g. `collector.amqp.ca_file`.
#[derive(Debug, Clone)]
pub struct TlsKeys {
    pub ca_file: String,
    pub client_cert_file: String,
    pub client_key_file: String,
}

impl TlsKeys {
    /// `<table>.ca_file`, `<table>.client_cert_file`, `<table>.client_key_file`.
    pub fn of(table: &str) -> TlsKeys {
        TlsKeys {
            ca_file: format!("{table}.ca_file"),
            client_cert_file: format!("{table}.client_cert_file"),
            client_key_file: format!("{table}.client_key_file"),
        }
    }
}

/// Reads and checks a table's CA and client certificate files.
pub fn tls_files(
    keys: &TlsKeys,
    ca_file: &Option<std::path::PathBuf>,
    cert_file: &Option<std::path::PathBuf>,
    key_file: &Option<std::path::PathBuf>,
) -> Result<TlsFiles, KeyError> {
    let read = |key: &str, path: &Path| {
        std::fs::read(path)
            .map_err(|e| KeyError::new(key, format!("cannot read {}: {e}", path.display())))
    };
    let ca_pem = match ca_file {
        Some(path) => {
            let pem = read(&keys.ca_file, path)?;
            certificates(path, &pem).map_err(|e| KeyError::new(&keys.ca_file, e.to_string()))?;
            Some(pem)
        }
        None => None,
    };
    let client = match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let cert_pem = read(&keys.client_cert_file, cert)?;
            let key_pem = read(&keys.client_key_file, key)?;
            certificates(cert, &cert_pem)
                .map_err(|e| KeyError::new(&keys.client_cert_file, e.to_string()))?;
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                KeyError::new(
                    &keys.client_key_file,
                    format!("{}: no usable private key ({e})", key.display()),
                )
            })?;
            Some(ClientCertificate { cert_pem, key_pem })
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(KeyError::new(
                &keys.client_key_file,
                "must be set with the client certificate (client_cert_file)",
            ));
        }
        (None, Some(_)) => {
            return Err(KeyError::new(
                &keys.client_cert_file,
                "must be set with the client key (client_key_file)",
            ));
        }
    };
    Ok(TlsFiles { ca_pem, client })
}

/// The config keys of a server's TLS files, e.g. `collector.http.tls_cert_file`.
#[derive(Debug, Clone)]
pub struct ServerTlsKeys {
    pub cert_file: String,
    pub key_file: String,
    pub client_ca_file: String,
}

impl ServerTlsKeys {
    /// `<table>.tls_cert_file`, `<table>.tls_key_file`, `<table>.client_ca_file`.
    pub fn of(table: &str) -> ServerTlsKeys {
        ServerTlsKeys {
            cert_file: format!("{table}.tls_cert_file"),
            key_file: format!("{table}.tls_key_file"),
            client_ca_file: format!("{table}.client_ca_file"),
        }
    }
}

/// A TLS server's settings (no ALPN): its certificate chain and key, and, when
/// `client_ca` is given, client certificates required and checked against it. A bad
/// file is an error naming its key.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    keys: &ServerTlsKeys,
) -> Result<rustls::ServerConfig, KeyError> {
    use rustls::server::WebPkiClientVerifier;
    let chain =
        read_certificates(cert).map_err(|e| KeyError::new(&keys.cert_file, e.to_string()))?;
    let key = read_private_key(key).map_err(|e| KeyError::new(&keys.key_file, e.to_string()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let invalid = |message: String| KeyError::new(&keys.client_ca_file, message);
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(ca).map_err(|e| invalid(e.to_string()))? {
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("{}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder(std::sync::Arc::new(roots))
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| KeyError::new(&keys.key_file, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem\n").unwrap();
        let keys = TlsKeys::of("t");
        let err = tls_files(&keys, &Some(junk.clone()), &None, &None).unwrap_err();
        assert_eq!(err.key, "t.ca_file");
        assert!(err.message.contains("holds no PEM certificate"), "{err}");
        let err = tls_files(&keys, &None, &Some(junk.clone()), &None).unwrap_err();
        assert_eq!(err.key, "t.client_key_file");
        let missing = dir.path().join("missing.pem");
        let err = tls_files(&keys, &Some(missing), &None, &None).unwrap_err();
        assert!(err.message.starts_with("cannot read"), "{err}");
        assert!(
            tls_files(&keys, &None, &None, &None)
                .unwrap()
                .ca_pem
                .is_none()
        );
    }
}
