//! `picket-collector`: parse the command line, load the config, start logging, run.
//! Exit codes: 0 ok, 1 runtime failure, 78 bad configuration (`EX_CONFIG`).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use picket_collector::client::{self, RemoteSearch};
use picket_collector::config::ConfigFile;
use tracing_subscriber::EnvFilter;

const EX_CONFIG: u8 = 78;

// mimalloc: glibc malloc/free took ~15% of the collector's CPU while indexing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Picket collector: receives MozDef events over HTTP, stores them, answers searches.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML, `[collector]` table).
    #[arg(
        long,
        short,
        global = true,
        default_value = "/etc/picket/collector.toml",
        env = "PICKET_COLLECTOR_CONFIG"
    )]
    config: PathBuf,
    /// For `search` and `alerts test`: a file holding a bearer token with the reader
    /// role. Default: `$PICKET_TOKEN`, else the collector's own read token in
    /// `<data_dir>/read.token` (readable by the collector's user and root).
    #[arg(long, global = true, env = "PICKET_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// List the rules the collector would run, with their schedule and query.
    List {
        /// Rules folder; default: the config's `collector.alerts.rules_dir`, else
        /// /etc/picket/rules.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Show what a rule would fire on the events stored in a running collector,
    /// without storing or notifying anything.
    ///
    /// Example: picket-collector alerts test ssh-bruteforce --since 1h
    Test {
        /// The rule's name.
        rule: String,
        /// How far back to look (replaces the rule's window): `15m`, `1h`, `7d`.
        #[arg(long, default_value = "1h")]
        since: String,
        /// Rules folder (as for `list`).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Collector URL; default as for `search`.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Alert rules: list them, or test one against stored events.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Run the collector until SIGTERM or Ctrl-C.
    Serve,
    /// Check the configuration and exit: 0 when good, 78 naming the bad key when not.
    Validate,
    /// Search stored events through a running collector, newest first.
    ///
    /// Example: picket-collector search 'details.username:root AND category:authentication' --since 1h
    Search {
        /// Query string: `field:value`, `details.field:value`, AND / OR / NOT, quotes
        /// for phrases; terms are ANDed when no operator is given. Empty or `*` matches
        /// everything.
        #[arg(default_value = "*")]
        query: String,
        /// Only events newer than this long ago (`15m`, `1h`, `7d`).
        #[arg(long, conflicts_with = "from")]
        since: Option<String>,
        /// Only events at or after this time (ISO 8601, epoch, `now-1h`).
        #[arg(long)]
        from: Option<String>,
        /// Only events at or before this time.
        #[arg(long)]
        to: Option<String>,
        /// Most events to show.
        #[arg(long, default_value_t = 20)]
        size: usize,
        /// Collector URL; default: from the config's `collector.http.listen`, else
        /// http://127.0.0.1:8080.
        #[arg(long)]
        url: Option<String>,
        /// Print each event as one JSON line instead of a readable line.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Every TLS client in this process uses ring; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve => {
            // Stored events and alert ledgers: owner only, as the unit's UMask=0077,
            // also when the collector is started by hand.
            // SAFETY: umask(2) cannot fail; no thread is started yet.
            unsafe {
                libc::umask(0o077);
            }
            serve(&cli.config)
        }
        Command::Validate => match load(&cli.config) {
            Ok(_) => {
                println!("{}: configuration is valid", cli.config.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Alerts { command } => {
            match alerts_command(&cli.config, cli.token_file.as_deref(), command) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Search {
            query,
            since,
            from,
            to,
            size,
            url,
            json,
        } => {
            let base_url = url.unwrap_or_else(|| default_url(&cli.config));
            let token = match read_token(&cli.config, cli.token_file.as_deref()) {
                Ok(token) => token,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let request = RemoteSearch {
                base_url,
                token,
                query,
                from: since.or(from),
                to,
                size,
            };
            match runtime().and_then(|rt| rt.block_on(search(&request, json))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load(path: &std::path::Path) -> Result<picket_collector::config::Settings, ExitCode> {
    let built = ConfigFile::load(path).and_then(|file| file.collector.build_from(&file.sources));
    built.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EX_CONFIG)
    })
}

/// Each connection is a file descriptor, and so is every index file: the soft limit
/// (often 1,024) goes up to the hard one, with a warning when even that is short.
fn raise_open_file_limit(connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    let want = connections as u64 + 1024;
    if !raised || limit.rlim_cur < want {
        tracing::warn!(
            open_files = limit.rlim_cur,
            wanted = want,
            "The open-file limit is low for max_concurrent_requests; raise LimitNOFILE."
        );
    }
}

fn serve(path: &std::path::Path) -> ExitCode {
    let settings = match load(path) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    raise_open_file_limit(settings.http.max_concurrent_requests);
    let result = runtime().and_then(|rt| {
        rt.block_on(picket_collector::run(
            settings,
            picket_collector::shutdown_signal(),
        ))
        .context("collector failed")
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The collector's own address from its config, with a wildcard turned into loopback.
fn default_url(path: &std::path::Path) -> String {
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
fn read_token(
    config: &std::path::Path,
    token_file: Option<&std::path::Path>,
) -> anyhow::Result<Option<String>> {
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
    let local = data_dir.join(picket_collector::http::auth::READ_TOKEN_FILE);
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

async fn search(request: &RemoteSearch, json: bool) -> anyhow::Result<()> {
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
fn rules_dir(config: &std::path::Path, flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        ConfigFile::load(config)
            .ok()
            .and_then(|file| file.collector.alerts.rules_dir)
    })
    .unwrap_or_else(|| PathBuf::from("/etc/picket/rules"))
}

fn alerts_command(
    config: &std::path::Path,
    token_file: Option<&std::path::Path>,
    command: AlertsCommand,
) -> anyhow::Result<()> {
    use picket_collector::alerts::{engine, rules};
    match command {
        AlertsCommand::List { rules: flag } => {
            let dir = rules_dir(config, flag);
            let rules = rules::load_dir(&dir)?;
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
        AlertsCommand::Test {
            rule: name,
            since,
            rules: flag,
            url,
        } => {
            let dir = rules_dir(config, flag);
            let mut rule = rules::load_dir(&dir)?
                .into_iter()
                .find(|r| r.name == name)
                .with_context(|| format!("no rule named {name:?} in {}", dir.display()))?;
            rule.window = rules::parse_duration(&since).map_err(anyhow::Error::msg)?;
            if let rules::RuleKind::Deadman { lookback, .. } = &mut rule.kind
                && *lookback <= rule.window
            {
                *lookback = rule.window * 2;
            }
            let base_url = url.unwrap_or_else(|| default_url(config));
            let token = read_token(config, token_file)?;
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
                println!("{}", picket_collector::alerts::notify::one_line(alert));
            }
            eprintln!(
                "{} alerts from rule {} over the last {since} (nothing stored, nobody notified)",
                alerts.len(),
                rule.name
            );
            Ok(())
        }
    }
}
