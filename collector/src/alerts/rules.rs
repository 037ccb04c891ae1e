//! Alert rules: one TOML file each in the rules folder, or a MozDef generic-alert JSON
//! file (loaded as an aggregate rule).
//!
//! ```toml
//! name = "ssh-bruteforce"
//! description = "Many failed SSH logins from one address."
//! every = "1m"                 # or: schedule = "*/2 * * * *" (5-field cron, UTC)
//! window = "2m"                # how far back each run looks
//! time_field = "utctimestamp"  # or "receivedtimestamp"
//! query = "category:authentication AND processname:sshd AND details.success:false"
//! type = "aggregate"           # simple | aggregate | cardinality | sequence | deadman
//! field = "details.sourceipaddress"
//! threshold = 10
//! samples = 5
//! severity = "WARNING"
//! category = "bruteforce"
//! tags = ["ssh", "bruteforce"]
//! summary = "{count} failed SSH logins from {value} on {hostnames}"
//! # url = "https://wiki.example.org/runbooks/ssh-bruteforce"
//! # channel = "#security"
//! # enabled = false
//! ```
//!
//! Summary placeholders: `{count}`, `{value}`, `{distinct}`, `{hostnames}`,
//! `{threshold}`, `{window}`, `{rule}`, `{summary}` (the first sample's), and
//! `{details.<key>}` / `{<field>}` from the first sample.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use picket_common::config::KeyError;
use serde::Deserialize;
use thiserror::Error;

use crate::search::TimeError;
use crate::stores::TimeField;

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub description: String,
    pub schedule: Schedule,
    pub window: Duration,
    pub time_field: TimeField,
    pub query: String,
    pub kind: RuleKind,
    pub severity: String,
    pub category: String,
    pub tags: Vec<String>,
    pub summary: String,
    pub url: Option<String>,
    pub channel: Option<String>,
    /// The file it came from.
    pub file: PathBuf,
}

/// When a rule runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// The first run strictly after `after`.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        match self {
            Schedule::Every(every) => {
                after + chrono::Duration::from_std(*every).unwrap_or(chrono::Duration::minutes(1))
            }
            Schedule::Cron(cron) => cron
                .find_next_occurrence(&after, false)
                .unwrap_or(after + chrono::Duration::days(366)),
        }
    }

    /// For listings: `every 1m` or `cron */5 * * * *`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(every) => format!("every {}", describe_duration(*every)),
            Schedule::Cron(cron) => format!("cron {}", cron.pattern),
        }
    }
}

/// What a rule looks for in its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// One alert per matching event.
    Simple,
    /// Groups by `field`; a group of at least `threshold` events is an alert.
    Aggregate {
        field: String,
        threshold: u64,
        samples: usize,
    },
    /// Groups by `field`; a group with at least `threshold` distinct values of
    /// `distinct_field` is an alert.
    Cardinality {
        field: String,
        distinct_field: String,
        threshold: u64,
        samples: usize,
    },
    /// Per value of `field`: at least `threshold` events matching the query, then, no
    /// earlier than the last of those, an event matching `then` (a successful login
    /// after a brute force).
    Sequence {
        field: String,
        threshold: u64,
        then: String,
        samples: usize,
    },
    /// Nothing matched in the window: an alert (per value of `field`, among the values
    /// seen in `lookback`, when set).
    Deadman {
        field: Option<String>,
        lookback: Duration,
    },
}

impl RuleKind {
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::Simple => "simple",
            RuleKind::Aggregate { .. } => "aggregate",
            RuleKind::Cardinality { .. } => "cardinality",
            RuleKind::Sequence { .. } => "sequence",
            RuleKind::Deadman { .. } => "deadman",
        }
    }

    /// The field whose values the rule groups by, if it groups.
    pub fn field(&self) -> Option<&str> {
        match self {
            RuleKind::Simple => None,
            RuleKind::Aggregate { field, .. }
            | RuleKind::Cardinality { field, .. }
            | RuleKind::Sequence { field, .. } => Some(field),
            RuleKind::Deadman { field, .. } => field.as_deref(),
        }
    }
}

/// A rule file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    #[serde(default)]
    description: String,
    every: Option<String>,
    schedule: Option<String>,
    window: String,
    #[serde(default)]
    time_field: Option<String>,
    query: String,
    #[serde(rename = "type")]
    kind: String,
    field: Option<String>,
    distinct_field: Option<String>,
    threshold: Option<u64>,
    #[serde(default = "default_samples")]
    samples: usize,
    lookback: Option<String>,
    then: Option<String>,
    #[serde(default = "default_severity")]
    severity: String,
    category: String,
    #[serde(default)]
    tags: Vec<String>,
    summary: String,
    url: Option<String>,
    channel: Option<String>,
    #[serde(default = "default_true")]
    enabled: bool,
}

fn default_samples() -> usize {
    5
}
fn default_severity() -> String {
    "NOTICE".into()
}
fn default_true() -> bool {
    true
}

/// MozDef's generic alert loader's JSON.
#[derive(Debug, Deserialize)]
struct MozdefGeneric {
    search_string: String,
    #[serde(default)]
    filters: Vec<serde_json::Value>,
    aggregation_key: String,
    time_window: u64,
    num_samples: usize,
    num_aggregations: u64,
    alert_category: String,
    #[serde(default)]
    alert_tags: Vec<String>,
    #[serde(default = "default_severity")]
    alert_severity: String,
    alert_summary: String,
    #[serde(default)]
    alert_url: Option<String>,
}

/// Why the rules cannot be used: the file, and in it the key.
#[derive(Debug, Error)]
pub enum RuleError {
    #[error("rules folder {}: cannot read it: {source}", .dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("rule file {}: cannot read: {source}", .file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML (or not a MozDef generic alert), or a key that is not a rule's.
    #[error("rule file {}: {message}", .file.display())]
    Syntax { file: PathBuf, message: String },
    #[error("rule file {}: {source}", .file.display())]
    Key { file: PathBuf, source: KeyError },
    #[error("rule file {}: name {name:?} is already used by {}", .file.display(), .other.display())]
    Duplicate {
        file: PathBuf,
        name: String,
        other: PathBuf,
    },
    #[error("alert ledger folder {}: cannot create it: {source}", .dir.display())]
    LedgerDir {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Loads every `*.toml` and `*.json` in `dir`, in name order. Disabled rules are left
/// out. Any bad file fails the whole load (a typo must not silently drop a detection);
/// two rules with one name too.
pub fn load_dir(dir: &Path) -> Result<Vec<Rule>, RuleError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RuleError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|x| x.to_str()),
                    Some("toml" | "json")
                )
        })
        .collect();
    files.sort();
    let mut rules: Vec<Rule> = Vec::new();
    for file in files {
        let Some(rule) = load_file(&file)? else {
            continue;
        };
        if let Some(other) = rules.iter().find(|r| r.name == rule.name) {
            return Err(RuleError::Duplicate {
                name: rule.name,
                other: other.file.clone(),
                file,
            });
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// Loads one rule file; `None` for a disabled rule.
pub fn load_file(file: &Path) -> Result<Option<Rule>, RuleError> {
    let syntax = |message: String| RuleError::Syntax {
        file: file.to_path_buf(),
        message,
    };
    let key = |source: KeyError| RuleError::Key {
        file: file.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(file).map_err(|source| RuleError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    if file.extension().and_then(|x| x.to_str()) == Some("json") {
        let generic: MozdefGeneric = serde_json::from_str(&text)
            .map_err(|e| syntax(format!("not a MozDef generic alert: {e}")))?;
        return from_mozdef(generic, file).map(Some).map_err(key);
    }
    let raw: RuleFile = toml::from_str(&text).map_err(|e| syntax(e.to_string()))?;
    if !raw.enabled {
        return Ok(None);
    }
    build(raw, file).map(Some).map_err(key)
}

/// A duration key: `90s`, `15m`, `1h`, not zero.
fn duration_key(key: &str, text: &str) -> Result<Duration, KeyError> {
    parse_duration(text).map_err(|e| KeyError::new(key, e.to_string()))
}

/// `every` or `schedule` (one of them; every minute without either).
fn schedule(raw: &RuleFile) -> Result<Schedule, KeyError> {
    Ok(match (&raw.every, &raw.schedule) {
        (Some(every), None) => Schedule::Every(duration_key("every", every)?),
        (None, Some(pattern)) => {
            Schedule::Cron(Box::new(croner::Cron::from_str(pattern).map_err(|e| {
                KeyError::new(
                    "schedule",
                    format!("{pattern:?} is not a 5-field cron pattern ({e})"),
                )
            })?))
        }
        (None, None) => Schedule::Every(Duration::from_secs(60)),
        (Some(_), Some(_)) => {
            return Err(KeyError::new("every", "set every or schedule, not both"));
        }
    })
}

fn build(raw: RuleFile, file: &Path) -> Result<Rule, KeyError> {
    check_name(&raw.name)?;
    let schedule = schedule(&raw)?;
    let window = duration_key("window", &raw.window)?;
    let time_field = match raw.time_field.as_deref() {
        None | Some("utctimestamp") => TimeField::UtcTimestamp,
        Some("receivedtimestamp") => TimeField::ReceivedTimestamp,
        Some(other) => {
            return Err(KeyError::new(
                "time_field",
                format!("{other:?} is not utctimestamp or receivedtimestamp"),
            ));
        }
    };
    let need = |key: &str, value: &Option<String>| {
        value
            .clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| KeyError::new(key, format!("a {} rule needs it", raw.kind)))
    };
    let threshold = || {
        raw.threshold.filter(|t| *t >= 1).ok_or_else(|| {
            KeyError::new(
                "threshold",
                format!("a {} rule needs one of at least 1", raw.kind),
            )
        })
    };
    let kind = match raw.kind.as_str() {
        "simple" => RuleKind::Simple,
        "aggregate" => RuleKind::Aggregate {
            field: need("field", &raw.field)?,
            threshold: threshold()?,
            samples: raw.samples,
        },
        "cardinality" => RuleKind::Cardinality {
            field: need("field", &raw.field)?,
            distinct_field: need("distinct_field", &raw.distinct_field)?,
            threshold: threshold()?,
            samples: raw.samples,
        },
        "sequence" => RuleKind::Sequence {
            field: need("field", &raw.field)?,
            threshold: threshold()?,
            then: need("then", &raw.then)?,
            samples: raw.samples,
        },
        "deadman" => RuleKind::Deadman {
            field: raw.field.clone(),
            lookback: match &raw.lookback {
                Some(text) => duration_key("lookback", text)?,
                None => Duration::from_secs(86_400),
            },
        },
        other => {
            return Err(KeyError::new(
                "type",
                format!("{other:?} is not simple, aggregate, cardinality, sequence or deadman"),
            ));
        }
    };
    if let RuleKind::Deadman { lookback, .. } = &kind
        && *lookback <= window
    {
        return Err(KeyError::new("lookback", "must be longer than window"));
    }
    if raw.query.trim().is_empty() {
        return Err(KeyError::new(
            "query",
            "must not be empty (use * for everything)",
        ));
    }
    crate::query::check(&raw.query).map_err(|e| KeyError::new("query", e.to_string()))?;
    Ok(Rule {
        name: raw.name,
        description: raw.description,
        schedule,
        window,
        time_field,
        query: raw.query,
        kind,
        severity: check_severity(&raw.severity)?,
        category: raw.category,
        tags: raw.tags,
        summary: raw.summary,
        url: raw.url,
        channel: raw.channel,
        file: file.to_path_buf(),
    })
}

/// A MozDef generic alert as an aggregate rule: `search_string` and each `filters`
/// entry (a `{"term"|"match": {field: value}}` or a `{"not": ...}` of one) ANDed,
/// grouped by `aggregation_key`, `num_aggregations` as the threshold, every minute over
/// `time_window` minutes. MozDef's `{0}` in `alert_summary` is the aggregated value and
/// `{1}` the count.
fn from_mozdef(generic: MozdefGeneric, file: &Path) -> Result<Rule, KeyError> {
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("mozdef-generic")
        .to_string();
    check_name(&name)?;
    let mut query = format!("({})", generic.search_string);
    for filter in &generic.filters {
        query.push_str(" AND ");
        query.push_str(&filter_to_query(filter)?);
    }
    crate::query::check(&query)
        .map_err(|e| KeyError::new("search_string", format!("with the filters ANDed: {e}")))?;
    let summary = generic
        .alert_summary
        .replace("{0}", "{value}")
        .replace("{1}", "{count}");
    Ok(Rule {
        description: format!("MozDef generic alert {}", file.display()),
        schedule: Schedule::Every(Duration::from_secs(60)),
        window: Duration::from_secs(generic.time_window.max(1) * 60),
        time_field: TimeField::UtcTimestamp,
        query,
        kind: RuleKind::Aggregate {
            field: generic.aggregation_key,
            threshold: generic.num_aggregations.max(1),
            samples: generic.num_samples,
        },
        severity: check_severity(&generic.alert_severity)?,
        category: generic.alert_category,
        tags: generic.alert_tags,
        summary,
        url: generic.alert_url,
        channel: None,
        file: file.to_path_buf(),
        name,
    })
}

fn filter_to_query(filter: &serde_json::Value) -> Result<String, KeyError> {
    let problem = |message: String| KeyError::new("filters", message);
    let object = filter
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| problem(format!("{filter} is not one {{kind: {{field: value}}}}")))?;
    let (kind, body) = object.iter().next().expect("one entry");
    match kind.as_str() {
        "not" => Ok(format!("NOT {}", filter_to_query(body)?)),
        "term" | "match" | "match_phrase" => {
            let (field, value) = body
                .as_object()
                .and_then(|o| o.iter().next())
                .ok_or_else(|| problem(format!("{filter} names no field")))?;
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(o) => o
                    .get("query")
                    .or_else(|| o.get("value"))
                    .and_then(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .or_else(|| Some(v.to_string()))
                    })
                    .unwrap_or_default(),
                other => other.to_string(),
            };
            Ok(format!("{field}:\"{}\"", value.replace('"', "\\\"")))
        }
        "exists" => {
            let field = body["field"]
                .as_str()
                .ok_or_else(|| problem(format!("{filter}: an exists filter names no field")))?;
            Ok(format!("{field}:*"))
        }
        other => Err(problem(format!(
            "filter kind {other:?} is not supported (term, match, exists, not)"
        ))),
    }
}

fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::new(
            "name",
            format!("{name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"),
        ))
    }
}

fn check_severity(text: &str) -> Result<String, KeyError> {
    match super::severity_named(text) {
        Some(severity) => Ok(severity.as_str().to_string()),
        None => {
            let names: Vec<&str> = super::severities().map(|s| s.as_str()).collect();
            Err(KeyError::new(
                "severity",
                format!("{text:?} is not one of {}", names.join(", ")),
            ))
        }
    }
}

/// `90s`, `15m`, `1h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, TimeError> {
    let d = crate::search::parse_duration(text)?
        .to_std()
        .map_err(|_| TimeError::NotDuration(text.to_string()))?;
    if d.is_zero() {
        return Err(TimeError::Zero(text.to_string()));
    }
    Ok(d)
}

/// `2m`, `90s`, `1h`.
pub fn describe_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_shipped_rules_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
        let rules = load_dir(&dir).unwrap();
        assert!(rules.len() >= 10, "{}", rules.len());
    }

    #[test]
    fn a_bad_rule_names_its_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let base =
            "name = \"r\"\nwindow = \"2m\"\nquery = \"*\"\ncategory = \"c\"\nsummary = \"s\"\n";
        for (extra, key) in [
            ("type = \"aggregate\"\nthreshold = 3\n", "key field"),
            (
                "type = \"aggregate\"\nfield = \"hostname\"\n",
                "key threshold",
            ),
            ("type = \"nope\"\n", "key type"),
            ("type = \"simple\"\nseverity = \"loud\"\n", "key severity"),
            (
                "type = \"simple\"\nschedule = \"every day\"\n",
                "key schedule",
            ),
            ("type = \"simple\"\nsurprise = 1\n", "surprise"),
            ("type = \"deadman\"\nlookback = \"1m\"\n", "key lookback"),
        ] {
            let file = write(dir.path(), "bad.toml", &format!("{base}{extra}"));
            let err = load_file(&file).unwrap_err().to_string();
            assert!(
                err.contains("bad.toml") && err.contains(key),
                "{extra}: {err}"
            );
        }
    }

    #[test]
    fn mozdef_generic_rules_load_as_aggregates() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "unauth_ssh.json",
            r#"{
              "search_string": "category:syslog AND details.program:sshd",
              "filters": [{"term": {"details.success": false}}, {"not": {"match": {"hostname": "bastion"}}}],
              "aggregation_key": "details.sourceipaddress",
              "time_window": 5, "num_samples": 3, "num_aggregations": 4,
              "alert_category": "ssh", "alert_tags": ["ssh"], "alert_severity": "WARNING",
              "alert_summary": "SSH failures from {0}: {1}", "alert_url": "https://runbook"
            }"#,
        );
        let rule = load_file(&file).unwrap().unwrap();
        assert_eq!(rule.name, "unauth_ssh");
        assert_eq!(
            rule.query,
            "(category:syslog AND details.program:sshd) AND details.success:\"false\" AND NOT hostname:\"bastion\""
        );
        assert_eq!(
            rule.kind,
            RuleKind::Aggregate {
                field: "details.sourceipaddress".into(),
                threshold: 4,
                samples: 3
            }
        );
        assert_eq!(rule.window, Duration::from_secs(300));
        assert_eq!(rule.summary, "SSH failures from {value}: {count}");
        assert_eq!(rule.url.as_deref(), Some("https://runbook"));
    }

    #[test]
    fn schedules_find_their_next_run() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:07:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let cron = Schedule::Cron(Box::new(croner::Cron::from_str("*/5 * * * *").unwrap()));
        assert_eq!(
            cron.next_after(at).to_rfc3339(),
            "2026-11-25T10:10:00+00:00"
        );
        let every = Schedule::Every(Duration::from_secs(90));
        assert_eq!(
            every.next_after(at).to_rfc3339(),
            "2026-11-25T10:09:00+00:00"
        );
    }
}
