use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::http::tls::Peer;
use axum::extract::ConnectInfo;

/// The harness's reader token (the collector's own read token, in a real one).
const READER: &str = "test-reader-token-0123456789";

/// Access with the reader token and, when given, a tokens file's text.
fn access(tokens: Option<&str>) -> Arc<Access> {
    let mut readers = crate::http::auth::Tokens::default();
    readers.add(READER.as_bytes(), crate::http::auth::Role::Reader);
    Arc::new(Access::new(
        crate::http::auth::Grants {
            tokens: tokens.map(|text| Arc::new(crate::http::auth::Tokens::parse(text).unwrap())),
            users: None,
            open_reads: false,
        },
        readers,
        Arc::default(),
        crate::console::sessions::Sessions::new(Duration::from_secs(60), Duration::from_secs(600)),
    ))
}

pub(super) struct Harness {
    _dir: tempfile::TempDir,
    pub(super) state: AppState,
}

impl Harness {
    pub(super) fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::stores::embedded::EmbeddedStore::open(
            dir.path(),
            Duration::from_millis(10),
            15_000_000,
        )
        .unwrap();
        Harness {
            _dir: dir,
            state: AppState {
                store: Arc::new(Store::Embedded(store)),
                max_body_bytes: 4096,
                max_event_bytes: 1024,
                access: access(None),
                max_events_per_request: 1000,
                min_body_bytes_per_sec: 1024,
                max_response_bytes: 1 << 20,
                time_window: mozdef::normalize::TimeWindow {
                    max_age: Some(chrono::Duration::days(365)),
                    max_future: chrono::Duration::hours(24),
                },
                guards: Guards {
                    slots: Arc::new(tokio::sync::Semaphore::new(8)),
                    timeout: Duration::from_secs(5),
                    queue_timeout: Duration::from_millis(200),
                    metrics: Arc::default(),
                },
                metrics: Arc::default(),
                alerts: None,
                elasticsearch: Arc::default(),
                reparser: Arc::default(),
                console: Arc::default(),
            },
        }
    }

    /// The harness's own folder (the store is in it).
    pub(super) fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Sends a request; searches (`/api/…`) with the reader token.
    pub(super) async fn send(
        &self,
        method: Method,
        uri: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if uri.starts_with("/api/") {
            request = request.header("authorization", format!("Bearer {READER}"));
        }
        self.send_request(request.body(body.into()).unwrap()).await
    }

    /// Sends a request; the answer with its headers.
    pub(super) async fn send_full(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, headers, value)
    }

    async fn send_request(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    async fn post(&self, body: impl Into<Body>) -> (StatusCode, Value) {
        self.send(Method::POST, "/events", body).await
    }

    pub(super) async fn search(&self, query: &str) -> Value {
        let uri = format!("/api/events?q={query}&size=100");
        let request = Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {READER}"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = self.send_request(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

#[tokio::test]
async fn status_answers_as_mozdef_does() {
    let h = Harness::new();
    let (status, body) = h.send(Method::GET, "/status", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok", "service": "loginput"}));
}

#[tokio::test]
async fn one_object_is_normalized_and_stored() {
    let h = Harness::new();
    let (status, body) = h
        .post(r#"{"@timestamp":"2026-11-22T09:14:03+01:00","HOST":"db1","message":"hello","type":"audit","extra":1}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], json!(1));
    let found = h.search("hostname:db1").await;
    assert_eq!(found["total"], json!(1));
    let event = &found["hits"][0];
    assert_eq!(event["summary"], json!("hello"));
    assert_eq!(event["category"], json!("audit"));
    assert_eq!(event["utctimestamp"], json!("2026-11-22T08:14:03+00:00"));
    assert_eq!(event["details"]["extra"], json!(1));
    assert!(event["receivedtimestamp"].is_string());
}

#[tokio::test]
async fn put_works_like_post() {
    let h = Harness::new();
    let (status, _) = h.send(Method::PUT, "/events", r#"{"summary":"put"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.search("summary:put").await["total"], json!(1));
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_400_naming_the_problem() {
    let h = Harness::new();
    let (status, body) = h.post("this is not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("not JSON"), "{error}");
    let (status, body) = h.post("").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("empty"));
}

#[tokio::test]
async fn an_array_with_one_bad_item_stores_the_good_ones() {
    let h = Harness::new();
    let (status, body) = h
        .post(r#"[{"summary":"good one"}, "not an object", {"summary":"good two"}]"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["received"], json!(3));
    assert_eq!(body["stored"], json!(2));
    assert_eq!(body["rejected"][0]["position"], json!(1));
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("string, not an object")
    );
    assert_eq!(h.search("summary:good").await["total"], json!(2));
}

#[tokio::test]
async fn ndjson_with_a_broken_line_stores_the_others() {
    let h = Harness::new();
    let (status, body) = h
        .post("{\"summary\":\"line one\"}\n{oops\n{\"summary\":\"line three\"}\n")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], json!(2));
    assert_eq!(body["rejected"][0]["position"], json!(1));
    assert_eq!(h.search("summary:line").await["total"], json!(2));
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let h = Harness::new();
    let big = format!("{{\"summary\":\"{}\"}}", "x".repeat(5000));
    let (status, body) = h.post(big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].as_str().unwrap().contains("4096"), "{body}");
    assert_eq!(h.search("*").await["total"], json!(0));
}

#[tokio::test]
async fn an_event_over_the_event_limit_is_refused_alone() {
    let h = Harness::new();
    let big = format!("{{\"summary\":\"{}\"}}", "x".repeat(2000));
    let (status, body) = h.post(big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, body) = h.post(format!("[{big},{{\"summary\":\"small\"}}]")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rejected"][0]["position"], json!(0));
    assert_eq!(h.search("*").await["total"], json!(1));
}

#[tokio::test]
async fn only_bad_items_get_400_with_their_reasons() {
    let h = Harness::new();
    let (status, body) = h.post("[1, 2]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["rejected"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn search_refuses_bad_parameters_with_400() {
    let h = Harness::new();
    for uri in [
        "/api/events?q=category:(",
        "/api/events?from=soon",
        "/api/events?size=0",
        "/api/events?size=many",
        "/api/events?bogus=1",
    ] {
        let (status, body) = h.send(Method::GET, uri, Body::empty()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn post_with(headers: &[(&str, &str)], body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::builder().method(Method::POST).uri("/events");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body.into()).unwrap()
}

#[tokio::test]
async fn gzip_bodies_are_inflated_and_bombs_refused() {
    let h = Harness::new();
    let ndjson = b"{\"summary\":\"zipped one\",\"hostname\":\"gz1\"}\n{\"summary\":\"zipped two\",\"hostname\":\"gz1\"}\n";
    let (status, body) = h
        .send_request(post_with(&[("content-encoding", "gzip")], gzip(ndjson)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], json!(2));
    assert_eq!(h.search("hostname:gz1").await["total"], json!(2));

    // Small on the wire, over the 4,096-byte limit once inflated.
    let bomb = gzip(&vec![b' '; 100_000]);
    assert!(bomb.len() < 4096);
    let (status, body) = h
        .send_request(post_with(&[("content-encoding", "gzip")], bomb))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    let (status, body) = h
        .send_request(post_with(&[("content-encoding", "gzip")], &b"not gzip"[..]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("gzip"), "{body}");

    let (status, body) = h
        .send_request(post_with(&[("content-encoding", "br")], &b"{}"[..]))
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
}

#[tokio::test]
async fn bearer_tokens_guard_everything_but_health_checks() {
    let mut h = Harness::new();
    h.state.access = access(Some("0123456789abcdef-fleet\n"));
    let event = r#"{"summary":"with token","hostname":"tok1"}"#;

    let (status, body) = h.send_request(post_with(&[], event)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = h
        .send_request(post_with(
            &[("authorization", "Bearer wrong-token-0000000")],
            event,
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let anonymous = Request::builder()
        .uri("/api/events?q=*")
        .body(Body::empty())
        .unwrap();
    let (status, _) = h.send_request(anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The shipper token may send, not search.
    let shipper = Request::builder()
        .uri("/api/events?q=*")
        .header("authorization", "Bearer 0123456789abcdef-fleet")
        .body(Body::empty())
        .unwrap();
    let (status, body) = h.send_request(shipper).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("shipper"),
        "{body}"
    );
    let (status, _) = h.send(Method::GET, "/status", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = h
        .send_request(post_with(
            &[("authorization", "Bearer 0123456789abcdef-fleet")],
            event,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], json!(1));
}

#[tokio::test]
async fn a_client_certificate_name_is_recorded() {
    let h = Harness::new();
    let mut request = post_with(
        &[],
        r#"{"summary":"from a known agent","hostname":"mtls1"}"#,
    );
    request.extensions_mut().insert(ConnectInfo(Peer {
        address: "127.0.0.1:5000".parse().unwrap(),
        identity: Some("agent-17.example.org".into()),
    }));
    let (status, body) = h.send_request(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found = h.search("hostname:mtls1").await;
    assert_eq!(
        found["hits"][0]["details"]["agentidentity"],
        json!("agent-17.example.org")
    );
}

#[tokio::test]
async fn requests_over_the_concurrency_cap_wait_for_a_slot_then_get_503_with_retry_after() {
    let mut h = Harness::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(1));
    h.state.guards.slots = Arc::clone(&slots);
    let taken = slots.clone().acquire_owned().await.unwrap();
    // Every slot taken for longer than the queue's wait: 503 after waiting it out.
    let started = std::time::Instant::now();
    let response = router(h.state.clone())
        .oneshot(post_with(&[], r#"{"summary":"x"}"#))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // A slot freed while the request waits: it is served.
    let waiting =
        tokio::spawn(router(h.state.clone()).oneshot(post_with(&[], r#"{"summary":"queued"}"#)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "the request waits for the slot");
    drop(taken);
    assert_eq!(waiting.await.unwrap().unwrap().status(), StatusCode::OK);
    // No wait configured: refused at once.
    let _taken = slots.clone().acquire_owned().await.unwrap();
    h.state.guards.queue_timeout = Duration::ZERO;
    let started = std::time::Instant::now();
    let response = router(h.state.clone())
        .oneshot(post_with(&[], r#"{"summary":"x"}"#))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn a_store_behind_its_log_answers_503_with_retry_after_and_counts_it() {
    use crate::stores::embedded::config::{Acknowledge, EmbeddedSettings};
    let mut h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    // The first commit is at once, the next a minute later: 1 MiB of log fills first.
    let settings = EmbeddedSettings {
        commit_interval: Duration::from_secs(60),
        writer_memory_bytes: 15_000_000,
        acknowledge: Acknowledge::Logged,
        max_unindexed_bytes: 1 << 20,
    };
    let store = crate::stores::embedded::EmbeddedStore::open_with(dir.path(), &settings).unwrap();
    h.state.store = Arc::new(Store::Embedded(store));
    h.state.max_body_bytes = 1 << 20;
    let padding = "x".repeat(500);
    let mut busy = None;
    for request in 0..40 {
        let body: String = (0..500)
            .map(|i| {
                format!("{{\"summary\":\"burst {request} {i} {padding}\",\"hostname\":\"b1\"}}\n")
            })
            .collect();
        let response = router(h.state.clone())
            .oneshot(post_with(&[], body))
            .await
            .unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            busy = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = busy.expect("a 503 once the log is 1 MiB ahead of the index");
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("busy"),
        "{answer}"
    );
    let text = h.state.metrics.render();
    assert!(
        text.lines()
            .any(|l| l == "picket_requests_refused_total{reason=\"store_busy\"} 1"),
        "{text}"
    );
    h.state.store.close().await;
}

#[tokio::test]
async fn nxlog_and_cef_routes_record_their_endpoint_as_mozdef_does() {
    let h = Harness::new();
    let (status, body) = h
        .send(
            Method::POST,
            "/cef",
            r#"{"summary":"cef via loginput","hostname":"fw1","details":{"signatureid":"100"}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .send(
            Method::PUT,
            "/nxlog/",
            r#"{"Message":"nxlog via loginput","Hostname":"win1","EventTime":"2026-11-25 08:00:00"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cef = h.search("hostname:fw1").await;
    assert_eq!(cef["hits"][0]["details"]["endpoint"], json!("cef"));
    assert_eq!(cef["hits"][0]["details"]["signatureid"], json!("100"));
    let nxlog = h.search("details.endpoint:nxlog").await;
    assert_eq!(nxlog["total"], json!(1), "{nxlog}");
}

#[tokio::test]
async fn bulk_bodies_skip_elasticsearch_action_lines() {
    let h = Harness::new();
    let body = concat!(
        "{\"index\":{\"_index\":\"events\",\"_type\":\"_doc\"}}\n",
        "{\"summary\":\"bulk one\",\"hostname\":\"bulk1\"}\n",
        "{\"create\":{\"_index\":\"events\"}}\n",
        "{\"summary\":\"bulk two\",\"hostname\":\"bulk1\"}\n",
        "{\"index\":\"not an action: its value is not an object\",\"hostname\":\"bulk1\"}\n",
    );
    let (status, answer) = h.send(Method::POST, "/_bulk", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Answered as Elasticsearch answers: one item per action (the bare document is an
    // implied `index`), all created.
    assert_eq!(answer["errors"], json!(false), "{answer}");
    let items = answer["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{answer}");
    assert_eq!(items[0]["index"]["status"], json!(201), "{answer}");
    assert_eq!(items[1]["create"]["status"], json!(201), "{answer}");
    assert_eq!(items[2]["index"]["status"], json!(201), "{answer}");
    assert_eq!(h.search("hostname:bulk1").await["total"], json!(3));
}

#[tokio::test]
async fn metrics_count_what_came_in_what_was_stored_and_what_was_refused() {
    let h = Harness::new();
    let (status, _) = h
        .send(
            Method::POST,
            "/cef",
            "{\"summary\":\"one\",\"hostname\":\"m1\"}\nnot json\n[1]\n",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .send_request(post_with(&[("content-encoding", "gzip")], &b"garbage"[..]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let response = router(h.state.clone())
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for line in [
        "picket_events_received_total{source=\"cef\"} 3",
        "picket_events_stored_total{source=\"cef\"} 1",
        "picket_events_rejected_total{reason=\"not_json\"} 1",
        "picket_events_rejected_total{reason=\"invalid\"} 1",
        "picket_requests_refused_total{reason=\"bad_body\"} 1",
        "picket_store_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
}

#[tokio::test]
async fn custom_documents_are_stored_as_sent_with_mozdefs_two_additions() {
    let h = Harness::new();
    let (status, body) = h
        .send(
            Method::POST,
            "/custom/Firewall_1",
            r#"{"Rule":"deny","count":3}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], json!(1));
    let found = h.search("details.endpoint:Firewall_1").await;
    assert_eq!(found["total"], json!(1), "{found}");
    assert_eq!(
        found["hits"][0],
        json!({"Rule": "deny", "count": 3, "endpoint": "Firewall_1", "customendpoint": true}),
        "not normalized: keys keep their case, no eventid or summary is made up"
    );
    let (status, body) = h.send(Method::POST, "/custom/bad%20name", "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("application name"));
    let (status, body) = h.send(Method::POST, "/custom/app", "[1, {\"a\": 1}]").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rejected"][0]["position"], json!(0), "{body}");
    assert_eq!(body["stored"], json!(1));
}

#[tokio::test]
async fn search_api_takes_aggregations_and_says_what_is_wrong() {
    let h = Harness::new();
    let events: Vec<Value> = (0..6)
        .map(|i| {
            json!({"summary": "failed", "hostname": format!("h{}", i % 2),
                   "details": {"username": format!("u{i}")}})
        })
        .collect();
    let (status, _) = h.post(Value::Array(events).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let search = |body: Value| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/search")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {READER}"))
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, body) = h
        .send_request(search(json!({
            "query": "summary:failed", "size": 0,
            "aggs": {"hosts": {"terms": {"field": "hostname"},
                     "aggs": {"users": {"cardinality": {"field": "details.username"}}}}}
        })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], json!(6));
    let buckets = body["aggregations"]["hosts"]["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{body}");
    assert_eq!(buckets[0]["doc_count"], json!(3));
    assert_eq!(buckets[0]["users"]["value"], json!(3.0));
    for bad in [
        json!({"aggs": {"x": {"terms": {}}}}),
        json!({"aggs": [1]}),
        json!({"query": "a:(", "size": 1}),
        json!({"size": 10001}),
        json!({"unknown": 1}),
    ] {
        let (status, body) = h.send_request(search(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn an_empty_array_is_a_bad_request_that_says_so() {
    let h = Harness::new();
    let (status, body) = h.post("[]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no event"),
        "{body}"
    );
}

#[tokio::test]
async fn a_wrong_method_or_path_gets_a_json_answer() {
    let h = Harness::new();
    let request = Request::builder()
        .method(Method::GET)
        .uri("/events")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = h.send_full(request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let allow = headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("POST") && allow.contains("PUT"), "{allow}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("GET is not allowed on /events"),
        "{body}"
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri("/no/such/route")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = h.send_full(request).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no route"),
        "{body}"
    );
}

#[tokio::test]
async fn basic_users_send_and_search_by_role() {
    use base64::Engine as _;
    let mut h = Harness::new();
    let file = h._dir.path().join("users");
    let hash = |password: &str| bcrypt::hash(password, 4).unwrap();
    std::fs::write(
        &file,
        format!(
            "rsyslog:{}\nanalyst:{} reader\n",
            hash("ship-pass"),
            hash("read-pass")
        ),
    )
    .unwrap();
    let mut readers = crate::http::auth::Tokens::default();
    readers.add(READER.as_bytes(), crate::http::auth::Role::Reader);
    h.state.access = Arc::new(Access::new(
        crate::http::auth::Grants {
            tokens: None,
            users: Some(Arc::new(crate::http::users::Users::load(&file).unwrap())),
            open_reads: false,
        },
        readers,
        Arc::default(),
        crate::console::sessions::Sessions::new(Duration::from_secs(60), Duration::from_secs(600)),
    ));
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let send = |method: Method, uri: &str, authorization: Option<String>, body: &str| {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.body(Body::from(body.to_string())).unwrap()
    };
    let event = r#"{"summary":"basic","hostname":"basic1"}"#;
    let (status, headers, body) = h
        .send_full(send(Method::POST, "/events", None, event))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("Basic")
    );
    assert!(
        body["error"].as_str().unwrap().contains("users_file"),
        "{body}"
    );
    let (status, _, body) = h
        .send_full(send(
            Method::POST,
            "/events",
            Some(basic("rsyslog", "wrong")),
            event,
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, body) = h
        .send_full(send(
            Method::POST,
            "/events",
            Some(basic("rsyslog", "ship-pass")),
            event,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The Elasticsearch face takes them too.
    let bulk = "{\"index\":{}}\n{\"summary\":\"basic bulk\",\"hostname\":\"basic1\"}\n";
    let (status, _, body) = h
        .send_full(send(
            Method::POST,
            "/_bulk",
            Some(basic("rsyslog", "ship-pass")),
            bulk,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["errors"], json!(false), "{body}");
    // A shipper may not search; a reader may, and may not send.
    let (status, _, _) = h
        .send_full(send(
            Method::GET,
            "/api/events?q=hostname:basic1",
            Some(basic("rsyslog", "ship-pass")),
            "",
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = h
        .send_full(send(
            Method::GET,
            "/api/events?q=hostname:basic1",
            Some(basic("analyst", "read-pass")),
            "",
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], json!(2), "{body}");
    let (status, _, _) = h
        .send_full(send(
            Method::POST,
            "/events",
            Some(basic("analyst", "read-pass")),
            event,
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
