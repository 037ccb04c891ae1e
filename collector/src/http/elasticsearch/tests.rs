use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::http::tests::Harness;

async fn call(
    h: &Harness,
    method: Method,
    uri: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    h.send_full(request).await
}

/// The items of a `_bulk` answer as (action, status, result or error type).
fn items(answer: &Value) -> Vec<(String, u64, String)> {
    answer["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {answer}"))
        .iter()
        .map(|item| {
            let (op, body) = item.as_object().unwrap().iter().next().unwrap();
            let what = body["result"]
                .as_str()
                .or_else(|| body["error"]["type"].as_str())
                .unwrap_or("?")
                .to_string();
            (op.clone(), body["status"].as_u64().unwrap(), what)
        })
        .collect()
}

#[tokio::test]
async fn the_banner_is_an_elasticsearch_8_node_with_the_product_header() {
    let h = Harness::new();
    let (status, headers, banner) = call(&h, Method::GET, "/", "").await;
    assert_eq!(status, StatusCode::OK, "{banner}");
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    assert_eq!(banner["version"]["number"], json!("8.19.0"), "{banner}");
    assert_eq!(banner["version"]["build_flavor"], json!("default"));
    assert_eq!(banner["tagline"], json!("You Know, for Search"));
    let (status, headers, body) = call(&h, Method::HEAD, "/", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    assert_eq!(body, Value::Null);
    let (_, _, license) = call(&h, Method::GET, "/_license", "").await;
    assert_eq!(license["license"]["status"], json!("active"), "{license}");
    let (status, _, health) = call(&h, Method::GET, "/_cluster/health", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], json!("green"));
}

#[tokio::test]
async fn templates_and_policies_are_acknowledged_and_not_kept() {
    let h = Harness::new();
    for path in [
        "/_index_template/filebeat-8.19.0",
        "/_template/logstash",
        "/_ilm/policy/filebeat",
        "/_ingest/pipeline/p1",
    ] {
        let (status, headers, body) =
            call(&h, Method::PUT, path, "{\"index_patterns\":[\"x-*\"]}").await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, json!({"acknowledged": true}), "{path}");
        assert_eq!(headers["x-elastic-product"], "Elasticsearch");
        let (status, _, body) = call(&h, Method::GET, path, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["status"], json!(404), "{body}");
    }
    let (status, _, body) = call(&h, Method::PUT, "/my-index", "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["acknowledged"], json!(true));
    // Nothing of it became an event.
    assert_eq!(h.search("*").await["total"], json!(0));
}

#[tokio::test]
async fn bulk_items_answer_as_elasticsearch_and_a_resend_is_not_a_second_event() {
    let h = Harness::new();
    let body = concat!(
        "{\"index\":{\"_index\":\"logs\",\"_id\":\"doc-1\"}}\n",
        "{\"summary\":\"one\",\"hostname\":\"es1\",\"timestamp\":\"2026-12-01T10:00:00Z\"}\n",
        "{\"create\":{\"_index\":\"logs\",\"_id\":\"doc-2\"}}\n",
        "{\"summary\":\"two\",\"hostname\":\"es1\",\"timestamp\":\"2026-12-01T10:00:01Z\"}\n",
        "{\"index\":{\"_index\":\"logs\"}}\n",
        "{\"summary\":\"three\",\"hostname\":\"es1\",\"timestamp\":\"2026-12-01T10:00:02Z\"}\n",
    );
    let (status, headers, first) = call(&h, Method::POST, "/_bulk", body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    assert_eq!(first["errors"], json!(false), "{first}");
    assert_eq!(
        items(&first),
        [
            ("index".to_string(), 201, "created".to_string()),
            ("create".to_string(), 201, "created".to_string()),
            ("index".to_string(), 201, "created".to_string()),
        ]
    );
    assert_eq!(first["items"][0]["index"]["_id"], json!("doc-1"));
    assert_eq!(first["items"][0]["index"]["_index"], json!("logs"));
    // The same body again: `index` of a stored id is an update (nothing rewritten),
    // `create` of one a 409 (which shippers that create take as delivered), and the
    // document without an id gets the same content-made id.
    let (status, _, again) = call(&h, Method::POST, "/_bulk", body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        items(&again),
        [
            ("index".to_string(), 200, "updated".to_string()),
            (
                "create".to_string(),
                409,
                "version_conflict_engine_exception".to_string()
            ),
            ("index".to_string(), 200, "updated".to_string()),
        ]
    );
    assert_eq!(
        again["items"][2]["index"]["_id"],
        first["items"][2]["index"]["_id"]
    );
    assert_eq!(h.search("hostname:es1").await["total"], json!(3));
    let stored = h.search("eventid:doc-1").await;
    assert_eq!(stored["hits"][0]["summary"], json!("one"), "{stored}");
}

#[tokio::test]
async fn bad_items_fail_alone_and_name_the_problem() {
    let h = Harness::new();
    let body = concat!(
        "{\"index\":{\"_id\":\"keep\"}}\n",
        "{\"summary\":\"kept\",\"hostname\":\"es2\"}\n",
        "{\"index\":{\"_id\":\"keep\"}}\n",
        "{\"summary\":\"another body\",\"hostname\":\"es2\"}\n",
        "{\"update\":{\"_id\":\"keep\"}}\n",
        "{\"doc\":{\"summary\":\"changed\"}}\n",
        "{\"delete\":{\"_id\":\"keep\"}}\n",
        "{\"index\":{}}\n",
        "[1,2]\n",
        "{\"index\":{}}\n",
        "not json\n",
    );
    let (status, _, answer) = call(&h, Method::POST, "/logs/_bulk", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["errors"], json!(true), "{answer}");
    let got = items(&answer);
    let statuses: Vec<u64> = got.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(statuses, [201, 409, 400, 400, 400, 400], "{answer}");
    assert_eq!(got[2].0, "update");
    assert_eq!(got[3].0, "delete");
    assert_eq!(
        answer["items"][0]["index"]["_index"],
        json!("logs"),
        "the path's index"
    );
    assert!(
        answer["items"][2]["update"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("not changed"),
        "{answer}"
    );
    let stored = h.search("hostname:es2").await;
    assert_eq!(stored["total"], json!(1), "{stored}");
    assert_eq!(stored["hits"][0]["summary"], json!("kept"));
    // A request with no action at all is refused whole.
    let (status, headers, answer) = call(&h, Method::POST, "/_bulk", "[]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    assert_eq!(answer["status"], json!(400), "{answer}");
}

#[tokio::test]
async fn one_document_routes_answer_as_elasticsearch() {
    let h = Harness::new();
    let doc =
        "{\"summary\":\"single\",\"hostname\":\"es3\",\"timestamp\":\"2026-12-01T10:00:00Z\"}";
    let (status, _, answer) = call(&h, Method::PUT, "/logs/_doc/single-1", doc).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["result"], json!("created"));
    assert_eq!(answer["_id"], json!("single-1"));
    let (status, _, answer) = call(&h, Method::PUT, "/logs/_doc/single-1", doc).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"], json!("updated"));
    let (status, _, answer) = call(&h, Method::PUT, "/logs/_create/single-1", doc).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(
        answer["error"]["type"],
        json!("version_conflict_engine_exception")
    );
    let (status, _, answer) = call(&h, Method::POST, "/logs/_doc", doc).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, _, answer) = call(&h, Method::POST, "/logs/_doc", "[1]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["type"], json!("document_parsing_exception"));
    // single-1 once, and the id-less one: the same content as single-1 but another id.
    assert_eq!(h.search("hostname:es3").await["total"], json!(2));
}

#[tokio::test]
async fn the_version_is_configurable_and_checked() {
    let config = super::ElasticsearchConfig {
        version: "7.17.3".into(),
        ..Default::default()
    };
    assert!(config.build().is_ok());
    for bad in ["8", "8.x.1", "5.6.0", "10.0.0", ""] {
        let config = super::ElasticsearchConfig {
            version: bad.into(),
            ..Default::default()
        };
        let error = config.build().unwrap_err();
        assert_eq!(error.key, "collector.http.elasticsearch.version", "{bad}");
    }
}

#[tokio::test]
async fn an_unreadable_line_where_an_action_belongs_refuses_the_request() {
    let h = Harness::new();
    // Was `not json` an action? Guessing would pair the answers with the wrong actions.
    let body = "{\"index\":{}}\n{\"summary\":\"a\",\"hostname\":\"es4\"}\nnot json\n{\"summary\":\"b\",\"hostname\":\"es4\"}\n";
    let (status, _, answer) = call(&h, Method::POST, "/_bulk", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("Malformed action/metadata line [3]"),
        "{answer}"
    );
    assert_eq!(h.search("hostname:es4").await["total"], json!(0));
    // Bare documents (no action first): each line its own item, the bad one refused alone.
    let body = "{\"summary\":\"a\",\"hostname\":\"es5\"}\nnot json\n{\"summary\":\"b\",\"hostname\":\"es5\"}\n";
    let (status, _, answer) = call(&h, Method::POST, "/_bulk", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["errors"], json!(true));
    assert_eq!(answer["items"].as_array().unwrap().len(), 3);
    assert_eq!(h.search("hostname:es5").await["total"], json!(2));
}
