//! The agent's side of issue 27, attacked as a local user would, against a real
//! `picket-agent` process shipping to a small HTTP sink on a loopback port: a FIFO
//! swapped in for a watched file, a link to a secret planted in a watched directory, a
//! data directory others can write to, corrupt checkpoints with `start_at = "end"`, and
//! a flipped byte in the disk buffer.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_picket-agent");

/// Answers every POST with 200 and keeps the NDJSON events it got.
struct Sink {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let events = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&events);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let Ok(mut writer) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut length = 0usize;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let line = line.trim_end();
                            if line.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = line.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0u8; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let got: Vec<Value> = body
                            .split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .map(|l| serde_json::from_slice(l).unwrap())
                            .collect();
                        store.lock().unwrap().extend(got);
                        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                        if writer.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Sink { url, events }
    }

    /// The summaries of the log events received (heartbeats left out), in order.
    fn summaries(&self) -> Vec<String> {
        self.log_events()
            .iter()
            .map(|e| e["summary"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn log_events(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["category"] != "heartbeat")
            .cloned()
            .collect()
    }

    fn heartbeats(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["category"] == "heartbeat")
            .cloned()
            .collect()
    }

    /// Waits until `done` holds for the summaries received; panics after 20 s.
    fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if done(&self.summaries()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("waited for {what}; got {:?}", self.summaries());
    }
}

/// A URL where nothing listens.
fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    drop(listener);
    url
}

struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(config: &Path) -> Agent {
        let log = config.with_extension(format!(
            "{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = Command::new(AGENT)
            .args(["--config", config.to_str().unwrap(), "run"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {needle:?} in the agent's log:\n{}", self.log());
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    /// SIGTERM, then the exit status and how long it took (fails past `limit`).
    fn stop(mut self, limit: Duration) -> (ExitStatus, Duration) {
        self.signal(libc::SIGTERM);
        let asked = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, asked.elapsed());
            }
            if asked.elapsed() > limit {
                let _ = self.child.kill();
                panic!("still running {limit:?} after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent config in `dir`: `paths`, state in `dir/state`, `extra` TOML lines under
/// `[agent]` (before the tables), shipping to `url`.
fn config(dir: &Path, paths: &[&Path], start_at: &str, extra: &str, url: &str) -> PathBuf {
    let paths: Vec<String> = paths
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let path = dir.join("agent.toml");
    fs::write(
        &path,
        format!(
            "[agent]\nhostname = \"hardening.test\"\nhost_id = \"hardening\"\ndata_dir = {:?}\ntimezone = \"UTC\"\nheartbeat_secs = 0\n{extra}\n\n[agent.inputs.file]\npaths = [{}]\nstart_at = \"{start_at}\"\npoll_interval_ms = 50\nscan_interval_ms = 200\n\n[agent.inputs.journald]\nmode = \"off\"\n\n[agent.shippers.http]\nurl = {url:?}\n",
            dir.join("state").display().to_string(),
            paths.join(", ")
        ),
    )
    .unwrap();
    path
}

fn append(path: &Path, text: &str) {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `name` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn a_fifo_swapped_in_for_a_watched_file_blinds_nothing_and_sigterm_still_stops_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    // b.log's directory is made after start (as a log directory can be): no inotify
    // watch on it wakes a rescan (which lets go of a path that names no file) before
    // the agent, woken by a.log, looks at what b.log has become.
    let late = dir.path().join("late");
    let (a, b) = (dir.path().join("a.log"), late.join("b.log"));
    append(&a, "a first\n");
    let sink = Sink::start();
    let agent = Agent::start(&config(dir.path(), &[&a, &b], "beginning", "", &sink.url));
    sink.wait_for("a.log", |s| s.len() == 1);
    fs::create_dir(&late).unwrap();
    append(&b, "b first\n");
    sink.wait_for("b.log", |s| s.len() == 2);
    // The attack: b.log swapped between a FIFO nobody writes to and a file, ending a
    // FIFO, while a.log is written to.
    let (decoy, fifo) = (late.join("swap.file"), late.join("swap.fifo"));
    let mut lines = 0;
    // At least six swaps; more (up to 60) until the agent has met the FIFO, which a
    // loaded machine may take longer to do.
    for i in 0..60 {
        if i >= 6 && agent.log().contains("Not reading this path") {
            break;
        }
        if i > 0 {
            fs::write(&decoy, "b decoy\n").unwrap();
            fs::rename(&decoy, &b).unwrap();
        }
        mkfifo(&fifo);
        fs::rename(&fifo, &b).unwrap();
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(20));
            append(&a, &format!("a during {lines}\n"));
            lines += 1;
        }
    }
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        append(&a, &format!("a after {i}\n"));
    }
    sink.wait_for("a.log's lines after the attack", |s| {
        s.iter().filter(|l| l.starts_with("a after")).count() == 10
    });
    assert!(
        agent.log().contains("Not reading this path"),
        "the FIFO was never met: the test proves nothing\n{}",
        agent.log()
    );
    let (status, took) = agent.stop(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    let from_a: Vec<String> = sink
        .summaries()
        .into_iter()
        .filter(|l| l.starts_with('a'))
        .collect();
    let mut want = vec!["a first".to_string()];
    want.extend((0..lines).map(|i| format!("a during {i}")));
    want.extend((0..10).map(|i| format!("a after {i}")));
    assert_eq!(from_a, want);
}

#[test]
fn a_link_to_a_secret_planted_in_a_watched_directory_is_not_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    // The secret: as /etc/shadow, a root-only file no configured path matches.
    let secret = dir.path().join("shadow");
    append(&secret, "root:$6$SECRET-HASH-1:19000:0:99999:7:::\n");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    append(&logs.join("app.log"), "app first\n");
    std::os::unix::fs::symlink(&secret, logs.join("x.log")).unwrap();
    let sink = Sink::start();
    let agent = Agent::start(&config(
        dir.path(),
        &[&logs.join("*.log")],
        "beginning",
        "",
        &sink.url,
    ));
    sink.wait_for("app.log", |s| s == ["app first"]);
    // Planted while it runs, too.
    std::os::unix::fs::symlink(&secret, logs.join("y.log")).unwrap();
    append(&secret, "alice:$6$SECRET-HASH-2:19000:0:99999:7:::\n");
    std::thread::sleep(Duration::from_millis(500));
    append(&logs.join("app.log"), "app second\n");
    sink.wait_for("app.log's next line", |s| s.len() == 2);
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) = agent.stop(Duration::from_secs(5));
    assert!(status.success());
    assert_eq!(sink.summaries(), ["app first", "app second"]);
    let all = serde_json::to_string(&*sink.events.lock().unwrap()).unwrap();
    assert!(!all.contains("SECRET-HASH"), "the secret was shipped");
}

#[test]
fn a_data_dir_others_can_write_to_is_refused_with_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, "line\n");
    let config = config(dir.path(), &[&log], "beginning", "", &closed_url());
    let state = dir.path().join("state");
    // The attack: another user plants a buffer segment in a 0777 state directory.
    fs::create_dir_all(state.join("buffer")).unwrap();
    fs::write(state.join("buffer/00000000000000000000.seg"), b"forged").unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).unwrap();
    for command in ["validate", "run"] {
        let output = Command::new(AGENT)
            .args(["--config", config.to_str().unwrap(), command])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{command}: {stderr}");
        assert!(
            stderr.contains("agent.data_dir") && stderr.contains("writable by group and others"),
            "{command}: {stderr}"
        );
    }
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(state.join("buffer"), fs::Permissions::from_mode(0o770)).unwrap();
    let output = Command::new(AGENT)
        .args(["--config", config.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78), "the buffer's directory too");
    fs::set_permissions(state.join("buffer"), fs::Permissions::from_mode(0o700)).unwrap();
    let output = Command::new(AGENT)
        .args(["--config", config.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    assert!(output.status.success());

    // An empty one of the agent's own (a fresh tmpfs is 1777) is closed and used.
    fs::remove_dir_all(&state).unwrap();
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o1777)).unwrap();
    let agent = Agent::start(&config);
    agent.wait_for_log("made it 0700");
    agent.wait_for_log("File input started");
    let mode = fs::metadata(&state).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    agent.kill();
}

#[test]
fn corrupt_checkpoints_with_start_at_end_skip_no_line_written_while_the_agent_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, "before the first start\n");
    let sink = Sink::start();
    let config = config(dir.path(), &[&log], "end", "", &sink.url);
    let agent = Agent::start(&config);
    agent.wait_for_log("Reading new lines from the end");
    append(&log, "one\n");
    sink.wait_for("one", |s| s == ["one"]);
    let (status, _) = agent.stop(Duration::from_secs(5));
    assert!(status.success());
    let first_id = sink.log_events()[0]["eventid"].clone();

    // Written while the agent is down; meanwhile the checkpoints are damaged.
    append(&log, "two\nthree\n");
    fs::write(
        dir.path().join("state/checkpoints.json"),
        b"{\"version\": 1, \"files\": {\"",
    )
    .unwrap();
    let agent = Agent::start(&config);
    sink.wait_for("the lines written while down", |s| {
        s.contains(&"two".to_string()) && s.contains(&"three".to_string())
    });
    agent.wait_for_log("Checkpoints were lost: reading the file from its start");
    let (status, _) = agent.stop(Duration::from_secs(5));
    assert!(status.success());
    // Read from the start: `one` again, with the id it had (the collector keeps one),
    // and the line from before the first start, never sent before.
    let events = sink.log_events();
    let ones: Vec<&Value> = events.iter().filter(|e| e["summary"] == "one").collect();
    assert_eq!(ones.len(), 2);
    assert!(ones.iter().all(|e| e["eventid"] == first_id));
    let mut got = sink.summaries();
    got.sort();
    got.dedup();
    assert_eq!(got, ["before the first start", "one", "three", "two"]);
}

#[test]
fn one_flipped_byte_in_the_disk_buffer_loses_one_event_not_the_ones_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let lines: Vec<String> = (0..300).map(|i| format!("buffered line {i:03}")).collect();
    append(&log, &(lines.join("\n") + "\n"));
    // Nothing listens: all 300 stay in the buffer.
    let agent = Agent::start(&config(dir.path(), &[&log], "beginning", "", &closed_url()));
    let segment = dir.path().join("state/buffer/00000000000000000000.seg");
    let deadline = Instant::now() + Duration::from_secs(20);
    let holds = |bytes: &[u8]| {
        bytes
            .windows(4)
            .filter(|w| *w == [b'P', b'K', 0xFE, 0xFF])
            .count()
    };
    while holds(&fs::read(&segment).unwrap_or_default()) < 300 {
        assert!(Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.wait_for_log("Delivery failed");
    agent.kill();
    let mut bytes = fs::read(&segment).unwrap();
    let at = memchr_find(&bytes, b"buffered line 150").unwrap();
    bytes[at + 3] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();

    let sink = Sink::start();
    let config = config(dir.path(), &[&log], "beginning", "", &sink.url);
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace("heartbeat_secs = 0", "heartbeat_secs = 3600"),
    )
    .unwrap();
    let agent = Agent::start(&config);
    sink.wait_for("the other 299", |s| s.len() >= 299);
    agent.wait_for_log("unreadable stretch");
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = agent.stop(Duration::from_secs(5));
    assert!(status.success());
    let want: Vec<String> = lines
        .iter()
        .filter(|l| !l.ends_with("150"))
        .cloned()
        .collect();
    assert_eq!(sink.summaries(), want);
    let beat = &sink.heartbeats()[0];
    assert_eq!(beat["details"]["bufferrecordslost"], 1, "{beat}");
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
