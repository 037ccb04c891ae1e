//! Outgoing HTTP, shared by the Elasticsearch store, the webhook notifier and the
//! `search` command: the reqwest client builder and the error text of its failures.

/// An error and its causes, `: `-separated (reqwest's own text is often only "builder
/// error" or "error sending request").
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

/// Builds a reqwest client for `urls`. Plain HTTP is given an empty root store, so a
/// host without CA certificates (a minimal image) can still talk to a loopback
/// collector; HTTPS without a configured CA uses the system's store, and says how to
/// fix it when there is none (reqwest's own text is only "builder error").
pub fn build_http_client<'a>(
    builder: reqwest::ClientBuilder,
    urls: impl IntoIterator<Item = &'a str>,
    ca_configured: bool,
) -> Result<reqwest::Client, String> {
    let https = urls
        .into_iter()
        .any(|u| u.trim_start().to_ascii_lowercase().starts_with("https:"));
    let builder = if https || ca_configured {
        builder
    } else {
        builder.tls_certs_only(Vec::new())
    };
    builder.build().map_err(|e| {
        let text = error_chain(&e);
        if https && !ca_configured {
            format!(
                "cannot load this host's CA certificates ({text}); install them (Debian: ca-certificates) or configure a CA file"
            )
        } else {
            format!("cannot build the HTTP client: {text}")
        }
    })
}
