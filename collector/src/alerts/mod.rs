//! Alerts: scheduled rules over the stored events, with MozDef's semantics.
//!
//! - [`rules`]: rule files (TOML, or MozDef generic-alert JSON) and their checks.
//! - [`engine`]: one rule at one instant → alert documents.
//! - [`notify`]: the webhooks.
//! - [`Scheduler`] (here): runs each rule when due, keeps the per-rule [`RuleLedger`]
//!   (an event contributes to at most one alert of a rule; a deadman silence alerts
//!   once), stores alerts, hands them to the notifiers without waiting for them.
//!
//! Alerts are stored in Elasticsearch's `alerts-YYYYMM` (alias `alerts`), or with the
//! embedded store in its own daily indices under `<data_dir>/alerts/`. The ledgers are
//! JSON files under `<data_dir>/alerts/ledger/`, one per rule.

pub mod config;
pub mod engine;
pub mod irc;
pub mod lease;
pub mod notify;
pub mod rules;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use self::engine::{Alert, EventSource, PendingAlert, RuleLedger};
use self::notify::Notifier;
use self::rules::{Rule, RuleKind};
use crate::stores::elasticsearch::ElasticStore;
use crate::stores::embedded::EmbeddedStore;
use crate::stores::{Store, StoreError, Stored};

/// 32 random hex characters: the id of an alert, or of a custom document (which brings
/// none).
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;
        bytes[..8].copy_from_slice(&t.to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` can be an alert's id ([`new_id`]'s 32 hex characters; alerts
/// stored by other tools may have other ids of letters, digits, `-` and `_`).
pub fn is_alert_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An alert's triage status, MozDef's `status` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    New,
    Acknowledged,
    Closed,
}

impl Status {
    /// The status named (any case): `new`, `acknowledged`, `closed`.
    pub fn named(text: &str) -> Option<Status> {
        match text.trim().to_ascii_uppercase().as_str() {
            "NEW" => Some(Status::New),
            "ACKNOWLEDGED" => Some(Status::Acknowledged),
            "CLOSED" => Some(Status::Closed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Acknowledged => "ACKNOWLEDGED",
            Status::Closed => "CLOSED",
        }
    }
}

/// A severity named exactly (any case): one of the eight RFC 5424 names events carry.
pub fn severity_named(text: &str) -> Option<mozdef::Severity> {
    let upper = text.trim().to_ascii_uppercase();
    severities().find(|s| s.as_str() == upper)
}

/// The severities, least severe (`DEBUG`) first.
pub fn severities() -> impl Iterator<Item = mozdef::Severity> {
    (0..=7u8)
        .rev()
        .filter_map(mozdef::Severity::from_syslog_code)
}

pub use crate::metrics::AlertMetrics;

/// Where alerts are kept: the embedded store's indices of their own, or `alerts-*` in
/// the cluster the events go to. Both answer the same calls.
pub enum AlertStore {
    /// Daily tantivy indices under `<data_dir>/alerts/`.
    Embedded(EmbeddedStore),
    /// `alerts-YYYYMM` through the Elasticsearch store.
    Elasticsearch(Arc<ElasticStore>),
}

impl AlertStore {
    /// The alert store that goes with `store`.
    pub fn for_store(store: &Store, data_dir: &Path) -> Result<AlertStore, StoreError> {
        match store {
            Store::Elasticsearch(es) => Ok(AlertStore::Elasticsearch(Arc::clone(es))),
            Store::Embedded(_) => EmbeddedStore::open(
                &data_dir.join("alerts"),
                std::time::Duration::from_millis(100),
                15_000_000,
            )
            .map(AlertStore::Embedded),
        }
    }

    async fn save(&self, alerts: &[Alert]) -> Result<Stored, StoreError> {
        let documents: Vec<(String, serde_json::Value)> = alerts
            .iter()
            .map(|a| {
                let mut document = a.document.clone();
                // Its id in the document too: the console and `/api/alerts` readers
                // name an alert by it (to open it, to triage it).
                document["id"] = serde_json::json!(a.id);
                (a.id.clone(), document)
            })
            .collect();
        match self {
            AlertStore::Embedded(store) => store.store_alerts(&documents).await,
            AlertStore::Elasticsearch(store) => store.store_alerts(&documents).await,
        }
    }

    /// Searches stored alerts, newest first.
    pub async fn search(
        &self,
        request: crate::stores::SearchRequest,
    ) -> Result<crate::stores::SearchResult, StoreError> {
        request.check()?;
        match self {
            AlertStore::Embedded(store) => store.search_alerts(&request).await,
            AlertStore::Elasticsearch(store) => store.search_alerts(&request).await,
        }
    }

    /// The alert `id`, its newest version, or `None` (also for an id that cannot be
    /// one: alert ids are 32 hex characters).
    pub async fn get(&self, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        if !is_alert_id(id) {
            return Ok(None);
        }
        let found = match self {
            AlertStore::Embedded(store) => store.find_custom(id).await?.map(|(_, doc)| doc),
            AlertStore::Elasticsearch(store) => store.find_alert(id).await?.map(|f| f.source),
        };
        Ok(found.map(|mut document| {
            if document.get("id").is_none() {
                document["id"] = serde_json::json!(id);
            }
            document
        }))
    }

    /// Triage: sets the alert's `status` (MozDef's field: `NEW`, `ACKNOWLEDGED`,
    /// `CLOSED`), `statusby` and `statusat`, appends the change to `statushistory`, and
    /// stores the alert again in place. The alert as it now is, or `None` if there is
    /// no such alert. A change reads, then writes: one at a time in this process, and
    /// in Elasticsearch only over the version read (`if_seq_no`, `if_primary_term`;
    /// read again and retried when another collector changed it in between).
    pub async fn set_status(
        &self,
        id: &str,
        status: Status,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _turn = ONE_AT_A_TIME.lock().await;
        if !is_alert_id(id) {
            return Ok(None);
        }
        let at = mozdef::time::format_utc(at);
        let change = |document: &mut serde_json::Value| -> bool {
            let Some(object) = document.as_object_mut() else {
                return false;
            };
            object.insert("id".into(), serde_json::json!(id));
            object.insert("status".into(), serde_json::json!(status.as_str()));
            object.insert("statusby".into(), serde_json::json!(by));
            object.insert("statusat".into(), serde_json::json!(at));
            let entry = serde_json::json!({ "status": status.as_str(), "by": by, "at": at });
            match object
                .get_mut("statushistory")
                .and_then(|h| h.as_array_mut())
            {
                Some(history) => history.push(entry),
                None => {
                    object.insert("statushistory".into(), serde_json::json!([entry]));
                }
            }
            true
        };
        match self {
            AlertStore::Embedded(store) => {
                let Some((filed, mut document)) = store.find_custom(id).await? else {
                    return Ok(None);
                };
                if !change(&mut document) {
                    return Ok(None);
                }
                let source = document.as_object().cloned().unwrap_or_default();
                store.replace_custom(id, filed, source).await?;
                Ok(Some(document))
            }
            AlertStore::Elasticsearch(store) => {
                for _ in 0..5 {
                    let Some(mut found) = store.find_alert(id).await? else {
                        return Ok(None);
                    };
                    if !change(&mut found.source) {
                        return Ok(None);
                    }
                    if store.replace_alert(id, &found).await? {
                        return Ok(Some(found.source));
                    }
                }
                Err(StoreError::Unavailable(format!(
                    "alert {id} kept changing under this change (5 tries)"
                )))
            }
        }
    }

    /// The cluster, when alerts are kept there (events are tagged with `alert_names`).
    fn elasticsearch(&self) -> Option<&ElasticStore> {
        match self {
            AlertStore::Elasticsearch(store) => Some(store),
            AlertStore::Embedded(_) => None,
        }
    }

    pub fn close(&self) {
        if let AlertStore::Embedded(store) = self {
            store.close();
        }
    }
}

/// A rule's ledger that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", .path.display())]
pub struct LedgerError {
    path: PathBuf,
    source: std::io::Error,
}

/// How far back a rule's missed runs are made when it runs again.
const CATCH_UP_HORIZON: chrono::Duration = chrono::Duration::hours(24);
/// A scheduled run made this late is that run, not a missed one.
const CATCH_UP_SLACK: chrono::Duration = chrono::Duration::seconds(10);
/// Most missed runs of a rule evaluated in one tick (the rest at the next ticks)...
const CATCH_UP_RUNS: usize = 60;
/// ...and the longest the rules' catch-ups take in one tick (after their own runs).
const CATCH_UP_TIME: std::time::Duration = std::time::Duration::from_secs(10);
/// Failures in a row after which a missed run is given up.
const CATCH_UP_TRIES: u32 = 5;

/// Runs the rules.
pub struct Scheduler<S: EventSource> {
    rules: Vec<Rule>,
    rules_dir: PathBuf,
    next_run: HashMap<String, DateTime<Utc>>,
    /// Per rule: the missed run its catch-up is stuck at, and how often it failed.
    catch_up_tries: HashMap<String, (DateTime<Utc>, u32)>,
    ledgers: HashMap<String, RuleLedger>,
    ledger_dir: Option<PathBuf>,
    /// With a fleet's shared store: the lease that lets this collector run the rules,
    /// and the cluster the ledgers live in ([`lease`]).
    lease: Option<(lease::Lease, Arc<ElasticStore>)>,
    /// With a lease: the ledgers in memory are the cluster's (read since the lease was
    /// taken, and not since lost or reloaded from files).
    ledgers_fresh: bool,
    /// With a lease: each ledger document's version, which our next write must match
    /// (another holder's write in between makes ours fail, and us read again).
    ledger_versions: HashMap<String, (u64, u64)>,
    source: S,
    alerts: Option<Arc<AlertStore>>,
    notifiers: Vec<Arc<Notifier>>,
    pub metrics: Arc<AlertMetrics>,
}

/// What one run of one rule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub rule: String,
    pub fired: usize,
    pub error: Option<String>,
}

impl<S: EventSource> Scheduler<S> {
    /// A scheduler for the rules in `rules_dir`. `ledger_dir`: where ledgers persist
    /// (none: in memory only). `alerts`: where alerts are stored (none: not stored).
    pub fn new(
        rules_dir: &Path,
        source: S,
        alerts: Option<Arc<AlertStore>>,
        notifiers: Vec<Arc<Notifier>>,
        ledger_dir: Option<PathBuf>,
    ) -> Result<Scheduler<S>, rules::RuleError> {
        let rules = rules::load_dir(rules_dir)?;
        if let Some(dir) = &ledger_dir {
            std::fs::create_dir_all(dir).map_err(|source| rules::RuleError::LedgerDir {
                dir: dir.clone(),
                source,
            })?;
        }
        let mut scheduler = Scheduler {
            rules: Vec::new(),
            rules_dir: rules_dir.to_path_buf(),
            next_run: HashMap::new(),
            catch_up_tries: HashMap::new(),
            ledgers: HashMap::new(),
            ledger_dir,
            lease: None,
            ledgers_fresh: false,
            ledger_versions: HashMap::new(),
            source,
            alerts,
            notifiers,
            metrics: Arc::default(),
        };
        scheduler.install(rules);
        Ok(scheduler)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Runs the rules only while holding `lease`, with the ledgers in `cluster`
    /// (see [`lease`]): for collectors sharing an Elasticsearch store.
    pub fn with_lease(mut self, lease: lease::Lease, cluster: Arc<ElasticStore>) -> Self {
        self.lease = Some((lease, cluster));
        self
    }

    /// How often the lease wants renewing, when there is one.
    pub fn lease_renew_every(&self) -> Option<std::time::Duration> {
        self.lease.as_ref().map(|(lease, _)| lease.renew_every())
    }

    /// Whether this scheduler may run rules now: no lease, or the lease held.
    pub fn holds_lease(&self) -> bool {
        self.lease.as_ref().is_none_or(|(lease, _)| lease.held())
    }

    /// What the scheduler's loop calls: runs the rules due at `now`, if this
    /// collector holds the lease (taking or renewing it first; until the ledgers are
    /// read from the cluster after taking it, and the alerts left pending there
    /// stored, nothing runs).
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Vec<RunReport> {
        if let Some((lease, _)) = &mut self.lease {
            match lease.hold(now).await {
                Ok(true) => {}
                Ok(false) => {
                    self.ledgers_fresh = false;
                    return Vec::new();
                }
                Err(e) => {
                    self.ledgers_fresh = false;
                    warn!(error = %e, "Cannot reach the alert lease; rules wait for the next try.");
                    return Vec::new();
                }
            }
            if !self.ledgers_fresh {
                if let Err(e) = self.reload_ledgers().await {
                    error!(error = %e, "Cannot read the alert ledgers from the cluster; rules wait for the next try.");
                    return Vec::new();
                }
                self.ledgers_fresh = true;
                // Every rule is due at once: whatever the last holder did, the
                // ledgers say what alerted already.
                self.next_run.clear();
                let names: Vec<String> = self.rules.iter().map(|r| r.name.clone()).collect();
                for name in names {
                    if let Err(e) = self.flush_pending(&name).await {
                        error!(rule = %name, error = %e, "Cannot store the alerts left pending; the rule's next run tries again.");
                    }
                }
            }
        }
        self.run_due(now).await
    }

    /// With a lease, before a rule runs: renews it when half of it is gone. False when
    /// it is lost (or cannot be renewed): no rule may run.
    async fn keep_lease(&mut self, now: DateTime<Utc>) -> bool {
        let Some((lease, _)) = &mut self.lease else {
            return true;
        };
        if lease.fresh() {
            return true;
        }
        match lease.hold(now).await {
            Ok(true) if self.ledgers_fresh => true,
            Ok(_) => {
                self.ledgers_fresh = false;
                false
            }
            Err(e) => {
                warn!(error = %e, "Cannot renew the alert lease; the remaining rules wait.");
                false
            }
        }
    }

    /// Lets the lease go at a clean stop.
    pub async fn release(&mut self) {
        if let Some((lease, _)) = &mut self.lease {
            lease.release(Utc::now()).await;
        }
    }

    /// Reads every rule's ledger from the cluster (a rule with none there starts from
    /// its local file, if any: a collector's ledgers from before the lease).
    async fn reload_ledgers(&mut self) -> Result<(), StoreError> {
        let Some((_, cluster)) = &self.lease else {
            return Ok(());
        };
        let cluster = Arc::clone(cluster);
        for rule in self.rules.clone() {
            let stored = cluster
                .get_versioned(lease::INDEX, &lease::ledger_id(&rule.name))
                .await?;
            match &stored {
                Some(d) => {
                    self.ledger_versions
                        .insert(rule.name.clone(), (d.seq_no, d.primary_term));
                }
                None => {
                    self.ledger_versions.remove(&rule.name);
                }
            }
            let ledger = match stored
                .as_ref()
                .and_then(|d| d.source["ledger"].as_str())
                .map(serde_json::from_str::<RuleLedger>)
            {
                Some(Ok(ledger)) => ledger,
                Some(Err(e)) => {
                    warn!(rule = %rule.name, error = %e, "The cluster's alert ledger is unreadable; starting it empty (events in the current window may alert again).");
                    RuleLedger::default()
                }
                None => self.load_ledger(&rule.name),
            };
            self.ledgers.insert(rule.name.clone(), ledger);
        }
        Ok(())
    }

    /// Stores (and notifies) the alerts `rule`'s ledger holds as pending, then clears
    /// them. Storing one already stored changes nothing (same id, same document).
    async fn flush_pending(&mut self, rule: &str) -> Result<(), StoreError> {
        let pending = self
            .ledgers
            .get(rule)
            .map(|l| l.pending.clone())
            .unwrap_or_default();
        if pending.is_empty() {
            return Ok(());
        }
        let alerts: Vec<Alert> = pending
            .into_iter()
            .map(|p| Alert {
                id: p.id,
                document: p.document,
                contributing: Vec::new(),
                documents: Vec::new(),
                silent: None,
            })
            .collect();
        if let Some(store) = &self.alerts {
            store.save(&alerts).await?;
        }
        warn!(rule = %rule, alerts = alerts.len(), "Alerts decided by an earlier run but not stored then are stored now.");
        self.announce(rule, &alerts);
        if let Some(ledger) = self.ledgers.get_mut(rule) {
            ledger.pending.clear();
        }
        if let Err(e) = self.save_ledger(rule).await {
            error!(rule = %rule, error = %e, "Cannot save the alert ledger; its pending alerts may be stored (and announced) again.");
        }
        Ok(())
    }

    /// Counts, logs and hands to the notifiers (without waiting) alerts now stored.
    fn announce(&self, rule: &str, alerts: &[Alert]) {
        for alert in alerts {
            self.metrics.fired.fetch_add(1, Ordering::Relaxed);
            info!(
                rule = %rule,
                severity = alert.document["severity"].as_str().unwrap_or(""),
                summary = alert.document["summary"].as_str().unwrap_or(""),
                id = %alert.id,
                "Alert."
            );
            for notifier in &self.notifiers {
                let notifier = Arc::clone(notifier);
                let metrics = Arc::clone(&self.metrics);
                let alert = alert.clone();
                tokio::spawn(async move {
                    if let Err(e) = notifier.send(&alert).await {
                        metrics.notify_failures.fetch_add(1, Ordering::Relaxed);
                        error!(notifier = %notifier.name(), alert = %alert.id, error = %e, "Notification failed after retries.");
                    }
                });
            }
        }
    }

    fn install(&mut self, rules: Vec<Rule>) {
        for rule in &rules {
            if !self.ledgers.contains_key(&rule.name) {
                let ledger = self.load_ledger(&rule.name);
                self.ledgers.insert(rule.name.clone(), ledger);
            }
        }
        self.next_run
            .retain(|name, _| rules.iter().any(|r| &r.name == name));
        self.rules = rules;
    }

    /// Reads the rules folder again (SIGHUP). A folder with a bad file changes
    /// nothing: the running rules stay.
    pub fn reload(&mut self) -> Result<usize, rules::RuleError> {
        let rules = rules::load_dir(&self.rules_dir)?;
        let count = rules.len();
        self.install(rules);
        // A rule added here may have a ledger in the cluster (another holder ran it).
        self.ledgers_fresh = false;
        Ok(count)
    }

    fn ledger_path(&self, rule: &str) -> Option<PathBuf> {
        self.ledger_dir
            .as_ref()
            .map(|d| d.join(format!("{rule}.json")))
    }

    fn load_ledger(&self, rule: &str) -> RuleLedger {
        let Some(path) = self.ledger_path(rule) else {
            return RuleLedger::default();
        };
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(path = %path.display(), error = %e, "Alert ledger unreadable; starting it empty (events in the current window may alert again).");
                RuleLedger::default()
            }),
            Err(_) => RuleLedger::default(),
        }
    }

    /// Saves `rule`'s ledger: in the cluster with a lease (over the version we read or
    /// wrote last: a write of another holder in between makes this one fail, and the
    /// ledgers be read again), else in its file.
    async fn save_ledger(&mut self, rule: &str) -> Result<(), LedgerError> {
        if let (Some((lease, cluster)), Some(ledger)) = (&self.lease, self.ledgers.get(rule)) {
            let id = lease::ledger_id(rule);
            let failed = |message: String| LedgerError {
                path: PathBuf::from(format!("{}/{id}", lease::INDEX)),
                source: std::io::Error::other(message),
            };
            let text = serde_json::to_string(ledger).unwrap_or_default();
            let document = serde_json::json!({
                "rule": rule,
                "ledger": text,
                "holder": lease.holder(),
                "updated": mozdef::time::format_utc(Utc::now()),
            });
            let version = self.ledger_versions.get(rule).copied();
            let written = cluster
                .put_versioned(lease::INDEX, &id, &document, version, false)
                .await
                .map_err(|e| failed(e.to_string()))?;
            return match written {
                Some(version) => {
                    self.ledger_versions.insert(rule.to_string(), version);
                    Ok(())
                }
                None => {
                    self.ledgers_fresh = false;
                    Err(failed(
                        "another collector wrote it since we read it; reading the ledgers again"
                            .into(),
                    ))
                }
            };
        }
        let (Some(path), Some(ledger)) = (self.ledger_path(rule), self.ledgers.get(rule)) else {
            return Ok(());
        };
        let tmp = path.with_extension("json.tmp");
        (|| {
            use std::io::Write as _;
            let bytes = serde_json::to_vec(ledger)?;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })()
        .map_err(|source| LedgerError { path, source })
    }

    /// When the next rule is due (now, for a rule that never ran).
    pub fn next_due(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.rules
            .iter()
            .map(|r| self.next_run.get(&r.name).copied().unwrap_or(now))
            .min()
            .unwrap_or(now + chrono::Duration::minutes(1))
    }

    /// Runs every rule due at `now` (the clock is the caller's: tests inject it).
    pub async fn run_due(&mut self, now: DateTime<Utc>) -> Vec<RunReport> {
        let mut reports = Vec::new();
        // During the catch-up the lease is renewed by the clock as it moves (a long
        // catch-up must not write a lease that ran out while it ran).
        let tick_start = std::time::Instant::now();
        let clock = || now + chrono::Duration::from_std(tick_start.elapsed()).unwrap_or_default();
        let mut catch_ups = Vec::new();
        for i in 0..self.rules.len() {
            let rule = self.rules[i].clone();
            let due = self.next_run.get(&rule.name).copied().unwrap_or(now);
            if due > now {
                continue;
            }
            // The own runs renew the lease as of the tick's time (a lease they renew
            // ends `ttl` after the tick, as it did before the catch-up).
            if !self.keep_lease(now).await {
                // Not run, and still due: the next holder (or we, again) runs it.
                warn!(rule = %rule.name, "The alert lease is lost or cannot be renewed; the remaining due rules wait.");
                break;
            }
            // Runs the schedule wanted between the one due and now were not made: say so.
            let mut missed = 0u64;
            let mut at = rule.schedule.next_after(due);
            while at <= now && missed < 10_000 {
                missed += 1;
                at = rule.schedule.next_after(at);
            }
            if missed > 0 {
                self.metrics
                    .missed_runs
                    .fetch_add(missed, Ordering::Relaxed);
                warn!(rule = %rule.name, missed, due = %due, "Rule ran late; scheduled runs were skipped (they are caught up after the rules' own runs).");
            }
            self.next_run
                .insert(rule.name.clone(), rule.schedule.next_after(now));
            // The rule's own run first (live detection waits for no catch-up); it
            // leaves `evaluated` where it is while missed runs remain.
            let (missed_runs, left) = self.missed_runs(&rule, now);
            let pending = !missed_runs.is_empty() || left > 0;
            reports.push(self.run_rule_at(&rule, now, now, !pending).await);
            if pending {
                catch_ups.push((rule, missed_runs, left));
            }
        }
        // Then the scheduled runs the rules did not make since the last ones they made
        // (failed or late), oldest first, within one budget a tick. A failure stops a
        // rule's catch-up; it resumes a minute later where it stopped.
        for (rule, missed_runs, left) in catch_ups {
            if let Some(first) = missed_runs.first() {
                warn!(rule = %rule.name, runs = missed_runs.len(), left, since = %first, "Rule evaluates the scheduled runs it missed (failed or late), oldest first.");
            }
            let mut done = left == 0;
            for instant in missed_runs {
                if tick_start.elapsed() > CATCH_UP_TIME || !self.keep_lease(clock()).await {
                    done = false;
                    break;
                }
                self.metrics.catch_up_runs.fetch_add(1, Ordering::Relaxed);
                let report = self.run_rule_at(&rule, instant, now, true).await;
                let failed = report.error.is_some();
                reports.push(report);
                if failed {
                    self.catch_up_failed(&rule, instant).await;
                    done = false;
                    break;
                }
            }
            if done {
                // Caught up to the rule's own run of this tick.
                self.catch_up_tries.remove(&rule.name);
                self.set_evaluated(&rule.name, now).await;
            } else {
                let soon = now + chrono::Duration::minutes(1);
                let next = self.next_run.entry(rule.name.clone()).or_insert(soon);
                *next = (*next).min(soon);
            }
        }
        reports
    }

    /// A missed run that failed: after [`CATCH_UP_TRIES`] failures in a row it is
    /// given up (logged), so one run that cannot succeed does not hold the rule's
    /// catch-up back for the whole horizon.
    async fn catch_up_failed(&mut self, rule: &Rule, instant: DateTime<Utc>) {
        let tries = self
            .catch_up_tries
            .entry(rule.name.clone())
            .or_insert((instant, 0));
        if tries.0 != instant {
            *tries = (instant, 0);
        }
        tries.1 += 1;
        if tries.1 >= CATCH_UP_TRIES {
            self.catch_up_tries.remove(&rule.name);
            error!(rule = %rule.name, run = %instant, tries = CATCH_UP_TRIES, "A missed run of the rule keeps failing; it is given up and the catch-up goes on after it.");
            self.set_evaluated(&rule.name, instant).await;
        }
    }

    /// Moves the rule's `evaluated` forward to `at` and saves its ledger (a save that
    /// fails costs the runs since the last saved `evaluated` being made again).
    async fn set_evaluated(&mut self, rule: &str, at: DateTime<Utc>) {
        let Some(ledger) = self.ledgers.get_mut(rule) else {
            return;
        };
        if ledger.evaluated.is_some_and(|e| e >= at) {
            return;
        }
        ledger.evaluated = Some(at);
        if let Err(e) = self.save_ledger(rule).await {
            warn!(rule, error = %e, "Cannot save the alert ledger; runs since its last save may be evaluated again.");
        }
    }

    /// The scheduled runs `rule` missed between the last one it evaluated and `now`
    /// (oldest first, at most [`CATCH_UP_RUNS`] of them; none further back than
    /// [`CATCH_UP_HORIZON`]), and how many are left for the next ticks. None for a
    /// rule that never ran (nothing to catch up from), and none for deadman rules: a
    /// silence in the past, with events that arrived since, is not one to report now.
    fn missed_runs(&self, rule: &Rule, now: DateTime<Utc>) -> (Vec<DateTime<Utc>>, usize) {
        if matches!(rule.kind, RuleKind::Deadman { .. }) {
            return (Vec::new(), 0);
        }
        let Some(last) = self.ledgers.get(&rule.name).and_then(|l| l.evaluated) else {
            return (Vec::new(), 0);
        };
        let oldest = now - CATCH_UP_HORIZON;
        if last < oldest {
            warn!(rule = %rule.name, last = %last, "Rule's last evaluated run is older than the catch-up horizon (24 h); runs before that are not evaluated.");
        }
        let mut runs = Vec::new();
        let mut left = 0;
        // From the newest run at or before the horizon (a daily rule's run of
        // yesterday is 24 hours back, and not lost to it).
        let mut at = rule.schedule.next_after(last);
        let mut skipped = 0u32;
        while skipped < 1_000_000 {
            let next = rule.schedule.next_after(at);
            if next > oldest {
                break;
            }
            at = next;
            skipped += 1;
        }
        // A run a few seconds late, as ticks are, is the run itself, not a missed one.
        while at + CATCH_UP_SLACK < now {
            if runs.len() < CATCH_UP_RUNS {
                runs.push(at);
            } else {
                left += 1;
            }
            at = rule.schedule.next_after(at);
        }
        (runs, left)
    }

    /// Runs one rule now, whatever its schedule.
    ///
    /// The order makes each alert stored once whatever stops the scheduler: the
    /// ledger is saved first with the new alerts in it as pending (and the events
    /// they counted), then the alerts are stored, announced, and cleared from the
    /// ledger. Stopped before the ledger is saved, the next run finds the alerts again;
    /// after, the next run (or the next lease holder) stores the pending ones.
    pub async fn run_rule(&mut self, rule: &Rule, now: DateTime<Utc>) -> RunReport {
        self.run_rule_at(rule, now, now, true).await
    }

    /// [`Scheduler::run_rule`] for the run due at `now`, made at `clock` (later, for a
    /// missed run caught up: its alerts are dated `clock`, so they are among the newest
    /// where analysts look, with `details.run_at` the run they belong to). `advance`:
    /// the run moves the ledger's `evaluated` to `now` (every run does but one made
    /// while missed runs are still to be caught up).
    async fn run_rule_at(
        &mut self,
        rule: &Rule,
        now: DateTime<Utc>,
        clock: DateTime<Utc>,
        advance: bool,
    ) -> RunReport {
        self.metrics.runs.fetch_add(1, Ordering::Relaxed);
        let mut report = RunReport {
            rule: rule.name.clone(),
            fired: 0,
            error: None,
        };
        if let Err(e) = self.flush_pending(&rule.name).await {
            self.metrics.failures.fetch_add(1, Ordering::Relaxed);
            error!(rule = %rule.name, error = %e, "Cannot store the alerts left pending; the rule runs again at its next time.");
            report.error = Some(e.to_string());
            return report;
        }
        let before = self.ledgers.entry(rule.name.clone()).or_default().clone();
        let outcome = engine::evaluate_run(rule, &self.source, &before, now).await;
        let engine::Evaluation {
            mut alerts,
            recovered,
        } = match outcome {
            Ok(found) => found,
            Err(e) => {
                self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                error!(rule = %rule.name, error = %e, "Rule failed; it runs again at its next time.");
                report.error = Some(e.to_string());
                return report;
            }
        };
        if let Some((lease, _)) = &self.lease
            && !lease.still_held()
        {
            // The lease ran out during the run: another collector may run it now.
            self.metrics.failures.fetch_add(1, Ordering::Relaxed);
            warn!(rule = %rule.name, "The alert lease ran out during the rule's run; its findings are dropped (the next holder finds them again).");
            report.error = Some("the alert lease ran out during the run".into());
            return report;
        }
        if clock != now {
            for alert in &mut alerts {
                alert.document["utctimestamp"] = serde_json::json!(mozdef::time::format_utc(clock));
                alert.document["details"]["run_at"] =
                    serde_json::json!(mozdef::time::format_utc(now));
            }
        }
        let mut ledger = before.clone();
        for value in recovered {
            ledger.silent.remove(&value);
        }
        for alert in &alerts {
            ledger.events.extend(alert.contributing.iter().cloned());
            if let Some(value) = &alert.silent {
                ledger.silent.insert(value.clone(), now);
            }
        }
        if advance || ledger.evaluated.is_none() {
            ledger.evaluated = Some(ledger.evaluated.map_or(now, |at| at.max(now)));
        }
        // Events of runs still to be caught up stay remembered (else a catch-up window
        // would find them again).
        ledger.prune(rule, ledger.evaluated.map_or(now, |at| at.min(now)));
        ledger.pending = alerts
            .iter()
            .map(|a| PendingAlert {
                id: a.id.clone(),
                document: a.document.clone(),
            })
            .collect();
        self.ledgers.insert(rule.name.clone(), ledger);
        if let Err(e) = self.save_ledger(&rule.name).await {
            if self.lease.is_some() {
                // The next holder would not know of these alerts and find them again:
                // none is stored until the ledger is.
                self.ledgers.insert(rule.name.clone(), before);
                self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                error!(rule = %rule.name, error = %e, "Cannot save the alert ledger in the cluster; the rule finds its alerts again at its next run.");
                report.error = Some(e.to_string());
                return report;
            }
            error!(rule = %rule.name, error = %e, "Cannot save the alert ledger; after a restart these events may alert again.");
        }
        if !alerts.is_empty()
            && let Some(store) = &self.alerts
            && let Err(e) = store.save(&alerts).await
        {
            let e = e.to_string();
            // Pending in the ledger: the next run stores them.
            self.metrics.failures.fetch_add(1, Ordering::Relaxed);
            error!(rule = %rule.name, error = %e, alerts = alerts.len(), "Cannot store alerts; the rule's next run stores them.");
            report.error = Some(e);
            return report;
        }
        // MozDef marks the events of an alert with the rule's name (`alert_names`), and
        // its queries and dashboards rely on it. The ledger is what keeps events from
        // alerting twice here, so a failed tagging is logged, not fatal.
        if let Some(es) = self.alerts.as_deref().and_then(AlertStore::elasticsearch) {
            let documents: Vec<(String, String)> = alerts
                .iter()
                .flat_map(|a| a.documents.iter().cloned())
                .collect();
            if let Err(e) = es.tag_alerted(&rule.name, &documents).await {
                warn!(rule = %rule.name, error = %e, "Could not tag events with alert_names.");
            }
        }
        self.announce(&rule.name, &alerts);
        if !alerts.is_empty() {
            if let Some(ledger) = self.ledgers.get_mut(&rule.name) {
                ledger.pending.clear();
            }
            if let Err(e) = self.save_ledger(&rule.name).await {
                error!(rule = %rule.name, error = %e, "Cannot save the alert ledger; its pending alerts may be stored (and announced) again.");
            }
        }
        report.fired = alerts.len();
        report
    }
}

/// Runs `scheduler` until `stop`; a `reload` notification (SIGHUP, received by
/// `on_sighup` in the crate root) reloads the rules.
pub async fn run(
    mut scheduler: Scheduler<Arc<Store>>,
    reload: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    info!(rules = scheduler.rules().len(), folder = %scheduler.rules_dir.display(), "Alert rules loaded.");
    loop {
        let now = Utc::now();
        let due = scheduler.next_due(now);
        let mut wait = (due - now)
            .to_std()
            .unwrap_or_default()
            .min(std::time::Duration::from_secs(60));
        if let Some(every) = scheduler.lease_renew_every() {
            // Without the lease, only look at it again (no rule is due for us).
            wait = if scheduler.holds_lease() {
                wait.min(every)
            } else {
                every
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                scheduler.tick(Utc::now()).await;
            }
            _ = reload.notified() => {
                match scheduler.reload() {
                    Ok(n) => info!(rules = n, "Alert rules reloaded (SIGHUP)."),
                    Err(e) => error!(error = %e, "Alert rules not reloaded; the running rules stay."),
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                scheduler.release().await;
                return;
            }
        }
    }
}
