//! Outgoing HTTP for both binaries (the agent's HTTP shipper; the collector's
//! Elasticsearch store, webhooks and `search` command): one way to build the reqwest
//! client from [`TlsFiles`], and the text of its failures.

use thiserror::Error;

use crate::tls::TlsFiles;

/// Why a client could not be built.
#[derive(Debug, Error)]
pub enum HttpClientError {
    /// HTTPS without a configured CA, and the host has no CA store.
    #[error(
        "cannot load this host's CA certificates ({0}); install them (Debian: ca-certificates) or set the table's ca_file"
    )]
    SystemRoots(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// An error and its causes, `: `-separated: reqwest's own text is often only "builder
/// error" or "error sending request", the cause says "certificate unknown" or
/// "connection refused".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Builds a reqwest client for `urls` with `tls`: the configured CA alone when there is
/// one, else the system's roots. Plain HTTP without a CA gets an empty root store, so a
/// host without CA certificates (a minimal image) can still talk to a loopback peer.
pub fn build_http_client<'a>(
    builder: reqwest::ClientBuilder,
    urls: impl IntoIterator<Item = &'a str>,
    tls: &TlsFiles,
) -> Result<reqwest::Client, HttpClientError> {
    let https = urls
        .into_iter()
        .any(|u| u.trim_start().to_ascii_lowercase().starts_with("https:"));
    let build = |e: reqwest::Error| HttpClientError::Build(error_chain(&e));
    let mut builder = builder;
    if let Some(pem) = &tls.ca_pem {
        let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(build)?;
        builder = builder.tls_certs_only(roots);
    } else if !https {
        builder = builder.tls_certs_only(Vec::new());
    }
    if let Some(client) = &tls.client {
        let identity = reqwest::Identity::from_pem(&client.identity_pem()).map_err(build)?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| {
        if https && tls.ca_pem.is_none() {
            HttpClientError::SystemRoots(error_chain(&e))
        } else {
            build(e)
        }
    })
}
