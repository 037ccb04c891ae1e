//! Real files: torn writes, corrupt records, restarts, segment rolls, a full buffer.

use std::fs::{self, OpenOptions};
use std::io::Write;

use super::*;

fn payloads(buffer: &mut DiskBuffer, max: usize) -> (Vec<String>, Option<Position>) {
    let mut batch = Batch::default();
    buffer.read_into(max, &mut batch).unwrap();
    (
        batch
            .records()
            .iter()
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
            .collect(),
        batch.last(),
    )
}

fn fill(buffer: &mut DiskBuffer, from: usize, to: usize) {
    for i in from..to {
        buffer.append(format!("event {i}").as_bytes()).unwrap();
    }
    buffer.sync().unwrap();
}

fn names(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("event {i}")).collect()
}

#[test]
fn records_come_back_in_order_and_unacknowledged_ones_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery, Recovery::default());
    fill(&mut buffer, 0, 10);
    let (read, _) = payloads(&mut buffer, 4);
    assert_eq!(read, names(0, 4));
    let (read, last) = payloads(&mut buffer, 3);
    assert_eq!(read, names(4, 7));
    buffer.ack(last.unwrap()).unwrap();
    drop(buffer);

    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery.records, 3, "7 acknowledged, 3 left");
    let (read, _) = payloads(&mut buffer, 100);
    assert_eq!(read, names(7, 10));
    fill(&mut buffer, 10, 12);
    let (read, _) = payloads(&mut buffer, 100);
    assert_eq!(read, names(10, 12));
}

#[test]
fn a_torn_write_at_the_tail_is_cut_and_everything_before_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    fill(&mut buffer, 0, 3);
    drop(buffer);
    let segment = segment_path(dir.path(), 0);
    let good = fs::metadata(&segment).unwrap().len();
    // A crash in the middle of a record: a header promising 100 bytes, 10 written.
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&MAGIC).unwrap();
    file.write_all(&100u32.to_le_bytes()).unwrap();
    file.write_all(&0u32.to_le_bytes()).unwrap();
    file.write_all(b"0123456789").unwrap();
    drop(file);

    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery.records, 3);
    assert_eq!(recovery.torn_bytes, 22);
    assert_eq!(
        recovery.lost,
        vec![],
        "torn, not lost: its lines are read again"
    );
    assert_eq!(fs::metadata(&segment).unwrap().len(), good);
    fill(&mut buffer, 3, 4);
    let (read, _) = payloads(&mut buffer, 100);
    assert_eq!(read, names(0, 4), "appends continue after the cut");
    drop(buffer);

    // Half a header, and the bytes tests/tests/delivery.rs tears a segment with (a
    // length without the magic), are torn tails too.
    for tail in [
        &MAGIC[..3],
        &[0xf4, 0x01, 0, 0, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab][..],
    ] {
        let good = fs::metadata(&segment).unwrap().len();
        OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(tail)
            .unwrap();
        let (_, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
        assert_eq!(recovery.torn_bytes, tail.len() as u64, "{tail:?}");
        assert_eq!(recovery.lost, vec![], "{tail:?}");
        assert_eq!(fs::metadata(&segment).unwrap().len(), good);
    }
}

/// Each record of `fill` is 12 bytes of header and `event {i}`.
fn record_len(i: usize) -> usize {
    HEADER as usize + format!("event {i}").len()
}

fn record_start(i: usize) -> usize {
    (0..i).map(record_len).sum()
}

#[test]
fn one_flipped_byte_mid_segment_loses_that_record_only() {
    // The regression: one bad byte in record 1 of 300 lost the 299 after it.
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    fill(&mut buffer, 0, 300);
    drop(buffer);
    let segment = segment_path(dir.path(), 0);
    let mut bytes = fs::read(&segment).unwrap();
    let len = bytes.len();
    bytes[record_start(150) + HEADER as usize + 3] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();

    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery.records, 299);
    assert_eq!(recovery.torn_bytes, 0);
    assert_eq!(
        recovery.lost,
        vec![LostStretch {
            segment: 0,
            offset: record_start(150) as u64,
            bytes: record_len(150) as u64,
            records: 1,
        }]
    );
    assert_eq!(fs::metadata(&segment).unwrap().len(), len as u64, "not cut");
    let mut want = names(0, 150);
    want.extend(names(151, 300));
    let (read, last) = payloads(&mut buffer, 1000);
    assert_eq!(read, want);
    // Appends go on after the kept records; once delivered, the stretch is not
    // reported again.
    buffer.ack(last.unwrap()).unwrap();
    fill(&mut buffer, 300, 302);
    drop(buffer);
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery.lost, vec![]);
    assert_eq!(payloads(&mut buffer, 100).0, names(300, 302));
}

#[test]
fn a_flipped_byte_anywhere_but_the_last_record_loses_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    fill(&mut buffer, 0, 12);
    drop(buffer);
    let segment = segment_path(dir.path(), 0);
    let good = fs::read(&segment).unwrap();
    for at in 0..record_start(11) {
        let hit = (0..12).rfind(|i| record_start(*i) <= at).unwrap();
        for flip in [0x01, 0x80, 0xff] {
            let mut bytes = good.clone();
            bytes[at] ^= flip;
            fs::write(&segment, &bytes).unwrap();
            // (A stretch at the ack point moves it past, on disk too.)
            let _ = fs::remove_file(dir.path().join("ack"));
            let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
            let context = format!("byte {at} of record {hit} ^ {flip:#x}: {recovery:?}");
            assert_eq!(recovery.records, 11, "{context}");
            assert_eq!(recovery.lost_records(), 1, "{context}");
            assert_eq!(
                recovery.lost[0].offset,
                record_start(hit) as u64,
                "{context}"
            );
            let mut want = names(0, hit);
            want.extend(names(hit + 1, 12));
            assert_eq!(payloads(&mut buffer, 100).0, want, "{context}");
        }
    }
}

#[test]
fn a_corrupt_length_loses_only_its_record_and_is_counted() {
    // The regression: a length run past the end read as a torn tail ("read again"),
    // though the events after it were already checkpointed: 140 of 300 lost, uncounted.
    for bad_len in [u32::MAX, 60_000, 19, 0] {
        let dir = tempfile::tempdir().unwrap();
        let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
        fill(&mut buffer, 0, 300);
        drop(buffer);
        let segment = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&segment).unwrap();
        let at = record_start(160) + 4;
        bytes[at..at + 4].copy_from_slice(&bad_len.to_le_bytes());
        fs::write(&segment, &bytes).unwrap();

        let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
        assert_eq!(recovery.records, 299, "length {bad_len}");
        assert_eq!(recovery.torn_bytes, 0, "length {bad_len}");
        assert_eq!(recovery.lost_records(), 1, "length {bad_len}");
        assert_eq!(recovery.lost_bytes(), record_len(160) as u64);
        let mut want = names(0, 160);
        want.extend(names(161, 300));
        assert_eq!(payloads(&mut buffer, 1000).0, want, "length {bad_len}");
    }
}

#[test]
fn a_corrupt_record_in_an_old_segment_keeps_the_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of about 20 records each.
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 4096, 1 << 30).unwrap();
    let text = |i: usize| format!("event {i} {}", "x".repeat(180));
    for i in 0..100 {
        buffer.append(text(i).as_bytes()).unwrap();
    }
    buffer.sync().unwrap();
    drop(buffer);
    let first = segment_path(dir.path(), 0);
    let mut bytes = fs::read(&first).unwrap();
    // Where the first segment's last record starts, and which it is.
    let (mut at, mut count, mut last) = (0, 0, 0);
    while at < bytes.len() {
        last = at;
        at += HEADER as usize
            + u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        count += 1;
    }
    let one = bytes.len() - last;
    // The last record of the first segment: its stretch runs to the segment's end.
    bytes[last + 40] ^= 0x20;
    // And the first record's magic.
    bytes[1] ^= 0x20;
    fs::write(&first, &bytes).unwrap();

    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 4096, 1 << 30).unwrap();
    assert_eq!(recovery.records, 98, "{recovery:?}");
    assert_eq!(recovery.lost_records(), 2, "{recovery:?}");
    assert_eq!(recovery.lost[0].offset, 0);
    assert_eq!(recovery.lost[1].bytes as usize, one);
    let mut got = Vec::new();
    loop {
        let (read, last) = payloads(&mut buffer, 7);
        if read.is_empty() {
            break;
        }
        got.extend(read);
        buffer.ack(last.unwrap()).unwrap();
    }
    let want: Vec<String> = (1..100).filter(|i| *i != count - 1).map(text).collect();
    assert_eq!(got, want);
    assert!(
        !first.exists(),
        "deleted once the records after its holes were acknowledged"
    );
}

#[test]
fn a_corrupt_last_record_of_the_newest_segment_is_cut_and_counted_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    fill(&mut buffer, 0, 5);
    drop(buffer);
    let segment = segment_path(dir.path(), 0);
    let mut bytes = fs::read(&segment).unwrap();
    let end = bytes.len();
    bytes[end - 1] ^= 0xff;
    fs::write(&segment, &bytes).unwrap();

    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery.records, 4);
    assert_eq!(recovery.torn_bytes, 0);
    assert_eq!(recovery.lost_records(), 1);
    assert_eq!(
        fs::metadata(&segment).unwrap().len() as usize,
        record_start(4)
    );
    fill(&mut buffer, 5, 6);
    let mut want = names(0, 4);
    want.push("event 5".into());
    assert_eq!(payloads(&mut buffer, 100).0, want);
}

#[test]
fn a_zero_filled_tail_is_torn_not_lost() {
    // After a power cut a file may be longer than what reached the disk, the rest zeros.
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    fill(&mut buffer, 0, 5);
    drop(buffer);
    let segment = segment_path(dir.path(), 0);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0u8; 4096]).unwrap();
    drop(file);
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery.records, 5);
    assert_eq!(recovery.torn_bytes, 4096);
    assert_eq!(recovery.lost, vec![]);
    assert_eq!(payloads(&mut buffer, 100).0, names(0, 5));
}

/// A segment as version 1 wrote it: `[len][crc of payload][payload]`, no magic.
fn old_records(from: usize, to: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in names(from, to) {
        bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(name.as_bytes()).to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
    }
    bytes
}

#[test]
fn a_buffer_written_by_the_previous_version_is_read_and_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment_path(dir.path(), 3), old_records(0, 40)).unwrap();
    fs::write(segment_path(dir.path(), 4), old_records(40, 50)).unwrap();
    // The old ack point (16 bytes, no CRC): the first 10 records delivered.
    let mut ack = Vec::new();
    ack.extend_from_slice(&3u64.to_le_bytes());
    ack.extend_from_slice(&(old_records(0, 10).len() as u64).to_le_bytes());
    fs::write(dir.path().join("ack"), &ack).unwrap();

    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(
        recovery,
        Recovery {
            records: 40,
            ..Recovery::default()
        }
    );
    assert_eq!(
        String::from_utf8(buffer.peek_oldest().unwrap().unwrap()).unwrap(),
        "event 10"
    );
    // New records go after the old ones in the newest segment.
    fill(&mut buffer, 50, 55);
    let (read, _) = payloads(&mut buffer, 20);
    assert_eq!(read, names(10, 30));
    drop(buffer);
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery.records, 45);
    assert_eq!(payloads(&mut buffer, 100).0, names(10, 55));
}

#[test]
fn an_old_segment_with_a_flipped_byte_loses_that_record_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = old_records(0, 30);
    bytes.extend(old_records(30, 31)); // `event 30`: 8 bytes
    let at = old_records(0, 12).len() + 9;
    bytes[at] ^= 0x04;
    fs::write(segment_path(dir.path(), 0), &bytes).unwrap();
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery.records, 30, "{recovery:?}");
    assert_eq!(recovery.lost_records(), 1);
    let mut want = names(0, 12);
    want.extend(names(13, 31));
    fill(&mut buffer, 31, 33);
    want.extend(names(31, 33));
    assert_eq!(payloads(&mut buffer, 100).0, want);

    // An old torn tail is cut as before.
    drop(buffer);
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = old_records(0, 5);
    bytes.extend_from_slice(&500u32.to_le_bytes());
    bytes.extend_from_slice(&[0xab; 6]);
    fs::write(segment_path(dir.path(), 0), &bytes).unwrap();
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    assert_eq!(recovery.records, 5);
    assert_eq!(recovery.torn_bytes, 10);
    assert_eq!(recovery.lost, vec![]);
    assert_eq!(payloads(&mut buffer, 100).0, names(0, 5));
}

#[test]
fn segments_roll_and_are_deleted_once_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 100, 1 << 30).unwrap();
    fill(&mut buffer, 0, 40);
    let count = |dir: &Path| {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .count()
    };
    let before = count(dir.path());
    assert!(before >= 5, "{before} segments");
    let (read, last) = payloads(&mut buffer, 1000);
    assert_eq!(read, names(0, 40));
    buffer.ack(last.unwrap()).unwrap();
    assert_eq!(
        count(dir.path()),
        1,
        "only the segment being written remains"
    );
    assert_eq!(buffer.unacked_bytes(), 0);
    drop(buffer);
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 100, 1 << 30).unwrap();
    assert_eq!(recovery.records, 0);
    assert!(payloads(&mut buffer, 10).0.is_empty());
}

#[test]
fn the_buffer_is_full_at_max_bytes_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // 19 bytes a record (20 from `event 10`).
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 190).unwrap();
    fill(&mut buffer, 0, 9);
    assert!(!buffer.is_full(), "{} bytes", buffer.unacked_bytes());
    fill(&mut buffer, 9, 11);
    assert!(buffer.is_full(), "{} bytes", buffer.unacked_bytes());
    let (_, last) = payloads(&mut buffer, 5);
    buffer.ack(last.unwrap()).unwrap();
    assert!(!buffer.is_full());
    assert!(matches!(
        buffer.append(&vec![0u8; MAX_RECORD_BYTES + 1]),
        Err(BufferError::TooLarge(_))
    ));
}

#[test]
fn peek_oldest_shows_the_first_unacknowledged_durable_record() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny segments: the oldest record moves across segment boundaries.
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 4096, 1 << 30).unwrap();
    assert_eq!(buffer.peek_oldest().unwrap(), None);
    buffer.append(b"not yet durable").unwrap();
    assert_eq!(buffer.peek_oldest().unwrap(), None, "only durable records");
    buffer.sync().unwrap();
    fill(&mut buffer, 0, 1000);
    let oldest = |b: &DiskBuffer| String::from_utf8(b.peek_oldest().unwrap().unwrap()).unwrap();
    assert_eq!(oldest(&buffer), "not yet durable");
    let (_, last) = payloads(&mut buffer, 600);
    assert_eq!(
        oldest(&buffer),
        "not yet durable",
        "reading is not acknowledging"
    );
    buffer.ack(last.unwrap()).unwrap();
    assert_eq!(oldest(&buffer), "event 599");
    let (_, last) = payloads(&mut buffer, 1000);
    buffer.ack(last.unwrap()).unwrap();
    assert_eq!(buffer.peek_oldest().unwrap(), None);
}

#[test]
fn a_rollback_forgets_what_was_not_synced_and_leaves_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so the unsynced appends also cross into a new segment.
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 4096, 1 << 30).unwrap();
    fill(&mut buffer, 0, 10);
    for i in 10..2_000 {
        buffer
            .append(format!("undone {i} {}", "x".repeat(20)).as_bytes())
            .unwrap();
    }
    buffer.rollback().unwrap();
    fill(&mut buffer, 10, 20);
    let (read, _) = payloads(&mut buffer, 100);
    assert_eq!(read, names(0, 20));
    drop(buffer);
    // On disk too: a restart finds exactly the synced records, nothing torn.
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 4096, 1 << 30).unwrap();
    assert_eq!(
        recovery,
        Recovery {
            records: 20,
            ..Recovery::default()
        }
    );
    let (read, _) = payloads(&mut buffer, 100);
    assert_eq!(read, names(0, 20));
}

#[test]
fn the_newest_segment_gives_its_space_back_once_everything_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let seg_bytes = |dir: &Path| -> Vec<u64> {
        let mut sizes: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .map(|e| e.metadata().unwrap().len())
            .collect();
        sizes.sort_unstable();
        sizes
    };
    // One big segment that never rolls: the disk it filled came back only on a roll.
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 30, 1 << 30).unwrap();
    fill(&mut buffer, 0, 100);
    let (_, last) = payloads(&mut buffer, 50);
    buffer.ack(last.unwrap()).unwrap();
    assert!(
        !buffer.reclaim(0).unwrap(),
        "50 records are not acknowledged yet"
    );
    let (_, last) = payloads(&mut buffer, 1000);
    buffer.ack(last.unwrap()).unwrap();
    // Not yet an eighth of a segment, so ack() kept it; but it can be reclaimed.
    assert_ne!(seg_bytes(dir.path()), vec![0]);
    // Appended but not synced: nothing to reclaim (that would lose it).
    buffer.append(b"pending").unwrap();
    assert!(!buffer.reclaim(0).unwrap());
    buffer.sync().unwrap();
    let (read, last) = payloads(&mut buffer, 10);
    assert_eq!(read, vec!["pending"]);
    buffer.ack(last.unwrap()).unwrap();
    assert!(buffer.reclaim(0).unwrap());
    assert_eq!(seg_bytes(dir.path()), vec![0], "one empty segment");
    assert_eq!(buffer.unacked_bytes(), 0);
    fill(&mut buffer, 100, 105);
    drop(buffer);
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 30, 1 << 30).unwrap();
    assert_eq!(recovery.records, 5);
    assert_eq!(payloads(&mut buffer, 100).0, names(100, 105));
}

#[test]
fn a_crash_between_reclaiming_and_saving_the_ack_point_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 30, 1 << 30).unwrap();
    fill(&mut buffer, 0, 10);
    let (_, last) = payloads(&mut buffer, 100);
    buffer.ack(last.unwrap()).unwrap();
    let ack_before = fs::read(dir.path().join("ack")).unwrap();
    assert!(buffer.reclaim(0).unwrap());
    fill(&mut buffer, 10, 13);
    drop(buffer);
    // As if the process died before the new ack point was written.
    fs::write(dir.path().join("ack"), &ack_before).unwrap();
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 30, 1 << 30).unwrap();
    assert_eq!(
        recovery,
        Recovery {
            records: 3,
            ..Recovery::default()
        }
    );
    assert_eq!(payloads(&mut buffer, 100).0, names(10, 13));
}

#[test]
fn acknowledging_everything_in_a_large_newest_segment_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 800, 1 << 30).unwrap();
    // 10 records of 19 bytes: over an eighth of 800 bytes, under a roll.
    fill(&mut buffer, 0, 10);
    let (_, last) = payloads(&mut buffer, 100);
    buffer.ack(last.unwrap()).unwrap();
    let seg = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| (e.file_name(), e.metadata().unwrap().len()))
        .collect::<Vec<_>>();
    assert_eq!(seg.len(), 1);
    assert_eq!(seg[0].1, 0, "{seg:?}");
    assert_ne!(seg[0].0, "00000000000000000000.seg");
}

#[test]
fn a_batch_spans_segments_and_records_larger_than_a_read() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny segments: every few records start a new one.
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 300, u64::MAX).unwrap();
    let big = "x".repeat(200_000);
    let mut want = Vec::new();
    for i in 0..40 {
        let record = if i % 13 == 5 {
            format!("{big}{i}")
        } else {
            format!("event {i}")
        };
        buffer.append(record.as_bytes()).unwrap();
        want.push(record);
    }
    buffer.sync().unwrap();
    let mut got = Vec::new();
    let mut batch = Batch::default();
    loop {
        buffer.read_into(7, &mut batch).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 7);
        let records = batch.records();
        assert_eq!(
            records.bytes().len(),
            records.iter().map(<[u8]>::len).sum::<usize>()
        );
        let (first, second) = records.split_at(3);
        assert_eq!(first.len() + second.len(), records.len());
        assert_eq!(
            second.get(0),
            records
                .get(3.min(records.len()))
                .filter(|_| records.len() > 3)
        );
        got.extend(
            records
                .iter()
                .map(|r| String::from_utf8(r.to_vec()).unwrap()),
        );
        buffer.ack(batch.last().unwrap()).unwrap();
    }
    assert_eq!(got, want);
}

#[test]
fn records_are_read_only_once_their_unlocked_sync_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    fill(&mut buffer, 0, 3);
    for i in 3..5 {
        buffer.append(format!("event {i}").as_bytes()).unwrap();
    }
    let pending = buffer.begin_sync().unwrap();
    // Flushed but not yet fsynced: the reader stops at what was durable.
    assert_eq!(payloads(&mut buffer, 100).0, names(0, 3));
    pending.sync().unwrap();
    buffer.end_sync(pending);
    assert_eq!(payloads(&mut buffer, 100).0, names(3, 5));
}

#[test]
fn a_torn_ack_point_repeats_delivery_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 30, 1 << 30).unwrap();
    fill(&mut buffer, 0, 10);
    let (_, last) = payloads(&mut buffer, 4);
    buffer.ack(last.unwrap()).unwrap();
    // Rewritten in place from the second acknowledgement on.
    let (_, last) = payloads(&mut buffer, 2);
    buffer.ack(last.unwrap()).unwrap();
    drop(buffer);
    let ack = fs::read(dir.path().join("ack")).unwrap();
    assert_eq!(ack.len(), 20);
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 30, 1 << 30).unwrap();
    assert_eq!(recovery.records, 4);
    assert_eq!(payloads(&mut buffer, 100).0, names(6, 10));
    drop(buffer);

    // A byte of the offset changed (a torn write): the CRC fails, so everything still
    // on disk is delivered again rather than records skipped.
    let mut torn = ack.clone();
    torn[8] ^= 0x40;
    fs::write(dir.path().join("ack"), &torn).unwrap();
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 30, 1 << 30).unwrap();
    assert_eq!(recovery.records, 10);
    assert_eq!(payloads(&mut buffer, 100).0, names(0, 10));
    drop(buffer);

    // The 16 bytes earlier versions wrote (no CRC) are read as they are.
    fs::write(dir.path().join("ack"), &ack[..16]).unwrap();
    let (mut buffer, recovery) = DiskBuffer::open(dir.path(), 1 << 30, 1 << 30).unwrap();
    assert_eq!(recovery.records, 4);
    assert_eq!(payloads(&mut buffer, 100).0, names(6, 10));
}

#[test]
fn a_failed_read_skips_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny segments: the records span several.
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 300, u64::MAX).unwrap();
    for i in 0..60 {
        buffer
            .append(format!("event {i:02} {}", "y".repeat(40)).as_bytes())
            .unwrap();
    }
    buffer.sync().unwrap();
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    // The second segment cannot be opened: the read fails after taking the first's.
    let hidden = segments[1].with_extension("hidden");
    std::fs::rename(&segments[1], &hidden).unwrap();
    let mut batch = Batch::default();
    assert!(buffer.read_into(1_000, &mut batch).is_err());
    assert!(batch.is_empty());
    std::fs::rename(&hidden, &segments[1]).unwrap();
    buffer.read_into(1_000, &mut batch).unwrap();
    let records: Vec<&[u8]> = batch.records().iter().collect();
    assert_eq!(records.len(), 60);
    assert!(records[0].starts_with(b"event 00 "));
}

#[test]
fn inspect_reads_what_is_pending_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut buffer, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 30).unwrap();
    fill(&mut buffer, 0, 100);
    let (_, last) = payloads(&mut buffer, 40);
    buffer.ack(last.unwrap()).unwrap();
    drop(buffer);
    let segment = segment_path(dir.path(), 0);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[record_start(70) + HEADER as usize + 2] ^= 0x01;
    // And half a record at the end, as a write a crash cut short.
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
    fs::write(&segment, &bytes).unwrap();
    let before = fs::read(&segment).unwrap();
    let ack_before = fs::read(dir.path().join("ack")).unwrap();

    let mut seen = Vec::new();
    let inspection = inspect(dir.path(), &mut |payload| {
        seen.push(String::from_utf8(payload.to_vec()).unwrap())
    })
    .unwrap();
    let mut want = names(40, 70);
    want.extend(names(71, 100));
    assert_eq!(seen, want);
    assert!(inspection.ack_readable);
    assert_eq!(
        inspection.acked,
        Position {
            segment: 0,
            offset: record_start(40) as u64
        }
    );
    assert_eq!(inspection.pending_records(), 59);
    assert_eq!(
        inspection.pending_bytes(),
        want.iter().map(|s| s.len() as u64).sum::<u64>()
    );
    let lost: Vec<&LostStretch> = inspection.lost().collect();
    assert_eq!(
        lost,
        [&LostStretch {
            segment: 0,
            offset: record_start(70) as u64,
            bytes: record_len(70) as u64,
            records: 1,
        }]
    );
    assert_eq!(inspection.segments[0].torn_bytes, 10);
    // Read only: the torn tail is not cut, the ack point not moved.
    assert_eq!(fs::read(&segment).unwrap(), before);
    assert_eq!(fs::read(dir.path().join("ack")).unwrap(), ack_before);
}
