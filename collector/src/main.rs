//! `picket-collector`: parse the command line, load the config, start logging, run.
//! Exit codes: 0 ok, 1 runtime failure, 78 bad configuration (`EX_CONFIG`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use picket_collector::cli as commands;
use picket_collector::cli::client::RemoteSearch;
use picket_collector::config::ConfigFile;

const EX_CONFIG: u8 = 78;

// mimalloc: glibc malloc/free took ~15% of the collector's CPU while indexing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3 keeps freed pages for a second before giving them back to the system
/// (`purge_delay`, 1000 ms). The collector frees a request's worth of memory every few
/// milliseconds on each of its threads. Ingest bench, 1,000 connections, 64 slots, peak
/// RSS: ~280 MiB at 1000 ms, ~229 at 100, ~200 at 10; but at 10 ms the pages given back
/// are soon faulted in again (+15-25% CPU on the bench and the HTTPS path), at 100 no
/// cost stood out of the runs' noise. `MIMALLOC_PURGE_DELAY` in the environment still
/// decides when set.
fn release_freed_memory_promptly() {
    // mimalloc 3's `mi_option_purge_delay` (the crate names no constant for it).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: reads and sets one of mimalloc's integer options (read at each purge).
    // Only the value mimalloc 3 starts with is changed: another build's option list
    // leaves this alone rather than setting some other option.
    unsafe {
        if libmimalloc_sys::mi_option_get(PURGE_DELAY) == 1000 {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 100);
        }
    }
}

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
    /// role. Default: `$PICKET_TOKEN`, else the config's `[collector.cli] token_file`,
    /// else the collector's own read token in `<data_dir>/read.token` (readable by the
    /// collector's user and root).
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
    /// Print a users_file line for a user: reads the password from standard input
    /// (its first line) and prints `<user>:<bcrypt hash>`.
    ///
    /// Example: printf '%s\n' "$PASSWORD" | picket-collector hash-password rsyslog >> /etc/picket/collector-users
    HashPassword {
        /// The user name (no ':' or spaces).
        user: String,
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
        /// Collector URL; default: the config's `[collector.cli] url`, else its
        /// `collector.http.listen` (https when `tls_cert_file` is set; trust a private
        /// CA with `[collector.cli] ca_file`), else http://127.0.0.1:8080.
        #[arg(long)]
        url: Option<String>,
        /// Print each event as one JSON line instead of a readable line.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    release_freed_memory_promptly();
    let cli = Cli::parse();
    // `serve` logs in the configured format, once the configuration is read.
    if !matches!(cli.command, Command::Serve) {
        picket_common::logging::init(picket_common::logging::LogFormat::Text);
    }
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
        Command::HashPassword { user } => match hash_password(&user) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
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
            let remote = match commands::remote(&cli.config, url, cli.token_file.as_deref()) {
                Ok(remote) => remote,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let request = RemoteSearch {
                remote,
                query,
                from: since.or(from),
                to,
                size,
            };
            match commands::runtime().and_then(|rt| rt.block_on(commands::search(&request, json))) {
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
    ConfigFile::settings(path)
        .map(|(settings, _)| settings)
        .map_err(|e| {
            // Every error of the configuration, one per line.
            let errors = e.errors();
            for error in &errors {
                eprintln!("error: {error}");
            }
            if errors.len() > 1 {
                eprintln!("{} errors in the configuration", errors.len());
            }
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
    picket_common::logging::init(settings.log_format);
    raise_open_file_limit(settings.http.max_concurrent_requests);
    let config = path.to_path_buf();
    let reload: picket_collector::Reload =
        Box::new(move || ConfigFile::settings(&config).map(|(settings, _)| settings));
    let result = commands::runtime().and_then(|rt| {
        rt.block_on(async {
            picket_collector::App::build(settings)?
                .reloading(reload)
                .run(picket_collector::shutdown_signal())
                .await
        })
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

/// `<user>:<bcrypt hash>` of the password on standard input's first line.
fn hash_password(user: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    if user.is_empty() || user.contains([':', ' ', '\t']) {
        anyhow::bail!("{user:?} is not a user name (no ':' or spaces)");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    let hash = picket_collector::http::users::hash_password(password)
        .context("cannot hash the password")?;
    Ok(format!("{user}:{hash}"))
}

fn alerts_command(
    config: &std::path::Path,
    token_file: Option<&std::path::Path>,
    command: AlertsCommand,
) -> anyhow::Result<()> {
    match command {
        AlertsCommand::List { rules } => commands::list_rules(&commands::rules_dir(config, rules)),
        AlertsCommand::Test {
            rule,
            since,
            rules,
            url,
        } => commands::test_rule(
            &commands::rules_dir(config, rules),
            &rule,
            &since,
            &commands::remote(config, url, token_file)?,
        ),
    }
}
