//! `[collector.cli]`: how `picket-collector search` and `alerts test` reach a running
//! collector, for an operator who runs them away from it or against an HTTPS one. Every
//! key is optional; the command line and the environment win over it.

use std::path::PathBuf;

use serde::Deserialize;

/// `[collector.cli]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliConfig {
    /// The collector's API (`https://collector.example.org:8080`). Default: this
    /// config's `collector.http.listen` (loopback for a wildcard address), `https`
    /// when `tls_cert_file` is set.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding a bearer token with the reader role (first non-comment line).
    /// Default: the collector's own read token, `<data_dir>/read.token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificates to trust for an HTTPS collector (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}
