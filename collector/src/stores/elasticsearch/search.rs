//! Searching the cluster (`events-*`, `alerts-*`) with the query string, time range
//! and aggregations of a [`SearchRequest`], and retention: deleting old daily indices.

use super::*;

/// A document read with its version (for writes over that version only).
#[derive(Debug, Clone)]
pub struct Versioned {
    pub source: Value,
    pub seq_no: u64,
    pub primary_term: u64,
}

/// An alert as read from the cluster: where it is, its version, its document.
#[derive(Debug, Clone)]
pub struct FoundAlert {
    pub index: String,
    pub seq_no: u64,
    pub primary_term: u64,
    pub source: Value,
}

impl ElasticStore {
    /// Searches `events-*`: the query string, the time range on `utctimestamp`,
    /// newest first, aggregations passed through.
    pub async fn search(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        self.search_in("events-*", request).await
    }

    /// Searches stored alerts (`alerts-*`), as [`Self::search`] does events.
    pub async fn search_alerts(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        self.search_in("alerts-*", request).await
    }

    /// The alert `id` (its newest version: read by id, not searched, so a change
    /// made a moment ago is seen), where it is and which version, or `None`.
    pub async fn find_alert(&self, id: &str) -> Result<Option<FoundAlert>, StoreError> {
        let body = json!({ "query": { "ids": { "values": [id] } }, "size": 1, "_source": false });
        let (status, answer) = self
            .request(
                Method::POST,
                "/alerts-*/_search?ignore_unavailable=true&allow_no_indices=true",
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "alert lookup answered {status}: {}",
                reason(&answer)
            )));
        }
        let Some(index) = answer["hits"]["hits"][0]["_index"].as_str() else {
            return Ok(None);
        };
        let Some(found) = self.get_versioned(index, id).await? else {
            return Ok(None);
        };
        Ok(Some(FoundAlert {
            index: index.to_string(),
            seq_no: found.seq_no,
            primary_term: found.primary_term,
            source: found.source,
        }))
    }

    /// Writes `found.source` over the alert `id` where it was found, if it is still
    /// the version read (false: it changed since; read it again).
    pub async fn replace_alert(&self, id: &str, found: &FoundAlert) -> Result<bool, StoreError> {
        // Refreshed before it answers: the console's list shows the change at once.
        Ok(self
            .put_versioned(
                &found.index,
                id,
                &found.source,
                Some((found.seq_no, found.primary_term)),
                true,
            )
            .await?
            .is_some())
    }

    /// The document `index/_doc/id` read in real time, with its version, or `None`.
    pub async fn get_versioned(
        &self,
        index: &str,
        id: &str,
    ) -> Result<Option<Versioned>, StoreError> {
        let (status, answer) = self
            .request(Method::GET, &format!("/{index}/_doc/{id}"), None)
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "reading {index}/{id} answered {status}: {}",
                reason(&answer)
            )));
        }
        let (Some(source), Some(seq_no), Some(primary_term)) = (
            answer.get("_source").cloned(),
            answer["_seq_no"].as_u64(),
            answer["_primary_term"].as_u64(),
        ) else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            source,
            seq_no,
            primary_term,
        }))
    }

    /// Writes `source` as `index/_doc/id`: over the version `(seq_no, primary_term)`
    /// only, or, with none, only if the document does not exist. The new version, or
    /// `None`: another writer was first (read it again). `refresh`: visible to searches
    /// before it answers (reads by id see it at once anyway).
    pub async fn put_versioned(
        &self,
        index: &str,
        id: &str,
        source: &Value,
        version: Option<(u64, u64)>,
        refresh: bool,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let condition = match version {
            Some((seq_no, primary_term)) => {
                format!("if_seq_no={seq_no}&if_primary_term={primary_term}")
            }
            None => "op_type=create".to_string(),
        };
        let refresh = if refresh { "&refresh=wait_for" } else { "" };
        let path = format!("/{index}/_doc/{id}?{condition}{refresh}");
        let (status, answer) = self
            .request(
                Method::PUT,
                &path,
                Some(("application/json", source.to_string().into_bytes())),
            )
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if status == StatusCode::CONFLICT {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "writing {index}/{id} answered {status}: {}",
                reason(&answer)
            )));
        }
        match (answer["_seq_no"].as_u64(), answer["_primary_term"].as_u64()) {
            (Some(seq_no), Some(primary_term)) => Ok(Some((seq_no, primary_term))),
            _ => Err(StoreError::Unavailable(format!(
                "writing {index}/{id}: the answer has no version"
            ))),
        }
    }

    /// Creates `index` with `body` (its mappings) unless it exists.
    pub async fn ensure_index(&self, index: &str, body: &Value) -> Result<(), StoreError> {
        let (status, answer) = self
            .request(
                Method::PUT,
                &format!("/{index}"),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        let exists = answer["error"]["type"].as_str() == Some("resource_already_exists_exception");
        if status.is_success() || exists {
            return Ok(());
        }
        Err(StoreError::Unavailable(format!(
            "creating index {index} failed ({status}): {}",
            reason(&answer)
        )))
    }

    pub(super) async fn search_in(
        &self,
        pattern: &str,
        request: &SearchRequest,
    ) -> Result<SearchResult, StoreError> {
        let text = request.query.trim();
        let matcher = if text.is_empty() || text == "*" {
            json!({ "match_all": {} })
        } else {
            json!({ "query_string": { "query": text, "default_operator": "AND" } })
        };
        let mut range = serde_json::Map::new();
        if let Some(from) = request.from {
            range.insert("gte".into(), json!(mozdef::time::format_utc(from)));
        }
        if let Some(to) = request.to {
            range.insert("lte".into(), json!(mozdef::time::format_utc(to)));
        }
        let mut filter = Vec::new();
        if !range.is_empty() {
            filter.push(json!({ "range": { request.time_field.name(): range } }));
        }
        let mut body = json!({
            "query": { "bool": { "must": [matcher], "filter": filter } },
            "sort": [{ "utctimestamp": { "order": "desc", "unmapped_type": "date" } }],
            "size": request.size,
            "track_total_hits": true,
        });
        if let Some(aggs) = &request.aggs {
            body["aggs"] = aggs.clone();
        }
        let (status, answer) = self
            .request(
                Method::POST,
                &format!("/{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if is_request_fault(&answer) {
            return Err(StoreError::BadAggregation(reason(&answer)));
        }
        if status == StatusCode::BAD_REQUEST {
            return Err(StoreError::BadQuery(reason(&answer)));
        }
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "search answered {status}: {}",
                reason(&answer)
            )));
        }
        let total = match &answer["hits"]["total"] {
            Value::Number(n) => n.as_u64().unwrap_or(0),
            other => other["value"].as_u64().unwrap_or(0),
        } as usize;
        let mut hits = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        let alerts = pattern.starts_with("alerts");
        for hit in answer["hits"]["hits"].as_array().into_iter().flatten() {
            let mut source = hit["_source"].clone();
            // An alert is named by its id (to open it, to triage it): MozDef's alerts,
            // and Picket's before it wrote one, have it only as `_id`.
            if alerts
                && let (Some(object), Some(id)) = (source.as_object_mut(), hit["_id"].as_str())
            {
                object
                    .entry("id")
                    .or_insert_with(|| Value::String(id.to_string()));
            }
            bytes = bytes.saturating_add(source.to_string().len());
            if request.max_bytes > 0 && bytes > request.max_bytes && !hits.is_empty() {
                truncated = true;
                break;
            }
            hits.push(source);
        }
        let aggregations = answer.get("aggregations").cloned();
        Ok(SearchResult {
            total,
            hits,
            aggregations,
            truncated,
        })
    }

    /// Deletes the daily event indices of days before `oldest_kept` or after
    /// `newest_kept` (alerts are kept).
    pub async fn prune(
        &self,
        oldest_kept: NaiveDate,
        newest_kept: NaiveDate,
    ) -> Result<Vec<String>, StoreError> {
        let mut deleted = Vec::new();
        for (day, name) in self.daily_indices().await? {
            if (oldest_kept..=newest_kept).contains(&day) {
                continue;
            }
            let (status, answer) = self
                .request(Method::DELETE, &format!("/{name}"), None)
                .await
                .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
            if !status.is_success() && status != StatusCode::NOT_FOUND {
                return Err(StoreError::Unavailable(format!(
                    "deleting {name} failed ({status}): {}",
                    reason(&answer)
                )));
            }
            info!(index = %name, "Deleted an index past retention.");
            deleted.push(name);
        }
        Ok(deleted)
    }
}
