//! Property tests: no input makes a parser panic, and every input gives a well-formed
//! event (valid id and times, summary within 4,096 bytes, the parser's tag).
//! Inputs: arbitrary bytes, real lines from the fixtures mutated byte by byte, and
//! shapes built to hit the parsers' edges (truncated CEF headers, odd PRIs, impossible
//! dates, huge lines).

use std::path::Path;

use chrono::{DateTime, Utc};
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};
use proptest::prelude::*;

fn parser() -> LineParser {
    LineParser::new(
        HostIdentity::named("agent.example.com"),
        TimeZoneChoice::parse("Europe/Berlin").unwrap(),
    )
}

fn check(line: &[u8]) {
    let read_at: DateTime<Utc> = "2026-03-29T01:30:00Z".parse().unwrap();
    let context = LineContext {
        source: "prop",
        source_identity: "prop",
        offset: 7,
        read_at,
    };
    let parser = parser();
    // The parser keeps what each process said: the twin reads from the same state.
    let twin = parser.clone();
    let event = parser.parse(line, &context);
    // The hot path writes the line straight from the borrowed draft: the same bytes.
    let direct = twin.parse_line(line, &context, |draft| {
        let mut out = Vec::new();
        draft.write_json_line(&mut out);
        out
    });
    assert!(mozdef::eventid::is_event_id(&event.eventid));
    assert!(event.summary.len() <= mozdef::fields::SUMMARY_MAX_BYTES);
    assert!(
        mozdef::time::parse_str(&event.utctimestamp).is_ok(),
        "{}",
        event.utctimestamp
    );
    assert!(event.utctimestamp.ends_with("+00:00"));
    assert!(
        mozdef::time::parse_str(&event.timestamp).is_ok(),
        "{}",
        event.timestamp
    );
    assert!(!event.tags.is_empty());
    assert!(event.details.contains_key("program"));
    let mut out = Vec::new();
    event.write_json_line(&mut out);
    assert_eq!(
        String::from_utf8_lossy(&direct),
        String::from_utf8_lossy(&out),
        "draft and event write different lines"
    );
    let back: serde_json::Value = serde_json::from_slice(&out).expect("the line is JSON");
    assert_eq!(back["eventid"], event.eventid.as_str());
}

/// Every non-blank line of the parser fixtures.
fn fixture_lines() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut lines = Vec::new();
    for dir in std::fs::read_dir(root).unwrap().flatten() {
        if !dir.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if file.path().extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(file.path()).unwrap();
                lines.extend(
                    text.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(str::to_string),
                );
            }
        }
    }
    assert!(lines.len() > 50);
    lines
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Cut(usize),
}

fn apply(line: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = line.as_bytes().to_vec();
    for edit in edits {
        let len = bytes.len().max(1);
        match *edit {
            Edit::Replace(at, b) if !bytes.is_empty() => bytes[at % len] = b,
            Edit::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Edit::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            Edit::Cut(at) => bytes.truncate(at % (bytes.len() + 1)),
            _ => {}
        }
    }
    bytes
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to the parsers more often than others.
    let byte = prop_oneof![
        any::<u8>(),
        Just(b' '),
        Just(b'|'),
        Just(b'='),
        Just(b'\\'),
        Just(b':'),
        Just(b'['),
        Just(b']'),
        Just(b'<'),
        Just(b'>'),
        Just(b'\''),
        Just(0u8),
        Just(0xffu8),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(a, b)| Edit::Replace(a, b)),
        (any::<usize>(), byte).prop_map(|(a, b)| Edit::Insert(a, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Cut),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_give_an_event(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check(&bytes);
    }

    #[test]
    fn mutated_real_lines_give_an_event(
        index in any::<usize>(),
        edits in proptest::collection::vec(edit(), 1..8),
    ) {
        let lines = fixture_lines();
        let line = &lines[index % lines.len()];
        check(&apply(line, &edits));
    }

    #[test]
    fn cef_edges_give_an_event(
        prefix in prop_oneof![Just(""), Just("Nov 22 09:14:03 fw "), Just("1493738863000 h "), Just("<999>"), Just("May 02 2017 15:27:43.000 UTC h ")],
        pipes in 0usize..9,
        field in "[ -~]{0,12}",
        extension in "[ -~]{0,80}",
    ) {
        let mut line = format!("{prefix}CEF:0");
        for _ in 0..pipes {
            line.push('|');
            line.push_str(&field);
        }
        line.push_str(&extension);
        check(line.as_bytes());
    }

    #[test]
    fn odd_headers_give_an_event(
        pri in 0u32..2000,
        month in "[A-Z][a-z]{2}",
        day in 0u32..40,
        hour in 0u32..30,
        minute in 0u32..70,
        rest in "[ -~]{0,60}",
    ) {
        check(format!("<{pri}>{month} {day} {hour}:{minute}:00 host sshd[1]: {rest}").as_bytes());
        check(format!("{month} {day:>2} {hour:02}:{minute:02}:61 host su: {rest}").as_bytes());
    }
}

#[test]
fn named_hard_cases_give_an_event() {
    let mut cases: Vec<Vec<u8>> = [
        "Feb 30 25:61:00 host prog: impossible",
        "Feb 29 12:00:00 host prog: leap day in a common year",
        "<999>Nov 22 09:14:03 web1 x: pri",
        "<>Nov 22 09:14:03 web1 x: empty pri",
        "CEF:",
        "CEF:0|",
        "CEF:0|a|b|c|d|e",
        "CEF:0|a|b|c|d|e|f|=== ==x =",
        "CEF:0|a|b|c|d|e|f|k=\\",
        "Nov 22 09:14:03 web1 sudo: x : COMMAND=",
        "Nov 22 09:14:03 web1 sudo:  : TTY=pts/0 ; COMMAND=/bin/ls",
        "Nov 22 09:14:03 web1 sshd[1]: Accepted publickey for  from  port  ssh2",
        "Nov 22 09:14:03 web1 sshd[1]: Failed password for from 1.2.3.4 port 99999999999999999999 ssh2",
        "Nov 22 09:14:03 web1 useradd[1]: new user: name=, UID=x, GID=, home=, shell=",
        "Nov 22 09:14:03 web1 usermod[1]: add '",
        "{\"timestamp\": 1e400}",
        "{\"details\": [1, 2]}",
        "2019-06-14T99:99:99.1 host app: bad iso",
        "Mar 29 02:30:00 host app: a time that does not exist in Berlin",
        "Oct 25 02:30:00 host app: a time that happens twice in Berlin",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    cases.push(vec![0u8; 1000]);
    let mut huge = b"Nov 22 09:14:03 web1 sshd[1]: Failed password for ".to_vec();
    huge.extend(std::iter::repeat_n(b'u', 1024 * 1024));
    huge.extend_from_slice(b" from 1.2.3.4 port 22 ssh2");
    cases.push(huge);
    let mut cef = b"CEF:0|v|p|1|s|n|5|".to_vec();
    for i in 0..20_000 {
        cef.extend_from_slice(format!("k{i}=v{i} ").as_bytes());
    }
    cases.push(cef);
    for case in cases {
        check(&case);
    }
}
