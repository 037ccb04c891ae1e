use chrono::TimeZone;
use serde_json::{Value, json};

use super::*;

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 5).unwrap()
}

/// What the collector makes of an item: normalized, then parsed again.
fn collect(item: Value) -> Event {
    let mut event = mozdef::normalize(item, received()).unwrap();
    Reparser::new().apply(&mut event, received());
    event
}

/// What the agent makes of the same line read from a file.
fn agent(line: &str) -> Event {
    let parser = LineParser::new(
        HostIdentity::named("agent.example.com"),
        TimeZoneChoice::parse("UTC").unwrap(),
    );
    let context = LineContext {
        source: "/var/log/auth.log",
        source_identity: "f",
        offset: 0,
        read_at: received(),
    };
    parser.parse(line.as_bytes(), &context)
}

/// The details a parser sets, without the ones that depend on where the line was read
/// (attempt ids are made of the agent's host id).
fn parsed_details(event: &Event) -> serde_json::Map<String, Value> {
    event
        .details
        .iter()
        .filter(|(k, _)| !k.starts_with("attempt") && k.as_str() != ORIGINAL_TEXT)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

const SSHD_LINE: &str = "Dec  3 12:00:03 web1 sshd[4242]: Failed password for invalid user admin from 203.0.113.9 port 51234 ssh2";

#[test]
fn an_rsyslog_template_of_an_sshd_failure_is_what_the_agent_sends() {
    let event = collect(json!({
        "timereported": "2026-12-03T12:00:03+00:00", "hostname": "web1",
        "programname": "sshd", "procid": "4242", "syslogseverity-text": "info",
        "msg": " Failed password for invalid user admin from 203.0.113.9 port 51234 ssh2",
    }));
    let agent = agent(SSHD_LINE);
    assert_eq!(event.category, agent.category);
    assert_eq!(event.category, "authentication");
    assert_eq!(event.tags, agent.tags);
    assert_eq!(event.summary, agent.summary);
    assert_eq!(event.processname, "sshd");
    assert_eq!(event.processid, 4242);
    assert_eq!(event.hostname, "web1");
    assert_eq!(event.utctimestamp, agent.utctimestamp);
    assert_eq!(parsed_details(&event), parsed_details(&agent));
    assert_eq!(event.details["sourceipaddress"], json!("203.0.113.9"));
    assert_eq!(event.details["success"], json!(false));
}

#[test]
fn a_syslog_ng_format_json_message_is_what_the_agent_sends() {
    let event = collect(json!({
        "DATE": "Dec  3 12:00:03", "ISODATE": "2026-12-03T12:00:03+00:00",
        "HOST": "web1", "HOST_FROM": "web1", "PROGRAM": "sshd", "PID": "4242",
        "FACILITY": "auth", "PRIORITY": "info", "LEGACY_MSGHDR": "sshd[4242]: ",
        "TAGS": ".source.s_net",
        "MESSAGE": "Failed password for invalid user admin from 203.0.113.9 port 51234 ssh2",
    }));
    let agent = agent(SSHD_LINE);
    assert_eq!(event.category, agent.category);
    // The parser's tags first, syslog-ng's kept after them.
    let mut tags = agent.tags.clone();
    tags.push(".source.s_net".into());
    assert_eq!(event.tags, tags);
    assert_eq!(event.utctimestamp, agent.utctimestamp);
    let mut expected = parsed_details(&agent);
    for (key, value) in [
        ("date", "Dec  3 12:00:03"),
        ("host_from", "web1"),
        ("facility", "auth"),
        ("legacy_msghdr", "sshd[4242]: "),
    ] {
        expected.insert(key.into(), json!(value));
    }
    assert_eq!(parsed_details(&event), expected);
}

#[test]
fn a_whole_line_as_summary_is_read_header_and_all() {
    let line = "Dec  3 12:00:04 db2 sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls";
    let event = collect(json!({"summary": line}));
    let agent = agent(line);
    assert_eq!(event.hostname, "db2");
    assert_eq!(event.processname, "sudo");
    assert_eq!(event.category, agent.category);
    assert_eq!(event.tags, agent.tags);
    assert_eq!(event.summary, agent.summary);
    // Timed at reception by normalization: the header's time wins.
    assert_eq!(event.utctimestamp, "2026-12-03T12:00:04+00:00");
    assert_eq!(event.details[ORIGINAL_TEXT], json!(line));
    assert_eq!(event.details["username"], json!("alice"));
}

#[test]
fn what_is_not_raw_or_not_recognised_is_left_alone() {
    // An agent's event: tagged by its parser.
    let sent = json!({"summary": "Failed password for root from 203.0.113.9 port 1 ssh2",
                      "processname": "sshd", "tags": ["sshd"], "category": "authentication"});
    let before = mozdef::normalize(sent.clone(), received()).unwrap();
    assert_eq!(collect(sent), before);
    // A categorised event from a MozDef shipper.
    let sent = json!({"summary": "Failed password for root from 203.0.113.9 port 1 ssh2",
                      "processname": "sshd", "category": "custom"});
    assert_eq!(
        collect(sent.clone()),
        mozdef::normalize(sent, received()).unwrap()
    );
    // A program no parser knows, and text that is no syslog line.
    for sent in [
        json!({"summary": "job 7 done", "processname": "cron-wrapper"}),
        json!({"summary": "just some text"}),
    ] {
        let event = collect(sent.clone());
        assert_eq!(event, mozdef::normalize(sent, received()).unwrap());
        assert_eq!(event.category, "UNKNOWN");
    }
}

#[test]
fn a_syslog_tag_names_the_program() {
    // rsyslog's documented JSON template: `tag` is %syslogtag%, `message` %msg%.
    let event = collect(json!({
        "@timestamp": "2026-12-03T12:00:03+00:00", "host": "web1", "severity": "info",
        "facility": "auth", "tag": "sshd[4242]:",
        "message": " Failed password for invalid user admin from 203.0.113.9 port 51234 ssh2",
    }));
    let agent = agent(SSHD_LINE);
    assert_eq!(event.processname, "sshd");
    assert_eq!(event.processid, 4242);
    assert_eq!(event.category, agent.category);
    assert_eq!(event.tags, agent.tags);
    assert_eq!(event.details["sourceipaddress"], json!("203.0.113.9"));
    // A tag that names nothing the parsers know leaves the event as it was.
    let sent = json!({"message": "started", "tag": "myapp[7]:"});
    assert_eq!(
        collect(sent.clone()),
        mozdef::normalize(sent, received()).unwrap()
    );
}

#[test]
fn what_pam_said_in_one_request_is_known_in_the_next() {
    // rsyslog sends PAM's line and sudo's in separate requests: one reparser for all.
    let reparser = Reparser::new();
    let collect = |item: Value| {
        let mut event = mozdef::normalize(item, received()).unwrap();
        reparser.apply(&mut event, received());
        event
    };
    let pam = collect(json!({
        "timestamp": "2026-12-03T12:00:01+00:00", "hostname": "web1", "processname": "sudo",
        "summary": "pam_unix(sudo:auth): authentication failure; logname= uid=1001 euid=0 tty= ruser=alice rhost=  user=alice",
    }));
    assert!(pam.details.get("echo").is_none());
    let gave_up = collect(json!({
        "timestamp": "2026-12-03T12:00:04+00:00", "hostname": "web1", "processname": "sudo",
        "summary": "   alice : 1 incorrect password attempt ; PWD=/tmp ; USER=root ; COMMAND=/usr/bin/true",
    }));
    assert_eq!(gave_up.details["echo"], json!(true), "{gave_up:?}");
    // Another host's lines are another parser's.
    let other = collect(json!({
        "timestamp": "2026-12-03T12:00:04+00:00", "hostname": "web2", "processname": "sudo",
        "summary": "   alice : 1 incorrect password attempt ; PWD=/tmp ; USER=root ; COMMAND=/usr/bin/true",
    }));
    assert!(other.details.get("echo").is_none());
}

#[test]
fn an_agent_line_no_parser_knew_is_not_read_again_but_another_shippers_syslog_tag_is() {
    // The agent's: tagged syslog, with details.program.
    let sent = json!({"summary": "Failed password for root from 203.0.113.9 port 1 ssh2",
                      "processname": "sshd", "tags": ["syslog"], "category": "syslog",
                      "details": {"program": "sshd"}});
    assert_eq!(
        collect(sent.clone()),
        mozdef::normalize(sent, received()).unwrap()
    );
    // Another shipper's `syslog` tag.
    let event = collect(
        json!({"summary": "Failed password for root from 203.0.113.9 port 1 ssh2",
                               "processname": "sshd", "tags": ["syslog"]}),
    );
    assert_eq!(event.category, "authentication");
    assert_eq!(event.tags[0], "sshd");
}
