//! The service harness for Picket's end-to-end tests: builds the binaries once, starts
//! real `picket-collector` and `picket-agent` processes on loopback ports it picks,
//! talks to them over HTTP, and stops them by PID (SIGTERM, or SIGKILL to test
//! crashes). Each process logs to a file in its own directory; a failing test prints
//! the logs.
//!
//! Fixtures shared by every crate's tests live beside this file in `tests/fixtures/`.
//! [`pki`] makes certificates for TLS tests; [`rabbitmq`] runs a private broker; [`sshd`]
//! a real OpenSSH server logging through a real rsyslogd.

pub mod accounts;
pub mod elastic;
pub mod ircd;
pub mod opensearch;
pub mod pki;
pub mod python;
pub mod rabbitmq;
pub mod sshd;
pub mod stores;
pub mod syslog_daemons;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The build's `target` directory (where tools a test fetches are kept between runs).
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|dir| dir.file_name().is_some_and(|n| n == "target"))
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `tests/fixtures/<relative>`.
pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative)
}

/// The path of a workspace binary, built (once per test process) by `cargo build`, so
/// tests never run a stale binary.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut command = Command::new(cargo);
        command
            .args([
                "build",
                "--quiet",
                "-p",
                "picket-agent",
                "-p",
                "picket-collector",
                "--bins",
            ])
            .current_dir(workspace_root());
        // Binaries of the profile the test (or example) was built with: the directory
        // above `deps` or `examples` names it.
        let exe = std::env::current_exe().expect("the test knows its own path");
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or("debug");
        match profile {
            "debug" => {}
            "release" => {
                command.arg("--release");
            }
            other => {
                command.args(["--profile", other]);
            }
        }
        // Variables cargo sets for this test's own crate would reach build scripts that
        // watch them (ring watches CARGO_MANIFEST_DIR) and force a rebuild every run.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let per_crate = key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || matches!(
                    key.as_ref(),
                    "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                );
            if per_crate {
                command.env_remove(key.as_ref());
            }
        }
        let status = command.status().expect("cargo can be run");
        assert!(status.success(), "building the binaries failed");
        // Test executables live in target/<profile>/deps; binaries one level up.
        let exe = std::env::current_exe().expect("the test knows its own path");
        exe.parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .expect("test executable is inside target/<profile>/deps")
    });
    dir.join(name)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A blocking HTTP client for tests.
pub fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// A child process that is killed if the test ends without stopping it.
pub struct Service {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    pub(crate) fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Service {
        let file = fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file handle");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .env("RUST_LOG", "info");
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Service {
            name,
            child: Some(child),
            log,
        }
    }

    /// The process's log so far.
    /// Waits until the log contains `needle`; false when `timeout` passed.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn signal(&mut self, signal: i32) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on a PID we spawned and have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends `signal` (SIGHUP: reload) and returns at once.
    pub fn notify(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on a PID we spawned and have not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, signal);
            }
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM)
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGKILL)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
            if std::thread::panicking() {
                eprintln!(
                    "----- {} log ({}) -----\n{}",
                    self.name,
                    self.log.display(),
                    self.log()
                );
            }
        }
    }
}

/// How a test collector is set up beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct CollectorOptions {
    /// HTTPS with the PKI's server certificate.
    pub tls: Option<pki::Pki>,
    /// With `tls`: client certificates from the PKI's CA required.
    pub client_certificates: bool,
    /// A bearer tokens file.
    pub tokens_file: Option<PathBuf>,
    /// More keys for `[collector.http]` (TOML lines).
    pub http_keys: String,
    /// More keys for `[collector.stores.embedded]` (TOML lines; `commit_interval_ms`
    /// replaces the harness's 200, `acknowledge` its `"indexed"`).
    pub store_keys: String,
    /// More TOML appended to the config (a `[collector.amqp]` table, say).
    pub extra: String,
    /// The port to listen on (default: one picked now).
    pub port: Option<u16>,
}

/// A collector on the embedded store, on a loopback port of its own.
pub struct Collector {
    pub service: Service,
    pub base_url: String,
    pub config: PathBuf,
    /// Trusts the test CA and presents the client certificate, when TLS is on.
    client: reqwest::blocking::Client,
    /// The collector's own read token (`<data_dir>/read.token`): searches need it.
    read_token: String,
}

impl Collector {
    /// Starts a collector with its state under `dir`, and waits until it answers.
    pub fn start(dir: &Path) -> Collector {
        Collector::start_with(dir, &CollectorOptions::default())
    }

    /// Starts a collector set up as `options` say.
    pub fn start_with(dir: &Path, options: &CollectorOptions) -> Collector {
        fs::create_dir_all(dir).expect("collector dir");
        // A port picked now can be taken by another test before the collector binds
        // it; then that test's process would answer our readiness check. The
        // collector logs "Collector listening" only once it holds its port: wait for
        // that line, and pick another port if the bind failed.
        for _ in 0..5 {
            let port = options.port.unwrap_or_else(free_port);
            if let Some(collector) = Collector::try_start(dir, options, port) {
                return collector;
            }
        }
        panic!("the collector could not bind a port in 5 tries");
    }

    fn try_start(dir: &Path, options: &CollectorOptions, port: u16) -> Option<Collector> {
        let config = dir.join("collector.toml");
        let mut http_keys = options.http_keys.clone();
        if !http_keys.ends_with('\n') {
            http_keys.push('\n');
        }
        let mut client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(pki) = &options.tls {
            http_keys.push_str(&format!(
                "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
                pki.server_cert.display().to_string(),
                pki.server_key.display().to_string()
            ));
            let ca = fs::read(&pki.ca).expect("CA file");
            client = client.tls_certs_only(
                reqwest::Certificate::from_pem_bundle(&ca).expect("CA certificate"),
            );
            if options.client_certificates {
                http_keys.push_str(&format!(
                    "client_ca_file = {:?}\n",
                    pki.ca.display().to_string()
                ));
                let mut identity = fs::read(&pki.client_cert).expect("client certificate");
                identity.extend(fs::read(&pki.client_key).expect("client key"));
                client = client
                    .identity(reqwest::Identity::from_pem(&identity).expect("client identity"));
            }
        }
        if let Some(file) = &options.tokens_file {
            http_keys.push_str(&format!("tokens_file = {:?}\n", file.display().to_string()));
        }
        let mut store_keys = options.store_keys.clone();
        if !store_keys.contains("commit_interval_ms") {
            store_keys.push_str("\ncommit_interval_ms = 200\n");
        }
        // Tests that search right after sending want read-after-write; the chaos
        // suite and the collector's SIGKILL tests run the default ("logged").
        if !store_keys.contains("acknowledge") {
            store_keys.push_str("acknowledge = \"indexed\"\n");
        }
        fs::write(
            &config,
            format!(
                "[collector]\ndata_dir = {data:?}\n\n[collector.http]\nlisten = \"127.0.0.1:{port}\"\n{http_keys}\n[collector.stores.embedded]\n{store_keys}\n{extra}\n",
                data = dir.join("data").display().to_string(),
                extra = options.extra,
            ),
        )
        .expect("collector config");
        let client = client.build().expect("an HTTP client");
        let mut command = Command::new(binary("picket-collector"));
        command.arg("--config").arg(&config).arg("serve");
        let mut service = Service::spawn("collector", command, dir.join("collector.log"));
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let host = if options.tls.is_some() {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let base_url = format!("{scheme}://{host}:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if service.log().contains("Collector listening")
                && client
                    .get(format!("{base_url}/status"))
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if !service.running()
                && options.port.is_none()
                && service.log().contains("Address already in use")
            {
                return None;
            }
            assert!(service.running(), "collector exited:\n{}", service.log());
            assert!(
                Instant::now() < deadline,
                "collector did not answer:\n{}",
                service.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let read_token = fs::read_to_string(dir.join("data").join("read.token"))
            .expect("the collector's read token")
            .trim()
            .to_string();
        Some(Collector {
            service,
            base_url,
            config,
            client,
            read_token,
        })
    }

    /// The collector's own read token, for searches and `/metrics`.
    pub fn read_token(&self) -> &str {
        &self.read_token
    }

    /// `POST /api/search` with `body`, as a reader: (status, JSON answer).
    pub fn search_json(&self, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/api/search", self.base_url))
            .bearer_auth(&self.read_token)
            .json(body)
            .send()
            .expect("search request");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// The ingest URL agents send to.
    pub fn events_url(&self) -> String {
        format!("{}/events", self.base_url)
    }

    /// `GET /api/events?q=…&size=…`: (total, hits).
    pub fn search(&self, query: &str, size: usize) -> (u64, Vec<Value>) {
        let mut request = self
            .client
            .get(format!("{}/api/events", self.base_url))
            .query(&[("q", query), ("size", &size.to_string())]);
        request = request.bearer_auth(&self.read_token);
        let response = request.send().expect("search request");
        assert!(
            response.status().is_success(),
            "search failed: {}",
            response.status()
        );
        let body: Value = response.json().expect("search answer is JSON");
        let total = body["total"].as_u64().expect("total");
        let hits = body["hits"].as_array().cloned().expect("hits");
        (total, hits)
    }

    /// Every event matching `query`, however many (the API returns at most 10,000 a
    /// search): pages back in time by `utctimestamp`, merging by `eventid`.
    pub fn all(&self, query: &str) -> Vec<Value> {
        let mut seen: std::collections::BTreeMap<String, Value> = Default::default();
        let mut to: Option<String> = None;
        let mut want = None;
        loop {
            let mut request = self
                .client
                .get(format!("{}/api/events", self.base_url))
                .query(&[("q", query), ("size", "10000")]);
            if let Some(to) = &to {
                request = request.query(&[("to", to)]);
            }
            request = request.bearer_auth(&self.read_token);
            let body: Value = request
                .send()
                .expect("search request")
                .json()
                .expect("search answer is JSON");
            let hits = body["hits"].as_array().cloned().unwrap_or_default();
            want.get_or_insert(body["total"].as_u64().unwrap_or(0) as usize);
            let before = seen.len();
            for hit in &hits {
                let id = hit["eventid"].as_str().unwrap_or_default().to_string();
                seen.insert(id, hit.clone());
            }
            // The oldest time on this page, inclusive: events sharing it are fetched again
            // and merged, none is skipped.
            to = hits
                .last()
                .and_then(|h| h["utctimestamp"].as_str())
                .map(str::to_string);
            if seen.len() == before || hits.len() < 10_000 || Some(seen.len()) >= want {
                return seen.into_values().collect();
            }
        }
    }

    /// Searches until `want` events match or `timeout` passes; returns the last answer.
    pub fn wait_for(&self, query: &str, want: u64, timeout: Duration) -> (u64, Vec<Value>) {
        let deadline = Instant::now() + timeout;
        loop {
            let (total, hits) = self.search(query, 10_000);
            if total >= want || Instant::now() >= deadline {
                return (total, hits);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// An agent following `paths` and shipping to a collector.
pub struct Agent {
    pub service: Service,
    pub config: PathBuf,
}

impl Agent {
    /// Writes the agent's config under `dir` and starts it.
    pub fn start(dir: &Path, paths: &[&Path], events_url: &str) -> Agent {
        Agent::start_with(dir, paths, events_url, "")
    }

    /// Like [`Agent::start`], with more `[agent.inputs.file]` keys (TOML lines).
    pub fn start_with(dir: &Path, paths: &[&Path], events_url: &str, file_input: &str) -> Agent {
        let shipper = format!("[agent.shippers.http]\nurl = {events_url:?}\n");
        let config = Agent::write_config(dir, paths, file_input, &shipper);
        Agent::start_with_config(dir, config)
    }

    /// Writes an agent config under `dir`: the test's host identity, `paths` read from
    /// their start, `file_input` lines under `[agent.inputs.file]` (or whole tables),
    /// then `shipper` (a `[agent.shippers.*]` table). Heartbeats are off
    /// (`heartbeat_secs = 0`, which a test may replace), so event counts stay exact.
    pub fn write_config(dir: &Path, paths: &[&Path], file_input: &str, shipper: &str) -> PathBuf {
        fs::create_dir_all(dir).expect("agent dir");
        let config = dir.join("agent.toml");
        let paths: Vec<String> = paths
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        let data = dir.join("state").display().to_string();
        let paths = paths.join(", ");
        fs::write(
            &config,
            format!(
                r#"[agent]
hostname = "agent.test.example"
host_id = "test-host"
data_dir = {data:?}
timezone = "UTC"
heartbeat_secs = 0

[agent.inputs.file]
paths = [{paths}]
start_at = "beginning"
poll_interval_ms = 50
{file_input}

[agent.inputs.journald]
mode = "off"

{shipper}
"#
            ),
        )
        .expect("agent config");
        config
    }

    /// Waits until the agent's log contains `needle`; false when `timeout` passed.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.service.wait_for_log(needle, timeout)
    }

    /// Starts an agent on an existing config (a restart).
    pub fn start_with_config(dir: &Path, config: PathBuf) -> Agent {
        let mut command = Command::new(binary("picket-agent"));
        command.arg("--config").arg(&config).arg("run");
        let log = dir.join(format!(
            "agent-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let service = Service::spawn("agent", command, log);
        Agent { service, config }
    }
}

/// An HTTP endpoint that accepts NDJSON batches as the collector does and counts every
/// event it receives, duplicates included: the raw deliveries an agent made.
pub struct CountingSink {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    /// A line marker whose batch is answered 503 (and not counted) while set.
    refuse: std::sync::Arc<std::sync::Mutex<Option<usize>>>,
}

impl CountingSink {
    /// Listens on a loopback port it picks.
    pub fn start() -> CountingSink {
        CountingSink::start_on(0)
    }

    /// Listens on `port` of 127.0.0.1 (0: one it picks).
    pub fn start_on(port: u16) -> CountingSink {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("a loopback port");
        let url = format!("http://{}/events", listener.local_addr().expect("bound"));
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let refuse = std::sync::Arc::new(std::sync::Mutex::new(None));
        let store = std::sync::Arc::clone(&received);
        let refusing = std::sync::Arc::clone(&refuse);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = std::sync::Arc::clone(&store);
                let refusing = std::sync::Arc::clone(&refusing);
                std::thread::spawn(move || {
                    let Ok(mut writer) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut length = 0usize;
                        let mut gzip = false;
                        let mut line = String::new();
                        // Request line and headers.
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                            let trimmed = line.trim_end();
                            if trimmed.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = trimmed.split_once(':') {
                                if name.eq_ignore_ascii_case("content-length") {
                                    length = value.trim().parse().unwrap_or(0);
                                }
                                if name.eq_ignore_ascii_case("content-encoding") {
                                    gzip = value.trim().eq_ignore_ascii_case("gzip");
                                }
                            }
                        }
                        let mut body = vec![0u8; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        if gzip {
                            let mut plain = Vec::new();
                            if flate2::read::MultiGzDecoder::new(&body[..])
                                .read_to_end(&mut plain)
                                .is_err()
                            {
                                return;
                            }
                            body = plain;
                        }
                        let events: Vec<Value> = body
                            .split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .filter_map(|l| serde_json::from_slice(l).ok())
                            .collect();
                        let n = events.len();
                        let held = *refusing.lock().expect("sink lock");
                        let (status, answer) =
                            if held.is_some_and(|m| events.iter().any(|e| marker(e) == Some(m))) {
                                (
                                    "503 Service Unavailable",
                                    "{\"error\":\"held by the test\"}".to_string(),
                                )
                            } else {
                                store.lock().expect("sink lock").extend(events);
                                (
                                    "200 OK",
                                    format!("{{\"received\":{n},\"stored\":{n},\"rejected\":[]}}"),
                                )
                            };
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        if writer.write_all(response.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        CountingSink {
            url,
            received,
            refuse,
        }
    }

    /// While `Some(m)`, every batch holding line marker `m` is answered 503 and not
    /// counted (the rest are taken as usual).
    pub fn refuse_batches_with(&self, marker: Option<usize>) {
        *self.refuse.lock().expect("sink lock") = marker;
    }

    /// Every event received so far but the agent's heartbeats, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.received
            .lock()
            .expect("sink lock")
            .iter()
            .filter(|e| !is_heartbeat(e))
            .cloned()
            .collect()
    }

    /// The agent's heartbeats received so far.
    pub fn heartbeats(&self) -> Vec<Value> {
        self.received
            .lock()
            .expect("sink lock")
            .iter()
            .filter(|e| is_heartbeat(e))
            .cloned()
            .collect()
    }

    /// The `seq-N` numbers in the summaries received (the tests' line markers).
    pub fn markers(&self) -> std::collections::BTreeSet<usize> {
        self.events().iter().filter_map(marker).collect()
    }

    /// (raw deliveries, distinct event ids).
    pub fn counts(&self) -> (usize, usize) {
        let events = self.events();
        let ids: std::collections::BTreeSet<String> = events
            .iter()
            .filter_map(|e| e["eventid"].as_str().map(str::to_string))
            .collect();
        (events.len(), ids.len())
    }

    /// Waits until `distinct` distinct events arrived (or `timeout`); returns the counts.
    pub fn wait_for(&self, distinct: usize, timeout: Duration) -> (usize, usize) {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.counts();
            if counts.1 >= distinct || Instant::now() >= deadline {
                return counts;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `seq-N` number at the end of an event's summary (the tests' line marker).
pub fn marker(event: &Value) -> Option<usize> {
    event["summary"]
        .as_str()?
        .rsplit("seq-")
        .next()?
        .parse()
        .ok()
}

/// Appends sshd lines `from..to` to `path`, each ending in its marker `seq-N`, line N
/// stamped `Nov 24` plus N seconds.
pub fn append_lines(path: &Path, from: usize, to: usize) {
    use std::io::Write as _;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the log file");
    let mut text = String::new();
    for n in from..to {
        // One second apart (within one day), so searches can page by time.
        let t = n % 86_400;
        text.push_str(&format!(
            "Nov 24 {:02}:{:02}:{:02} web1 sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2 seq-{n}\n",
            t / 3600,
            t / 60 % 60,
            t % 60
        ));
    }
    file.write_all(text.as_bytes()).expect("append lines");
}

/// The `seq-N` markers of events' summaries, each with how often it was seen.
pub fn marker_counts(events: &[Value]) -> std::collections::BTreeMap<usize, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for n in events.iter().filter_map(marker) {
        *counts.entry(n).or_insert(0) += 1;
    }
    counts
}

/// Panics naming the lost and doubled markers unless each of `0..n` was seen once.
pub fn assert_exactly_once(events: &[Value], n: usize, context: &str) {
    let counts = marker_counts(events);
    let lost: Vec<usize> = (0..n).filter(|i| !counts.contains_key(i)).collect();
    let doubled: Vec<(usize, usize)> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(m, c)| (*m, *c))
        .collect();
    let extra: Vec<usize> = counts.keys().copied().filter(|m| *m >= n).collect();
    assert!(
        lost.is_empty() && doubled.is_empty() && extra.is_empty() && events.len() == n,
        "{} events for {n} lines; lost {} (first {:?}), doubled {:?}, unexpected {:?}\n{context}",
        events.len(),
        lost.len(),
        &lost[..lost.len().min(10)],
        &doubled[..doubled.len().min(10)],
        extra
    );
}

/// A rules folder at `dir` holding the shipped rule `name` (from `rules/`), run every
/// `every` (`"2s"`) instead of its own schedule, so a test need not wait a minute.
pub fn shipped_rule_folder(dir: &Path, name: &str, every: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("rules folder");
    let shipped = fs::read_to_string(workspace_root().join("rules").join(format!("{name}.toml")))
        .expect("a shipped rule");
    let mut text = String::new();
    for line in shipped.lines() {
        if line.starts_with("every = ") || line.starts_with("schedule = ") {
            text.push_str(&format!("every = {every:?}\n"));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    fs::write(dir.join(format!("{name}.toml")), text).expect("rule file");
    dir.to_path_buf()
}

/// CPU seconds (user+system) a process has used, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// A process's resident memory in MiB, from /proc/PID/status.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Whether an event is an agent heartbeat.
pub fn is_heartbeat(event: &Value) -> bool {
    event["category"] == "heartbeat"
}
