//! The commands that are not the service: `search` and `alerts list|test` ask a running
//! collector through [`client`] (its HTTP API, with a bearer token) or read the rules
//! folder. `main.rs` parses the command line and calls these.

pub mod client;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use self::client::RemoteSearch;
use crate::config::ConfigFile;

/// The collector's own address from its config, with a wildcard turned into loopback.
pub fn default_url(path: &Path) -> String {
    let listen = ConfigFile::load(path).ok().and_then(|file| {
        file.collector
            .http
            .listen
            .parse::<std::net::SocketAddr>()
            .ok()
    });
    match listen {
        Some(mut address) => {
            if address.ip().is_unspecified() {
                address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{address}")
        }
        None => "http://127.0.0.1:8080".to_string(),
    }
}

/// The bearer token `search` and `alerts test` send: the `--token-file`'s, else
/// `$PICKET_TOKEN`, else the collector's own read token when this user may read it.
pub fn read_token(config: &Path, token_file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let first_line = |text: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
    };
    if let Some(file) = token_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the token file {}", file.display()))?;
        return first_line(&text)
            .map(Some)
            .with_context(|| format!("{} holds no token", file.display()));
    }
    if let Some(token) = std::env::var("PICKET_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Some(token.trim().to_string()));
    }
    let data_dir = ConfigFile::load(config)
        .map(|file| file.collector.data_dir)
        .unwrap_or_else(|_| PathBuf::from("/var/lib/picket-collector"));
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
pub fn test_rule(
    dir: &Path,
    name: &str,
    since: &str,
    base_url: String,
    token: Option<String>,
) -> anyhow::Result<()> {
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
    let http = client::build_http_client(
        client::with_token(reqwest::Client::builder(), token.as_deref())?,
        [base_url.as_str()],
        &picket_common::tls::TlsFiles::default(),
    )?;
    let source = client::RemoteSource {
        base_url,
        client: http,
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
