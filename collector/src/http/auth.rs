//! Who may do what: bearer tokens with roles read from a file and compared in constant
//! time, the collector's own read token, and the request guards every route shares
//! (concurrency cap, request timeout).
//!
//! Roles: a `shipper` token may only send events, a `reader` (or `analyst`) token may
//! only search and read `/metrics`. Searches always need a reader token (or the local
//! read token in `<data_dir>/read.token`) unless `open_reads` is set; sending needs a
//! shipper token once a tokens file is configured.
//!
//! Mutual TLS is enforced in the handshake (`crate::http::tls`); a client without a good
//! certificate never reaches these guards.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;
use thiserror::Error;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::metrics::Metrics;

pub use super::role::Role;

/// Why a tokens file cannot be used.
#[derive(Debug, Error)]
pub enum TokensError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {problem}", .path.display())]
    Invalid {
        path: std::path::PathBuf,
        problem: TokensProblem,
    },
}

/// What is wrong in the text of a tokens file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokensProblem {
    #[error("line {line}: {word:?} is not a role (shipper, reader, analyst)")]
    UnknownRole { line: usize, word: String },
    #[error("line {0}: write a token and at most one role")]
    ExtraWords(usize),
    #[error("line {line}: a token of {length} characters is too short to be secret (at least 16)")]
    TooShort { line: usize, length: usize },
    #[error("holds no token")]
    Empty,
}

/// The accepted bearer tokens and their roles.
#[derive(Default)]
pub struct Tokens {
    tokens: Vec<(Vec<u8>, Role)>,
}

// Never print a token, even in a debug dump of the settings.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} tokens, **REDACTED**)", self.tokens.len())
    }
}

impl Tokens {
    /// Reads one token a line, `<token> [role]`; blank lines and `#` comments are
    /// skipped. A file with no token is an error (it would lock every sender out).
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Tokens::parse(&text).map_err(|problem| TokensError::Invalid {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Tokens from the text of a tokens file.
    pub fn parse(text: &str) -> Result<Tokens, TokensProblem> {
        let mut tokens = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let token = words.next().unwrap_or_default();
            let role = match words.next() {
                None => Role::Shipper,
                Some(word) => Role::parse(word).ok_or_else(|| TokensProblem::UnknownRole {
                    line: number + 1,
                    word: word.to_string(),
                })?,
            };
            if words.next().is_some() {
                return Err(TokensProblem::ExtraWords(number + 1));
            }
            if token.len() < 16 {
                return Err(TokensProblem::TooShort {
                    line: number + 1,
                    length: token.len(),
                });
            }
            tokens.push((token.as_bytes().to_vec(), role));
        }
        if tokens.is_empty() {
            return Err(TokensProblem::Empty);
        }
        Ok(Tokens { tokens })
    }

    /// Adds a token (the collector's own read token).
    pub fn add(&mut self, token: &[u8], role: Role) {
        self.tokens.push((token.to_vec(), role));
    }

    /// The role of `presented`, if it is one of the tokens. Every token is compared,
    /// each in constant time, so timing tells nothing about which or how much matched.
    pub fn role_of(&self, presented: &[u8]) -> Option<Role> {
        let mut found = None;
        for (token, role) in &self.tokens {
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = Some(*role);
            }
        }
        found
    }

    /// Whether `presented` is one of the tokens (any role).
    pub fn accepts(&self, presented: &[u8]) -> bool {
        self.role_of(presented).is_some()
    }
}

/// The collector's own read token, `<data_dir>/read.token` (0600, made at the first
/// start): the local `picket-collector search` reads it, so searching needs the
/// collector's user (or root) on its host, or a `reader` token.
pub fn local_read_token(data_dir: &Path) -> std::io::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join(READ_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    Ok(token)
}

/// The read token's file name in the data directory.
pub const READ_TOKEN_FILE: &str = "read.token";

fn refuse(status: StatusCode, message: &str) -> Response {
    refuse_for(false, status, message)
}

/// A refusal; `browser`: the request came from a browser's script (it sent
/// `Sec-Fetch-Mode`), which is not offered HTTP Basic: a browser would answer a Basic
/// challenge with its own password dialog, and then send those credentials instead of
/// the console's session (no CSRF token, no logout) for as long as it runs.
fn refuse_for(browser: bool, status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if browser {
            "Bearer realm=\"picket\""
        } else {
            "Bearer realm=\"picket\", Basic realm=\"picket\""
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Health checks: anyone.
    Nothing,
    /// `/metrics`: a reader when tokens are configured, else anyone.
    Metrics,
    /// Sending events: a shipper token when tokens are configured.
    Ingest,
    /// Searching events and alerts: a reader token or the local read token, unless
    /// reads are open.
    Read,
    /// Changing an alert's triage status: the analyst role.
    Triage,
    /// The console's page and its login: anyone but a shipper (who may only send).
    Console,
}

/// The need of a path.
pub fn need(path: &str) -> Need {
    let path = path.strip_suffix('/').unwrap_or(path);
    match path {
        "/status" | "/test" => Need::Nothing,
        "/metrics" => Need::Metrics,
        // Only the search routes read; anything else under /api (the Elasticsearch
        // face takes `/api/_bulk` as an index named `api`) needs what sending needs.
        "/api/events" | "/api/search" | "/api/alerts" | "/api/hosts" | "/api/fields" => Need::Read,
        // The console's own routes, each named: the Elasticsearch face takes
        // `/console/_bulk` as an index named `console`, which needs what sending needs.
        "/console"
        | "/console/index.html"
        | "/console/app.js"
        | "/console/app.css"
        | "/console/api/session"
        | "/console/api/login"
        | "/console/api/logout" => Need::Console,
        // `/api/alerts/<id>` and `/api/alerts/<id>/status`: no Elasticsearch route has
        // `alerts` as its second segment, so everything under it is the alerts'.
        _ => match path.strip_prefix("/api/alerts/") {
            Some(rest) if rest.ends_with("/status") => Need::Triage,
            Some(_) => Need::Read,
            None => Need::Ingest,
        },
    }
}

/// Who made a request, for the handlers (who changed an alert's status): put in the
/// request's extensions by [`authorize`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// A user's name, `token` for a bearer token, `anonymous` without credentials.
    pub name: String,
    pub role: Option<Role>,
    /// The console session the request came with.
    pub session: Option<crate::console::sessions::Session>,
}

/// What the configuration grants: replaced whole when SIGHUP reloads it.
#[derive(Debug, Default)]
pub struct Grants {
    /// Tokens from `tokens_file`; `None` (and no `users`): ingest is open (TLS client
    /// certificates may still be required).
    pub tokens: Option<Arc<Tokens>>,
    /// HTTP Basic users from `users_file`.
    pub users: Option<Arc<super::users::Users>>,
    pub open_reads: bool,
}

/// Who may do what: the configuration's [`Grants`], the local read token.
pub struct Access {
    grants: std::sync::RwLock<Arc<Grants>>,
    /// Console sessions: they end when the grants are replaced.
    pub sessions: crate::console::sessions::Sessions,
    /// Tokens that may read whatever the tokens file says: the local read token.
    pub readers: Tokens,
    pub metrics: Arc<Metrics>,
}

impl Access {
    pub fn new(
        grants: Grants,
        readers: Tokens,
        metrics: Arc<Metrics>,
        sessions: crate::console::sessions::Sessions,
    ) -> Access {
        Access {
            grants: std::sync::RwLock::new(Arc::new(grants)),
            sessions,
            readers,
            metrics,
        }
    }

    /// What is granted now.
    pub fn grants(&self) -> Arc<Grants> {
        match self.grants.read() {
            Ok(grants) => Arc::clone(&grants),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Grants from now on (requests already authorised finish as they were); console
    /// sessions end (their users or tokens may be gone).
    pub fn replace(&self, grants: Grants) {
        let grants = Arc::new(grants);
        match self.grants.write() {
            Ok(mut held) => *held = grants,
            Err(poisoned) => *poisoned.into_inner() = grants,
        }
        self.sessions.end_all();
    }

    /// The role `token` (a bearer token) has, the local read token's included.
    pub fn token_role(&self, token: &str) -> Option<Role> {
        let token = token.as_bytes();
        self.readers
            .role_of(token)
            .or_else(|| self.grants().tokens.as_ref().and_then(|t| t.role_of(token)))
    }
}

/// What a request presents: `Authorization: Bearer <token>` or `Basic <base64 of
/// user:password>`, the scheme in any case (RFC 7235); without that header, a live
/// console session's cookie (a dead one is as none: the console logs in again).
enum Credentials {
    Bearer(String),
    Basic { user: String, password: String },
    Session(crate::console::sessions::Session),
}

fn credentials(request: &Request, access: &Access) -> Option<Credentials> {
    use base64::Engine as _;
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(crate::console::sessions::cookie_value)
            .and_then(|id| access.sessions.get(id))
            .map(Credentials::Session);
    };
    let value = value.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if rest.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Credentials::Bearer(rest.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())?;
        let (user, password) = decoded.split_once(':')?;
        return Some(Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        });
    }
    None
}

impl Grants {
    /// The role the credentials give, if any (`readers`: the local read token).
    async fn role_of(&self, readers: &Tokens, credentials: &Credentials) -> Option<Role> {
        match credentials {
            Credentials::Bearer(token) => {
                let token = token.as_bytes();
                readers
                    .role_of(token)
                    .or_else(|| self.tokens.as_ref().and_then(|t| t.role_of(token)))
            }
            Credentials::Basic { user, password } => match &self.users {
                Some(users) => users.role_of(user, password).await,
                None => None,
            },
            Credentials::Session(session) => Some(session.role),
        }
    }

    /// Whether sending needs credentials (a tokens or users file is set).
    fn ingest_guarded(&self) -> bool {
        self.tokens.is_some() || self.users.is_some()
    }
}

/// Lets a request through when its route's [`Need`] is met: 401 without a token where
/// one is needed, 403 with a wrong one or one whose role may not do this.
pub async fn authorize(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    let need = need(request.uri().path());
    let presented = credentials(&request, &access);
    let grants = access.grants();
    let role = match (&presented, need) {
        (_, Need::Nothing) | (None, _) => None,
        (Some(credentials), _) => grants.role_of(&access.readers, credentials).await,
    };
    let allowed = match need {
        Need::Nothing => true,
        Need::Metrics => !grants.ingest_guarded() || role.is_some_and(Role::reads),
        Need::Ingest => !grants.ingest_guarded() || role.is_some_and(Role::ingests),
        Need::Read => grants.open_reads || role.is_some_and(Role::reads),
        Need::Triage => role == Some(Role::Analyst),
        Need::Console => role.is_none_or(Role::reads),
    };
    if allowed {
        if let Some(Credentials::Session(session)) = &presented {
            // SameSite=Strict keeps other sites' requests from carrying the cookie;
            // the token is the second lock, for anything that changes something.
            let reads_only = matches!(
                *request.method(),
                axum::http::Method::GET | axum::http::Method::HEAD
            );
            let token = request
                .headers()
                .get(crate::console::sessions::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !reads_only && !session.csrf_matches(token) {
                access.metrics.refused("forbidden");
                warn!(user = %session.user, "A console request without its session's CSRF token was refused.");
                return refuse(
                    StatusCode::FORBIDDEN,
                    "a console request that changes something must carry its session's X-CSRF-Token",
                );
            }
        }
        let caller = match &presented {
            Some(Credentials::Session(session)) => Caller {
                name: session.user.clone(),
                role,
                session: Some(session.clone()),
            },
            Some(Credentials::Basic { user, .. }) if role.is_some() => Caller {
                name: user.clone(),
                role,
                session: None,
            },
            Some(Credentials::Bearer(_)) if role.is_some() => Caller {
                name: "token".into(),
                role,
                session: None,
            },
            _ => Caller {
                name: "anonymous".into(),
                role: None,
                session: None,
            },
        };
        request.extensions_mut().insert(caller);
        return next.run(request).await;
    }
    let browser = request.headers().contains_key("sec-fetch-mode");
    match (&presented, role) {
        (None, _) => {
            access.metrics.refused("unauthorized");
            let message = match need {
                Need::Read | Need::Metrics => {
                    "searches need a bearer token with the reader role (Authorization: Bearer <token>): one of tokens_file's with role reader, or the collector's own in <data_dir>/read.token, which `picket-collector search` sends"
                }
                Need::Triage => {
                    "triage needs the analyst role: a console session or a bearer token of an analyst"
                }
                _ if grants.users.is_some() => {
                    "credentials are required: a bearer token (Authorization: Bearer <token>) or a user of users_file (HTTP Basic)"
                }
                _ => "a bearer token is required (Authorization: Bearer <token>)",
            };
            refuse_for(browser, StatusCode::UNAUTHORIZED, message)
        }
        (Some(Credentials::Basic { user, .. }), None) => {
            access.metrics.refused("unauthorized");
            warn!(user = %user, "A request with a wrong user name or password was refused.");
            refuse_for(
                browser,
                StatusCode::UNAUTHORIZED,
                "the user name or password is not accepted",
            )
        }
        (Some(_), None) => {
            access.metrics.refused("forbidden");
            warn!("A request with a wrong bearer token was refused.");
            refuse(StatusCode::FORBIDDEN, "the bearer token is not accepted")
        }
        (Some(_), Some(role)) => {
            access.metrics.refused("forbidden");
            let message = match need {
                Need::Ingest => format!(
                    "a {} token may not send events (only shipper tokens may)",
                    role.name()
                ),
                Need::Triage => format!(
                    "a {} may not change an alert's status (the analyst role may)",
                    role.name()
                ),
                Need::Console => format!(
                    "a {} may not use the console (it may only send events)",
                    role.name()
                ),
                _ => format!(
                    "a {} token may not search or read metrics (give it the reader role in tokens_file)",
                    role.name()
                ),
            };
            refuse(StatusCode::FORBIDDEN, &message)
        }
    }
}

/// The shared request guards.
#[derive(Clone)]
pub struct Guards {
    pub slots: Arc<Semaphore>,
    pub timeout: Duration,
    /// How long a request waits for a slot before its 503.
    pub queue_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// At most `slots` requests at once, each within `timeout` (then 408), so slow
/// clients cannot pin the collector. A request over the cap waits for a slot up to
/// `queue_timeout` (then 503 with `Retry-After: 1`) before its body is read: a burst
/// from a fleet queues in the senders' sockets, not in the collector's memory, and is
/// served in turn rather than by whoever retries luckiest.
pub async fn guard(State(guards): State<Guards>, request: Request, next: Next) -> Response {
    // Health checks and metrics answer from memory: they stay outside the cap, so a
    // collector whose slots are all taken (slow senders, a stalled store) still says
    // how it is.
    if matches!(need(request.uri().path()), Need::Nothing | Need::Metrics) {
        return next.run(request).await;
    }
    let slot = match guards.slots.clone().try_acquire_owned() {
        Ok(slot) => Some(slot),
        Err(_) if guards.queue_timeout.is_zero() => None,
        Err(_) => tokio::time::timeout(guards.queue_timeout, guards.slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok),
    };
    let Some(_slot) = slot else {
        guards.metrics.refused("overloaded");
        return super::retry_shortly("too many requests at once; retry shortly");
    };
    match tokio::time::timeout(guards.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            guards.metrics.refused("timeout");
            refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the request took too long (the body arrived too slowly or the store is stalled)",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_rules() {
        let tokens = Tokens::parse(
            "# fleet\n0123456789abcdef0123\n\n  fedcba9876543210fedc  reader\nanalyst-0123456789 analyst\n",
        )
        .unwrap();
        assert_eq!(tokens.role_of(b"0123456789abcdef0123"), Some(Role::Shipper));
        assert_eq!(tokens.role_of(b"fedcba9876543210fedc"), Some(Role::Reader));
        assert_eq!(tokens.role_of(b"analyst-0123456789"), Some(Role::Analyst));
        assert!(!tokens.accepts(b"0123456789abcdef012"));
        assert!(!tokens.accepts(b""));
        assert!(Tokens::parse("# none\n").is_err());
        assert!(
            Tokens::parse("short\n")
                .unwrap_err()
                .to_string()
                .contains("too short")
        );
        assert!(
            Tokens::parse("0123456789abcdef0123 admin\n")
                .unwrap_err()
                .to_string()
                .contains("line 1: \"admin\" is not a role")
        );
        assert!(!format!("{tokens:?}").contains("0123456789abcdef0123"));
    }

    #[test]
    fn routes_need_what_they_expose() {
        assert_eq!(need("/status"), Need::Nothing);
        assert_eq!(need("/test/"), Need::Nothing);
        assert_eq!(need("/metrics"), Need::Metrics);
        assert_eq!(need("/api/events"), Need::Read);
        assert_eq!(need("/api/alerts/"), Need::Read);
        assert_eq!(need("/events"), Need::Ingest);
        assert_eq!(need("/custom/app"), Need::Ingest);
        assert_eq!(need("/_bulk"), Need::Ingest);
        // The Elasticsearch face's routes under /api send: a reader may not use them.
        assert_eq!(need("/api/_bulk"), Need::Ingest);
        assert_eq!(need("/api/_doc/1"), Need::Ingest);
        assert_eq!(need("/api/search"), Need::Read);
        assert_eq!(need("/api/hosts"), Need::Read);
        assert_eq!(need("/api/fields"), Need::Read);
        assert_eq!(need("/api/alerts/0123abcd"), Need::Read);
        assert_eq!(need("/api/alerts/0123abcd/status"), Need::Triage);
        assert_eq!(need("/api/alerts/0123abcd/other"), Need::Read);
        // An alert id of MozDef's may start with `_`: still the alerts' routes.
        assert_eq!(need("/api/alerts/_x3Fq"), Need::Read);
        assert_eq!(need("/api/alerts/_x3Fq/status"), Need::Triage);
        assert_eq!(need("/console"), Need::Console);
        assert_eq!(need("/console/"), Need::Console);
        assert_eq!(need("/console/app.js"), Need::Console);
        assert_eq!(need("/console/api/login"), Need::Console);
        // The Elasticsearch face's routes with an index named `console` send.
        assert_eq!(need("/console/_bulk"), Need::Ingest);
        assert_eq!(need("/console/_doc/1"), Need::Ingest);
        assert_eq!(need("/console/_create/1"), Need::Ingest);
    }
}
