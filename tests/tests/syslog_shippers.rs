//! Real syslog daemons send sshd lines to the collector the way fleets ship them
//! without an agent: rsyslog's `omelasticsearch` and syslog-ng's `elasticsearch-http()`
//! through the Elasticsearch face with HTTP Basic users, and syslog-ng's `amqp()` with
//! `format-json` through RabbitMQ. Each line is stored as the event an agent would have
//! sent (parsed at the collector with the agent's parsers) and the shipped
//! `ssh-bruteforce` rule counts the attempts.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use picket_tests::pki::{CLIENT_NAME, Pki};
use picket_tests::rabbitmq::{PASSWORD as BROKER_PASSWORD, RabbitMq};
use picket_tests::syslog_daemons::{Daemon, rsyslogd, syslog_ng};
use picket_tests::{Collector, CollectorOptions, binary, workspace_root};
use serde_json::Value;

const USER: &str = "syslog";
const PASSWORD: &str = "syslog-shipper-pass";
/// The shipped rule's threshold: this many failures from one address is an attack.
const ATTEMPTS: u32 = 10;

/// A collector that takes HTTP Basic `USER` as a shipper (and `extra` TOML).
fn collector(dir: &Path, extra: String) -> Collector {
    fs::create_dir_all(dir).unwrap();
    let users = dir.join("users");
    let hash = Command::new(binary("picket-collector"))
        .args(["hash-password", USER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{PASSWORD}\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(hash.status.success());
    fs::write(&users, &hash.stdout).unwrap();
    Collector::start_with(
        &dir.join("collector"),
        &CollectorOptions {
            http_keys: format!("users_file = {:?}\n", users.display().to_string()),
            extra,
            ..Default::default()
        },
    )
}

fn port_of(collector: &Collector) -> &str {
    collector.base_url.rsplit(':').next().unwrap()
}

/// Ten wrong passwords for two users from one address, through `daemon`.
fn attack(daemon: &Daemon, address: &str) {
    for i in 0..ATTEMPTS {
        let user = if i % 2 == 0 {
            "root"
        } else {
            "invalid user admin"
        };
        daemon.log(
            "sshd",
            4000 + i,
            &format!(
                "Failed password for {user} from {address} port {} ssh2",
                50_000 + i
            ),
        );
    }
}

/// The sshd events from `address`, once all `ATTEMPTS` are stored (each line once).
fn stored(collector: &Collector, address: &str, daemon: &Daemon) -> Vec<Value> {
    let (total, events) = collector.wait_for(
        &format!("summary:\"{address}\""),
        u64::from(ATTEMPTS),
        Duration::from_secs(60),
    );
    assert_eq!(
        total,
        u64::from(ATTEMPTS),
        "events stored, each line once; daemon: {}\ncollector: {}",
        daemon.output(),
        collector.service.log()
    );
    events
}

/// Each event is what the agent makes of the line, and the rule counts them all.
fn assert_parsed_and_counted(collector: &Collector, events: &[Value], address: &str) {
    for event in events {
        assert_eq!(event["category"], "authentication", "{event}");
        assert_eq!(event["processname"], "sshd", "{event}");
        assert_eq!(event["tags"][0], "sshd", "{event}");
        assert_eq!(event["details"]["sourceipaddress"], address, "{event}");
        assert_eq!(event["details"]["success"], false, "{event}");
        assert!(event["details"]["username"].is_string(), "{event}");
        assert!(event["processid"].as_i64().unwrap() >= 4000, "{event}");
        assert!(
            !event["summary"].as_str().unwrap().starts_with(' '),
            "{event}"
        );
    }
    let output = Command::new(binary("picket-collector"))
        .arg("--config")
        .arg(&collector.config)
        .args([
            "alerts",
            "test",
            "ssh-bruteforce",
            "--since",
            "1h",
            "--rules",
        ])
        .arg(workspace_root().join("rules"))
        .env_remove("PICKET_TOKEN")
        .env_remove("PICKET_TOKEN_FILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let alerts: Vec<&str> = stdout.lines().collect();
    assert_eq!(alerts.len(), 1, "{stdout}");
    assert!(
        alerts[0].contains(&format!("{ATTEMPTS} failed SSH logins from {address}")),
        "{stdout}"
    );
}

#[test]
fn rsyslog_omelasticsearch_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let collector = collector(dir.path(), String::new());
    let errors = dir.path().join("es-errors.json");
    // The JSON template rsyslog's documentation gives for Elasticsearch.
    let rsyslog = rsyslogd(
        &dir.path().join("rsyslog"),
        &format!(
            r#"module(load="omelasticsearch")
template(name="plain-syslog" type="list" option.json="on") {{
  constant(value="{{")
  constant(value="\"@timestamp\":\"") property(name="timereported" dateFormat="rfc3339")
  constant(value="\",\"host\":\"") property(name="hostname")
  constant(value="\",\"severity\":\"") property(name="syslogseverity-text")
  constant(value="\",\"facility\":\"") property(name="syslogfacility-text")
  constant(value="\",\"tag\":\"") property(name="syslogtag")
  constant(value="\",\"message\":\"") property(name="msg")
  constant(value="\"}}")
}}
*.* action(type="omelasticsearch" server="127.0.0.1" serverport="{port}" template="plain-syslog"
           searchIndex="syslog" bulkmode="on" uid="{USER}" pwd="{PASSWORD}"
           errorfile="{errors}" esVersion.major="8")"#,
            port = port_of(&collector),
            errors = errors.display(),
        ),
    );
    attack(&rsyslog, "198.51.100.7");
    let events = stored(&collector, "198.51.100.7", &rsyslog);
    assert_parsed_and_counted(&collector, &events, "198.51.100.7");
    assert!(
        !errors.exists(),
        "omelasticsearch wrote errors: {}",
        fs::read_to_string(&errors).unwrap_or_default()
    );
}

#[test]
fn syslog_ng_elasticsearch_http_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let collector = collector(dir.path(), String::new());
    // The SCL's driver with its default template (format-json, rfc5424 scope).
    let daemon = syslog_ng(
        &dir.path().join("syslog-ng"),
        &format!(
            "destination d_es {{ elasticsearch-http(url(\"{url}/_bulk\") index(\"syslog\") type(\"\") user(\"{USER}\") password(\"{PASSWORD}\") batch-lines(5) timeout(10)); }};",
            url = collector.base_url,
        ),
        &["d_es"],
    );
    attack(&daemon, "198.51.100.8");
    let events = stored(&collector, "198.51.100.8", &daemon);
    assert_parsed_and_counted(&collector, &events, "198.51.100.8");
}

#[test]
fn syslog_ng_format_json_through_rabbitmq() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let broker = RabbitMq::start(&dir.path().join("rabbitmq"), &pki);
    let password = dir.path().join("amqp-password");
    fs::write(&password, format!("{BROKER_PASSWORD}\n")).unwrap();
    // The collector declares the exchange and queue before syslog-ng publishes.
    let collector = collector(
        dir.path(),
        format!(
            "[collector.amqp]\nurl = {url:?}\nusername = {CLIENT_NAME:?}\npassword_file = {password:?}\n",
            url = broker.amqp_url(),
            password = password.display().to_string(),
        ),
    );
    assert!(
        collector
            .service
            .wait_for_log("Consuming events from RabbitMQ", Duration::from_secs(30)),
        "{}",
        collector.service.log()
    );
    // MozDef's documented syslog-ng setup: format-json of every macro to eventtask.
    let daemon = syslog_ng(
        &dir.path().join("syslog-ng"),
        &format!(
            "destination d_amqp {{ amqp(host(\"127.0.0.1\") port({port}) vhost(\"/\") exchange(\"eventtask\") exchange-declare(no) routing-key(\"eventtask\") username(\"{CLIENT_NAME}\") password(\"{BROKER_PASSWORD}\") persistent(yes) body(\"$(format-json --scope selected-macros --scope nv-pairs)\")); }};",
            port = broker.amqp_port,
        ),
        &["d_amqp"],
    );
    attack(&daemon, "198.51.100.9");
    let events = stored(&collector, "198.51.100.9", &daemon);
    assert_parsed_and_counted(&collector, &events, "198.51.100.9");
    // syslog-ng's DATE (no year, no zone) was read, not left as a time error.
    for event in &events {
        assert!(event["details"]["timestamperror"].is_null(), "{event}");
    }
}
