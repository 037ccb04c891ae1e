// Shared by the agent's parser targets: one line through the agent's parser, checked
// the way agent/tests/never_panic.rs checks it (no panic, a well-formed event, the
// borrowed draft and the event write the same line).

use chrono::{DateTime, Utc};
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};

pub fn check(line: &[u8]) {
    thread_local! {
        static FRESH: LineParser = LineParser::new(
            HostIdentity::named("agent.example.com"),
            TimeZoneChoice::parse("Europe/Berlin").unwrap(),
        );
    }
    // The parser keeps what each process said on earlier lines: every input starts
    // from a fresh one (so a crash replays from its input alone), and the second
    // reading from a twin of it.
    let parser = FRESH.with(LineParser::clone);
    let twin = parser.clone();
    let read_at: DateTime<Utc> = "2026-03-29T01:30:00Z".parse().unwrap();
    let context = LineContext {
        source: "fuzz",
        source_identity: "fuzz",
        offset: 7,
        read_at,
    };
    let event = parser.parse(line, &context);
    let direct = twin.parse_line(line, &context, |draft| {
        let mut out = Vec::new();
        draft.write_json_line(&mut out);
        out
    });
    assert!(mozdef::eventid::is_event_id(&event.eventid));
    assert!(event.summary.len() <= mozdef::fields::SUMMARY_MAX_BYTES);
    assert!(mozdef::time::parse_str(&event.utctimestamp).is_ok());
    let mut out = Vec::new();
    event.write_json_line(&mut out);
    assert_eq!(direct, out, "draft and event write different lines");
    let _: serde_json::Value = serde_json::from_slice(&out).expect("the line is JSON");
}

/// `prefix` then the fuzzer's bytes: the message of a line whose header names the
/// parser's program.
#[allow(dead_code)] // the `line` target feeds whole lines
pub fn with_header(prefix: &[u8], data: &[u8]) {
    let mut line = Vec::with_capacity(prefix.len() + data.len());
    line.extend_from_slice(prefix);
    line.extend_from_slice(data);
    check(&line);
}
