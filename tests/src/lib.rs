//! The service harness for Picket's end-to-end tests: builds the binaries once, starts
//! real `picket-collector` and `picket-agent` processes on loopback ports it picks,
//! talks to them over HTTP, and stops them by PID (SIGTERM, or SIGKILL to test
//! crashes). Each process logs to a file in its own directory; a failing test prints
//! the logs.
//!
//! Fixtures shared by every crate's tests live beside this file in `tests/fixtures/`.

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
    fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Service {
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

/// A collector on the embedded store, on a loopback port of its own.
pub struct Collector {
    pub service: Service,
    pub base_url: String,
    pub config: PathBuf,
}

impl Collector {
    /// Starts a collector with its state under `dir`, and waits until it answers.
    pub fn start(dir: &Path) -> Collector {
        fs::create_dir_all(dir).expect("collector dir");
        let port = free_port();
        let config = dir.join("collector.toml");
        fs::write(
            &config,
            format!(
                "[collector]\ndata_dir = {data:?}\n\n[collector.http]\nlisten = \"127.0.0.1:{port}\"\n\n[collector.stores.embedded]\ncommit_interval_ms = 200\n",
                data = dir.join("data").display().to_string(),
            ),
        )
        .expect("collector config");
        let mut command = Command::new(binary("picket-collector"));
        command.arg("--config").arg(&config).arg("serve");
        let mut service = Service::spawn("collector", command, dir.join("collector.log"));
        let base_url = format!("http://127.0.0.1:{port}");
        let client = http();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if client
                .get(format!("{base_url}/status"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(service.running(), "collector exited:\n{}", service.log());
            assert!(
                Instant::now() < deadline,
                "collector did not answer:\n{}",
                service.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Collector {
            service,
            base_url,
            config,
        }
    }

    /// The ingest URL agents send to.
    pub fn events_url(&self) -> String {
        format!("{}/events", self.base_url)
    }

    /// `GET /api/events?q=…&size=…`: (total, hits).
    pub fn search(&self, query: &str, size: usize) -> (u64, Vec<Value>) {
        let response = http()
            .get(format!("{}/api/events", self.base_url))
            .query(&[("q", query), ("size", &size.to_string())])
            .send()
            .expect("search request");
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

[agent.inputs.file]
paths = [{paths}]
start_at = "beginning"
poll_interval_ms = 50
{file_input}

[agent.inputs.journald]
mode = "off"

[agent.shippers.http]
url = {events_url:?}
"#
            ),
        )
        .expect("agent config");
        Agent::start_with_config(dir, config)
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
        let store = std::sync::Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = std::sync::Arc::clone(&store);
                std::thread::spawn(move || {
                    let Ok(mut writer) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut length = 0usize;
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
                            }
                        }
                        let mut body = vec![0u8; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let events: Vec<Value> = body
                            .split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .filter_map(|l| serde_json::from_slice(l).ok())
                            .collect();
                        let n = events.len();
                        store.lock().expect("sink lock").extend(events);
                        let answer = format!("{{\"received\":{n},\"stored\":{n},\"rejected\":[]}}");
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        if writer.write_all(response.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        CountingSink { url, received }
    }

    /// Every event received so far, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.received.lock().expect("sink lock").clone()
    }

    /// The `seq-N` numbers in the summaries received (the tests' line markers).
    pub fn markers(&self) -> std::collections::BTreeSet<usize> {
        self.events()
            .iter()
            .filter_map(|e| e["summary"].as_str())
            .filter_map(|s| s.rsplit("seq-").next())
            .filter_map(|n| n.parse().ok())
            .collect()
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
