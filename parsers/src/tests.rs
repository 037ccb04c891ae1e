use chrono::TimeZone;
use serde_json::json;

use super::*;

fn parser(zone: &str) -> LineParser {
    LineParser::new(
        HostIdentity {
            fqdn: "agent1.example.com".into(),
            short_name: "agent1".into(),
            host_id: "host-id".into(),
        },
        TimeZoneChoice::parse(zone).unwrap(),
    )
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn parse_at(zone: &str, line: &str, now: &str) -> Event {
    let context = LineContext {
        source: "/var/log/auth.log",
        source_identity: "file:1:2:3",
        offset: 100,
        read_at: at(now),
    };
    parser(zone).parse(line.as_bytes(), &context)
}

#[test]
fn year_is_the_closest_to_the_clock_never_more_than_a_day_ahead() {
    let now = |s: &str| at(s).naive_utc();
    // (month, day, hour) read at `now` → year
    let cases = [
        ((12, 31, 23), "2027-01-01T00:10:00Z", 2026),
        ((1, 1, 0), "2026-12-31T23:50:00Z", 2027),
        ((11, 25, 11), "2026-11-24T12:00:00Z", 2026),
        ((11, 26, 12), "2026-11-24T12:00:00Z", 2025),
        ((6, 1, 0), "2026-11-24T12:00:00Z", 2026),
        ((3, 1, 0), "2026-01-15T00:00:00Z", 2025),
        ((1, 16, 0), "2026-01-15T00:00:00Z", 2026),
        ((1, 16, 1), "2026-01-15T00:00:00Z", 2025),
        ((8, 1, 0), "2026-01-15T00:00:00Z", 2025),
        ((2, 29, 12), "2026-11-24T12:00:00Z", 2024),
        ((2, 29, 12), "2028-03-01T12:00:00Z", 2028),
    ];
    for ((month, day, hour), clock, want) in cases {
        assert_eq!(
            year_for((month, day, hour, 0, 0), now(clock)),
            want,
            "{month}-{day} {hour}h read at {clock}"
        );
    }
}

#[test]
fn programs_are_named_as_the_contract_says() {
    assert_eq!(program_name("sshd"), "sshd");
    assert_eq!(program_name("sshd-session"), "sshd");
    assert_eq!(program_name("sshd(pam_unix)"), "sshd");
    assert_eq!(program_name("CRON"), "CRON");
    assert_eq!(program_name(""), "unknown");
}

#[test]
fn repeated_messages_unwrap_to_their_text_and_count() {
    assert_eq!(
        unwrap_repeated("message repeated 3 times: [ Failed password for root ]"),
        ("Failed password for root", Some(3))
    );
    assert_eq!(unwrap_repeated("message repeated x times: [ y ]").1, None);
    assert_eq!(unwrap_repeated("plain").0, "plain");
}

#[test]
fn zone_less_stamps_are_read_in_the_configured_zone_with_dst() {
    let summer = parse_at(
        "Europe/Berlin",
        "Jul  1 10:00:00 web1 app: x",
        "2026-07-01T12:00:00Z",
    );
    assert_eq!(summer.timestamp, "2026-07-01T10:00:00+02:00");
    assert_eq!(summer.utctimestamp, "2026-07-01T08:00:00+00:00");
    let winter = parse_at(
        "Europe/Berlin",
        "Nov 22 10:00:00 web1 app: x",
        "2026-11-24T12:00:00Z",
    );
    assert_eq!(winter.timestamp, "2026-11-22T10:00:00+01:00");
    // 02:30 on the spring-forward night does not exist in Berlin.
    let gap = parse_at(
        "Europe/Berlin",
        "Mar 29 02:30:00 web1 app: x",
        "2026-03-29T12:00:00Z",
    );
    assert_eq!(gap.utctimestamp, "2026-03-29T01:30:00+00:00");
    // A stamp with an offset keeps it, whatever the zone.
    let precise = parse_at(
        "Europe/Berlin",
        "2026-11-22T09:14:03.123456-05:00 web1 sudo: x",
        "2026-11-24T12:00:00Z",
    );
    assert_eq!(precise.timestamp, "2026-11-22T09:14:03.123456-05:00");
    assert_eq!(precise.utctimestamp, "2026-11-22T14:14:03.123456+00:00");
}

#[test]
fn cef_behind_a_bare_pri_is_cef_timed_when_read() {
    // What appliances send over the network: `<PRI>CEF:…`, no header.
    let event = parse_at(
        "UTC",
        "<131>CEF:0|Vendor|FW|1.0|100|Blocked|7|src=198.51.100.4 dst=10.0.0.1",
        "2026-12-07T12:00:00Z",
    );
    assert_eq!(event.tags[0], "cef");
    assert_eq!(event.utctimestamp, "2026-12-07T12:00:00+00:00");
    assert_eq!(event.hostname, "agent1.example.com");
    assert_eq!(event.details["sourceipaddress"], json!("198.51.100.4"));
    // Not a PRI: the line stays what it was.
    let event = parse_at("UTC", "<1x>CEF:0|a|b|c|d|e|5|", "2026-12-07T12:00:00Z");
    assert_ne!(event.tags[0], "cef");
}

#[test]
fn rfc5424_messages_are_parsed_by_program_bom_or_not() {
    for bom in ["", "\u{feff}"] {
        let line = format!(
            "<38>1 2026-12-07T10:00:00.5+01:00 fw1 sshd 4242 - [meta sequenceId=\"7\"] {bom}Failed password for root from 198.51.100.4 port 22 ssh2"
        );
        let event = parse_at("UTC", &line, "2026-12-07T12:00:00Z");
        assert_eq!(event.tags[0], "sshd", "{line:?}");
        assert_eq!(event.utctimestamp, "2026-12-07T09:00:00.500000+00:00");
        assert_eq!(event.hostname, "fw1");
        assert_eq!(event.processid, 4242);
        assert_eq!(event.severity, "INFO");
        assert_eq!(event.details["sourceipaddress"], json!("198.51.100.4"));
        assert_eq!(
            event.details["structureddata"]["meta"]["sequenceId"],
            json!("7")
        );
        assert!(event.summary.starts_with("Failed"), "{:?}", event.summary);
    }
}

#[test]
fn a_line_without_header_is_whole_and_timed_when_read() {
    let event = parse_at("UTC", "just some words", "2026-11-24T12:00:00Z");
    assert_eq!(event.summary, "just some words");
    assert_eq!(event.utctimestamp, "2026-11-24T12:00:00+00:00");
    assert_eq!(event.hostname, "agent1.example.com");
    assert_eq!(event.processname, "unknown");
    assert_eq!(event.category, "syslog");
    assert_eq!(event.details["program"], json!("unknown"));
}

#[test]
fn event_ids_follow_host_source_and_offset() {
    let p = parser("UTC");
    let read_at = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    let context = |offset| LineContext {
        source: "/x",
        source_identity: "file:1:2:3",
        offset,
        read_at,
    };
    let a = p.parse(b"Nov 22 10:00:00 h p: same", &context(0));
    let b = p.parse(b"Nov 22 10:00:00 h p: same", &context(0));
    let c = p.parse(b"Nov 22 10:00:00 h p: same", &context(25));
    assert_eq!(a.eventid, b.eventid);
    assert_ne!(a.eventid, c.eventid);
    assert_eq!(
        a.eventid,
        mozdef::eventid::event_id_at_offset("host-id", "file:1:2:3", 0)
    );
}

#[test]
fn hostile_input_still_gives_an_event() {
    let mut inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"<999>Nov 22 09:14:03 web1 x: pri".to_vec(),
        b"Feb 30 25:61:00 host prog: bad date".to_vec(),
        b"\0\0\0 nul bytes".to_vec(),
        b"\xff\xfe invalid utf-8 \xc3".to_vec(),
        b"<13>1 - - - - - -".to_vec(),
        b"<".to_vec(),
        b"Nov".to_vec(),
        b"message repeated 5 times: [".to_vec(),
    ];
    inputs.push(vec![b'a'; 1024 * 1024]);
    for input in inputs {
        let event = parser("UTC").parse(
            &input,
            &LineContext {
                source: "/x",
                source_identity: "s",
                offset: 0,
                read_at: Utc::now(),
            },
        );
        assert!(event.summary.len() <= 4096);
        assert!(!event.utctimestamp.is_empty());
        assert!(mozdef::eventid::is_event_id(&event.eventid));
    }
}

/// Lines to hold the common-header reader to `syslog_loose` with: the fixtures, the
/// shared corpora when present, and edge shapes.
fn header_lines() -> Vec<String> {
    let mut lines = Vec::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    let mut dirs = vec![root, corpus];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "log") {
                let bytes = std::fs::read(&path).unwrap();
                lines.extend(
                    String::from_utf8_lossy(&bytes)
                        .lines()
                        .take(20_000)
                        .map(str::to_string),
                );
            }
        }
    }
    for edge in [
        "Mar  1 00:00:00 host sshd[1]: x",
        "Mar 01 00:00:00 host sshd[1]: x",
        "Mar 1 00:00:00 host sshd: x",
        "Mar 1 00:00:00 host sshd:x",
        "Mar 1 00:00:00 host sshd[1]:   \tx",
        "Mar 1 00:00:00 host sshd[1]: - x",
        "Mar 1 00:00:00 host sshd[1]: [x y=\"1\"] z",
        "Mar 1 00:00:00 host -: x",
        "Mar 1 00:00:00 - sshd[1]: x",
        "Mar 1 00:00:00 host sshd[]: x",
        "Mar 1 00:00:00 host [1]: x",
        "Mar 1 00:00:00 host sshd[1]x: x",
        "Mar 1 00:00:00 host sshd[1: x",
        "Mar 1 00:00:00 host sshd]: x",
        "Mar 1 00:00:00 host sshd[99999999999]: x",
        "Mar 1 00:00:00 host sshd[abc]: x",
        "Mar 1 00:00:00 host CEF:0|a|b|c|d|e|5|",
        "Mar 1 24:00:00 host sshd[1]: x",
        "Feb 30 00:00:00 host sshd[1]: x",
        "Feb 29 00:00:00 host sshd[1]: x",
        "Mar 1 00:00:00 2026 host sshd[1]: x",
        "Mar 1 00:00:00: host sshd[1]: x",
        "Mar 1 0:00:00 host sshd[1]: x",
        "MAR 1 00:00:00 host sshd[1]: x",
        "Mar 1 00:00:00 höst sshd[1]: x",
        "Mar 1 00:00:00 host sshd[1]: ",
        "Mar 1 00:00:00 host sshd[1]:",
        "Mar 1 00:00:00 host sshd[1]",
        "Mar 1 00:00:00 host",
        "Mar 1 00:00:00 ",
        "<13>Mar 1 00:00:00 host sshd[1]: x",
        "<0>Mar 1 00:00:00 host sshd[1]: x",
        "<191>Mar 1 00:00:00 host sshd[1]: x",
        "<192>Mar 1 00:00:00 host sshd[1]: x",
        "<255>Mar 1 00:00:00 host sshd[1]: x",
        "<256>Mar 1 00:00:00 host sshd[1]: x",
        "<0013>Mar 1 00:00:00 host sshd[1]: x",
        "<>Mar 1 00:00:00 host sshd[1]: x",
        "<13> Mar 1 00:00:00 host sshd[1]: x",
        "<13Mar 1 00:00:00 host sshd[1]: x",
        "<38>Dec  7 10:00:00 fw1 sshd[811]: Failed password for root from 203.0.113.9 port 4242 ssh2",
    ] {
        lines.push(edge.to_string());
    }
    lines
}

#[test]
fn the_common_header_reader_reads_what_syslog_loose_reads() {
    let now = at("2026-11-24T12:00:00Z").naive_utc();
    let utc = FixedOffset::east_opt(0).unwrap();
    let (mut fast, mut all) = (0, 0);
    for line in header_lines() {
        all += 1;
        let Some((ours, wall)) = rfc3164_common(&line, |date| year_for(date, now)) else {
            continue;
        };
        fast += 1;
        let theirs = syslog_loose::parse_message_with_year_tz(
            &line,
            |date| year_for(date, now),
            Some(utc),
            Variant::Either,
        );
        let stamp = ours.timestamp.unwrap().naive_utc();
        assert_eq!(
            (wall.year, wall.month, wall.day),
            (stamp.year(), stamp.month(), stamp.day())
        );
        assert_eq!(
            (wall.hour, wall.minute, wall.second),
            (stamp.hour(), stamp.minute(), stamp.second())
        );
        assert_eq!(ours, theirs, "{line:?}");
    }
    // Most real lines take the fast path (else it saves nothing).
    assert!(
        fast * 2 > all,
        "{fast} of {all} lines read by the fast path"
    );
}

proptest::proptest! {
    /// Common-shaped lines with one byte changed or inserted anywhere: whenever the fast
    /// reader takes such a line, it reads what syslog_loose reads.
    #[test]
    fn the_common_header_reader_agrees_on_edited_lines(
        base in 0usize..6,
        at in 0usize..80,
        byte in proptest::sample::select(b" \t:[]-.0123456789aZ\xc3<>=\"|".to_vec()),
        insert in proptest::bool::ANY,
    ) {
        const LINES: [&str; 6] = [
            "Mar  1 00:00:03 web02.prod sshd[4048]: Connection closed by 1.2.3.4 port 22",
            "<38>Mar  1 00:00:03 web02.prod sshd[4048]: Connection closed by 1.2.3.4 port 22",
            "<134>Dec 31 23:59:59 ids01 CEF:0|Fortinet|FortiGate|7.2.5|300|Port scan|6|src=1.2.3.4",
            "Nov 24 10:00:01 host-1 sudo: alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
            "Dec 31 23:59:59 ids01 CEF:0|Fortinet|FortiGate|7.2.5|300|Port scan|6|src=1.2.3.4",
            "Feb 28 12:00:00 a b: c",
        ];
        let mut bytes = LINES[base].as_bytes().to_vec();
        let at = at.min(bytes.len());
        if insert || at == bytes.len() {
            bytes.insert(at, byte);
        } else {
            bytes[at] = byte;
        }
        let line = String::from_utf8_lossy(&bytes).into_owned();
        let now = at_time("2026-11-24T12:00:00Z");
        if let Some((ours, _)) = rfc3164_common(&line, |date| year_for(date, now)) {
            let theirs = syslog_loose::parse_message_with_year_tz(
                &line,
                |date| year_for(date, now),
                Some(FixedOffset::east_opt(0).unwrap()),
                Variant::Either,
            );
            proptest::prop_assert_eq!(ours, theirs, "{:?}", line);
        }
    }
}

fn at_time(text: &str) -> NaiveDateTime {
    at(text).naive_utc()
}

#[test]
fn stamps_written_from_the_wall_clock_are_what_chrono_gives() {
    // Every hour of a year (and its edges) in zones with DST, half- and quarter-hour
    // offsets and a half-hour DST shift: the stamps the hour cache writes equal
    // localize + set_time, and the cache is taken nearly always.
    let zones = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/St_Johns",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
    ];
    for zone in zones {
        let parser = parser(zone);
        let (mut fast, mut all) = (0, 0);
        let mut day = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        while day <= NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() {
            for hour in 0..24 {
                for (minute, second) in [
                    (0, 0),
                    (14, 59),
                    (15, 0),
                    (29, 59),
                    (30, 0),
                    (44, 1),
                    (59, 59),
                ] {
                    let wall = Wall {
                        year: day.year(),
                        month: day.month(),
                        day: day.day(),
                        hour,
                        minute,
                        second,
                        micros: 0,
                        offset_secs: 0,
                    };
                    all += 1;
                    let Some((local, utc)) = parser.wall_stamps(wall) else {
                        continue;
                    };
                    fast += 1;
                    let text = format!("{} host sshd[1]: x", day.format("%b %e"));
                    let read = day.and_hms_opt(hour, minute, second).unwrap();
                    let mut slow = Draft::blank([b'0'; mozdef::eventid::EVENT_ID_LEN], "s");
                    slow.set_time(&parser.localize(&text, read.and_utc().fixed_offset()));
                    assert_eq!(
                        (local.as_str(), utc.as_str()),
                        (slow.timestamp.as_str(), slow.utctimestamp.as_str()),
                        "{zone} {read}"
                    );
                }
            }
            day = day.succ_opt().unwrap();
        }
        assert!(
            fast * 10 > all * 9,
            "{zone}: {fast} of {all} from the cache"
        );
    }
}

#[test]
fn a_line_in_a_dst_change_hour_is_timed_as_before() {
    // Europe/Berlin skips 02:00–03:00 on 29 March 2026 and repeats 02:00–03:00 on
    // 25 October: both hours are read by localize (the skipped one with the offset in
    // force before it, the repeated one as its first).
    let parser = parser("Europe/Berlin");
    let read = at("2026-11-24T12:00:00Z");
    let context = LineContext {
        source: "/var/log/auth.log",
        source_identity: "file:1:2:3",
        offset: 0,
        read_at: read,
    };
    for (line, local, utc) in [
        (
            "Mar 29 02:30:00 host sshd[1]: x",
            "2026-03-29T02:30:00+01:00",
            "2026-03-29T01:30:00+00:00",
        ),
        (
            "Oct 25 02:30:00 host sshd[1]: x",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T00:30:00+00:00",
        ),
        (
            "Oct 25 03:30:00 host sshd[1]: x",
            "2026-10-25T03:30:00+01:00",
            "2026-10-25T02:30:00+00:00",
        ),
    ] {
        let event = parser.parse(line.as_bytes(), &context);
        assert_eq!(
            (event.timestamp.as_str(), event.utctimestamp.as_str()),
            (local, utc),
            "{line}"
        );
    }
}

#[test]
fn the_year_shortcut_picks_what_the_closest_year_search_picks() {
    // The search over last, this and next year, as year_for did it before its shortcut.
    fn searched(date: IncompleteDate, now: NaiveDateTime) -> i32 {
        let (month, day, hour, minute, second) = date;
        let candidate = |year: i32| {
            NaiveDate::from_ymd_opt(year, month, day)
                .and_then(|d| d.and_hms_opt(hour.min(23), minute.min(59), second.min(59)))
        };
        let limit = now + Duration::days(1);
        let this_year = now.year();
        [this_year - 1, this_year, this_year + 1]
            .into_iter()
            .filter_map(|year| candidate(year).map(|at| (year, at)))
            .filter(|(_, at)| *at <= limit)
            .min_by_key(|(_, at)| (now - *at).num_seconds().abs())
            .map(|(year, _)| year)
            .unwrap_or_else(|| year_for(date, now))
    }
    let kept = parser("UTC");
    let mut now = at_time("2023-12-25T00:00:00Z");
    while now < at_time("2025-01-10T00:00:00Z") {
        for month in 1..=12 {
            for day in 1..=31 {
                for (hour, minute, second) in [(0, 0, 0), (11, 30, 0), (23, 59, 59)] {
                    let date = (month, day, hour, minute, second);
                    let want = searched(date, now);
                    assert_eq!(year_for(date, now), want, "{date:?} at {now}");
                    // Kept by day: asked again on the same day, at another time.
                    assert_eq!(kept.year_for(date, now), want, "{date:?} at {now}");
                    let later = now.date().and_hms_opt(23, 59, 59).unwrap();
                    assert_eq!(
                        kept.year_for(date, later),
                        searched(date, later),
                        "{date:?} at {later}"
                    );
                }
            }
        }
        now += Duration::hours(37);
    }
}
