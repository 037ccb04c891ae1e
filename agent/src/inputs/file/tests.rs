//! Real files in a temporary directory, rotated the way logrotate does it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::discover::Discovery;
use super::*;
use crate::host::HostIdentity;
use crate::inputs::ReadEvent;
use crate::parsers::TimeZoneChoice;

struct Running {
    rx: mpsc::Receiver<Chunk>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    pending: Vec<ReadEvent>,
}

fn start(paths: &[&Path], start_at: StartAt, max_line_bytes: usize, state: &Path) -> Running {
    start_reading(paths, false, start_at, max_line_bytes, state)
}

fn start_reading(
    paths: &[&Path],
    read_gzip: bool,
    start_at: StartAt,
    max_line_bytes: usize,
    state: &Path,
) -> Running {
    let checkpoints = Arc::new(Mutex::new(CheckpointStore::load(state).unwrap()));
    let metrics = Arc::new(Metrics::default());
    let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
    let input = FileInput {
        settings: FileInputSettings {
            discovery: Discovery::build(&paths, &[], read_gzip).unwrap(),
            start_at,
            poll_interval: Duration::from_millis(20),
            scan_interval: Duration::from_millis(100),
            rotated_idle: Duration::from_millis(300),
            partial_flush: Duration::from_millis(400),
            max_line_bytes,
        },
        parser: LineParser::new(
            HostIdentity::named("test.example.com"),
            TimeZoneChoice::parse("UTC").unwrap(),
        ),
        checkpoints,
        metrics: Arc::clone(&metrics),
    };
    let (tx, rx) = mpsc::channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let handle = std::thread::spawn(move || input.run(tx, thread_stop));
    Running {
        rx,
        stop,
        handle: Some(handle),
        metrics,
        pending: Vec::new(),
    }
}

/// Reads the first `n` lines of `log` with a fresh input and records line `delivered`
/// as the last one in the buffer, as the pipeline does; returns what was read.
fn read_and_checkpoint(log: &Path, state: &Path, n: usize, delivered: usize) -> Vec<ReadEvent> {
    let mut input = start(&[log], StartAt::Beginning, 1024, state);
    let events = input.take(n);
    input.stop();
    let mut store = CheckpointStore::load(state).unwrap();
    store.set(
        &events[delivered].identity,
        &log.to_string_lossy(),
        events[delivered].next_offset,
    );
    store.save().unwrap();
    events
}

impl Running {
    /// The next `n` events, failing after 10 s.
    fn take(&mut self, n: usize) -> Vec<ReadEvent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.pending.len() < n {
            match self.rx.try_recv() {
                Ok(chunk) => self.pending.extend(chunk.events()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => panic!(
                    "wanted {n} events, got {}: {:?}",
                    self.pending.len(),
                    summaries(&self.pending)
                ),
            }
        }
        self.pending.drain(..n).collect()
    }

    /// Asserts nothing more arrives for a while.
    fn quiet(&mut self) {
        std::thread::sleep(Duration::from_millis(200));
        while let Ok(chunk) = self.rx.try_recv() {
            self.pending.extend(chunk.events());
        }
        assert!(
            self.pending.is_empty(),
            "unexpected events: {:?}",
            summaries(&self.pending)
        );
    }

    fn stop(mut self) -> Arc<Metrics> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            handle.join().unwrap();
        }
        Arc::clone(&self.metrics)
    }
}

fn summaries(events: &[ReadEvent]) -> Vec<String> {
    events.iter().map(|e| e.event.summary.clone()).collect()
}

fn append(path: &Path, text: &[u8]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text).unwrap();
}

#[test]
fn appended_lines_arrive_once_and_a_partial_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"first\nsecond\nthird-part");
    let mut input = start(&[&log], StartAt::Beginning, 1024, &dir.path().join("state"));
    assert_eq!(summaries(&input.take(2)), ["first", "second"]);
    input.quiet();
    append(&log, b"-done\n\n  \nfourth\n");
    let events = input.take(2);
    assert_eq!(summaries(&events), ["third-part-done", "fourth"]);
    // Offsets point at line starts, and the checkpoint position after each line.
    assert_eq!(
        events[0].next_offset,
        "first\nsecond\nthird-part-done\n".len() as u64
    );
    input.quiet();
    input.stop();
}

#[test]
fn start_at_end_skips_what_was_there_but_not_files_that_appear_later() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.log");
    let later = dir.path().join("later.log");
    append(&old, b"old line\npartial");
    let mut input = start(
        &[&old, &later],
        StartAt::End,
        1024,
        &dir.path().join("state"),
    );
    input.quiet();
    append(&old, b" tail\nnew line\n");
    assert_eq!(summaries(&input.take(2)), ["partial tail", "new line"]);
    append(&later, b"appeared\n");
    assert_eq!(summaries(&input.take(1)), ["appeared"]);
    input.stop();
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"one\ntwo\n");
    let mut input = start(&[&log], StartAt::Beginning, 1024, &dir.path().join("state"));
    assert_eq!(summaries(&input.take(2)), ["one", "two"]);
    // logrotate `create`: rename, then a new file under the old name.
    fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append(&log, b"three\nfour\n");
    let events = input.take(2);
    assert_eq!(summaries(&events), ["three", "four"]);
    assert_ne!(events[0].identity.ino, 0);
    input.quiet();
    let metrics = input.stop();
    assert_eq!(metrics.rotations.load(Ordering::Relaxed), 1);
}

#[test]
fn copytruncate_is_detected_and_the_file_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"before one\nbefore two\n");
    let mut input = start(&[&log], StartAt::Beginning, 1024, &dir.path().join("state"));
    let before = input.take(2);
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    append(&log, b"after\n");
    let after = input.take(1);
    assert_eq!(summaries(&after), ["after"]);
    assert_ne!(
        after[0].event.eventid, before[0].event.eventid,
        "new content, new ids"
    );
    input.quiet();
    let metrics = input.stop();
    assert_eq!(metrics.truncations.load(Ordering::Relaxed), 1);
}

#[test]
fn a_long_line_is_cut_and_flagged_and_the_next_line_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    let mut text = vec![b'x'; 10 * 1024 * 1024];
    text.extend_from_slice(b"\nnormal\n");
    append(&log, &text);
    let mut input = start(&[&log], StartAt::Beginning, 1000, &dir.path().join("state"));
    let events = input.take(2);
    assert_eq!(events[0].event.summary.len(), 1000);
    assert_eq!(
        events[0].event.details["truncated"],
        serde_json::Value::Bool(true)
    );
    assert_eq!(events[1].event.summary, "normal");
    assert!(!events[1].event.details.contains_key("truncated"));
    let metrics = input.stop();
    assert_eq!(metrics.lines_truncated.load(Ordering::Relaxed), 1);
}

#[test]
fn invalid_utf8_is_replaced_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bytes.log");
    append(&log, b"bad \xff\xfe bytes\n");
    let mut input = start(&[&log], StartAt::Beginning, 1024, &dir.path().join("state"));
    assert_eq!(summaries(&input.take(1)), ["bad \u{fffd}\u{fffd} bytes"]);
    input.stop();
}

#[test]
fn a_checkpointed_file_resumes_after_its_last_delivered_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("auth.log");
    append(&log, b"one\ntwo\n");
    let mut input = start(&[&log], StartAt::Beginning, 1024, &state);
    let events = input.take(2);
    input.stop();
    // What the shipper does once the collector has the first line.
    let mut store = CheckpointStore::load(&state).unwrap();
    store.set(
        &events[0].identity,
        &log.to_string_lossy(),
        events[0].next_offset,
    );
    store.save().unwrap();

    append(&log, b"three\n");
    let mut input = start(&[&log], StartAt::Beginning, 1024, &state);
    let again = input.take(2);
    assert_eq!(summaries(&again), ["two", "three"]);
    assert_eq!(
        again[0].event.eventid, events[1].event.eventid,
        "a re-read line keeps its id"
    );
    input.quiet();
    input.stop();
}

#[test]
fn a_recreated_file_with_other_content_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("auth.log");
    append(&log, b"original first line\n");
    let first = read_and_checkpoint(&log, &state, 1, 0);

    fs::remove_file(&log).unwrap();
    append(&log, b"replacement\n");
    // Not the checkpointed file (other first line, maybe the same inode); the path was
    // read before, so this is a new file written since, read from its start despite
    // `end`, with ids of its own.
    let mut input = start(&[&log], StartAt::End, 1024, &state);
    let replaced = input.take(1);
    assert_eq!(summaries(&replaced), ["replacement"]);
    assert_ne!(replaced[0].event.eventid, first[0].event.eventid);
    input.quiet();
    input.stop();
}

#[test]
fn a_file_rotated_while_the_agent_was_stopped_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("auth.log");
    append(&log, b"before the stop\n");
    read_and_checkpoint(&log, &state, 1, 0);

    fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append(&log, b"written while stopped\n");
    // `end` is for files never seen; this path was read before, so this is a rotation.
    let mut input = start(&[&log], StartAt::End, 1024, &state);
    assert_eq!(summaries(&input.take(1)), ["written while stopped"]);
    input.quiet();
    input.stop();
}

fn start_glob(pattern: &Path, state: &Path) -> Running {
    start(&[pattern], StartAt::Beginning, 1024, state)
}

#[test]
fn a_glob_follows_200_files_and_ones_created_later() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..200 {
        append(
            &dir.path().join(format!("app{i:03}.log")),
            format!("file {i} line 1\n").as_bytes(),
        );
    }
    append(&dir.path().join("ignored.txt"), b"not matched\n");
    append(&dir.path().join("old.log.gz"), b"not read by default\n");
    let mut input = start_glob(&dir.path().join("*.log"), &dir.path().join("state"));
    let mut seen: Vec<String> = summaries(&input.take(200));
    seen.sort();
    assert_eq!(seen.first().map(String::as_str), Some("file 0 line 1"));
    assert_eq!(seen.len(), 200);
    input.quiet();
    // A file that appears later is found and read from its start.
    append(&dir.path().join("zz-new.log"), b"late file\n");
    assert_eq!(summaries(&input.take(1)), ["late file"]);
    for i in (0..200).step_by(50) {
        append(
            &dir.path().join(format!("app{i:03}.log")),
            format!("file {i} line 2\n").as_bytes(),
        );
    }
    let mut more = summaries(&input.take(4));
    more.sort();
    assert_eq!(
        more,
        [
            "file 0 line 2",
            "file 100 line 2",
            "file 150 line 2",
            "file 50 line 2"
        ]
    );
    input.quiet();
    input.stop();
}

#[test]
fn lines_written_to_a_rotated_file_before_the_writer_reopens_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let rotated = dir.path().join("auth.log.1");
    append(&log, b"before\n");
    let mut input = start(&[&log], StartAt::Beginning, 1024, &dir.path().join("state"));
    assert_eq!(summaries(&input.take(1)), ["before"]);
    // logrotate renames and creates; the writer still holds the old file open.
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    fs::rename(&log, &rotated).unwrap();
    append(&log, b"new file\n");
    std::thread::sleep(Duration::from_millis(100));
    writer.write_all(b"late write to the old file\n").unwrap();
    drop(writer);
    let mut got = summaries(&input.take(2));
    got.sort();
    assert_eq!(got, ["late write to the old file", "new file"]);
    input.quiet();
    input.stop();
}

#[test]
fn an_idle_partial_line_is_sent_as_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"whole\nno newline yet");
    let mut input = start(&[&log], StartAt::Beginning, 1024, &dir.path().join("state"));
    let events = input.take(2);
    assert_eq!(summaries(&events), ["whole", "no newline yet"]);
    assert_eq!(events[1].next_offset, "whole\nno newline yet".len() as u64);
    append(&log, b"\nnext\n");
    assert_eq!(summaries(&input.take(1)), ["next"]);
    input.quiet();
    input.stop();
}

#[test]
fn a_deleted_file_is_read_to_its_end_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gone.log");
    append(&log, b"first\n");
    let mut input = start_glob(&dir.path().join("*.log"), &dir.path().join("state"));
    assert_eq!(summaries(&input.take(1)), ["first"]);
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    fs::remove_file(&log).unwrap();
    writer.write_all(b"written after unlink\n").unwrap();
    drop(writer);
    assert_eq!(summaries(&input.take(1)), ["written after unlink"]);
    input.quiet();
    input.stop();
}

#[test]
fn inode_reuse_with_other_content_is_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("auth.log");
    append(&log, b"first generation\n");
    let first = read_and_checkpoint(&log, &state, 1, 0);
    // Same path, and on most filesystems the same inode number, other first line.
    fs::remove_file(&log).unwrap();
    append(&log, b"second generation, longer than the first one\n");
    let mut input = start(&[&log], StartAt::Beginning, 1024, &state);
    let second = input.take(1);
    assert_eq!(
        summaries(&second),
        ["second generation, longer than the first one"]
    );
    assert_ne!(second[0].identity, first[0].identity);
    input.quiet();
    input.stop();
}

#[test]
fn gzip_rotated_files_are_skipped_by_default_and_read_whole_when_asked() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("auth.log.2.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    encoder
        .write_all(b"compressed one\ncompressed two\n")
        .unwrap();
    encoder.finish().unwrap();
    append(&dir.path().join("auth.log"), b"plain\n");
    let pattern = dir.path().join("auth.log*");

    let mut input = start(
        &[&pattern],
        StartAt::Beginning,
        1024,
        &dir.path().join("state-a"),
    );
    assert_eq!(summaries(&input.take(1)), ["plain"]);
    input.quiet();
    input.stop();

    let mut running = start_reading(
        &[&pattern],
        true,
        StartAt::Beginning,
        1024,
        &dir.path().join("state-b"),
    );
    let mut got = summaries(&running.take(3));
    got.sort();
    assert_eq!(got, ["compressed one", "compressed two", "plain"]);
    running.quiet();
    let metrics = running.stop();
    assert_eq!(
        metrics.truncations.load(Ordering::Relaxed),
        0,
        "a .gz file is never 'truncated'"
    );
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `name` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_file_swapped_for_a_fifo_is_skipped_and_blocks_neither_the_others_nor_a_stop() {
    // The regression: the one reading thread blocked in open(2) on the FIFO forever.
    // b.log's directory appears after start, so no inotify watch on it wakes a rescan
    // (which lets go of a path that names no file) before the input, woken by a.log,
    // looks at what b.log has become: as for any log directory made after start.
    let dir = tempfile::tempdir().unwrap();
    let late = dir.path().join("late");
    let (a, b) = (dir.path().join("a.log"), late.join("b.log"));
    append(&a, b"a one\n");
    let mut input = start(
        &[&a, &b],
        StartAt::Beginning,
        1024,
        &dir.path().join("state"),
    );
    assert_eq!(summaries(&input.take(1)), ["a one"]);
    fs::create_dir(&late).unwrap();
    append(&b, b"b one\n");
    assert_eq!(summaries(&input.take(1)), ["b one"]);
    // b.log swapped between a FIFO nobody writes to and a file, ending a FIFO, while
    // a.log is written to.
    let (decoy, fifo) = (late.join("swap.file"), late.join("swap.fifo"));
    let mut want = Vec::new();
    for i in 0..6 {
        if i > 0 {
            fs::write(&decoy, b"b decoy\n").unwrap();
            fs::rename(&decoy, &b).unwrap();
        }
        mkfifo(&fifo);
        fs::rename(&fifo, &b).unwrap();
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(10));
            let line = format!("a during {}", want.len());
            append(&a, format!("{line}\n").as_bytes());
            want.push(line);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut from_a = Vec::new();
    while from_a.len() < want.len() {
        assert!(Instant::now() < deadline, "blinded: {from_a:?}");
        match input.rx.try_recv() {
            Ok(chunk) => from_a.extend(
                chunk
                    .events()
                    .into_iter()
                    .map(|e| e.event.summary)
                    .filter(|s| s.starts_with('a')),
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert_eq!(from_a, want);
    let stopping = Instant::now();
    let metrics = input.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );
    assert!(
        metrics.files_refused.load(Ordering::Relaxed) >= 1,
        "the FIFO was never met: the test proves nothing"
    );
}

#[test]
fn a_link_planted_to_a_secret_is_not_read_and_the_directory_goes_on_being_read() {
    // The regression: a user owning a watched directory planted `x.log -> /etc/shadow`
    // and the agent, able to read any file, shipped it.
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let secrets = dir.path().join("etc");
    fs::create_dir_all(&logs).unwrap();
    fs::create_dir_all(&secrets).unwrap();
    let shadow = secrets.join("shadow");
    append(&shadow, b"root:$6$secret-hash:19000:0:99999:7:::\n");
    append(&logs.join("app.log"), b"app one\n");
    std::os::unix::fs::symlink(&shadow, logs.join("x.log")).unwrap();
    let pattern = logs.join("*.log");
    let mut input = start_glob(&pattern, &dir.path().join("state"));
    assert_eq!(summaries(&input.take(1)), ["app one"]);
    // Planted after start too, and retargeted.
    std::os::unix::fs::symlink(&shadow, logs.join("y.log")).unwrap();
    append(&logs.join("app.log"), b"app two\n");
    assert_eq!(summaries(&input.take(1)), ["app two"]);
    append(&shadow, b"alice:$6$another-hash:19000:0:99999:7:::\n");
    std::thread::sleep(Duration::from_millis(300));
    input.quiet();
    let metrics = input.stop();
    assert_eq!(
        metrics.files_refused.load(Ordering::Relaxed),
        2,
        "x.log and y.log, each once"
    );
}

#[test]
fn a_link_is_followed_only_to_a_watched_file_owned_by_root_or_the_links_owner() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let other = dir.path().join("other");
    fs::create_dir_all(&logs).unwrap();
    fs::create_dir_all(&other).unwrap();
    let discovery =
        Discovery::build(&[logs.join("*.log"), other.join("*.log")], &[], false).unwrap();
    let refused = |path: &Path| match open_watched(path, &discovery) {
        Ok(_) => None,
        Err(OpenError::Refused(reason)) => Some(reason),
        Err(OpenError::Io(e)) => panic!("{}: {e}", path.display()),
    };

    let watched = other.join("watched.log");
    append(&watched, b"line\n");
    std::os::unix::fs::symlink(&watched, logs.join("to-watched.log")).unwrap();
    assert_eq!(refused(&logs.join("to-watched.log")), None);
    assert_eq!(refused(&watched), None, "a plain file");

    let unwatched = other.join("secret.key");
    append(&unwatched, b"key\n");
    std::os::unix::fs::symlink(&unwatched, logs.join("to-secret.log")).unwrap();
    let reason = refused(&logs.join("to-secret.log")).unwrap();
    assert!(reason.contains("do not match"), "{reason}");
    // Through a chain of links, and a relative one.
    std::os::unix::fs::symlink("to-secret.log", logs.join("chain.log")).unwrap();
    assert!(refused(&logs.join("chain.log")).is_some());
    // Excluded paths are not watched.
    let excluding = Discovery::build(
        &[logs.join("*.log"), other.join("*.log")],
        &[watched.display().to_string()],
        false,
    )
    .unwrap();
    assert!(matches!(
        open_watched(&logs.join("to-watched.log"), &excluding),
        Err(OpenError::Refused(_))
    ));

    let fifo = logs.join("pipe.log");
    mkfifo(&fifo);
    let reason = refused(&fifo).unwrap();
    assert!(reason.contains("FIFO"), "{reason}");
    std::os::unix::fs::symlink(&fifo, other.join("to-pipe.log")).unwrap();
    assert!(refused(&other.join("to-pipe.log")).is_some());
    assert!(refused(&logs).is_some(), "a directory");

    if !is_root() {
        return;
    }
    // Ownership (needs root to give files away): a link by uid 65534 to a watched file
    // of uid 65533 is refused; to its own file or root's, followed.
    use std::os::unix::fs::{chown, lchown};
    let link = logs.join("by-nobody.log");
    std::os::unix::fs::symlink(&watched, &link).unwrap();
    lchown(&link, Some(65534), None).unwrap();
    assert_eq!(refused(&link), None, "the target is root's");
    chown(&watched, Some(65533), None).unwrap();
    let reason = refused(&link).unwrap();
    assert!(reason.contains("65533"), "{reason}");
    chown(&watched, Some(65534), None).unwrap();
    assert_eq!(refused(&link), None, "the link owner's own file");
}

#[test]
fn lost_checkpoints_with_start_at_end_read_files_from_their_start_not_their_end() {
    // The regression: a corrupt checkpoints file made `start_at = "end"` skip every
    // line written while the agent was down.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let state = dir.path().join("state");
    append(&log, b"one\ntwo\nthree\n");
    let before = read_and_checkpoint(&log, &state, 3, 2);
    // Written while the agent is down; then the checkpoints are damaged.
    append(&log, b"four\nfive\n");
    fs::write(state.join("checkpoints.json"), b"{\"version\": 1, \"fil").unwrap();
    for restart in 0..2 {
        // Twice: a restart before anything was saved still knows they were lost.
        let mut input = start(&[&log], StartAt::End, 1024, &state);
        let events = input.take(5);
        assert_eq!(
            summaries(&events),
            ["one", "two", "three", "four", "five"],
            "start {restart}"
        );
        for (again, first) in events.iter().zip(&before) {
            assert_eq!(
                again.event.eventid, first.event.eventid,
                "a line sent again keeps its id, so the collector stores it once"
            );
        }
        input.quiet();
        input.stop();
    }
    // Once positions are saved again, `end` is `end` for files never seen.
    let mut store = CheckpointStore::load(&state).unwrap();
    assert!(store.lost_since().is_some());
    let len = fs::metadata(&log).unwrap().len();
    store.set(&before[0].identity, &log.to_string_lossy(), len);
    store.save().unwrap();
    let other = dir.path().join("other.log");
    append(&other, b"old\n");
    let mut input = start(&[&log, &other], StartAt::End, 1024, &state);
    input.quiet();
    append(&other, b"new\n");
    assert_eq!(summaries(&input.take(1)), ["new"]);
    input.stop();
}
