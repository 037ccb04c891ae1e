//! The store's write-ahead log: answers once logged, conflicts decided against what is
//! logged but not yet indexed, a crash between the log and the index replayed once,
//! writes refused while indexing is behind by the bound.

use std::time::Duration;

use picket_common::wal::DiskBuffer;

use super::config::{Acknowledge, EmbeddedSettings};
use super::log::{Logged, encode};
use super::tests::{event, id, ids, search};
use super::*;

fn logged_settings(commit_interval: Duration, max_unindexed_bytes: u64) -> EmbeddedSettings {
    EmbeddedSettings {
        commit_interval,
        writer_memory_bytes: 15_000_000,
        acknowledge: Acknowledge::Logged,
        max_unindexed_bytes,
    }
}

fn login(n: u32, summary: &str) -> Document {
    Document::Event(event(
        &id(n),
        "2026-12-06T08:00:00Z",
        "root",
        "authentication",
        summary,
    ))
}

/// Appends `documents` to the store's log under `data_dir` past its ack point, as a
/// SIGKILL between the log and the index leaves them; the log's unacknowledged bytes.
fn log_past_the_ack(data_dir: &Path, documents: Vec<Document>) -> u64 {
    let (mut wal, _) = DiskBuffer::open(&data_dir.join("events-log"), 1 << 20, 32 << 20).unwrap();
    let mut record = Vec::new();
    for document in documents {
        encode(&Logged::new(document), &mut record);
        wal.append(&record).unwrap();
    }
    wal.sync().unwrap();
    wal.unacked_bytes()
}

/// Waits until `query` finds `count` events (the indexer commits behind the answers).
fn wait_for(store: &EmbeddedStore, query: &str, count: usize) -> SearchResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = search(store, query);
        if found.total == count || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_logged_write_is_answered_before_it_is_indexed_and_decided_against_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // The first commit is at once, the next a minute later: what is stored after the
    // first is only in the log for the rest of the test.
    let settings = logged_settings(Duration::from_secs(60), 32 << 20);
    let store = EmbeddedStore::open_with(dir.path(), &settings).unwrap();
    let first = store.store(vec![login(1, "first")]).await.unwrap();
    assert_eq!(first.stored, 1);
    assert_eq!(wait_for(&store, "summary:first", 1).total, 1);

    let second = store.store(vec![login(2, "second")]).await.unwrap();
    assert_eq!(second.stored, 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        search(&store, "summary:second").total,
        0,
        "answered from the log, not yet committed"
    );
    // A resend of the logged one is stored already; another body under its id, or under
    // the indexed one's, is a conflict.
    let again = store
        .store(vec![
            login(2, "second"),
            login(2, "rewritten"),
            login(1, "rewritten"),
            login(3, "third"),
            login(3, "third again"),
        ])
        .await
        .unwrap();
    assert_eq!(again.existing, vec![0]);
    assert_eq!(again.conflicts, vec![1, 2, 4]);
    assert_eq!(again.stored, 2);

    // Closing commits what the log holds; nothing is replayed twice on reopening.
    store.close();
    let store = EmbeddedStore::open_with(dir.path(), &settings).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let all = search(&store, "*");
    let mut found = ids(&all);
    found.sort();
    assert_eq!(found, vec![id(1), id(2), id(3)]);
    assert_eq!(search(&store, "summary:rewritten").total, 0);
    store.close();
}

#[tokio::test]
async fn a_crash_between_the_log_and_the_index_is_replayed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Duration::from_millis(10), 15_000_000).unwrap();
    store.store(vec![login(1, "committed")]).await.unwrap();
    store.close();
    // What a SIGKILL leaves: records logged after the acknowledged point, one of them
    // already committed to the index (killed before the acknowledgement), the others
    // not, one of them a custom document.
    let custom = Document::Custom {
        id: "custom-1".into(),
        received: "2026-12-06T08:00:05Z".parse().unwrap(),
        source: serde_json::json!({"endpoint": "app", "summary": "custom one"})
            .as_object()
            .cloned()
            .unwrap(),
        replaces: false,
    };
    log_past_the_ack(
        dir.path(),
        vec![login(1, "committed"), login(2, "logged only"), custom],
    );
    let store = EmbeddedStore::open(dir.path(), Duration::from_millis(10), 15_000_000).unwrap();
    // A write waits for the replay and, answered once indexed, follows it.
    store.store(vec![login(3, "after")]).await.unwrap();
    let mut found = ids(&search(&store, "category:authentication"));
    found.sort();
    assert_eq!(found, vec![id(1), id(2), id(3)]);
    assert_eq!(search(&store, "summary:committed").total, 1, "not twice");
    assert_eq!(search(&store, "details.endpoint:app").total, 1);
    store.close();
    // Everything replayed was acknowledged: a second restart replays nothing.
    let store = EmbeddedStore::open(dir.path(), Duration::from_millis(10), 15_000_000).unwrap();
    store.store(vec![login(4, "later")]).await.unwrap();
    assert_eq!(search(&store, "*").total, 5);
    store.close();
}

#[tokio::test]
async fn writes_are_refused_while_indexing_is_behind_by_the_bound_and_nothing_accepted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let settings = logged_settings(Duration::from_secs(60), 1 << 20);
    let store = EmbeddedStore::open_with(dir.path(), &settings).unwrap();
    // The first commit is at once: after it, nothing is indexed for a minute.
    store.store(vec![login(0, "warm")]).await.unwrap();
    wait_for(&store, "*", 1);
    let padding = "x".repeat(400);
    let (mut accepted, mut refused) = (1usize, 0usize);
    for batch in 0..40u32 {
        let events: Vec<Document> = (0..500)
            .map(|i| login(1 + batch * 500 + i, &format!("burst {padding}")))
            .collect();
        match store.store(events).await {
            Ok(stored) => accepted += stored.stored,
            Err(StoreError::Busy) => {
                // Refused after waiting (2 s) for an indexer that commits a minute later.
                refused += 1;
                break;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(refused, 1, "a 1 MiB bound refuses a 10 MB burst");
    assert!(
        accepted < 6_000,
        "accepted {accepted}: the bound holds (about 1 MiB of log past the last commit)"
    );
    store.close();
    let store = EmbeddedStore::open_with(dir.path(), &settings).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(search(&store, "*").total, accepted);
    // Indexing caught up: writes are accepted again.
    assert!(store.store(vec![login(999_999, "after")]).await.is_ok());
    store.close();
}

#[tokio::test]
async fn a_replay_of_what_the_index_already_holds_frees_the_log_for_writes() {
    let dir = tempfile::tempdir().unwrap();
    let padding = "y".repeat(400);
    let events: Vec<Document> = (0..3_000)
        .map(|i| login(i, &format!("indexed {padding}")))
        .collect();
    let store = EmbeddedStore::open(dir.path(), Duration::from_millis(10), 15_000_000).unwrap();
    store.store(events.clone()).await.unwrap();
    store.close();
    // A torn or stale ack point: the log holds again, past it, 2 MB of events the
    // index already has — more than the bound.
    assert!(log_past_the_ack(dir.path(), events) > 1 << 20);
    let store = EmbeddedStore::open_with(
        dir.path(),
        &logged_settings(Duration::from_millis(50), 1 << 20),
    )
    .unwrap();
    // Nothing to index, but the log is acknowledged: a write is accepted, not refused.
    let stored = store.store(vec![login(5_000, "new")]).await.unwrap();
    assert_eq!(stored.stored, 1);
    assert_eq!(wait_for(&store, "*", 3_001).total, 3_001);
    store.close();
}
