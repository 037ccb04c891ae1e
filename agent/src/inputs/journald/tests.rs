//! A real journal file, made from journal export format by Debian's
//! `systemd-journal-remote`, read by a real `journalctl`.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use std::path::PathBuf;

use super::*;
use crate::host::HostIdentity;
use crate::inputs::ReadEvent;
use crate::parsers::TimeZoneChoice;

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Writes a journal file holding `entries` (identifier, facility, message).
fn journal(dir: &Path, entries: &[(&str, u8, &str)]) -> PathBuf {
    assert!(
        Path::new(JOURNAL_REMOTE).exists(),
        "{JOURNAL_REMOTE} is missing: apt-get install systemd-journal-remote (.ci/run does)"
    );
    let mut export = String::new();
    for (i, (identifier, facility, message)) in entries.iter().enumerate() {
        let i = i + 1;
        export.push_str(&format!(
            "__CURSOR=s=0;i={i}\n__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={i}\n_BOOT_ID=0123456789abcdef0123456789abcdef\nMESSAGE={message}\nSYSLOG_IDENTIFIER={identifier}\n_PID={}\n_HOSTNAME=jhost\nPRIORITY=5\nSYSLOG_FACILITY={facility}\n\n",
            1_795_335_243_000_000u64 + i as u64 * 1_000_000,
            1000 + i,
        ));
    }
    let export_path = dir.join("export.txt");
    std::fs::write(&export_path, export).unwrap();
    let out = dir.join("test.journal");
    let status = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", out.display()))
        .arg(&export_path)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "systemd-journal-remote failed");
    out
}

fn input(file: &Path, state: &Path) -> (JournaldInput, Arc<Mutex<CheckpointStore>>) {
    let checkpoints = Arc::new(Mutex::new(CheckpointStore::load(state).unwrap()));
    let input = JournaldInput {
        settings: JournaldSettings {
            journalctl: PathBuf::from("journalctl"),
            directories: Vec::new(),
            files: vec![file.to_path_buf()],
            facilities: vec![4, 10],
            identifiers: vec!["sshd".into(), "sudo".into()],
            start_at: StartAt::Beginning,
        },
        parser: LineParser::new(
            HostIdentity::named("agent.example.com"),
            TimeZoneChoice::parse("UTC").unwrap(),
        ),
        checkpoints: Arc::clone(&checkpoints),
        metrics: Arc::new(Metrics::default()),
    };
    (input, checkpoints)
}

/// Runs the input until `n` events arrived (10 s at most), then a little longer to
/// catch extras, and stops it.
fn collect(input: JournaldInput, n: usize) -> Vec<ReadEvent> {
    let (tx, mut rx) = mpsc::channel(16);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let handle = std::thread::spawn(move || input.run(tx, thread_stop));
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut settle: Option<Instant> = None;
    loop {
        match rx.try_recv() {
            Ok(chunk) => events.extend(chunk.events()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        if events.len() >= n && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_millis(500));
        }
        if settle.is_some_and(|t| Instant::now() >= t) || Instant::now() >= deadline {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
    while let Ok(chunk) = rx.try_recv() {
        events.extend(chunk.events());
    }
    events
}

#[test]
fn journal_entries_become_events_and_resume_after_their_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let file = journal(
        dir.path(),
        &[
            (
                "sshd",
                4,
                "Accepted password for alice from 192.0.2.1 port 22 ssh2",
            ),
            ("CRON", 9, "(root) CMD (true)"),
            (
                "sudo",
                10,
                "bob : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
            ),
            (
                "sshd",
                4,
                "Failed password for root from 192.0.2.2 port 2222 ssh2",
            ),
        ],
    );
    let state = dir.path().join("state");
    let (reader, checkpoints) = input(&file, &state);
    let events = collect(reader, 3);
    let summaries: Vec<&str> = events.iter().map(|e| e.event.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "Accepted password for alice from 192.0.2.1 port 22 ssh2",
            "bob : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
            "Failed password for root from 192.0.2.2 port 2222 ssh2",
        ],
        "CRON (facility 9, not listed) is filtered out"
    );
    let first = &events[0].event;
    assert_eq!(first.hostname, "jhost");
    assert_eq!(first.processname, "sshd");
    assert_eq!(first.processid, 1001);
    assert_eq!(first.severity, "NOTICE");
    assert_eq!(first.source, "journald");
    assert_eq!(first.category, "authentication");
    assert_eq!(first.details["username"], "alice");
    assert_eq!(first.utctimestamp, "2026-11-22T08:14:04+00:00");
    let cursor = events[0].cursor.as_deref().unwrap();
    assert_eq!(
        first.eventid,
        mozdef::eventid::event_id("agent.example.com", "journald", cursor)
    );
    assert_eq!(events[1].event.tags, ["sudo"]);

    // The shipper delivered the first two; a restart reads only the third.
    {
        let mut store = checkpoints.lock().unwrap();
        store.set_journal_cursor(events[1].cursor.as_deref().unwrap());
        store.save().unwrap();
    }
    let (reader, _) = input(&file, &state);
    let again = collect(reader, 1);
    assert_eq!(
        again.len(),
        1,
        "{:?}",
        again.iter().map(|e| &e.event.summary).collect::<Vec<_>>()
    );
    assert_eq!(
        again[0].event.eventid, events[2].event.eventid,
        "a re-read entry keeps its id"
    );
}

#[test]
fn arguments_filter_by_facility_or_identifier_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (mut reader, _) = input(&dir.path().join("x.journal"), dir.path());
    reader.settings.files.clear();
    reader.settings.start_at = StartAt::End;
    assert_eq!(
        reader.arguments(None, None),
        [
            "--follow",
            "--output=json",
            "--no-pager",
            "--since=now",
            "SYSLOG_FACILITY=4",
            "SYSLOG_FACILITY=10",
            "+",
            "SYSLOG_IDENTIFIER=sshd",
            "SYSLOG_IDENTIFIER=sudo",
        ]
    );
    let args = reader.arguments(Some("s=1;i=2"), None);
    assert!(args.contains(&"--after-cursor=s=1;i=2".to_string()));
    assert!(!args.iter().any(|a| a.starts_with("--since")));
    // Lost checkpoints: from when they were saved, not now (a cursor still wins).
    let saved = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_335_246);
    let args = reader.arguments(None, Some(saved));
    assert!(
        args.contains(&"--since=@1795335245".to_string()),
        "{args:?}"
    );
    let args = reader.arguments(Some("s=1;i=2"), Some(saved));
    assert!(!args.iter().any(|a| a.starts_with("--since")));
}

#[test]
fn lost_checkpoints_with_start_at_end_read_the_journal_from_their_last_save() {
    // The regression: a corrupt checkpoint made `end` skip what came while the agent
    // was down. Entries are a second apart from 1_795_335_244 s.
    let dir = tempfile::tempdir().unwrap();
    let messages: Vec<String> = (1..=6)
        .map(|i| format!("Failed password for root from 192.0.2.{i} port 22 ssh2"))
        .collect();
    let entries: Vec<(&str, u8, &str)> = messages.iter().map(|m| ("sshd", 4, m.as_str())).collect();
    let file = journal(dir.path(), &entries);
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let checkpoints = state.join("checkpoints.json");
    std::fs::write(&checkpoints, b"{\"version\": 1, \"files\": {tor").unwrap();
    // Last saved just after the third entry.
    let saved = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_335_246_500);
    std::fs::File::options()
        .write(true)
        .open(&checkpoints)
        .unwrap()
        .set_modified(saved)
        .unwrap();
    let (mut reader, _) = input(&file, &state);
    reader.settings.start_at = StartAt::End;
    let events = collect(reader, 5);
    let summaries: Vec<&str> = events.iter().map(|e| e.event.summary.as_str()).collect();
    // `--since=@1795335245`: entry 2 (at 245 s) on; with `--since=now`, nothing.
    assert_eq!(
        summaries,
        messages[1..],
        "from a second before the last save on"
    );
}
