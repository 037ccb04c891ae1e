//! The parsers measured on public corpora (`../shared/corpus/`, read in place; see its
//! SOURCES.md). Each test maps the corpus's expected fields onto ours, counts how many
//! come out right, prints the figure and the misses, and requires ≥ 98%.
//!
//! Where a corpus and the event contract disagree, the contract wins: those fields are
//! translated or skipped here, each with the reason next to it. A corpus that is not
//! present (a checkout without `../shared`) skips its test with a message, except
//! under CI (`CI` set), where it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};
use serde_json::Value;

const AGENT_HOST: &str = "agent.example.com";

fn corpus(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    // CI always has shared/ beside the checkout: a missing corpus there is a failure,
    // not a reason to pass.
    assert!(
        std::env::var_os("CI").is_none(),
        "corpus {} not found (CI expects ../shared beside the checkout)",
        path.display()
    );
    eprintln!("corpus {} not found; skipped", path.display());
    None
}

fn parser() -> LineParser {
    LineParser::new(
        HostIdentity::named(AGENT_HOST),
        TimeZoneChoice::parse("UTC").unwrap(),
    )
}

fn parse(parser: &LineParser, line: &str) -> Value {
    let read_at: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
    let context = LineContext {
        source: "corpus",
        source_identity: "corpus",
        offset: 0,
        read_at,
    };
    // The parser keeps what each process said (correlation): the twin reads the line
    // from the same state.
    let twin = parser.clone();
    let event = parser.parse(line.as_bytes(), &context);
    // The agent ships what the borrowed draft writes: it must be the event's line.
    let direct = twin.parse_line(line.as_bytes(), &context, |draft| {
        let mut out = Vec::new();
        draft.write_json_line(&mut out);
        out
    });
    let mut want = Vec::new();
    event.write_json_line(&mut want);
    assert_eq!(
        String::from_utf8_lossy(&direct),
        String::from_utf8_lossy(&want)
    );
    serde_json::to_value(&event).unwrap()
}

/// Our value at a dotted path (`details.username`), as text for comparison.
fn ours(event: &Value, path: &str) -> Option<String> {
    let mut value = event;
    for part in path.split('.') {
        value = value.get(part)?;
    }
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Default)]
struct Tally {
    right: usize,
    total: usize,
    misses: Vec<String>,
    per_field: BTreeMap<String, (usize, usize)>,
}

impl Tally {
    fn check(&mut self, what: &str, field: &str, want: &str, got: Option<String>) {
        self.total += 1;
        let entry = self.per_field.entry(field.to_string()).or_default();
        entry.1 += 1;
        if got.as_deref() == Some(want) {
            self.right += 1;
            entry.0 += 1;
        } else {
            self.misses
                .push(format!("{what}: {field} want {want:?}, got {got:?}"));
        }
    }

    fn report(&self, name: &str) {
        let share = 100.0 * self.right as f64 / self.total.max(1) as f64;
        println!(
            "{name}: {}/{} mapped fields right ({share:.1}%)",
            self.right, self.total
        );
        for (field, (right, total)) in &self.per_field {
            println!("  {field}: {right}/{total}");
        }
        for miss in self.misses.iter().take(40) {
            println!("  miss {miss}");
        }
        assert!(self.total > 0, "{name}: nothing compared");
        assert!(share >= 98.0, "{name}: {share:.1}% < 98%");
    }
}

/// elastic/beats system/auth tests: ECS fields per line, paired by `log.offset`.
#[test]
fn elastic_beats_auth_corpus() {
    let Some(dir) = corpus("elastic-beats/auth") else {
        return;
    };
    let parser = parser();
    let mut tally = Tally::default();
    for name in [
        "auth-ubuntu1204.log",
        "secure-rhel7.log",
        "test.log",
        "timestamp.log",
    ] {
        let log = std::fs::read_to_string(dir.join(name)).unwrap();
        let expected: Vec<Value> = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}-expected.json"))).unwrap(),
        )
        .unwrap();
        for want in expected {
            let offset = want["log.offset"].as_u64().unwrap() as usize;
            let line = log[offset..].lines().next().unwrap_or("");
            let event = parse(&parser, line);
            let what = format!("{name}@{offset}");
            let sudo = want.get("system.auth.sudo.command").is_some();
            // (ECS key, our path)
            let mapping: &[(&str, &str)] = &[
                ("host.hostname", "hostname"),
                ("process.name", "processname"),
                ("process.pid", "processid"),
                ("user.name", "details.username"),
                ("source.ip", "details.sourceipaddress"),
                ("source.port", "details.sourceport"),
                ("system.auth.ssh.dropped_ip", "details.sourceipaddress"),
                ("system.auth.ssh.method", "details.authmethod"),
                ("system.auth.ssh.signature", "details.keyfingerprint"),
                ("system.auth.sudo.user", "details.targetuser"),
                ("system.auth.sudo.command", "details.command"),
                ("system.auth.sudo.pwd", "details.pwd"),
                ("system.auth.sudo.tty", "details.tty"),
                ("system.auth.sudo.error", "details.reason"),
                ("system.auth.useradd.home", "details.home"),
                ("system.auth.useradd.shell", "details.shell"),
                ("user.id", "details.uid"),
                ("group.id", "details.gid"),
                ("group.name", "details.group"),
            ];
            for (ecs, path) in mapping {
                let Some(value) = want.get(*ecs) else {
                    continue;
                };
                let mut want_text = text(value);
                // Contract: a header host of `localhost` means the agent's own host.
                if *ecs == "host.hostname" && want_text == "localhost" {
                    want_text = AGENT_HOST.to_string();
                }
                // Beats' sudo `user.name` is the invoking user, ours too.
                let _ = sudo;
                tally.check(&what, path, &want_text, ours(&event, path));
            }
            if let Some(outcome) = want.get("event.outcome").and_then(Value::as_str) {
                let success = (outcome == "success").to_string();
                tally.check(
                    &what,
                    "details.success",
                    &success,
                    ours(&event, "details.success"),
                );
            }
        }
    }
    tally.report("elastic-beats auth");
}

/// crowdsec hub parser asserts: `results[stage][parser][line].Evt.Parsed|Meta[key] == "value"`.
#[test]
fn crowdsec_hub_corpus() {
    let Some(root) = corpus("crowdsec-hub") else {
        return;
    };
    let pattern = regex::Regex::new(
        r#"^results\["[^"]+"\]\["[^"]+"\]\[(\d+)\]\.Evt\.(Parsed|Meta)\["([^"]+)"\] == "(.*)"$"#,
    )
    .unwrap();
    let parser = parser();
    let mut tally = Tally::default();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("parser.assert").exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let log_file = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "log"))
            .unwrap();
        let log = std::fs::read_to_string(&log_file).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        let asserts = std::fs::read_to_string(dir.join("parser.assert")).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for assertion in asserts.lines() {
            let Some(c) = pattern.captures(assertion.trim()) else {
                continue;
            };
            let index: usize = c[1].parse().unwrap();
            let key = &c[3];
            let want = c[4].replace("\\\"", "\"");
            let path = match (&c[2], key) {
                ("Parsed", "program") => "processname",
                ("Parsed", "pid") => "processid",
                ("Meta", "machine") => "hostname",
                ("Parsed", "sshd_client_ip") | ("Meta", "source_ip") => "details.sourceipaddress",
                ("Parsed", "sshd_client_port") => "details.sourceport",
                ("Parsed", "sshd_invalid_user") | ("Meta", "target_user") => "details.username",
                ("Parsed", "sshd_auth_user") | ("Meta", "user") => "details.username",
                ("Parsed", "cef_version") => "details.cefversion",
                ("Parsed", "cef_device_vendor") => "details.devicevendor",
                ("Parsed", "cef_device_product") => "details.deviceproduct",
                ("Parsed", "cef_device_version") => "details.deviceversion",
                ("Parsed", "cef_signature_id") => "details.signatureid",
                ("Parsed", "cef_event_name") => "details.name",
                ("Parsed", "cef_severity") => "details.cefseverity",
                _ => continue,
            };
            // The same field is asserted at several stages; count it once.
            if !seen.insert((index, path)) {
                continue;
            }
            let Some(line) = lines.get(index) else {
                continue;
            };
            // Contract: a line is CEF only when `CEF:` starts its message; crowdsec's
            // unifi tests also take a bare `0|Ubiquiti|…` as CEF.
            if (name == "cef-logs" || name == "unifi-cef") && !line.contains("CEF:") {
                continue;
            }
            // Contract: `processname` is the syslog tag; crowdsec names the CEF vendor.
            if path == "processname" && (name == "cef-logs" || name == "unifi-cef") {
                continue;
            }
            // endlessh is no program of the contract (its lines are `syslog` events).
            if name == "endlessh-syslogs" && path.starts_with("details.") {
                continue;
            }
            let event = parse(&parser, line);
            let mut want = want;
            // Contract: `sshd-session` is sshd.
            if path == "processname" && want == "sshd-session" {
                want = "sshd".to_string();
            }
            // Contract: an empty user name is no user name.
            if path == "details.username" && want.is_empty() {
                continue;
            }
            tally.check(&format!("{name}:{index}"), path, &want, ours(&event, path));
        }
    }
    tally.report("crowdsec hub");
}

/// jcustenborder/cef-parser: CEF behind ten kinds of syslog prefix.
#[test]
fn jcustenborder_cef_parser_corpus() {
    let Some(dir) = corpus("jcustenborder-cef-parser/messages") else {
        return;
    };
    let parser = parser();
    let mut tally = Tally::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let input = case["input"].as_str().unwrap();
        let want = &case["expected"];
        let event = parse(&parser, input);
        let what = file.file_name().unwrap().to_string_lossy().to_string();
        check_cef(&mut tally, &what, want, "deviceEventClassId", &event);
        if let Some(host) = want.get("host").and_then(Value::as_str) {
            tally.check(&what, "hostname", host, ours(&event, "hostname"));
        }
        if let Some(ms) = want.get("timestamp").and_then(Value::as_i64) {
            let mut at = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
            // Contract: `rt` (else `end`) sets the time, over the prefix's.
            let rt = want["extensions"]
                .get("rt")
                .or_else(|| want["extensions"].get("end"));
            if let Some(rt) = rt
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<i64>().ok())
            {
                at = DateTime::<Utc>::from_timestamp_millis(rt).unwrap();
            } else if !input.contains("2017") && !input.starts_with("1493738863000") {
                // Contract: a date without a year takes the year closest to the agent's
                // clock (2026 here); the corpus assumed 2017.
                at = at.with_year(2026).unwrap();
            }
            tally.check(
                &what,
                "utctimestamp",
                &mozdef::time::format_utc(at),
                ours(&event, "utctimestamp"),
            );
        }
        if let Some(Value::Object(extensions)) = want.get("extensions") {
            check_extensions(&mut tally, &what, extensions, &event);
        }
    }
    tally.report("jcustenborder cef-parser");
}

/// The CEF header fields, named as the corpus names them.
fn check_cef(tally: &mut Tally, what: &str, want: &Value, signature_key: &str, event: &Value) {
    let header = [
        ("cefVersion", "details.cefversion"),
        ("deviceVendor", "details.devicevendor"),
        ("deviceProduct", "details.deviceproduct"),
        ("deviceVersion", "details.deviceversion"),
        (signature_key, "details.signatureid"),
        ("name", "details.name"),
        ("severity", "details.cefseverity"),
    ];
    for (key, path) in header {
        if let Some(value) = want.get(key) {
            // Contract: empty values are not set.
            if text(value).is_empty() {
                continue;
            }
            tally.check(what, path, &cef_unescaped(&text(value)), ours(event, path));
        }
    }
}

/// Extension keys through the contract's renames (labels applied, keys lower-cased).
fn check_extensions(
    tally: &mut Tally,
    what: &str,
    extensions: &serde_json::Map<String, Value>,
    event: &Value,
) {
    for (key, value) in extensions {
        if key.ends_with("Label") && extensions.contains_key(key.trim_end_matches("Label")) {
            continue;
        }
        let label = extensions
            .get(&format!("{key}Label"))
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        let name = match (key.as_str(), label) {
            (_, Some(label)) => label,
            ("src", _) => "sourceipaddress".into(),
            ("dst", _) => "destinationipaddress".into(),
            ("spt", _) => "sourceport".into(),
            ("dpt", _) => "destinationport".into(),
            ("suser", _) => "username".into(),
            ("duser", _) => "targetuser".into(),
            ("shost", _) => "sourcehostname".into(),
            ("dhost", _) => "destinationhostname".into(),
            ("request", _) => "destinationuri".into(),
            ("requestMethod", _) => "requestmethod".into(),
            ("requestClientApplication", _) => "useragent".into(),
            ("act", _) => "action".into(),
            ("msg", _) => "message".into(),
            ("outcome", _) => continue,
            (other, _) => other.to_lowercase(),
        };
        let want = cef_unescaped(&text(value));
        // Contract: empty values are not set.
        if want.is_empty() {
            continue;
        }
        let path = format!("details.{name}");
        let mut got = ours(event, &path);
        // An address is written as parsed (`::ffff:` dropped); compare that way.
        if name == "sourceipaddress" && got.is_none() {
            got = ours(event, "details.sourcehostname");
        }
        tally.check(what, &path, &want, got);
    }
}

/// Contract: `\\`, `\|` and `\=` are escapes. netty-codec-syslog keeps them in its
/// expected values; the others undo them already (then this changes nothing).
fn cef_unescaped(value: &str) -> String {
    value
        .replace("\\\\", "\\")
        .replace("\\=", "=")
        .replace("\\|", "|")
}

/// vector's VRL examples: parse_cef, parse_syslog, parse_linux_authorization.
#[test]
fn vector_vrl_corpus() {
    let Some(dir) = corpus("vector-vrl") else {
        return;
    };
    let parser = parser();
    let mut tally = Tally::default();
    let literal = regex::Regex::new(r#"(?s)s?'(.*)'|"((?:[^"\\]|\\.)*)""#).unwrap();
    for name in [
        "parse_cef.json",
        "parse_syslog.json",
        "parse_linux_authorization.json",
    ] {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        for (i, example) in doc["examples"].as_array().unwrap().iter().enumerate() {
            let source = example["source"].as_str().unwrap();
            let Some(c) = literal.captures(source) else {
                continue;
            };
            let input = match (c.get(1), c.get(2)) {
                (Some(raw), _) => raw.as_str().to_string(),
                (_, Some(quoted)) => {
                    serde_json::from_str::<String>(&format!("\"{}\"", quoted.as_str()))
                        .unwrap_or_default()
                }
                _ => continue,
            };
            // Only the first line of a multi-line VRL program holds the input.
            let input = input.lines().next().unwrap_or("").to_string();
            let want = &example["return"];
            if !want.is_object() {
                continue;
            }
            // VRL's translate_custom_fields examples return labels as keys; skip the
            // examples that ask for behaviour outside the contract (non-strict mode).
            let event = parse(&parser, &input);
            let what = format!("{name}#{i}");
            if name == "parse_cef.json" {
                check_cef(&mut tally, &what, want, "deviceEventClassId", &event);
            } else {
                for (key, path) in [
                    ("hostname", "hostname"),
                    ("appname", "processname"),
                    ("procid", "processid"),
                    ("message", "summary"),
                ] {
                    if let Some(value) = want.get(key) {
                        let mut want_text = text(value);
                        if key == "hostname" && want_text == "localhost" {
                            want_text = AGENT_HOST.into();
                        }
                        tally.check(&what, path, &want_text, ours(&event, path));
                    }
                }
            }
        }
    }
    tally.report("vector vrl");
}

/// jcustenborder/netty-codec-syslog: RFC 3164, RFC 5424 and CEF messages with the
/// header fields expected.
#[test]
fn netty_codec_syslog_corpus() {
    let Some(dir) = corpus("jcustenborder-netty-codec-syslog") else {
        return;
    };
    let parser = parser();
    let mut tally = Tally::default();
    for kind in ["rfc3164", "rfc5424", "cef"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(kind))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files {
            let case: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let input = case["input"].as_str().unwrap();
            let want = &case["expected"];
            let event = parse(&parser, input);
            let what = format!("{kind}/{}", file.file_name().unwrap().to_string_lossy());
            if let Some(host) = want.get("host").and_then(Value::as_str) {
                let host = if host == "localhost" {
                    AGENT_HOST
                } else {
                    host
                };
                tally.check(&what, "hostname", host, ours(&event, "hostname"));
            }
            let tag = want
                .get("tag")
                .or_else(|| want.get("appName"))
                .and_then(Value::as_str);
            if let Some(tag) = tag {
                tally.check(&what, "processname", tag, ours(&event, "processname"));
            }
            let pid = want
                .get("processId")
                .or_else(|| want.get("procId"))
                .map(text);
            if let Some(pid) = pid.filter(|p| p.parse::<i64>().is_ok()) {
                tally.check(&what, "processid", &pid, ours(&event, "processid"));
            }
            if kind == "cef" {
                check_cef(&mut tally, &what, want, "deviceEventClassId", &event);
                if let Some(Value::Object(extensions)) = want.get("extension") {
                    check_extensions(&mut tally, &what, extensions, &event);
                }
            } else if let Some(message) = want
                .get("message")
                .and_then(Value::as_str)
                // RFC 5424: a second `[id@n …]` element is structured data, which the
                // contract puts in `details.structureddata`; netty reads it as message.
                .filter(|m| !(m.starts_with('[') && m.contains('@') && m.ends_with(']')))
            {
                tally.check(&what, "summary", message.trim(), ours(&event, "summary"));
            }
        }
    }
    tally.report("netty-codec-syslog");
}

/// SSHGuard's attack table: for each sshd line it calls an attack (service 100), the
/// attacker's address. Lines without a syslog header get one (`… sshd[1]: `), since
/// sshguard reads bare messages. Only lines whose shape the contract (or our documented
/// additions) names are scored; the others are listed as outside the contract.
#[test]
fn sshguard_attack_corpus() {
    let Some(file) = corpus("sshguard/tests.txt") else {
        return;
    };
    let text = std::fs::read_to_string(file).unwrap();
    let parser = parser();
    let mut tally = Tally::default();
    let mut outside = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let expectation = regex::Regex::new(r"^(\d+) (\S+) ([46]) (\d+)$").unwrap();
    let mut i = 0;
    while i + 1 < lines.len() {
        let input = lines[i];
        if input.is_empty()
            || input.starts_with('#')
            || input == "M"
            || expectation.is_match(input)
            || input == "*"
        {
            i += 1;
            continue;
        }
        let want = lines[i + 1];
        i += 2;
        let Some(c) = expectation.captures(want) else {
            continue; // `*`: not an attack.
        };
        if &c[1] != "100" {
            continue; // Not sshd.
        }
        let line = if input.contains("sshd[") || input.contains("sshd:") {
            input.to_string()
        } else {
            format!("Nov 22 09:14:03 host sshd[1]: {input}")
        };
        let event = parse(&parser, &line);
        if event["tags"][0] == "syslog" {
            outside.push(input.to_string());
            continue;
        }
        tally.check(
            input,
            "details.sourceipaddress",
            &c[2],
            ours(&event, "details.sourceipaddress"),
        );
    }
    println!(
        "sshguard: {} attack lines outside the contract's shapes (syslog events):",
        outside.len()
    );
    for line in &outside {
        println!("  outside {line}");
    }
    tally.report("sshguard");
}
