//! The console's routes through the whole router: logins and their cookie, what each
//! role may do, CSRF, triage stored in the alert, the hosts list. (The page itself is
//! driven in a real browser by `tests/console/`.)

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::Utc;
use serde_json::{Value, json};

use super::tests::Harness;
use crate::http::auth::{Access, Grants, Tokens};

const SHIPPER_TOKEN: &str = "shipper-token-0123456789";
const ANALYST_TOKEN: &str = "analyst-token-0123456789";

/// A harness with users (analyst, reader, shipper), a shipper and an analyst token,
/// and an embedded alert store.
fn harness() -> Harness {
    let mut h = Harness::new();
    let file = h.dir().join("users");
    let hash = |password: &str| bcrypt::hash(password, 4).unwrap();
    std::fs::write(
        &file,
        format!(
            "alice:{} analyst\nrita:{} reader\nrsyslog:{}\n",
            hash("alice-pass"),
            hash("rita-pass"),
            hash("ship-pass")
        ),
    )
    .unwrap();
    let tokens = Tokens::parse(&format!("{SHIPPER_TOKEN}\n{ANALYST_TOKEN} analyst\n")).unwrap();
    h.state.access = Arc::new(Access::new(
        Grants {
            tokens: Some(Arc::new(tokens)),
            users: Some(Arc::new(crate::http::users::Users::load(&file).unwrap())),
            open_reads: false,
        },
        Tokens::default(),
        Arc::default(),
        crate::console::sessions::Sessions::new(Duration::from_secs(60), Duration::from_secs(600)),
    ));
    let alerts = crate::stores::embedded::EmbeddedStore::open(
        &h.dir().join("alerts"),
        Duration::from_millis(10),
        15_000_000,
    )
    .unwrap();
    h.state.alerts = Some(Arc::new(crate::alerts::AlertStore::Embedded(alerts)));
    h
}

/// A request with, when given, a bearer token or a session cookie and its CSRF token.
fn request(
    method: Method,
    uri: &str,
    bearer: Option<&str>,
    session: Option<&Login>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(login) = session {
        builder = builder
            .header(header::COOKIE, format!("other=1; {}", login.cookie))
            .header("x-csrf-token", &login.csrf);
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// A logged-in console.
struct Login {
    /// `picket_session=<id>`.
    cookie: String,
    csrf: String,
}

impl Login {
    /// The same session without its CSRF token.
    fn without_csrf(&self) -> Login {
        Login {
            cookie: self.cookie.clone(),
            csrf: String::new(),
        }
    }
}

async fn login(h: &Harness, body: Value) -> Result<Login, (StatusCode, Value)> {
    let (status, headers, answer) = exchange(
        h,
        request(Method::POST, "/console/api/login", None, None, Some(body)),
    )
    .await;
    if status != StatusCode::OK {
        return Err((status, answer));
    }
    let set = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for part in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    Ok(Login {
        cookie: set.split(';').next().unwrap().to_string(),
        csrf: answer["csrf"].as_str().unwrap().to_string(),
    })
}

/// Sends a request through the router: its status, headers and JSON (null if none).
async fn exchange(h: &Harness, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    use tower::ServiceExt as _;
    let response = crate::http::router(h.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn status_of(h: &Harness, request: Request<Body>) -> (StatusCode, Value) {
    let (status, _, body) = exchange(h, request).await;
    (status, body)
}

#[tokio::test]
async fn the_console_logs_in_users_and_keeps_shippers_out() {
    let h = harness();
    // The page is public (it shows the login), but not to a shipper.
    let (status, headers, _) =
        exchange(&h, request(Method::GET, "/console/", None, None, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    for uri in ["/console/", "/console/app.js", "/console/api/session"] {
        let (status, _) = status_of(
            &h,
            request(Method::GET, uri, Some(SHIPPER_TOKEN), None, None),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
    }
    for uri in [
        "/api/hosts",
        "/api/fields",
        "/api/alerts",
        "/api/alerts/0123",
    ] {
        let (status, _) = status_of(&h, request(Method::GET, uri, None, None, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        let (status, body) = status_of(
            &h,
            request(Method::GET, uri, Some(SHIPPER_TOKEN), None, None),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
    }
    let (status, body) = status_of(
        &h,
        request(Method::GET, "/console/api/session", None, None, None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["users"], json!(true));
    // The Elasticsearch face's routes under /console (an index named `console`) send:
    // they need a shipper like any other sending route.
    let bulk = "{\"index\":{}}\n{\"summary\":\"forged\",\"hostname\":\"dc1\"}\n";
    for uri in ["/console/_bulk", "/console/_doc", "/console/_create/x1"] {
        let post = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(bulk))
            .unwrap();
        let (status, _) = status_of(&h, post).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    // A browser's script is not offered HTTP Basic (it would raise the browser's own
    // password dialog); other clients are.
    let from_script = Request::builder()
        .uri("/api/fields")
        .header("sec-fetch-mode", "cors")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = exchange(&h, from_script).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer realm=\"picket\"");
    let (_, headers, _) = exchange(&h, request(Method::GET, "/api/fields", None, None, None)).await;
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("Basic")
    );

    // Wrong passwords, a shipper, a malformed body.
    let (status, _) = login(&h, json!({"user": "alice", "password": "nope"}))
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = login(&h, json!({"user": "rsyslog", "password": "ship-pass"}))
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = login(&h, json!({"token": SHIPPER_TOKEN}))
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = login(&h, json!({"user": "alice"})).await.err().unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let alice = login(&h, json!({"user": "alice", "password": "alice-pass"}))
        .await
        .unwrap();
    let (status, body) = status_of(
        &h,
        request(
            Method::GET,
            "/console/api/session",
            None,
            Some(&alice),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"], json!("alice"));
    assert_eq!(body["role"], json!("analyst"));
    assert_eq!(body["csrf"], json!(alice.csrf));
    let (status, body) = status_of(
        &h,
        request(Method::GET, "/api/fields", None, Some(&alice), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fields"][0], json!("utctimestamp"));
    // A POST from the session needs its CSRF token.
    let search = json!({"query": "*", "size": 1});
    let (status, body) = status_of(
        &h,
        request(
            Method::POST,
            "/api/search",
            None,
            Some(&alice.without_csrf()),
            Some(search.clone()),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("X-CSRF-Token"));
    let (status, _) = status_of(
        &h,
        request(
            Method::POST,
            "/api/search",
            None,
            Some(&alice),
            Some(search),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A token logs in too; the session is a token's.
    let by_token = login(&h, json!({"token": ANALYST_TOKEN})).await.unwrap();
    let (_, body) = status_of(
        &h,
        request(
            Method::GET,
            "/console/api/session",
            None,
            Some(&by_token),
            None,
        ),
    )
    .await;
    assert_eq!(body["user"], json!("token"));
    // Logging out ends the session; a reload of the grants ends them all.
    let (status, _) = status_of(
        &h,
        request(
            Method::POST,
            "/console/api/logout",
            None,
            Some(&alice),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = status_of(
        &h,
        request(Method::GET, "/api/fields", None, Some(&alice), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let rita = login(&h, json!({"user": "rita", "password": "rita-pass"}))
        .await
        .unwrap();
    let (status, _) = status_of(
        &h,
        request(
            Method::POST,
            "/console/_doc",
            None,
            Some(&rita),
            Some(json!({"summary": "forged"})),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a reader's session may not send"
    );
    h.state.access.replace(Grants {
        tokens: None,
        users: h.state.access.grants().users.clone(),
        open_reads: false,
    });
    let (status, _) = status_of(
        &h,
        request(Method::GET, "/api/fields", None, Some(&rita), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn triage_is_stored_in_the_alert_and_needs_an_analyst() {
    let h = harness();
    let id = crate::alerts::new_id();
    let document = json!({
        "id": id,
        "utctimestamp": mozdef::time::format_utc(Utc::now()),
        "severity": "WARNING",
        "summary": "ssh brute force from 203.0.113.9",
        "category": "bruteforce",
        "status": "NEW",
        "details": {"rule": "ssh-bruteforce"},
    });
    let Some(crate::alerts::AlertStore::Embedded(store)) = h.state.alerts.as_deref() else {
        unreachable!("the harness keeps alerts in an embedded store")
    };
    store
        .store_alerts(&[(id.clone(), document.clone())])
        .await
        .unwrap();
    let alice = login(&h, json!({"user": "alice", "password": "alice-pass"}))
        .await
        .unwrap();
    let rita = login(&h, json!({"user": "rita", "password": "rita-pass"}))
        .await
        .unwrap();
    // A status change to `uri` by a session or a bearer token.
    let triage =
        |uri: String, bearer: Option<&'static str>, session: Option<&Login>, status: &str| {
            let request = request(
                Method::POST,
                &uri,
                bearer,
                session,
                Some(json!({ "status": status })),
            );
            status_of(&h, request)
        };
    let status_uri = || format!("/api/alerts/{id}/status");

    // A reader may look, not triage; without the CSRF token neither may an analyst.
    let (status, body) = status_of(
        &h,
        request(
            Method::GET,
            &format!("/api/alerts/{id}"),
            None,
            Some(&rita),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], json!("NEW"));
    let (status, body) = triage(status_uri(), None, Some(&rita), "ACKNOWLEDGED").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("analyst"));
    let (status, _) = triage(
        status_uri(),
        None,
        Some(&alice.without_csrf()),
        "ACKNOWLEDGED",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = triage(status_uri(), None, Some(&alice), "maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let unknown = "/api/alerts/00000000000000000000000000000000/status".to_string();
    let (status, _) = triage(unknown, None, Some(&alice), "CLOSED").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Two changes back to back (the second reads the first before it is committed).
    let (status, body) = triage(status_uri(), None, Some(&alice), "acknowledged").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], json!("ACKNOWLEDGED"));
    assert_eq!(body["statusby"], json!("alice"));
    let (status, body) = triage(status_uri(), Some(ANALYST_TOKEN), None, "CLOSED").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["statusby"], json!("token"));
    let history = body["statushistory"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{body}");
    assert_eq!(history[0]["status"], json!("ACKNOWLEDGED"));
    assert_eq!(history[1]["status"], json!("CLOSED"));

    // Stored in place: one alert, CLOSED, in the alert search too, the rest kept.
    let mut found = Value::Null;
    for _ in 0..100 {
        let (status, body) = status_of(
            &h,
            request(Method::GET, "/api/alerts?q=*", None, Some(&rita), None),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["hits"][0]["status"] == json!("CLOSED") {
            found = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(found["total"], json!(1), "{found}");
    let alert = &found["hits"][0];
    assert_eq!(alert["summary"], document["summary"]);
    assert_eq!(alert["statushistory"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn hosts_are_listed_silent_first_with_their_agents_state() {
    let h = harness();
    let now = Utc::now();
    let at =
        |minutes_ago: i64| mozdef::time::format_utc(now - chrono::Duration::minutes(minutes_ago));
    let heartbeat = |host: &str, minutes_ago: i64, buffer: u64| {
        json!({
            "utctimestamp": at(minutes_ago),
            "hostname": host,
            "processname": "picket-agent",
            "category": "heartbeat",
            "summary": format!("picket-agent heartbeat from {host}"),
            "tags": ["heartbeat"],
            "details": {"agentversion": "9.9.9", "bufferbytes": buffer, "bufferoldestage": 0},
        })
    };
    let events = json!([
        heartbeat("quiet.example.com", 120, 5),
        heartbeat("quiet.example.com", 125, 6),
        heartbeat("live.example.com", 3, 1),
        heartbeat("live.example.com", 0, 4096),
        {"utctimestamp": at(1), "hostname": "live.example.com", "summary": "Failed password", "category": "authentication"},
        {"utctimestamp": at(1), "hostname": "live.example.com", "summary": "Failed password again", "category": "authentication"},
        {"utctimestamp": at(10), "hostname": "syslog-only.example.com", "summary": "kernel: hello"},
    ]);
    let (status, body) = status_of(
        &h,
        request(
            Method::POST,
            "/events",
            Some(SHIPPER_TOKEN),
            None,
            Some(events),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = status_of(
        &h,
        request(Method::GET, "/api/hosts", Some(ANALYST_TOKEN), None, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hosts = body["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3, "{body}");
    assert_eq!(hosts[0]["hostname"], json!("quiet.example.com"), "{body}");
    assert_eq!(hosts[0]["silent"], json!(true));
    assert_eq!(
        hosts[0]["buffer_bytes"],
        json!(5),
        "the newest heartbeat's: {body}"
    );
    let live = hosts
        .iter()
        .find(|h| h["hostname"] == json!("live.example.com"))
        .unwrap();
    assert_eq!(live["silent"], json!(false));
    assert_eq!(live["agent_version"], json!("9.9.9"));
    assert_eq!(live["buffer_bytes"], json!(4096), "{body}");
    let per_minute: Vec<u64> = live["events_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(per_minute.len(), 60);
    assert_eq!(per_minute.iter().sum::<u64>(), 4, "{per_minute:?}");
    let syslog_only = hosts
        .iter()
        .find(|h| h["hostname"] == json!("syslog-only.example.com"))
        .unwrap();
    assert_eq!(syslog_only["silent"], json!(false));
    assert_eq!(syslog_only["last_heartbeat"], Value::Null);
    assert!(syslog_only["last_event"].is_string());
}
