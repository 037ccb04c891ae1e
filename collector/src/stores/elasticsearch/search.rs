//! Searching the cluster (`events-*`, `alerts-*`) with the query string, time range
//! and aggregations of a [`SearchRequest`], and retention: deleting old daily indices.

use super::*;

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
    /// made a moment ago is seen), or `None`.
    pub async fn find_alert(&self, id: &str) -> Result<Option<Value>, StoreError> {
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
        let (status, answer) = self
            .request(Method::GET, &format!("/{index}/_doc/{id}"), None)
            .await
            .map_err(|Unreachable(e)| StoreError::Unavailable(e))?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(StoreError::Unavailable(format!(
                "alert read answered {status}: {}",
                reason(&answer)
            )));
        }
        Ok(answer.get("_source").cloned())
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
        for hit in answer["hits"]["hits"].as_array().into_iter().flatten() {
            let source = hit["_source"].clone();
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
