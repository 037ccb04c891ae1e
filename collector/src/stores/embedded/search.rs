//! Searching the day indices: the query string parsed (negations lifted, bounded
//! wildcards), the days that can hold the time range opened, aggregations run within
//! their memory limit.

use super::*;

impl Shared {
    pub(super) fn search(&self, request: &SearchRequest) -> Result<SearchResult, StoreError> {
        request.check()?;
        let f = &self.fields;
        let mut parser = QueryParser::new(
            self.schema.clone(),
            vec![f.summary, f.hostname, f.processname, f.category, f.tags],
            TokenizerManager::default(),
        );
        parser.set_conjunction_by_default();
        let text = request.query.trim();
        let matcher: Box<dyn Query> = if text.is_empty() || text == "*" {
            Box::new(AllQuery)
        } else {
            let ast = tantivy::query_grammar::parse_query(text)
                .map_err(|_| StoreError::BadQuery(format!("cannot parse {text:?}")))?;
            self.build_query(&parser, lift_negations(ast))?
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, matcher)];
        if request.from.is_some() || request.to.is_some() {
            let field = match request.time_field {
                crate::stores::TimeField::UtcTimestamp => f.utctimestamp,
                crate::stores::TimeField::ReceivedTimestamp => f.receivedtimestamp,
            };
            let bound = |t: Option<DateTime<Utc>>| match t {
                Some(t) => Bound::Included(Term::from_field_date(field, tantivy_time(t))),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(request.from), bound(request.to))),
            ));
        }
        let query = BooleanQuery::new(clauses);
        // Days are filed by utctimestamp; an event received late sits in an earlier
        // day than its reception, so a reception-time search looks a day further back.
        let days = match request.time_field {
            crate::stores::TimeField::UtcTimestamp => {
                self.days_between(request.from, request.to)?
            }
            crate::stores::TimeField::ReceivedTimestamp => {
                self.days_between(request.from.map(|t| t - chrono::Duration::days(1)), None)?
            }
        };
        let size = request.size.max(1);

        let mut total = 0;
        let mut found: Vec<(i64, usize, DocAddress)> = Vec::new();
        // One searcher per day for both the search and the document fetch: a commit in
        // between reloads the reader, and addresses from one searcher are meaningless
        // (out of bounds) in the next.
        let searchers: Vec<_> = days.iter().map(|day| day.reader.searcher()).collect();
        for (i, searcher) in searchers.iter().enumerate() {
            let top = TopDocs::with_limit(size)
                .order_by_fast_field::<tantivy::DateTime>("utctimestamp", Order::Desc);
            let (count, docs) = searcher
                .search(&query, &(Count, top))
                .map_err(search_error)?;
            total += count;
            for (at, address) in docs {
                let micros = at.map(|t| t.into_timestamp_micros()).unwrap_or(i64::MIN);
                found.push((micros, i, address));
            }
        }
        found.sort_by_key(|hit| std::cmp::Reverse(hit.0));
        found.truncate(request.size);

        let mut hits = Vec::with_capacity(found.len());
        let mut bytes = 0usize;
        let mut truncated = false;
        for (_, i, address) in found {
            let doc: TantivyDocument = searchers[i].doc(address).map_err(StoreError::Search)?;
            let source = doc
                .get_first(f.source_json)
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            bytes = bytes.saturating_add(source.len());
            if request.max_bytes > 0 && bytes > request.max_bytes && !hits.is_empty() {
                truncated = true;
                break;
            }
            match serde_json::from_str(&source) {
                Ok(value) => hits.push(value),
                Err(e) => warn!(error = %e, "Stored event is not JSON; skipped."),
            }
        }
        let aggregations = match &request.aggs {
            Some(aggs) => Some(aggregate(&searchers, &query, aggs)?),
            None => None,
        };
        Ok(SearchResult {
            total,
            hits,
            aggregations,
            truncated,
        })
    }

    /// The query for a parsed query string. Leaves are built by tantivy's parser, but
    /// wildcard terms (`hostname:web*`, `details.username:adm?n`), which it would look
    /// up as the literal text `web*` and silently find nothing, become regular
    /// expressions over the field's terms, `details.*` paths included. The AST is at
    /// most [`crate::query::MAX_QUERY_DEPTH`] deep (checked before parsing).
    pub(super) fn build_query(
        &self,
        parser: &QueryParser,
        ast: UserInputAst,
    ) -> Result<Box<dyn Query>, StoreError> {
        let bad = |e: tantivy::query::QueryParserError| StoreError::BadQuery(e.to_string());
        match ast {
            UserInputAst::Clause(items) => {
                let mut clauses = Vec::with_capacity(items.len());
                for (occur, child) in items {
                    // The parser's conjunction default: a bare term is required.
                    clauses.push((
                        occur.unwrap_or(Occur::Must),
                        self.build_query(parser, child)?,
                    ));
                }
                if clauses.is_empty() {
                    return Ok(Box::new(tantivy::query::EmptyQuery));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            UserInputAst::Boost(child, boost) => Ok(Box::new(tantivy::query::BoostQuery::new(
                self.build_query(parser, *child)?,
                boost.into_inner() as f32,
            ))),
            // The id digests' column is the store's own, not a field of events.
            UserInputAst::Leaf(leaf) if leaf_field(&leaf) == Some(id_terms::DIGEST_FIELD) => Err(
                StoreError::BadQuery(format!("no field {:?}", id_terms::DIGEST_FIELD)),
            ),
            UserInputAst::Leaf(leaf) => match *leaf {
                // Lucene's `_exists_:field`, and tantivy's `field:*`.
                UserInputLeaf::Literal(literal)
                    if literal.field_name.as_deref() == Some("_exists_") =>
                {
                    self.exists_query(&literal.phrase)
                }
                UserInputLeaf::Exists { field } => self.exists_query(&field),
                UserInputLeaf::Literal(literal)
                    if literal.delimiter == tantivy::query_grammar::Delimiter::None
                        && literal.phrase.contains(['*', '?']) =>
                {
                    self.wildcard_query(literal.field_name.as_deref(), &literal.phrase)
                }
                // An id is found by the term its day keeps for it (see `IdQuery`).
                UserInputLeaf::Literal(literal)
                    if literal.field_name.as_deref() == Some("eventid") =>
                {
                    if literal.prefix {
                        return Err(eventid_not_whole(&format!(
                            "the prefix {:?}*",
                            literal.phrase
                        )));
                    }
                    Ok(Box::new(IdQuery::new(self.fields.eventid, literal.phrase)))
                }
                UserInputLeaf::Set {
                    field: Some(field),
                    elements,
                } if field == "eventid" => Ok(Box::new(BooleanQuery::new(
                    elements
                        .into_iter()
                        .map(|id| {
                            let query: Box<dyn Query> =
                                Box::new(IdQuery::new(self.fields.eventid, id));
                            (Occur::Should, query)
                        })
                        .collect(),
                ))),
                UserInputLeaf::Range {
                    field: Some(field), ..
                }
                | UserInputLeaf::Regex {
                    field: Some(field), ..
                } if field == "eventid" => {
                    Err(eventid_not_whole("a range or a regular expression"))
                }
                UserInputLeaf::Range {
                    field: Some(field),
                    lower,
                    upper,
                } if field.starts_with("details.") && mixed_bounds(&lower, &upper) => {
                    Err(StoreError::BadQuery(format!(
                        "the range on {field} mixes a number and text ({} TO {}); give both ends as numbers, or both as text",
                        lower.term_str(),
                        upper.term_str()
                    )))
                }
                // A time is not in the term index (a fast field only): `utctimestamp:X`
                // is the range [X TO X], so a bare day is that whole day (as
                // Elasticsearch rounds a date term) and a full time that instant.
                UserInputLeaf::Literal(literal)
                    if matches!(
                        literal.field_name.as_deref(),
                        Some("utctimestamp" | "receivedtimestamp")
                    ) =>
                {
                    let field = literal.field_name.unwrap_or_default();
                    self.build_query(parser, time_point(field, &literal.phrase))
                }
                // `utctimestamp: IN [a b]` likewise: any of those ranges.
                UserInputLeaf::Set {
                    field: Some(field),
                    elements,
                } if field == "utctimestamp" || field == "receivedtimestamp" => {
                    let points = elements
                        .iter()
                        .map(|at| (Some(Occur::Should), time_point(field.clone(), at)))
                        .collect();
                    self.build_query(parser, UserInputAst::Clause(points))
                }
                UserInputLeaf::Range {
                    field: Some(field),
                    lower,
                    upper,
                } if field == "utctimestamp" || field == "receivedtimestamp" => {
                    let leaf = UserInputLeaf::Range {
                        field: Some(field),
                        lower: whole_days(lower, false),
                        upper: whole_days(upper, true),
                    };
                    parser
                        .build_query_from_user_input_ast(UserInputAst::Leaf(Box::new(leaf)))
                        .map_err(bad)
                }
                leaf => parser
                    .build_query_from_user_input_ast(UserInputAst::Leaf(Box::new(leaf)))
                    .map_err(bad),
            },
        }
    }

    /// Events that have `name` (with any value; for `details.x`, an object there too),
    /// as Elasticsearch's `exists`: a fast field's own check; every event for `eventid`,
    /// `summary` and `timestamp`.
    pub(super) fn exists_query(&self, name: &str) -> Result<Box<dyn Query>, StoreError> {
        match name {
            // Normalization gives every event these (`summary` may be empty text;
            // `timestamp` is kept in its source only). A `/custom/` document may lack
            // them and still matches: a difference from Elasticsearch the README lists.
            "eventid" | "summary" | "timestamp" => Ok(Box::new(AllQuery)),
            "utctimestamp" | "receivedtimestamp" | "hostname" | "processname" | "processid"
            | "severity" | "category" | "source" | "tags" => Ok(Box::new(
                tantivy::query::ExistsQuery::new(name.to_string(), false),
            )),
            "details" => Ok(Box::new(tantivy::query::ExistsQuery::new(
                name.to_string(),
                true,
            ))),
            other if other.starts_with("details.") => Ok(Box::new(
                tantivy::query::ExistsQuery::new(other.to_string(), true),
            )),
            other => Err(StoreError::BadQuery(format!("no field {other:?}"))),
        }
    }

    /// `field:pattern` where `*` is any run of characters and `?` any one; with no
    /// field, over the default fields (summary, hostname, processname, category, tags).
    pub(super) fn wildcard_query(
        &self,
        field: Option<&str>,
        pattern: &str,
    ) -> Result<Box<dyn Query>, StoreError> {
        let f = &self.fields;
        let regex = |glob: &str| {
            let mut out = String::with_capacity(glob.len() * 2);
            for c in glob.chars() {
                match c {
                    '*' => out.push_str(".*"),
                    '?' => out.push('.'),
                    c if "\\.+()|[]{}^$#&-~".contains(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out
        };
        let regex_query = |pattern: String, field: Field| {
            tantivy::query::RegexQuery::from_pattern(&pattern, field)
                .map(|q| Box::new(q) as Box<dyn Query>)
                .map_err(|e| StoreError::BadQuery(format!("wildcard {pattern:?}: {e}")))
        };
        let Some(name) = field else {
            let mut any = Vec::new();
            for field in [f.summary, f.hostname, f.processname, f.category, f.tags] {
                let glob = if field == f.summary {
                    pattern.to_lowercase()
                } else {
                    pattern.to_string()
                };
                any.push((Occur::Should, regex_query(regex(&glob), field)?));
            }
            return Ok(Box::new(BooleanQuery::new(any)));
        };
        if let Some(path) = name.strip_prefix("details.") {
            // A JSON field's terms are the path (segments joined by 0x01), 0x00, the
            // value's type (`s` for text), then the value as stored (raw).
            let mut full = String::new();
            for (i, segment) in path.split('.').enumerate() {
                if i > 0 {
                    full.push_str("\\x01");
                }
                full.push_str(&regex(&segment.replace(['*', '?'], "")));
            }
            full.push_str("\\x00s");
            full.push_str(&regex(pattern));
            return regex_query(full, f.details);
        }
        let field = match name {
            "hostname" => f.hostname,
            "processname" => f.processname,
            "severity" => f.severity,
            "category" => f.category,
            "source" => f.source,
            "tags" => f.tags,
            // Every document has an id: `eventid:*` is all of them, as `_exists_`.
            "eventid" if pattern.chars().all(|c| c == '*') => return Ok(Box::new(AllQuery)),
            "eventid" => return Err(eventid_not_whole(&format!("the wildcard {pattern:?}"))),
            "summary" => return regex_query(regex(&pattern.to_lowercase()), f.summary),
            other => {
                return Err(StoreError::BadQuery(format!(
                    "wildcards work on text fields and details.*, not on {other:?}"
                )));
            }
        };
        regex_query(regex(pattern), field)
    }
}

/// A query on part of an id, refused: `what` is what it asked.
fn eventid_not_whole(what: &str) -> StoreError {
    StoreError::BadQuery(format!(
        "eventid is matched whole, not by {what}: the store indexes a digest of each id (eventid:<id>, eventid:(<id> OR <id>) or eventid:IN [<id> <id>])"
    ))
}

/// The field a leaf names, if any.
fn leaf_field(leaf: &UserInputLeaf) -> Option<&str> {
    match leaf {
        UserInputLeaf::Literal(literal) => literal.field_name.as_deref(),
        UserInputLeaf::Range { field, .. }
        | UserInputLeaf::Set { field, .. }
        | UserInputLeaf::Regex { field, .. } => field.as_deref(),
        UserInputLeaf::Exists { field } => Some(field),
        UserInputLeaf::All => None,
    }
}

/// Runs Elasticsearch-style aggregations over every day's matches and merges them
/// (tantivy's distributed collector: per-index intermediate results, merged, then
/// finished once, so a `terms` count spans days exactly).
pub(super) fn aggregate(
    searchers: &[tantivy::Searcher],
    query: &dyn Query,
    aggs: &serde_json::Value,
) -> Result<serde_json::Value, StoreError> {
    use tantivy::aggregation::agg_req::Aggregations;
    use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
    use tantivy::aggregation::{
        AggContextParams, AggregationLimitsGuard, DistributedAggregationCollector,
    };
    let mut aggs = aggs.clone();
    calendar_to_fixed(&mut aggs)?;
    let request: Aggregations =
        serde_json::from_value(aggs).map_err(|e| StoreError::BadAggregation(e.to_string()))?;
    // The budget is one search's, shared by its days: each day's collection may take
    // its share (tantivy frees a day's count when the day is done, while its results
    // stay in the merge), so a search over 365 days cannot take 365 budgets.
    let per_day = (AGGREGATION_MEMORY_BYTES / searchers.len().max(1) as u64).max(1 << 20);
    let limits = || AggregationLimitsGuard::new(Some(AGGREGATION_MEMORY_BYTES), None);
    let mut merged: Option<IntermediateAggregationResults> = None;
    for searcher in searchers {
        let collector = DistributedAggregationCollector::from_aggs(
            request.clone(),
            AggContextParams::new(
                AggregationLimitsGuard::new(Some(per_day), None),
                TokenizerManager::default(),
            ),
        );
        let fruit = searcher
            .search(query, &collector)
            .map_err(|e| StoreError::BadAggregation(e.to_string()))?;
        merged = Some(match merged {
            None => fruit,
            Some(mut so_far) => {
                so_far
                    .merge_fruits(fruit)
                    .map_err(|e| StoreError::BadAggregation(e.to_string()))?;
                so_far
            }
        });
    }
    let merged = merged.unwrap_or_default();
    let result = merged
        .into_final_result(request, limits())
        .map_err(|e| StoreError::BadAggregation(e.to_string()))?;
    serde_json::to_value(result).map_err(|e| StoreError::BadAggregation(e.to_string()))
}

/// `date_histogram`'s `calendar_interval` of a minute, an hour or a day as the
/// `fixed_interval` it equals in UTC (tantivy knows only fixed intervals; the searches
/// here have no time zone). Weeks, months, quarters and years are not fixed lengths:
/// refused, naming the interval. At most [`crate::query::MAX_AGGREGATION_DEPTH`] deep
/// (checked before).
fn calendar_to_fixed(aggs: &mut serde_json::Value) -> Result<(), StoreError> {
    let Some(map) = aggs.as_object_mut() else {
        return Ok(());
    };
    for aggregation in map.values_mut() {
        if let Some(histogram) = aggregation
            .get_mut("date_histogram")
            .and_then(|h| h.as_object_mut())
            && let Some(interval) = histogram.remove("calendar_interval")
        {
            let fixed = match interval.as_str() {
                Some("minute" | "1m") => "1m",
                Some("hour" | "1h") => "1h",
                Some("day" | "1d") => "1d",
                _ => {
                    return Err(StoreError::BadAggregation(format!(
                        "calendar_interval {interval} is not supported by the embedded store (minute, hour and day are; or a fixed_interval)"
                    )));
                }
            };
            histogram.insert("fixed_interval".into(), fixed.into());
        }
        for key in ["aggs", "aggregations"] {
            if let Some(inner) = aggregation.get_mut(key) {
                calendar_to_fixed(inner)?;
            }
        }
    }
    Ok(())
}

/// The most memory one search's aggregations may take.
pub(super) const AGGREGATION_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

/// A failed search: the query's fault (a field it cannot be run on) or the store's.
pub(super) fn search_error(error: tantivy::TantivyError) -> StoreError {
    use tantivy::TantivyError as E;
    match error {
        E::SchemaError(message) | E::InvalidArgument(message) => StoreError::BadQuery(message),
        E::FieldNotFound(field) => StoreError::BadQuery(format!("no field {field:?}")),
        other => StoreError::Search(other),
    }
}

/// Whether a range's two ends are a number and text: tantivy panics running such a
/// range over a JSON field.
pub(super) fn mixed_bounds(
    lower: &tantivy::query_grammar::UserInputBound,
    upper: &tantivy::query_grammar::UserInputBound,
) -> bool {
    use tantivy::query_grammar::UserInputBound;
    let numeric = |bound: &UserInputBound| match bound {
        UserInputBound::Unbounded => None,
        bound => Some(bound.term_str().parse::<f64>().is_ok()),
    };
    matches!((numeric(lower), numeric(upper)), (Some(a), Some(b)) if a != b)
}

/// Makes `a AND NOT b` mean what Lucene users expect. tantivy's grammar reads it as
/// `+a +(-b)`, and a clause holding only negations matches nothing; Lucene reads it as
/// `+a -b`. Purely negative clauses under a required parent are lifted into it, and a
/// query that is only negations matches everything else (`NOT category:session`).
pub(super) fn lift_negations(ast: UserInputAst) -> UserInputAst {
    let UserInputAst::Clause(items) = ast else {
        return ast;
    };
    let only_negations = |ast: &UserInputAst| match ast {
        UserInputAst::Clause(inner) => {
            !inner.is_empty() && inner.iter().all(|(o, _)| *o == Some(Occur::MustNot))
        }
        _ => false,
    };
    let mut lifted = Vec::with_capacity(items.len());
    for (occur, child) in items {
        let child = lift_negations(child);
        if occur != Some(Occur::Should) && only_negations(&child) {
            if let UserInputAst::Clause(inner) = child {
                lifted.extend(inner);
            }
        } else {
            lifted.push((occur, child));
        }
    }
    if !lifted.is_empty() && lifted.iter().all(|(o, _)| *o == Some(Occur::MustNot)) {
        lifted.push((
            Some(Occur::Must),
            UserInputAst::Leaf(Box::new(UserInputLeaf::All)),
        ));
    }
    UserInputAst::Clause(lifted)
}

/// A date-only bound of a time range (`2026-11-23`) as Elasticsearch rounds it: the
/// day's start for an inclusive lower bound, the next day's for an exclusive one or an
/// inclusive upper one (the whole day is in), the day's start for an exclusive upper.
/// `field:at` as the range `[at TO at]`: a bare day is that whole day, a time that
/// instant, to the µs the index keeps (finer digits are dropped, as the index dropped
/// them when it stored the time).
fn time_point(field: String, at: &str) -> UserInputAst {
    use chrono::SubsecRound as _;
    use tantivy::query_grammar::UserInputBound as B;
    let at = match DateTime::parse_from_rfc3339(at) {
        Ok(time) => time
            .trunc_subsecs(6)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Err(_) => at.to_string(),
    };
    UserInputAst::Leaf(Box::new(UserInputLeaf::Range {
        field: Some(field),
        lower: B::Inclusive(at.clone()),
        upper: B::Inclusive(at),
    }))
}

fn whole_days(
    bound: tantivy::query_grammar::UserInputBound,
    upper: bool,
) -> tantivy::query_grammar::UserInputBound {
    use tantivy::query_grammar::UserInputBound as B;
    let day = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    let start = |d: NaiveDate| format!("{d}T00:00:00Z");
    let next = |d: NaiveDate| start(d.succ_opt().unwrap_or(d));
    match bound {
        B::Inclusive(text) => match day(&text) {
            Some(d) if upper => B::Exclusive(next(d)),
            Some(d) => B::Inclusive(start(d)),
            None => B::Inclusive(text),
        },
        B::Exclusive(text) => match day(&text) {
            Some(d) if upper => B::Exclusive(start(d)),
            Some(d) => B::Inclusive(next(d)),
            None => B::Exclusive(text),
        },
        B::Unbounded => B::Unbounded,
    }
}
