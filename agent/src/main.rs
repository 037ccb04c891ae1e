//! `picket-agent`: parse the command line, load the config, start logging, run.
//! Exit codes: 0 ok, 1 runtime failure, 78 bad configuration (`EX_CONFIG`).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use picket_agent::config::{ConfigFile, Settings};
use picket_agent::datadir;
use picket_agent::host::{self, HostIdentity};
use picket_agent::parsers::unrecognized::Report;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};

const EX_CONFIG: u8 = 78;

// mimalloc: the parse benchmark spends ~18% in glibc malloc/free for the many small
// strings an event holds; mimalloc takes it from 486k to 540k lines/s per core.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Picket agent: follows auth and syslog files, turns each line into a MozDef event and
/// ships it to a Picket (or MozDef) collector.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML, `[agent]` table).
    #[arg(
        long,
        short,
        global = true,
        default_value = "/etc/picket/agent.toml",
        env = "PICKET_AGENT_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Follow the configured files and ship events until SIGTERM or Ctrl-C; SIGHUP
    /// reloads the configuration (a bad one is refused and logged, the agent runs on).
    Run,
    /// Check the configuration (the file and its `agent.d/*.toml` drop-ins) and exit: 0
    /// when good, 78 listing every error with its file and line when not.
    Validate {
        /// Also reach every configured collector URL (or the broker) with the
        /// configured TLS and token or login, sending no event, and say what failed:
        /// exit 69 (`EX_UNAVAILABLE`) when one cannot be reached.
        #[arg(long)]
        connect: bool,
    },
    /// Read the disk buffer without changing it (safe while the agent runs): what
    /// waits to be shipped, how old, and whether every record's CRC checks.
    Buffer {
        #[command(subcommand)]
        command: BufferCommand,
    },
    /// Show what lines become: each line of stdin (or of FILES) as one event, NDJSON on
    /// stdout, in order. Needs no config.
    Parse {
        /// Files to read instead of stdin.
        files: Vec<PathBuf>,
        /// Host name for lines that name none (default: this host's FQDN); also the
        /// host id in event ids, so output is the same on every machine.
        #[arg(long)]
        hostname: Option<String>,
        /// Zone of lines without one: IANA name, UTC, or local.
        #[arg(long, default_value = "local")]
        timezone: String,
        /// The clock to infer years against and to time header-less lines (RFC 3339).
        #[arg(long)]
        now: Option<String>,
        /// The events' `source` (default: the file's path, or `stdin`).
        #[arg(long)]
        source: Option<String>,
        /// Before each event, print `{"explain": …}`: the line number, the parser that
        /// took the line, or why it fell to `syslog`.
        #[arg(long, conflicts_with = "unrecognized")]
        explain: bool,
        /// Print no events: report the lines that fell to `syslog` by shape (program and
        /// message with addresses, fingerprints, hex ids and numbers masked), commonest
        /// first, with counts, so an operator sees what a host writes that Picket does
        /// not recognise yet.
        #[arg(long)]
        unrecognized: bool,
        /// The report's format: `text`, or `json` (one object per shape, then a summary).
        #[arg(long, value_enum, default_value = "text", requires = "unrecognized")]
        format: ReportFormat,
    },
}

#[derive(Debug, Subcommand)]
enum BufferCommand {
    /// What is pending: events and bytes, the oldest and newest event's time, counts
    /// by category and host, corrupt stretches.
    Inspect {
        /// The agent's data_dir (default: the config's `agent.data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every pending record's CRC: exit 0 when all check out, 65 (`EX_DATAERR`)
    /// naming each corrupt stretch when not.
    Verify {
        /// The agent's data_dir (default: the config's `agent.data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` logs in the configured format, once the configuration is read.
    if !matches!(cli.command, Command::Run) {
        picket_common::logging::init(picket_common::logging::LogFormat::Text);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Run => {
            // State (buffer, positions, dead letters) holds auth log lines: owner only,
            // as the unit's UMask=0077, also when the agent is started by hand.
            // SAFETY: umask(2) cannot fail; no thread is started yet.
            unsafe {
                libc::umask(0o077);
            }
            let settings = match load(&cli.config) {
                Ok(settings) => settings,
                Err(code) => return code,
            };
            picket_common::logging::init(settings.log_format);
            let result = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")
                .and_then(|rt| {
                    let reload = || {
                        ConfigFile::settings(&cli.config, datadir::Owners::Agent)
                            .map(|(settings, _)| settings)
                    };
                    rt.block_on(picket_agent::serve(settings, reload))
                        .context("agent failed")
                });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    // A port the agent may not bind is the configuration's (or the
                    // unit's) fault: systemd does not restart on EX_CONFIG. Other
                    // listen errors (address in use, not yet up) may pass.
                    let forbidden = e.chain().any(|cause| {
                        let denied =
                            |e: &std::io::Error| e.kind() == std::io::ErrorKind::PermissionDenied;
                        match cause.downcast_ref::<picket_agent::RunError>() {
                            Some(picket_agent::RunError::Listen(listen)) => denied(&listen.source),
                            Some(picket_agent::RunError::Api(api)) => denied(&api.source),
                            _ => false,
                        }
                    });
                    if forbidden {
                        ExitCode::from(EX_CONFIG)
                    } else {
                        ExitCode::FAILURE
                    }
                }
            }
        }
        Command::Validate { connect } => {
            // Root cannot tell which user the service runs as: data_dir's owner is
            // checked when the agent's user validates (the unit's ExecStartPre) and runs.
            let owners = if datadir::effective_uid() == 0 {
                datadir::Owners::Anyone
            } else {
                datadir::Owners::Agent
            };
            match ConfigFile::settings(&cli.config, owners) {
                Ok((settings, sources)) => {
                    let files: Vec<String> = sources
                        .files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect();
                    println!("configuration is valid: {}", files.join(", "));
                    if connect {
                        return check_connection(&settings);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(&e),
            }
        }
        Command::Buffer { command } => buffer_command(&cli.config, command),
        Command::Parse {
            files,
            hostname,
            timezone,
            now,
            source,
            explain,
            unrecognized,
            format,
        } => match parse(
            &files,
            hostname,
            &timezone,
            now,
            source,
            Output::of(explain, unrecognized.then_some(format)),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn load(path: &Path) -> Result<Settings, ExitCode> {
    ConfigFile::settings(path, datadir::Owners::Agent)
        .map(|(settings, _)| settings)
        .map_err(|e| config_error(&e))
}

/// `buffer inspect|verify`.
fn buffer_command(config: &Path, command: BufferCommand) -> ExitCode {
    const EX_DATAERR: u8 = 65;
    let (data_dir, json, verify) = match command {
        BufferCommand::Inspect { data_dir, json } => (data_dir, json, false),
        BufferCommand::Verify { data_dir } => (data_dir, false, true),
    };
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => match ConfigFile::load(config) {
            Ok(file) => file.agent.data_dir,
            Err(e) => {
                eprintln!(
                    "error: {e}
(or name the buffer's data_dir with --data-dir)"
                );
                return ExitCode::from(EX_CONFIG);
            }
        },
    };
    let dir = data_dir.join("buffer");
    let (inspection, pending) = match picket_agent::buffer::inspect::read(&dir) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let now = Utc::now();
    let written = if verify {
        match picket_agent::buffer::inspect::write_verdict(&mut out, &inspection) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::from(EX_DATAERR),
            Err(e) => Err(e),
        }
    } else if json {
        let value = picket_agent::buffer::inspect::to_json(&dir, &inspection, &pending, now);
        writeln!(out, "{value}")
    } else {
        picket_agent::buffer::inspect::write_text(&mut out, &dir, &inspection, &pending, now)
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `validate --connect`: reaches each destination and says how it went.
fn check_connection(settings: &Settings) -> ExitCode {
    const EX_UNAVAILABLE: u8 = 69;
    let checked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| {
            let shipper = picket_agent::shippers::Shipper::build(&settings.shipper)?;
            Ok(rt.block_on(shipper.check()))
        });
    let results = match checked {
        Ok(results) => results,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let mut failed = 0;
    for (destination, result) in results {
        match result {
            Ok(what) => println!("ok: {destination}: {what}"),
            Err(why) => {
                failed += 1;
                eprintln!("error: {destination}: {why}");
            }
        }
    }
    if failed > 0 {
        return ExitCode::from(EX_UNAVAILABLE);
    }
    ExitCode::SUCCESS
}

/// Prints every error of a configuration, one per line, and gives `EX_CONFIG`.
fn config_error(error: &picket_agent::config::ConfigError) -> ExitCode {
    let errors = error.errors();
    for error in &errors {
        eprintln!("error: {error}");
    }
    if errors.len() > 1 {
        eprintln!("{} errors in the configuration", errors.len());
    }
    ExitCode::from(EX_CONFIG)
}

/// What `parse` prints.
#[derive(Debug, Clone, Copy)]
enum Output {
    Events,
    /// Each event after its `{"explain": …}`.
    Explained,
    /// No events: the report of the lines that fell to `syslog`.
    Report(ReportFormat),
}

impl Output {
    fn of(explain: bool, report: Option<ReportFormat>) -> Output {
        match (report, explain) {
            (Some(format), _) => Output::Report(format),
            (None, true) => Output::Explained,
            (None, false) => Output::Events,
        }
    }
}

fn parse(
    files: &[PathBuf],
    hostname: Option<String>,
    timezone: &str,
    now: Option<String>,
    source: Option<String>,
    output: Output,
) -> anyhow::Result<()> {
    let zone = TimeZoneChoice::parse(timezone)?;
    let read_at: DateTime<Utc> = match now {
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .with_context(|| format!("--now {text:?} is not an RFC 3339 time"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let host = match hostname {
        Some(name) => HostIdentity::named(&name),
        None => host::identity(None, None),
    };
    let parser = LineParser::new(host, zone);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    if files.is_empty() {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        inputs.push((source.clone().unwrap_or_else(|| "stdin".into()), bytes));
    } else {
        for file in files {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let name = source
                .clone()
                .unwrap_or_else(|| file.to_string_lossy().into_owned());
            inputs.push((name, bytes));
        }
    }
    let mut line = Vec::with_capacity(4096);
    let mut report = Report::default();
    for (name, bytes) in inputs {
        let identity = format!("parse:{name}");
        let mut offset = 0u64;
        for (number, raw) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            let start = offset;
            offset += raw.len() as u64;
            let text = raw.strip_suffix(b"\n").unwrap_or(raw);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let event = parser.parse(
                text,
                &LineContext {
                    source: &name,
                    source_identity: &identity,
                    offset: start,
                    read_at,
                },
            );
            if let Output::Report(_) = output {
                report.add(&event);
                continue;
            }
            line.clear();
            if let Output::Explained = output {
                let why = serde_json::json!({"explain": {
                    "source": &name,
                    "line": number + 1,
                    "parser": event.tags.first(),
                    "why": picket_agent::parsers::explain(&event, read_at),
                }});
                line.extend_from_slice(why.to_string().as_bytes());
                line.push(b'\n');
            }
            event.write_json_line(&mut line);
            if let Err(e) = out.write_all(&line) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e).context("cannot write to stdout");
            }
        }
    }
    let written = match output {
        Output::Report(ReportFormat::Text) => report.write_text(&mut out),
        Output::Report(ReportFormat::Json) => report.write_json(&mut out),
        Output::Events | Output::Explained => Ok(()),
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}
