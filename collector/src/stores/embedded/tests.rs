use std::time::Duration;

use mozdef::Event;
use serde_json::json;

use super::*;

pub(super) fn event(id: &str, utc: &str, username: &str, category: &str, summary: &str) -> Event {
    let at = mozdef::time::parse_str(utc).unwrap();
    let mut event = Event {
        eventid: id.to_string(),
        timestamp: String::new(),
        utctimestamp: String::new(),
        receivedtimestamp: Some("2026-11-24T12:00:00+00:00".into()),
        hostname: "web1.example.com".into(),
        processname: "sshd".into(),
        processid: 42,
        severity: "INFO".into(),
        summary: summary.into(),
        category: category.into(),
        source: "/var/log/auth.log".into(),
        tags: vec!["sshd".into()],
        details:
            json!({"program": "sshd", "username": username, "success": false, "sourceport": 2222})
                .as_object()
                .cloned()
                .unwrap(),
    };
    event.set_time(&at);
    event
}

pub(super) fn id(n: u32) -> String {
    format!("{n:032x}")
}

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(dir, Duration::from_millis(10), 15_000_000).unwrap()
}

pub(super) fn search(store: &EmbeddedStore, query: &str) -> SearchResult {
    store
        .search_blocking(&SearchRequest {
            query: query.into(),
            from: None,
            to: None,
            size: 100,
            aggs: None,
            time_field: Default::default(),
            max_bytes: 0,
        })
        .unwrap()
}

pub(super) fn ids(result: &SearchResult) -> Vec<String> {
    result
        .hits
        .iter()
        .map(|h| h["eventid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn stored_events_are_found_by_field_and_detail_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let events = vec![
        event(
            &id(1),
            "2026-11-22T08:00:00Z",
            "root",
            "authentication",
            "Failed password for root",
        ),
        event(
            &id(2),
            "2026-11-22T09:00:00Z",
            "alice",
            "authentication",
            "Accepted publickey for alice",
        ),
        event(
            &id(3),
            "2026-11-23T10:00:00Z",
            "root",
            "session",
            "session opened for user root",
        ),
        event(
            &id(4),
            "2026-11-23T11:00:00Z",
            "root",
            "authentication",
            "Failed password for root",
        ),
    ];
    assert_eq!(store.store(events).await.unwrap().stored, 4);

    let result = search(&store, "details.username:root AND category:authentication");
    assert_eq!(result.total, 2);
    assert_eq!(ids(&result), vec![id(4), id(1)], "newest first across days");

    assert_eq!(search(&store, "*").total, 4);
    assert_eq!(search(&store, "").total, 4);
    assert_eq!(
        search(&store, "summary:accepted").total,
        1,
        "summary is full text"
    );
    assert_eq!(search(&store, "details.success:false").total, 4);
    assert_eq!(search(&store, "details.sourceport:2222").total, 4);
    assert_eq!(search(&store, "processid:42").total, 4);
    assert_eq!(
        search(&store, "category:session OR details.username:alice").total,
        2
    );
    assert_eq!(
        search(&store, "details.username:root AND NOT category:session").total,
        2
    );
    assert_eq!(
        search(&store, "details.username:root -category:session").total,
        2
    );
    assert_eq!(search(&store, "NOT category:session").total, 3);
    assert_eq!(search(&store, "hostname:\"web1.example.com\"").total, 4);
    assert_eq!(search(&store, "hostname:web1.example.com").total, 4);
    assert_eq!(search(&store, "details.username:nobody").total, 0);

    // The whole event comes back as it was stored.
    let hit = &search(&store, "category:session").hits[0];
    assert_eq!(hit["utctimestamp"], json!("2026-11-23T10:00:00+00:00"));
    assert_eq!(hit["details"]["sourceport"], json!(2222));
    store.close();
}

#[tokio::test]
async fn time_range_limits_results() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .store(vec![
            event(&id(1), "2026-11-21T23:59:59Z", "a", "x", "s"),
            event(&id(2), "2026-11-22T00:00:00Z", "a", "x", "s"),
            event(&id(3), "2026-11-22T12:00:00Z", "a", "x", "s"),
            event(&id(4), "2026-11-23T00:00:01Z", "a", "x", "s"),
        ])
        .await
        .unwrap();
    let t = |s: &str| Some(mozdef::time::parse_str(s).unwrap().with_timezone(&Utc));
    let result = store
        .search_blocking(&SearchRequest {
            query: "*".into(),
            from: t("2026-11-22T00:00:00Z"),
            to: t("2026-11-22T23:59:59Z"),
            size: 10,
            aggs: None,
            time_field: Default::default(),
            max_bytes: 0,
        })
        .unwrap();
    assert_eq!(ids(&result), vec![id(3), id(2)]);
    // Times are fast fields only: a bare day is that whole day, a full time that instant.
    assert_eq!(
        ids(&search(&store, "utctimestamp:2026-11-22")),
        vec![id(3), id(2)]
    );
    assert_eq!(
        ids(&search(&store, "utctimestamp:\"2026-11-22T12:00:00Z\"")),
        vec![id(3)]
    );
    assert_eq!(
        ids(&search(&store, "utctimestamp:>=2026-11-23")),
        vec![id(4)]
    );
    assert_eq!(
        ids(&search(&store, "utctimestamp: IN [2026-11-21 2026-11-23]")),
        vec![id(4), id(1)]
    );
    // Digits past the µs the index keeps are dropped, as when the time was stored.
    assert_eq!(
        ids(&search(
            &store,
            "utctimestamp:\"2026-11-22T12:00:00.0000009Z\""
        )),
        vec![id(3)]
    );
    store.close();
}

#[tokio::test]
async fn a_day_written_with_times_in_the_term_index_is_still_read_and_written() {
    use tantivy::schema::FieldType;
    let dir = tempfile::tempdir().unwrap();
    // The schema of days written before times left the term index (ids raw, too).
    let (current, _) = schema("raw");
    let mut builder = Schema::builder();
    for (_, entry) in current.fields() {
        match entry.field_type() {
            FieldType::Date(_) => {
                builder.add_date_field(
                    entry.name(),
                    DateOptions::from(tantivy::schema::INDEXED)
                        .set_fast()
                        .set_precision(DateTimePrecision::Microseconds),
                );
            }
            _ => {
                builder.add_field(entry.clone());
            }
        }
    }
    let day = dir.path().join("events/20261122");
    std::fs::create_dir_all(&day).unwrap();
    let old = Index::create_in_dir(&day, builder.build()).unwrap();
    let mut writer: IndexWriter = old.writer_with_num_threads(1, 15_000_000).unwrap();
    writer.commit().unwrap();
    drop(writer);
    drop(old);

    let store = open(dir.path());
    store
        .store(vec![
            event(&id(1), "2026-11-22T08:00:00Z", "a", "x", "s"),
            event(&id(2), "2026-11-23T08:00:00Z", "a", "x", "s"),
        ])
        .await
        .unwrap();
    assert_eq!(ids(&search(&store, "utctimestamp:2026-11-22")), vec![id(1)]);
    assert_eq!(
        ids(&search(&store, "utctimestamp:<2026-11-23")),
        vec![id(1)]
    );
    assert_eq!(search(&store, "*").total, 2);
    store.close();
    // The old day kept its own schema; the new one has times out of the term index.
    let indexed = |day: &str| {
        let index = Index::open_in_dir(dir.path().join("events").join(day)).unwrap();
        let field = index.schema().get_field("utctimestamp").unwrap();
        index.schema().get_field_entry(field).is_indexed()
    };
    assert!(indexed("20261122"));
    assert!(!indexed("20261123"));
}

/// The `eventid` terms of a day's index, as its dictionaries hold them.
fn id_terms(dir: &Path, day: &str) -> Vec<Vec<u8>> {
    let index = Index::open_in_dir(dir.join("events").join(day)).unwrap();
    let field = index.schema().get_field("eventid").unwrap();
    let searcher = index.reader().unwrap().searcher();
    let mut terms = Vec::new();
    for segment in searcher.segment_readers() {
        let dictionary = segment.inverted_index(field).unwrap();
        let mut stream = dictionary.terms().stream().unwrap();
        while stream.advance() {
            terms.push(stream.key().to_vec());
        }
    }
    terms
}

#[tokio::test]
async fn ids_are_digests_on_new_days_and_themselves_on_days_written_before() {
    let dir = tempfile::tempdir().unwrap();
    // A day created before the digests: its ids are kept raw.
    let old_day = dir.path().join("events/20261122");
    std::fs::create_dir_all(&old_day).unwrap();
    let old = Index::create_in_dir(&old_day, schema("raw").0).unwrap();
    let mut writer: IndexWriter = old.writer_with_num_threads(1, 15_000_000).unwrap();
    writer.commit().unwrap();
    drop((writer, old));

    let store = open(dir.path());
    let on = |n: u32, day: &str| event(&id(n), &format!("{day}T08:00:00Z"), "a", "x", "s");
    let old_events: Vec<Event> = (0..300).map(|n| on(n, "2026-11-22")).collect();
    let new_events: Vec<Event> = (300..600).map(|n| on(n, "2026-11-23")).collect();
    assert_eq!(store.store(old_events).await.unwrap().stored, 300);
    assert_eq!(store.store(new_events).await.unwrap().stored, 300);
    // Every id is found by itself on either kind of day (300 ids in 4,096 buckets: a
    // dozen buckets hold two, told apart by the digest column).
    for n in 0..600 {
        assert_eq!(
            ids(&search(&store, &format!("eventid:{}", id(n)))),
            vec![id(n)]
        );
    }
    let (a, b) = (id(1), id(401));
    assert_eq!(search(&store, &format!("eventid:IN [{a} {b}]")).total, 2);
    assert_eq!(search(&store, &format!("eventid:({a} OR {b})")).total, 2);
    assert_eq!(search(&store, &format!("eventid:\"{b}\"")).total, 1);
    assert_eq!(search(&store, &format!("NOT eventid:{b}")).total, 599);
    assert_eq!(search(&store, "eventid:*").total, 600);
    assert_eq!(search(&store, "eventid:nosuchid").total, 0);
    // A digest has no order and no parts: refused, saying so.
    for query in [
        format!("eventid:\"{}\"*", &a[..8]),
        "eventid_digest:[0 TO 9]".into(),
        "eventid_digest:5".into(),
        "_exists_:eventid_digest".into(),
        format!("eventid:{}*", &a[..8]),
        "eventid:[0 TO 1]".into(),
        "eventid:/0+1/".into(),
    ] {
        let request = SearchRequest {
            query: query.clone(),
            size: 10,
            ..Default::default()
        };
        let error = store.search_blocking(&request).unwrap_err();
        assert!(
            error.is_bad_request() && error.to_string().contains("eventid"),
            "{query}: {error}"
        );
    }
    store.close();
    let old_terms = id_terms(dir.path(), "20261122");
    assert_eq!(old_terms.len(), 300);
    assert!(
        old_terms.iter().all(|t| t.len() == 32),
        "the old day keeps ids raw"
    );
    let new_terms = id_terms(dir.path(), "20261123");
    assert!(
        new_terms.len() < 300,
        "some buckets hold two ids ({} terms)",
        new_terms.len()
    );
    assert!(
        new_terms
            .iter()
            .all(|t| t.len() == 3 && t.iter().all(u8::is_ascii_hexdigit))
    );

    // Reopened (this run draws another key for days it makes): a resend is stored once
    // and another body refused on both kinds of day, and the day made by the first run
    // keeps its own key for the ids it takes now.
    let store = open(dir.path());
    let mut changed = on(401, "2026-11-23");
    changed.summary = "another body".into();
    let mut changed_old = on(1, "2026-11-22");
    changed_old.summary = "another body".into();
    let outcome = store
        .store(vec![
            on(1, "2026-11-22"),
            on(401, "2026-11-23"),
            changed,
            changed_old,
            on(700, "2026-11-23"),
            on(701, "2026-11-24"),
        ])
        .await
        .unwrap();
    assert_eq!(outcome.stored, 4);
    assert_eq!(outcome.conflicts, vec![2, 3]);
    assert_eq!(outcome.existing, vec![0, 1]);
    assert_eq!(search(&store, "*").total, 602);
    for n in [700, 701, 401, 1] {
        assert_eq!(
            ids(&search(&store, &format!("eventid:{}", id(n)))),
            vec![id(n)]
        );
    }
    store.close();
    let keys = |day: &str| {
        let index = Index::open_in_dir(dir.path().join("events").join(day)).unwrap();
        IdTerms::of(&index.schema())
    };
    assert!(matches!(keys("20261123"), IdTerms::Bucketed(_)));
    assert_ne!(
        keys("20261123"),
        keys("20261124"),
        "each run draws its own key"
    );
    assert_eq!(keys("20261122"), IdTerms::Raw);
}

#[tokio::test]
async fn a_custom_document_is_found_and_replaced_by_id_on_a_day_of_digests() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let alert = |id: &str, n: u64| {
        (
            id.to_string(),
            json!({"summary": format!("{n} attempts"), "category": "bruteforce", "details": {"count": n}}),
        )
    };
    store.store_alerts(&[alert("alert-1", 5)]).await.unwrap();
    let (filed, found) = store.find_custom("alert-1").await.unwrap().unwrap();
    assert_eq!(found["details"]["count"], json!(5));
    assert!(store.find_custom("alert-2").await.unwrap().is_none());
    // Another document in the same bucket (the day's key is in its schema): the
    // replacement must delete the first version of its own id only.
    let day = store
        .shared
        .day(day_key(filed.date_naive()), false)
        .unwrap()
        .unwrap();
    let IdTerms::Bucketed(key) = day.ids else {
        panic!("a new day keeps digests")
    };
    let bucket = key.digest("alert-1").bucket;
    let neighbour = (0..)
        .map(|n| format!("neighbour-{n}"))
        .find(|id| key.digest(id).bucket == bucket)
        .unwrap();
    store.store_alerts(&[alert(&neighbour, 1)]).await.unwrap();
    let source = alert("alert-1", 9).1.as_object().cloned().unwrap();
    store
        .replace_custom("alert-1", filed, source)
        .await
        .unwrap();
    let result = search(&store, "category:bruteforce");
    assert_eq!(
        result.total, 2,
        "the replacement deleted the first version only"
    );
    let counts: BTreeSet<u64> = result
        .hits
        .iter()
        .map(|h| h["details"]["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, BTreeSet::from([1, 9]));
    assert_eq!(search(&store, "eventid:alert-1").total, 1);
    assert_eq!(search(&store, &format!("eventid:{neighbour}")).total, 1);
    let (_, found) = store.find_custom(&neighbour).await.unwrap().unwrap();
    assert_eq!(found["details"]["count"], json!(1));
    store.close();
}

#[tokio::test]
async fn a_resent_event_is_stored_once_and_the_first_copy_wins() {
    // The day has an id filter: a resend must be found past it, before and after a
    // reopen that fills the filter from the index.
    first_copy_wins(false).await;
}

#[tokio::test]
async fn a_resent_event_is_stored_once_when_its_day_has_no_id_filter() {
    // Three other days written first take every filter: the day is looked up directly.
    first_copy_wins(true).await;
}

/// Three other days' events, written first to take the id filters.
async fn crowd_the_filters(store: &EmbeddedStore) {
    for (n, day) in ["2026-11-01", "2026-11-02", "2026-11-03"]
        .iter()
        .enumerate()
    {
        let other = event(
            &id(100 + n as u32),
            &format!("{day}T08:00:00Z"),
            "a",
            "x",
            "s",
        );
        store.store(vec![other]).await.unwrap();
    }
}

async fn first_copy_wins(crowd: bool) {
    let at = "2026-11-22T08:00:00Z";
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    if crowd {
        crowd_the_filters(&store).await;
    }
    let first = event(&id(7), at, "root", "authentication", "first copy");
    let mut again = first.clone();
    again.summary = "second copy".into();
    let mut resent = first.clone();
    resent.receivedtimestamp = Some("2026-11-22T09:30:00+00:00".into());
    let outcome = store
        .store(vec![first.clone(), first.clone()])
        .await
        .unwrap();
    assert_eq!((outcome.stored, outcome.conflicts), (2, vec![]));
    // A different body under a stored id is refused; a resend (received later) is not.
    let outcome = store.store(vec![resent, again.clone()]).await.unwrap();
    assert_eq!((outcome.stored, outcome.conflicts), (1, vec![1]));
    let result = search(&store, "summary:copy");
    assert_eq!(result.total, 1);
    assert_eq!(result.hits[0]["summary"], json!("first copy"));
    store.close();

    // Reopened from disk, still once, still the first.
    let store = open(dir.path());
    if crowd {
        crowd_the_filters(&store).await;
    }
    let outcome = store.store(vec![first, again]).await.unwrap();
    assert_eq!((outcome.stored, outcome.conflicts), (1, vec![1]));
    let result = search(&store, "summary:copy");
    assert_eq!(result.total, 1);
    assert_eq!(result.hits[0]["summary"], json!("first copy"));
    store.close();
}

#[tokio::test]
async fn one_batch_of_many_days_keeps_few_writers_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let events: Vec<Event> = (0..60)
        .map(|i| {
            let day = start + chrono::Days::new(i);
            event(
                &id(100 + i as u32),
                &format!("{day}T12:00:00Z"),
                "u",
                "c",
                "one a day",
            )
        })
        .collect();
    assert_eq!(store.store(events).await.unwrap().stored, 60);
    // Each open writer holds threads and memory of its own: 60 days at once held
    // hundreds of threads. (The process's thread count is checked against a real
    // collector in tests/tests/hardening.rs; here other tests share the process.)
    let peak = store.peak_open_writers();
    assert!(
        peak <= OPEN_WRITERS + 1,
        "{peak} writers open at once for a batch of 60 days"
    );
    assert_eq!(search(&store, "*").total, 60);
    store.close();
}

#[tokio::test]
async fn wildcards_match_terms_and_details() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut a = event(
        &id(1),
        "2026-11-22T08:00:00Z",
        "admin",
        "authentication",
        "Failed password",
    );
    a.hostname = "web-01.example.com".into();
    let mut b = event(
        &id(2),
        "2026-11-22T08:00:01Z",
        "alice",
        "authentication",
        "Accepted key",
    );
    b.hostname = "db-01.example.com".into();
    store.store(vec![a, b]).await.unwrap();
    for (query, want) in [
        ("hostname:web*", 1),
        ("hostname:*-01.example.com", 2),
        ("hostname:db-0?.example.com", 1),
        ("details.username:adm*", 1),
        ("details.username:a*", 2),
        ("summary:fail*", 1),
        ("fail*", 1),
        ("hostname:nomatch*", 0),
    ] {
        assert_eq!(search(&store, query).total, want, "{query}");
    }
    store.close();
}

#[tokio::test]
async fn answers_stop_at_the_byte_limit_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let events: Vec<Event> = (0..20)
        .map(|i| {
            let mut e = event(&id(i), "2026-11-22T08:00:00Z", "u", "c", "big");
            e.details.insert("blob".into(), json!("x".repeat(10_000)));
            e
        })
        .collect();
    store.store(events).await.unwrap();
    let result = store
        .search_blocking(&SearchRequest {
            query: "*".into(),
            size: 20,
            max_bytes: 50_000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(result.total, 20);
    assert!(result.truncated);
    assert!(
        (3..=5).contains(&result.hits.len()),
        "{}",
        result.hits.len()
    );
    store.close();
}

#[tokio::test]
async fn a_bad_query_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .store(vec![event(&id(1), "2026-11-22T08:00:00Z", "a", "x", "s")])
        .await
        .unwrap();
    for query in ["nosuchfield:x", "category:(", "AND AND"] {
        let err = store
            .search_blocking(&SearchRequest {
                query: query.into(),
                from: None,
                to: None,
                size: 10,
                aggs: None,
                time_field: Default::default(),
                max_bytes: 0,
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::BadQuery(_)), "{query}: {err}");
    }
    store.close();
}

#[tokio::test]
async fn events_are_searchable_after_reopen_and_writes_after_close_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .store(vec![event(&id(1), "2026-11-22T08:00:00Z", "a", "x", "s")])
        .await
        .unwrap();
    store.close();
    assert!(matches!(
        store
            .store(vec![event(&id(2), "2026-11-22T08:00:00Z", "a", "x", "s")])
            .await,
        Err(StoreError::Closed)
    ));
    let store = open(dir.path());
    assert_eq!(search(&store, "*").total, 1);
    assert!(dir.path().join("events/20261122/meta.json").exists());
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_racing_commits_never_mix_up_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let writer = Arc::clone(&store);
    let writing = tokio::spawn(async move {
        for batch in 0..60u32 {
            let events = (0..20)
                .map(|n| {
                    event(
                        &id(batch * 20 + n),
                        "2026-11-24T10:00:00+00:00",
                        "root",
                        "authentication",
                        "racing",
                    )
                })
                .collect();
            writer.store(events).await.unwrap();
        }
    });
    let mut searches = 0;
    while !writing.is_finished() {
        let reader = Arc::clone(&store);
        let result = tokio::task::spawn_blocking(move || {
            reader.search_blocking(&SearchRequest {
                query: "*".into(),
                from: None,
                to: None,
                size: 10_000,
                aggs: None,
                time_field: Default::default(),
                max_bytes: 0,
            })
        })
        .await
        .expect("a search never panics");
        let found = result.unwrap();
        assert_eq!(found.hits.len() as u64, found.total.min(10_000) as u64);
        searches += 1;
    }
    writing.await.unwrap();
    assert!(searches > 0);
}

fn with_source_ip(mut event: Event, ip: &str) -> Event {
    event.details.insert("sourceipaddress".into(), json!(ip));
    event
}

#[tokio::test]
async fn aggregations_span_days_as_elasticsearch_answers_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Two days; 10.0.0.1 tries three user names (one twice), 10.0.0.2 one.
    let events = vec![
        with_source_ip(
            event(
                &id(1),
                "2026-11-21T23:59:00Z",
                "root",
                "authentication",
                "f",
            ),
            "10.0.0.1",
        ),
        with_source_ip(
            event(
                &id(2),
                "2026-11-22T00:01:00Z",
                "admin",
                "authentication",
                "f",
            ),
            "10.0.0.1",
        ),
        with_source_ip(
            event(
                &id(3),
                "2026-11-22T00:02:00Z",
                "oracle",
                "authentication",
                "f",
            ),
            "10.0.0.1",
        ),
        with_source_ip(
            event(
                &id(4),
                "2026-11-22T00:03:00Z",
                "oracle",
                "authentication",
                "f",
            ),
            "10.0.0.1",
        ),
        with_source_ip(
            event(
                &id(5),
                "2026-11-22T00:04:00Z",
                "alice",
                "authentication",
                "f",
            ),
            "10.0.0.2",
        ),
        with_source_ip(
            event(&id(6), "2026-11-22T00:05:00Z", "alice", "session", "s"),
            "10.0.0.2",
        ),
    ];
    store.store(events).await.unwrap();
    let result = store
        .search_blocking(&SearchRequest {
            query: "category:authentication".into(),
            size: 0,
            aggs: Some(json!({
                "by_source": {
                    "terms": { "field": "details.sourceipaddress", "size": 10 },
                    "aggs": { "users": { "cardinality": { "field": "details.username" } } }
                },
                "per_hour": {
                    "date_histogram": { "field": "utctimestamp", "fixed_interval": "1h" }
                }
            })),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(result.total, 5);
    assert!(result.hits.is_empty(), "size 0 returns only counts");
    let aggs = result.aggregations.unwrap();
    let buckets = aggs["by_source"]["buckets"].as_array().unwrap();
    assert_eq!(buckets[0]["key"], "10.0.0.1");
    assert_eq!(buckets[0]["doc_count"], 4, "{aggs}");
    assert_eq!(buckets[0]["users"]["value"], 3.0, "{aggs}");
    assert_eq!(buckets[1]["key"], "10.0.0.2");
    assert_eq!(buckets[1]["doc_count"], 1);
    let hours = aggs["per_hour"]["buckets"].as_array().unwrap();
    let counts: Vec<u64> = hours
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![1, 4], "{aggs}");
    assert_eq!(hours[1]["key_as_string"], "2026-11-22T00:00:00Z");

    let bad = store.search_blocking(&SearchRequest {
        query: "*".into(),
        size: 1,
        aggs: Some(json!({ "x": { "no_such_aggregation": {} } })),
        ..Default::default()
    });
    assert!(matches!(bad, Err(StoreError::BadAggregation(_))), "{bad:?}");
    store.close();
}

#[tokio::test]
async fn custom_documents_are_kept_as_sent_and_found_by_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let source = json!({
        "hostname": "fw1", "summary": "rule matched", "endpoint": "firewall",
        "customendpoint": true, "details": { "rule": 7 }, "anything": ["kept"]
    });
    let received = mozdef::time::parse_str("2026-11-22T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    store
        .store(vec![Document::Custom {
            id: id(9),
            received,
            source: source.as_object().cloned().unwrap(),
            replaces: false,
        }])
        .await
        .unwrap();
    let found = search(&store, "details.endpoint:firewall AND hostname:fw1");
    assert_eq!(found.total, 1);
    assert_eq!(found.hits[0], source, "stored without normalization");
    assert_eq!(search(&store, "details.rule:7").total, 1);
    store.close();
}

#[tokio::test]
async fn pruning_deletes_whole_days_before_the_cutoff_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .store(vec![
            event(&id(1), "2026-11-20T12:00:00Z", "a", "x", "s"),
            event(&id(2), "2026-11-21T12:00:00Z", "a", "x", "s"),
            event(&id(3), "2026-11-22T12:00:00Z", "a", "x", "s"),
        ])
        .await
        .unwrap();
    let cutoff = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let deleted = store.prune(cutoff, NaiveDate::MAX).await.unwrap();
    assert_eq!(deleted, vec!["20261120".to_string()]);
    assert!(!dir.path().join("events/20261120").exists());
    assert_eq!(ids(&search(&store, "*")), vec![id(3), id(2)]);
    // Writing after a prune still works, and an old day can come back.
    store
        .store(vec![event(&id(4), "2026-11-20T13:00:00Z", "a", "x", "s")])
        .await
        .unwrap();
    assert_eq!(search(&store, "*").total, 3);
    assert!(store.prune(cutoff, NaiveDate::MAX).await.unwrap().len() == 1);
    store.close();
}

#[tokio::test]
async fn malformed_queries_are_bad_requests_never_failures() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .store(vec![event(&id(1), "2026-11-22T08:00:00Z", "a", "x", "s t")])
        .await
        .unwrap();
    let deep = format!("{}a{}", "(".repeat(3_000), ")".repeat(3_000));
    let nots = "NOT ".repeat(50_000) + "a";
    let queries = [
        "hostname:\"web1 example\"",
        "hostname:\"a b\"~2",
        "processid:abc",
        "processid:[a TO b]",
        "utctimestamp:[yesterday TO now]",
        "utctimestamp:nope",
        "details.sourceport:[1 TO x]",
        "summary:\"s t\"*",
        "hostname:/[/",
        "eventid:*",
        "nosuchfield:x",
        "a:b:c",
        "(",
        ")",
        "\"",
        "[1 TO",
        "hostname:IN [a b",
        "*:*",
        "-",
        "^2",
        "a^x",
        "hostname:web*^3",
        "details.:x",
        "details.a..b:x",
        deep.as_str(),
        nots.as_str(),
    ];
    for query in queries {
        match store.search_blocking(&SearchRequest {
            query: query.into(),
            size: 10,
            ..Default::default()
        }) {
            Ok(_) => {}
            Err(e) => assert!(
                e.is_bad_request(),
                "{:?} failed as {e}, not as a bad request",
                &query[..query.len().min(60)]
            ),
        }
    }
    store.close();
}
