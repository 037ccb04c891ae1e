use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

struct Harness {
    _dir: tempfile::TempDir,
    state: AppState,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), Duration::from_millis(10), 15_000_000).unwrap();
        Harness {
            _dir: dir,
            state: AppState {
                store: Arc::new(store),
                max_body_bytes: 4096,
                max_event_bytes: 1024,
            },
        }
    }

    async fn send(&self, method: Method, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(body.into())
            .unwrap();
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

    async fn search(&self, query: &str) -> Value {
        let uri = format!("/api/events?q={query}&size=100");
        let (status, body) = self.send(Method::GET, &uri, Body::empty()).await;
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
