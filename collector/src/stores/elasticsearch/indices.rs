//! MozDef's index layout on the cluster: what the cluster is (Elasticsearch or
//! OpenSearch, which template API), the templates and their mapping, the daily
//! `events-YYYYMMDD` indices and the `events` / `events-previous` aliases moved each day.

use super::*;

impl ElasticStore {
    /// Learns what the cluster is, installs the templates, moves the aliases for
    /// today: each step once, again only after it failed (or, for the aliases, on a new
    /// day).
    pub(super) async fn prepare(&self, today: NaiveDate) -> Result<(), StoreError> {
        let mut prepared = self.prepared.lock().await;
        let flavor = match prepared.flavor {
            Some(flavor) => flavor,
            None => {
                let flavor = self.detect().await?;
                prepared.flavor = Some(flavor);
                flavor
            }
        };
        if !prepared.templates {
            self.install_templates(flavor).await?;
            prepared.templates = true;
        }
        if prepared.rotated != Some(today) {
            self.rotate(today).await?;
            prepared.rotated = Some(today);
        }
        Ok(())
    }

    pub(super) async fn detect(&self) -> Result<Flavor, StoreError> {
        let (status, body) = self
            .request(Method::GET, "/", None)
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "GET / answered {status}: {}",
                reason(&body)
            )));
        }
        let version = &body["version"];
        let number = version["number"].as_str().unwrap_or("");
        let mut parts = number.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let flavor = Flavor {
            opensearch: version["distribution"].as_str() == Some("opensearch"),
            major: parts.next().unwrap_or(0),
            minor: parts.next().unwrap_or(0),
        };
        if !flavor.opensearch && flavor.major < 7 {
            return Err(StoreError::Unavailable(format!(
                "Elasticsearch {number:?} is not supported (7.x or later, or OpenSearch)"
            )));
        }
        info!(
            product = if flavor.opensearch {
                "OpenSearch"
            } else {
                "Elasticsearch"
            },
            version = number,
            cluster = body["cluster_name"].as_str().unwrap_or(""),
            "Connected to the search cluster."
        );
        Ok(flavor)
    }

    pub(super) async fn install_templates(&self, flavor: Flavor) -> Result<(), StoreError> {
        for (name, pattern) in [("picket-events", "events-*"), ("picket-alerts", "alerts-*")] {
            let (path, body) = if flavor.composable_templates() {
                (
                    format!("/_index_template/{name}"),
                    json!({
                        "index_patterns": [pattern],
                        "priority": 100,
                        "template": { "mappings": mapping() },
                        "_meta": { "managed_by": "picket-collector" },
                    }),
                )
            } else {
                (
                    format!("/_template/{name}"),
                    json!({
                        "index_patterns": [pattern],
                        "order": 100,
                        "mappings": mapping(),
                    }),
                )
            };
            let (status, answer) = self
                .request(
                    Method::PUT,
                    &path,
                    Some(("application/json", body.to_string().into_bytes())),
                )
                .await
                .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
            if !status.is_success() {
                return Err(StoreError::Unavailable(format!(
                    "installing the index template {name} failed ({status}): {}",
                    reason(&answer)
                )));
            }
        }
        info!("Index templates picket-events and picket-alerts installed.");
        Ok(())
    }

    /// Creates an index unless it exists.
    pub(super) async fn create_index(&self, name: &str) -> Result<(), StoreError> {
        let (status, answer) = self
            .request(
                Method::PUT,
                &format!("/{name}"),
                Some(("application/json", b"{}".to_vec())),
            )
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        let exists = answer["error"]["type"].as_str() == Some("resource_already_exists_exception");
        if status.is_success() || exists {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "creating index {name} failed ({status}): {}",
                reason(&answer)
            )))
        }
    }

    /// The daily event indices that exist, by day.
    pub(super) async fn daily_indices(&self) -> Result<Vec<(NaiveDate, String)>, StoreError> {
        let (status, answer) = self
            .request(
                Method::GET,
                "/_cat/indices/events-*?format=json&h=index&expand_wildcards=open,closed",
                None,
            )
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "listing indices failed ({status}): {}",
                reason(&answer)
            )));
        }
        let mut days: Vec<(NaiveDate, String)> = answer
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| row["index"].as_str())
            .filter_map(|name| {
                let digits = name.strip_prefix("events-")?;
                let day = NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
                (digits.len() == 8).then(|| (day, name.to_string()))
            })
            .collect();
        days.sort();
        Ok(days)
    }

    /// Points `events`, `events-previous`, `events-weekly` and `alerts` at today's
    /// indices, creating yesterday's, today's and tomorrow's (and this month's alerts
    /// index) first. One atomic `_aliases` call moves everything that must move.
    pub(super) async fn rotate(&self, today: NaiveDate) -> Result<(), StoreError> {
        let yesterday = today - Days::new(1);
        let tomorrow = today + Days::new(1);
        for day in [yesterday, today, tomorrow] {
            self.create_index(&events_index(day)).await?;
        }
        let alerts_index = format!("alerts-{:04}{:02}", today.year(), today.month());
        self.create_index(&alerts_index).await?;
        let week_start = today - Days::new(6);
        let weekly: Vec<String> = self
            .daily_indices()
            .await?
            .into_iter()
            .filter(|(day, _)| (week_start..=today).contains(day))
            .map(|(_, name)| name)
            .collect();
        let wanted: [(&str, Vec<String>); 4] = [
            ("events", vec![events_index(today)]),
            ("events-previous", vec![events_index(yesterday)]),
            ("events-weekly", weekly),
            ("alerts", vec![alerts_index]),
        ];
        let mut actions = Vec::new();
        for (alias, want) in &wanted {
            let have = self.alias_members(alias).await?;
            for index in have.iter().filter(|i| !want.contains(i)) {
                actions.push(json!({ "remove": { "index": index, "alias": alias } }));
            }
            for index in want.iter().filter(|i| !have.contains(i)) {
                actions.push(json!({ "add": { "index": index, "alias": alias } }));
            }
        }
        if actions.is_empty() {
            return Ok(());
        }
        let body = json!({ "actions": actions }).to_string().into_bytes();
        let (status, answer) = self
            .request(Method::POST, "/_aliases", Some(("application/json", body)))
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "moving the aliases failed ({status}): {}",
                reason(&answer)
            )));
        }
        info!(day = %today, changes = actions.len(), "Aliases events, events-previous, events-weekly and alerts now point at today's indices.");
        Ok(())
    }

    /// The indices an alias points at (none when it does not exist).
    pub(super) async fn alias_members(&self, alias: &str) -> Result<Vec<String>, StoreError> {
        let (status, answer) = self
            .request(Method::GET, &format!("/_alias/{alias}"), None)
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "reading alias {alias} failed ({status}): {}",
                reason(&answer)
            )));
        }
        let mut members: Vec<String> = answer
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v["aliases"].get(alias).is_some())
            .map(|(index, _)| index.clone())
            .collect();
        members.sort();
        Ok(members)
    }

    /// Periodic upkeep: templates and aliases, retried when they failed, aliases moved
    /// on a new day.
    pub async fn maintain(&self) {
        if let Err(e) = self.prepare(Utc::now().date_naive()).await {
            warn!(error = %e, nodes = %self.urls(), "Search cluster upkeep failed; it is retried before the next write and in a few minutes.");
        }
    }
}

/// MozDef's mapping in Elasticsearch 7+ terms (see the module documentation).
pub fn mapping() -> Value {
    let ip = json!({ "type": "ip", "ignore_malformed": true });
    let port = json!({ "type": "long", "ignore_malformed": true });
    let date = json!({ "type": "date", "ignore_malformed": true });
    let keyword = json!({ "type": "keyword", "ignore_above": KEYWORD_MAX_CHARS });
    json!({
        // A dynamic string that looks like a date would otherwise make its field a
        // `date`, and the next event with other text there a mapping conflict (found by
        // the differential test against OpenSearch): every dynamic string is a keyword.
        "date_detection": false,
        "dynamic_templates": [
            { "strings": { "match_mapping_type": "string", "mapping": keyword } },
            { "longs": { "match_mapping_type": "long", "mapping": keyword } },
            { "doubles": { "match_mapping_type": "double", "mapping": keyword } },
        ],
        "properties": {
            "eventid": { "type": "keyword" },
            "utctimestamp": date,
            "timestamp": date,
            "receivedtimestamp": date,
            "summary": { "type": "text" },
            "hostname": keyword,
            "processname": keyword,
            "processid": port,
            "severity": keyword,
            "category": keyword,
            "source": keyword,
            "tags": keyword,
            "details": {
                "properties": {
                    "sourceipaddress": ip,
                    "destinationipaddress": ip,
                    "srcip": ip,
                    "dstip": ip,
                    "sourceport": port,
                    "destinationport": port,
                    "success": { "type": "boolean" },
                }
            },
        }
    })
}

/// Longer keyword values are kept in `_source` but not indexed: Lucene refuses terms
/// over 32,766 bytes, which would cost the whole document.
pub(super) const KEYWORD_MAX_CHARS: u32 = 8191;
