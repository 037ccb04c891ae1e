//! What an operator watches and runs (issue 26): the agent's `/metrics` scraped and read
//! by a real Prometheus text parser (the `prometheus_client` Python package's, from
//! Debian's python3-prometheus-client), `/health` turning 503 with its reason, and
//! both binaries' JSON logs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use picket_tests::{Agent, Collector, CountingSink, free_port, http};
use serde_json::Value;

/// The port of the agent's API listener, from its log line (`listen=127.0.0.1:PORT`,
/// in the text or the JSON format): the agent binds port 0, so no test races another
/// for a port.
fn api_port(agent: &Agent) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = agent.service.log();
        let port = log
            .lines()
            .filter(|line| line.contains("Agent API on"))
            .find_map(|line| {
                let (_, rest) = line.split_once("127.0.0.1:")?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            });
        if let Some(port) = port {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "no API listener in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Each sample of a Prometheus text exposition as Prometheus's Python client parses it:
/// `name{label="value",…}` (labels sorted) → value. The parser refuses what Prometheus
/// would (a bad line, a sample of an undeclared type, a duplicate `# TYPE`).
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    if family.type not in ("counter", "gauge"):
        sys.exit("family %s has type %s" % (family.name, family.type))
    if not family.documentation:
        sys.exit("family %s has no HELP" % family.name)
    for sample in family.samples:
        out.append([sample.name, sample.labels, sample.value])
print(json.dumps(out))
"#;
    // Debian's python3 and its python3-prometheus-client, whatever python3 is on PATH.
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 runs (.ci/run installs python3-prometheus-client)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the exposition");
    let output = child.wait_with_output().expect("the parser ends");
    assert!(
        output.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&output.stdout).expect("the parser's JSON");
    samples
        .into_iter()
        .map(|(name, labels, value)| {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            let key = if labels.is_empty() {
                name
            } else {
                format!("{name}{{{}}}", labels.join(","))
            };
            (key, value)
        })
        .collect()
}

fn scrape(port: u16) -> BTreeMap<String, f64> {
    let response = http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    parse_exposition(&response.text().expect("the body"))
}

fn health(port: u16) -> (u16, Value) {
    let response = http()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .expect("GET /health");
    let status = response.status().as_u16();
    (status, response.json().expect("JSON"))
}

/// Polls until `check` holds for a scrape; returns it.
fn scrape_until(
    port: u16,
    what: &str,
    check: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = scrape(port);
        if check(&samples) {
            return samples;
        }
        assert!(Instant::now() < deadline, "{what}: {samples:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Five lines of an auth log written an hour ago (the agent reads them in UTC): two
/// that sshd's parser reads, one it does not, one of sudo's, one of a program with no
/// parser.
fn lines() -> String {
    let stamp = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%b %e %H:%M:%S");
    [
        "sshd[101]: Failed password for root from 192.0.2.1 port 22 ssh2",
        "sshd[101]: Accepted publickey for alice from 192.0.2.2 port 22 ssh2: ED25519 SHA256:abc",
        "sshd[102]: This is nothing sshd ever wrote",
        "sudo[103]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/true",
        "cron[104]: (root) CMD (true)",
    ]
    .iter()
    .map(|line| format!("{stamp} web1 {line}\n"))
    .collect()
}

/// An agent config under `dir` reading [`lines`] and shipping to a port nothing
/// listens on; `more`: tables to add.
fn shipping_nowhere(dir: &Path, more: &str) -> std::path::PathBuf {
    let log = dir.join("auth.log");
    std::fs::write(&log, lines()).unwrap();
    let dead = format!("http://127.0.0.1:{}/events", free_port());
    Agent::write_config(
        dir,
        &[&log],
        "",
        &format!("[agent.shippers.http]\nurl = {dead:?}\n\n{more}"),
    )
}

#[test]
fn metrics_are_read_by_a_prometheus_parser_and_health_says_ok() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CountingSink::start();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, lines()).unwrap();
    let config = Agent::write_config(
        dir.path(),
        &[&log],
        "",
        &format!(
            "[agent.shippers.http]\nurl = {:?}\n\n[agent.api]\nlisten = \"127.0.0.1:0\"\n",
            sink.url
        ),
    );
    let agent = Agent::start_with_config(dir.path(), config);
    let port = api_port(&agent);
    let samples = scrape_until(port, "five events shipped", |s| {
        s.get("picket_agent_events_shipped_total") == Some(&5.0)
    });
    let get = |key: &str| {
        *samples
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {samples:#?}"))
    };
    assert_eq!(get("picket_agent_lines_read_total"), 5.0);
    let parsed = |parser: &str| {
        get(&format!(
            "picket_agent_events_parsed_total{{input=\"file\",parser=\"{parser}\"}}"
        ))
    };
    assert_eq!(parsed("sshd"), 2.0);
    assert_eq!(parsed("sudo"), 1.0);
    assert_eq!(parsed("syslog"), 2.0, "cron's line and sshd's unknown one");
    assert_eq!(
        get("picket_agent_parse_failures_total{input=\"file\",parser=\"sshd\"}"),
        1.0
    );
    assert_eq!(
        get("picket_agent_parse_failures_total{input=\"file\",parser=\"sudo\"}"),
        0.0
    );
    assert_eq!(get("picket_agent_ship_retries_total"), 0.0);
    assert_eq!(
        get("picket_agent_events_dropped_total{reason=\"buffer_full\"}"),
        0.0
    );
    assert_eq!(
        get("picket_agent_buffer_max_bytes"),
        256.0 * 1024.0 * 1024.0
    );
    assert_eq!(get("picket_agent_healthy"), 1.0);
    assert_eq!(
        get(&format!(
            "picket_agent_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    // Acknowledged: nothing left in the buffer (the gauge follows the acknowledgement).
    scrape_until(port, "the buffer empties", |s| {
        s.get("picket_agent_buffer_bytes") == Some(&0.0)
    });
    let (status, body) = health(port);
    assert_eq!(
        (status, &body["status"]),
        (200, &Value::from("ok")),
        "{body}"
    );
    assert_eq!(body["reasons"], serde_json::json!([]));
    let missing = http()
        .get(format!("http://127.0.0.1:{port}/nothing"))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn health_turns_503_when_delivery_keeps_failing_and_logs_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipping_nowhere(
        dir.path(),
        "[agent.api]\nlisten = \"127.0.0.1:0\"\nunhealthy_after_secs = \"2s\"\n",
    );
    // `log_format` sits in `[agent]`, which the harness writes: a drop-in adds it.
    let dropins = dir.path().join("agent.d");
    std::fs::create_dir_all(&dropins).unwrap();
    std::fs::write(
        dropins.join("10-log.toml"),
        "[agent]\nlog_format = \"json\"\n",
    )
    .unwrap();
    let mut agent = Agent::start_with_config(dir.path(), config.clone());
    let port = api_port(&agent);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Healthy (or, for a moment at start, "no pipeline running") until delivery has
    // failed for unhealthy_after_secs.
    let body = loop {
        let (status, body) = health(port);
        let failing = body["reasons"].as_array().is_some_and(|r| {
            r.iter().any(|r| {
                r.as_str()
                    .is_some_and(|r| r.starts_with("delivery failing for "))
            })
        });
        if failing {
            assert_eq!(status, 503, "{body}");
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery trouble reported: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["reasons"].as_array().unwrap().len(), 1, "{body}");
    assert!(body["buffer_bytes"].as_u64().unwrap() > 0, "{body}");
    let samples = scrape(port);
    assert_eq!(samples["picket_agent_healthy"], 0.0);
    assert!(samples["picket_agent_ship_retries_total"] >= 1.0);
    assert!(samples["picket_agent_delivery_failing_seconds"] >= 2.0);
    assert!(
        samples["picket_agent_buffer_oldest_age_seconds"] >= 3600.0,
        "{samples:#?}"
    );

    // A reload that only raises unhealthy_after keeps the listener (same port) and
    // applies at once: the failures are young again by that measure.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"2s\"", "\"1h\"")).unwrap();
    agent.service.notify(libc::SIGHUP);
    assert!(
        agent.wait_for_log("Configuration reloaded", Duration::from_secs(30)),
        "{}",
        agent.service.log()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = health(port);
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still unhealthy after the reload: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.service.stop();

    // Every line of the log is one JSON object with a level and a message.
    let text = agent.service.log();
    let mut messages = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{text}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
        messages.push(
            value["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert!(
        messages.iter().any(|m| m == "Agent started."),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m == "Delivery failed; retrying."),
        "{messages:?}"
    );
}

#[test]
fn the_collector_logs_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let dropins = dir.path().join("collector.d");
    std::fs::create_dir_all(&dropins).unwrap();
    std::fs::write(
        dropins.join("10-log.toml"),
        "[collector]\nlog_format = \"json\"\n",
    )
    .unwrap();
    let mut collector = Collector::start(dir.path());
    collector.service.stop();
    let text = collector.service.log();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Collector listening"))),
        "{text}"
    );
}

/// The line (1-based) of `text` that holds `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {text}"))
        + 1
}

#[test]
fn validate_reports_five_mistakes_at_once_with_files_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let main = dir.path().join("agent.toml");
    let main_text = format!(
        "[agent]\ndata_dir = {state:?}\ntimezone = \"Mars/Olympus\"\n\n\
         [agent.buffer]\nmax_bytes = \"256 megs\"\nsync_intervl_ms = 100\n\n\
         [agent.shippers.http]\nurl = \"${{PICKET_TEST_UNSET_COLLECTOR}}\"\n"
    );
    std::fs::write(&main, &main_text).unwrap();
    let dropins = dir.path().join("agent.d");
    std::fs::create_dir(&dropins).unwrap();
    let dropin = dropins.join("50-relay.toml");
    let dropin_text = "# The relay.\n[agent.inputs.syslog]\nlisten = [\"pigeon://0.0.0.0:514\"]\n";
    std::fs::write(&dropin, dropin_text).unwrap();
    let output = Command::new(picket_tests::binary("picket-agent"))
        .args(["--config", main.to_str().unwrap(), "validate"])
        .env_remove("PICKET_TEST_UNSET_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    let main_name = main.display().to_string();
    let expect = [
        format!(
            "error: {main_name}:{}:1: key agent.timezone: \"Mars/Olympus\" is not a time zone",
            line_of(&main_text, "Mars")
        ),
        format!(
            "error: {main_name}:{}:1: key agent.buffer.max_bytes: \"256 megs\" is not a size",
            line_of(&main_text, "megs")
        ),
        format!(
            "error: {main_name}:{}:1: key agent.buffer.sync_intervl_ms: unknown key; did you mean `sync_interval_ms`?",
            line_of(&main_text, "intervl")
        ),
        format!(
            "error: {main_name}:{}:8: environment variable PICKET_TEST_UNSET_COLLECTOR is not set",
            line_of(&main_text, "PICKET_TEST_UNSET")
        ),
        format!(
            "error: {}:{}:1: key agent.inputs.syslog.listen:",
            dropin.display(),
            line_of(dropin_text, "pigeon")
        ),
    ];
    assert_eq!(errors.len(), 5, "{stderr}");
    for want in &expect {
        assert!(
            errors.iter().any(|e| e.starts_with(want.as_str())),
            "no line starting {want:?} in\n{stderr}"
        );
    }
    assert!(stderr.contains("5 errors in the configuration"), "{stderr}");

    // Fixed, with the collector's address from the environment and sizes in units.
    std::fs::write(
        &main,
        format!(
            "[agent]\ndata_dir = {state:?}\ntimezone = \"UTC\"\n\n\
             [agent.buffer]\nmax_bytes = \"256MiB\"\nsync_interval_ms = \"250ms\"\n\n\
             [agent.shippers.http]\nurl = \"${{PICKET_TEST_COLLECTOR}}/events\"\ntimeout_secs = \"1m\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &dropin,
        "[agent.inputs.syslog]\nlisten = [\"udp://127.0.0.1:0\"]\n",
    )
    .unwrap();
    let output = Command::new(picket_tests::binary("picket-agent"))
        .args(["--config", main.to_str().unwrap(), "validate"])
        .env(
            "PICKET_TEST_COLLECTOR",
            "https://collector.example.org:8443",
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_collector_reports_every_mistake_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    let text = "[collector]\ndata_dir = \"/tmp/x\"\nlog_fromat = \"json\"\n\n\
                [collector.http]\nlisten = \"nowhere\"\nmax_body_bytes = \"10 MiB\"\nrequest_timeout_secs = \"soon\"\n";
    std::fs::write(&config, text).unwrap();
    let output = Command::new(picket_tests::binary("picket-collector"))
        .args(["--config", config.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let name = config.display().to_string();
    for want in [
        format!(
            "{name}:{}:1: key collector.log_fromat: unknown key; did you mean `log_format`?",
            line_of(text, "fromat")
        ),
        format!(
            "{name}:{}:1: key collector.http.request_timeout_secs: \"soon\" is not a duration",
            line_of(text, "soon")
        ),
        format!(
            "{name}:{}:1: key collector.http.listen:",
            line_of(text, "nowhere")
        ),
    ] {
        assert!(stderr.contains(&want), "no {want:?} in\n{stderr}");
    }
    assert!(stderr.contains("3 errors in the configuration"), "{stderr}");
}

/// `picket-agent validate --connect` on `config`: exit code, stdout, stderr.
fn validate_connect(config: &std::path::Path) -> (Option<i32>, String, String) {
    let output = Command::new(picket_tests::binary("picket-agent"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "validate",
            "--connect",
        ])
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn validate_connect_tells_a_stopped_a_wrong_token_and_a_good_collector() {
    use picket_tests::CollectorOptions;
    use picket_tests::pki::Pki;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "fleet-token-0123456789abcdef\n").unwrap();
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "not-the-fleet-token-at-all\n").unwrap();
    let mut collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            tls: Some(pki.clone()),
            tokens_file: Some(tokens.clone()),
            ..Default::default()
        },
    );
    let agent_dir = dir.path().join("agent");
    let shipper = |url: &str, ca: &Path, token: &Path| {
        format!(
            "[agent.shippers.http]\nurl = {url:?}\nca_file = {:?}\ntoken_file = {:?}\n",
            ca.display().to_string(),
            token.display().to_string()
        )
    };
    let log = dir.path().join("auth.log");
    let url = collector.events_url();

    let config = Agent::write_config(&agent_dir, &[&log], "", &shipper(&url, &pki.ca, &tokens));
    let (code, stdout, stderr) = validate_connect(&config);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "ok: {url}: reachable, TLS verified, token accepted"
        )),
        "{stdout}"
    );
    let (total, _) = collector.search("*", 1);
    assert_eq!(total, 0, "the check stores nothing");

    let config = Agent::write_config(&agent_dir, &[&log], "", &shipper(&url, &pki.ca, &wrong));
    let (code, stdout, stderr) = validate_connect(&config);
    assert_eq!(code, Some(69), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("error: {url}: the collector refused the credentials (403 Forbidden: the bearer token is not accepted")),
        "{stderr}"
    );
    assert!(stderr.contains("token_file"), "{stderr}");

    let config = Agent::write_config(
        &agent_dir,
        &[&log],
        "",
        &shipper(&url, &pki.rogue_ca, &tokens),
    );
    let (code, _, stderr) = validate_connect(&config);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("cannot reach the collector"), "{stderr}");
    assert!(stderr.contains("ca_file"), "{stderr}");

    collector.service.stop();
    let config = Agent::write_config(&agent_dir, &[&log], "", &shipper(&url, &pki.ca, &tokens));
    let (code, _, stderr) = validate_connect(&config);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(
        stderr.contains("Connection refused") && stderr.contains("is the collector running"),
        "{stderr}"
    );

    // A broker that is not there.
    let broker = format!("amqp://127.0.0.1:{}/%2f", free_port());
    let config = Agent::write_config(
        &agent_dir,
        &[&log],
        "",
        &format!("[agent.shippers.amqp]\nurl = {broker:?}\ntimeout_secs = 5\n"),
    );
    let (code, _, stderr) = validate_connect(&config);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("error: amqp://127.0.0.1:"), "{stderr}");
}

/// A client that trusts only `ca`, with no pooled connection.
fn client_trusting(ca: &Path) -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(ca).unwrap();
    reqwest::blocking::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// POSTs one event with `token`: the status, or the error when no TLS session came.
fn send_event(
    client: &reqwest::blocking::Client,
    collector: &Collector,
    token: &str,
) -> Result<u16, String> {
    let event = serde_json::json!({
        "utctimestamp": chrono::Utc::now().to_rfc3339(),
        "hostname": "reload.example.org",
        "processname": "test",
        "summary": "a reload test event",
        "category": "test",
        "severity": "INFO",
        "tags": [],
        "details": {}
    });
    client
        .post(collector.events_url())
        .bearer_auth(token)
        .body(event.to_string())
        .send()
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn the_collector_reloads_certificates_and_tokens_on_sighup() {
    use picket_tests::CollectorOptions;
    use picket_tests::pki::Pki;
    let dir = tempfile::tempdir().unwrap();
    let old = Pki::generate(&dir.path().join("old"));
    let new = Pki::generate(&dir.path().join("new"));
    // The files the collector's config names, replaced in place as an operator (or
    // certbot) would.
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let (cert, key) = (live.join("server.pem"), live.join("server.key"));
    std::fs::copy(&old.server_cert, &cert).unwrap();
    std::fs::copy(&old.server_key, &key).unwrap();
    let tokens = dir.path().join("tokens");
    let (first, second) = (
        "first-fleet-token-0123456789",
        "second-fleet-token-0123456789",
    );
    std::fs::write(&tokens, format!("{first}\n")).unwrap();
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            tls: Some(Pki {
                server_cert: cert.clone(),
                server_key: key.clone(),
                ..old.clone()
            }),
            tokens_file: Some(tokens.clone()),
            ..Default::default()
        },
    );
    let trusts_old = client_trusting(&old.ca);
    assert_eq!(send_event(&trusts_old, &collector, first), Ok(200));
    assert_eq!(send_event(&trusts_old, &collector, second), Ok(403));

    std::fs::write(&tokens, format!("{second}\n")).unwrap();
    std::fs::copy(&new.server_cert, &cert).unwrap();
    std::fs::copy(&new.server_key, &key).unwrap();
    collector.service.notify(libc::SIGHUP);
    assert!(
        collector
            .service
            .wait_for_log("Configuration reloaded (SIGHUP)", Duration::from_secs(30)),
        "{}",
        collector.service.log()
    );
    let trusts_new = client_trusting(&new.ca);
    assert_eq!(send_event(&trusts_new, &collector, second), Ok(200));
    assert_eq!(send_event(&trusts_new, &collector, first), Ok(403));
    let refused = send_event(&client_trusting(&old.ca), &collector, second);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("certificate") || e.contains("Certificate")),
        "the old CA no longer verifies the collector: {refused:?}"
    );

    // A tokens file that does not load: refused, the running tokens stay.
    std::fs::write(&tokens, "short\n").unwrap();
    collector.service.notify(libc::SIGHUP);
    assert!(
        collector
            .service
            .wait_for_log("Reload refused", Duration::from_secs(30)),
        "{}",
        collector.service.log()
    );
    assert_eq!(send_event(&trusts_new, &collector, second), Ok(200));
    let (total, _) = collector.search("hostname:reload.example.org", 10);
    assert_eq!(total, 3);
}

/// `picket-agent buffer <args>` on `config`: exit code and stdout.
fn buffer_command(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(picket_tests::binary("picket-agent"))
        .args(["--config", config.to_str().unwrap(), "buffer"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.stderr.is_empty() || output.status.code() != Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn buffer_inspect_shows_what_waits_and_verify_finds_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipping_nowhere(dir.path(), "");
    let mut agent = Agent::start_with_config(dir.path(), config.clone());
    assert!(
        agent.wait_for_log("Delivery failed; retrying", Duration::from_secs(30)),
        "{}",
        agent.service.log()
    );
    // While the agent runs: read only, nothing disturbed.
    let (code, text) = buffer_command(&config, &["inspect"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("pending: 5 events"), "{text}");
    agent.service.stop();

    let (code, json) = buffer_command(&config, &["inspect", "--json"]);
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["pending_events"], 5);
    assert_eq!(report["by_category"]["authentication"], 2, "{report:#}");
    assert_eq!(report["by_host"]["web1"], 5, "{report:#}");
    let age = report["oldest_age_seconds"].as_i64().unwrap();
    assert!((3600..3700).contains(&age), "{report:#}");
    let (code, verdict) = buffer_command(&config, &["verify"]);
    assert_eq!(code, Some(0), "{verdict}");
    assert!(verdict.starts_with("ok: 5 pending events"), "{verdict}");

    // One flipped byte in the third record's JSON.
    let buffer = dir.path().join("state").join("buffer");
    let segment = std::fs::read_dir(&buffer)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let third = bytes
        .windows(13)
        .position(|w| w == b"nothing sshd ")
        .expect("the third line's event");
    bytes[third] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let (code, verdict) = buffer_command(&config, &["verify"]);
    assert_eq!(code, Some(65), "{verdict}");
    assert!(
        verdict.contains("CORRUPT: segment") && verdict.contains("about 1 events lost"),
        "{verdict}"
    );
    assert!(
        verdict.contains("1 corrupt stretches among 4 readable"),
        "{verdict}"
    );
}
