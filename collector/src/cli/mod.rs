//! The commands that are not the service: `search` and `alerts list|test` ask a running
//! collector through [`client`] (its HTTP API, with a bearer token) or read the rules
//! folder. `main.rs` parses the command line and calls these.

pub mod client;
pub mod config;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use picket_common::tls::TlsFiles;

use self::client::{Remote, RemoteSearch};
use crate::config::ConfigFile;

/// Where `search` and `alerts test` reach the collector and as whom: the flags
/// (`--url`, `--token-file` or `$PICKET_TOKEN_FILE`), else `$PICKET_TOKEN`, else the
/// config's `[collector.cli]`, else the collector's own address and read token.
pub fn remote(
    config: &Path,
    url: Option<String>,
    token_file: Option<&Path>,
) -> anyhow::Result<Remote> {
    // A config that is there but wrong is an error (a typo in [collector.cli] must not
    // quietly send elsewhere); one that is not there leaves the defaults.
    let file = match config.exists() {
        true => Some(
            ConfigFile::load(config).with_context(|| format!("cannot use {}", config.display()))?,
        ),
        false => None,
    };
    let cli = file
        .as_ref()
        .map(|f| f.collector.cli.clone())
        .unwrap_or_default();
    let base_url = url
        .or(cli.url.clone())
        .unwrap_or_else(|| default_url(file.as_ref()));
    let token = read_token(
        file.as_ref(),
        token_file.or(cli.token_file.as_deref()),
        token_file.is_some(),
        is_local(&base_url),
    )?;
    let ca_pem = match &cli.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read collector.cli.ca_file {}", path.display()))?,
        ),
        None => None,
    };
    Ok(Remote {
        base_url,
        token,
        tls: TlsFiles {
            ca_pem,
            client: None,
        },
    })
}

/// Whether `url` names this machine (loopback or `localhost`): the collector's own read
/// token is sent nowhere else.
fn is_local(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// The collector's own address from its config, with a wildcard turned into loopback;
/// `https` when it serves TLS.
fn default_url(file: Option<&ConfigFile>) -> String {
    let http = file.map(|f| &f.collector.http);
    let listen = http.and_then(|h| h.listen.parse::<std::net::SocketAddr>().ok());
    let tls = http.is_some_and(|h| h.tls_cert_file.is_some());
    match listen {
        Some(address) if tls => {
            if address.ip().is_unspecified() || address.ip().is_loopback() {
                // The name its certificate is likely made out to.
                return format!("https://localhost:{}", address.port());
            }
            format!("https://{address}")
        }
        Some(mut address) => {
            if address.ip().is_unspecified() {
                address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{address}")
        }
        None => "http://127.0.0.1:8080".to_string(),
    }
}

/// The bearer token to send: `token_file`'s (the flag's or `[collector.cli]`'s), else
/// `$PICKET_TOKEN` (which a flag's file overrides, a config's does not), else, for a
/// collector on this machine (`local`), its own read token when this user may read it.
fn read_token(
    file: Option<&ConfigFile>,
    token_file: Option<&Path>,
    from_flag: bool,
    local: bool,
) -> anyhow::Result<Option<String>> {
    let first_line = |text: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
    };
    let from_file = |path: &Path| {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        first_line(&text)
            .map(Some)
            .with_context(|| format!("{} holds no token", path.display()))
    };
    if let Some(path) = token_file.filter(|_| from_flag) {
        return from_file(path);
    }
    if let Some(token) = std::env::var("PICKET_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Some(token.trim().to_string()));
    }
    if let Some(path) = token_file {
        return from_file(path);
    }
    if !local {
        return Ok(None);
    }
    let data_dir = file
        .map(|f| f.collector.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("/var/lib/picket-collector"));
    let local = data_dir.join(crate::http::auth::READ_TOKEN_FILE);
    match std::fs::read_to_string(&local) {
        Ok(text) => Ok(first_line(&text)),
        Err(e) => {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                eprintln!(
                    "note: cannot read {} ({e}); run as the collector's user or root, or pass --token-file with a reader token",
                    local.display()
                );
            }
            Ok(None)
        }
    }
}

/// Runs a search on a running collector and prints its events, one a line (`json`: as
/// the stored JSON).
pub async fn search(request: &RemoteSearch, json: bool) -> anyhow::Result<()> {
    let (total, hits) = client::search(request).await?;
    for hit in &hits {
        if json {
            println!("{hit}");
        } else {
            println!("{}", client::format_line(hit));
        }
    }
    eprintln!("{} of {} matching events shown", hits.len(), total);
    Ok(())
}

/// The rules folder: the flag, else the config's, else the package's default.
pub fn rules_dir(config: &Path, flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        ConfigFile::load(config)
            .ok()
            .and_then(|file| file.collector.alerts.rules_dir)
    })
    .unwrap_or_else(|| PathBuf::from("/etc/picket/rules"))
}

/// The runtime the commands (and `serve`) run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `alerts list`: every rule of the folder, one a line.
pub fn list_rules(dir: &Path) -> anyhow::Result<()> {
    use crate::alerts::rules;
    let rules = rules::load_dir(dir)?;
    for rule in &rules {
        println!(
            "{:<28} {:<11} {:<16} window {:<5} {:<9} {}",
            rule.name,
            rule.kind.name(),
            rule.schedule.describe(),
            rules::describe_duration(rule.window),
            rule.severity,
            rule.query
        );
    }
    eprintln!("{} rules in {}", rules.len(), dir.display());
    Ok(())
}

/// `alerts test`: one rule over the last `since` against a running collector's events;
/// prints what it would fire (nothing is stored, nobody notified).
pub fn test_rule(dir: &Path, name: &str, since: &str, remote: &Remote) -> anyhow::Result<()> {
    use crate::alerts::{engine, rules};
    let mut rule = rules::load_dir(dir)?
        .into_iter()
        .find(|r| r.name == name)
        .with_context(|| format!("no rule named {name:?} in {}", dir.display()))?;
    rule.window = rules::parse_duration(since)?;
    if let rules::RuleKind::Deadman { lookback, .. } = &mut rule.kind
        && *lookback <= rule.window
    {
        *lookback = rule.window * 2;
    }
    let source = client::RemoteSource {
        base_url: remote.base_url.clone(),
        client: remote.client()?,
    };
    let alerts = runtime()?
        .block_on(engine::evaluate(
            &rule,
            &source,
            &engine::RuleLedger::default(),
            chrono::Utc::now(),
        ))
        .map_err(anyhow::Error::msg)?;
    for alert in &alerts {
        println!("{}", crate::alerts::notify::one_line(alert));
    }
    eprintln!(
        "{} alerts from rule {} over the last {since} (nothing stored, nobody notified)",
        alerts.len(),
        rule.name
    );
    Ok(())
}
