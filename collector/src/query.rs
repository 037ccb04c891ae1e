//! Limits on what a search may ask, checked before anything parses it.
//!
//! The query grammar (tantivy's, and Elasticsearch's `query_string`) and the
//! aggregation reader recurse once per nesting level: ~2,500 `(` in one query, or
//! 50,000 `NOT `, overflowed the collector's stack and aborted the whole process. Every
//! query string and aggregation request is measured here first, by a loop that never
//! recurses, and refused (400, naming the limit) when it is too long or nests too deep.
//! Alert rules go through the same check when they are loaded.

use serde_json::Value;
use thiserror::Error;

/// The longest query string accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The deepest a query may nest: parentheses plus unary operators (`NOT`, `-`, `+`,
/// `!`) applied to one another, counted together.
pub const MAX_QUERY_DEPTH: usize = 64;
/// The deepest aggregations may nest (`aggs` inside `aggs`).
pub const MAX_AGGREGATION_DEPTH: usize = 8;
/// The most aggregations one search may ask for, sub-aggregations included.
pub const MAX_AGGREGATIONS: usize = 100;

/// A query or aggregation request over a limit (or not the shape it must have).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LimitError {
    #[error("the query is {0} bytes, over the limit of {MAX_QUERY_BYTES}")]
    TooLong(usize),
    #[error("the query holds a control character (U+{:04X})", u32::from(*.0))]
    ControlCharacter(char),
    #[error(
        "the query nests {0} levels deep (parentheses and NOT/-/+ operators), over the limit of {MAX_QUERY_DEPTH}"
    )]
    TooDeep(usize),
    #[error("aggs must be a JSON object")]
    AggsNotObject,
    #[error("aggregations nest more than {MAX_AGGREGATION_DEPTH} levels deep")]
    AggregationsTooDeep,
    #[error("more than {MAX_AGGREGATIONS} aggregations in one search")]
    TooManyAggregations,
    #[error("aggregation {0:?} must be a JSON object")]
    AggregationNotObject(String),
    #[error("{key} of aggregation {name:?} must be a JSON object")]
    SubAggregationsNotObject { key: &'static str, name: String },
}

/// Checks a query string against [`MAX_QUERY_BYTES`] and [`MAX_QUERY_DEPTH`].
pub fn check(query: &str) -> Result<(), LimitError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(LimitError::TooLong(query.len()));
    }
    // NUL is the index's own separator inside `details.*` paths (a NUL in a field name
    // trips an assertion in tantivy, found by the query fuzz target); no other control
    // character means anything in a query either.
    if let Some(c) = query
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(LimitError::ControlCharacter(c));
    }
    let depth = depth(query);
    if depth > MAX_QUERY_DEPTH {
        return Err(LimitError::TooDeep(depth));
    }
    Ok(())
}

/// How deep `query` nests: the most parentheses open at once plus the unary operators
/// stacked on the term or group at that point. Quoted phrases and ranges count as one
/// term. It over-counts rather than under-counts (an operator inside a word such as
/// `a-b` is not one, and is not counted; a stray `)` is ignored).
fn depth(query: &str) -> usize {
    let bytes = query.as_bytes();
    let mut deepest = 0;
    // Parentheses open, and for each level the unary operators stacked on it.
    let mut open: Vec<usize> = Vec::new();
    let mut unary = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'(' => {
                open.push(unary);
                unary = 0;
                i += 1;
            }
            b')' => {
                unary = 0;
                open.pop();
                i += 1;
            }
            b'"' | b'\'' => {
                i = skip_quoted(bytes, i);
                unary = 0;
            }
            b'-' | b'+' | b'!' => {
                unary += 1;
                i += 1;
            }
            b if b.is_ascii_whitespace() => i += 1,
            _ => {
                let end = word_end(bytes, i);
                if &bytes[i..end] == b"NOT" {
                    unary += 1;
                } else if !matches!(&bytes[i..end], b"AND" | b"OR" | b"&&" | b"||") {
                    unary = 0;
                }
                i = end.max(i + 1);
            }
        }
        let level = open.len() + open.iter().sum::<usize>() + unary;
        deepest = deepest.max(level);
        if deepest > MAX_QUERY_DEPTH {
            // Already refused; the rest need not be read.
            return deepest;
        }
    }
    deepest
}

/// The index after the quoted phrase starting at `start` (backslash escapes honoured;
/// an unclosed quote runs to the end).
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of the word at `start`: up to whitespace or a parenthesis or quote.
fn word_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'(' | b')' | b'"' | b'\'' => break,
            b if b.is_ascii_whitespace() => break,
            _ => i += 1,
        }
    }
    i.min(bytes.len())
}

/// Checks an aggregation request against [`MAX_AGGREGATION_DEPTH`] and
/// [`MAX_AGGREGATIONS`], walking it without recursion.
pub fn check_aggregations(aggs: &Value) -> Result<(), LimitError> {
    let Some(top) = aggs.as_object() else {
        return Err(LimitError::AggsNotObject);
    };
    let mut count = 0;
    let mut pending: Vec<(&serde_json::Map<String, Value>, usize)> = vec![(top, 1)];
    while let Some((level, depth)) = pending.pop() {
        if depth > MAX_AGGREGATION_DEPTH {
            return Err(LimitError::AggregationsTooDeep);
        }
        for (name, aggregation) in level {
            count += 1;
            if count > MAX_AGGREGATIONS {
                return Err(LimitError::TooManyAggregations);
            }
            let Some(aggregation) = aggregation.as_object() else {
                return Err(LimitError::AggregationNotObject(name.clone()));
            };
            for key in ["aggs", "aggregations"] {
                if let Some(sub) = aggregation.get(key) {
                    match sub.as_object() {
                        Some(sub) => pending.push((sub, depth + 1)),
                        None => {
                            return Err(LimitError::SubAggregationsNotObject {
                                key,
                                name: name.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ordinary_queries_pass() {
        for query in [
            "",
            "*",
            "details.username:root AND category:authentication",
            "(a OR b) AND NOT (c OR -d)",
            "summary:\"((((( in a phrase\"",
            "details.x:[1 TO 5] AND hostname:web-1",
            "NOT category:session",
        ] {
            assert_eq!(check(query), Ok(()), "{query}");
        }
    }

    #[test]
    fn depth_counts_parentheses_and_stacked_operators() {
        assert_eq!(depth("a"), 0);
        assert_eq!(depth("(a)"), 1);
        assert_eq!(depth("((a) OR (b))"), 2);
        assert_eq!(depth("NOT NOT a"), 2);
        assert_eq!(depth("-(-(a))"), 4);
        assert_eq!(depth("a AND NOT b AND NOT c"), 1);
        assert_eq!(depth("\"(((\" (\"x)\")"), 1);
    }

    #[test]
    fn the_attacks_are_refused() {
        let parens = format!("{}a{}", "(".repeat(2_500), ")".repeat(2_500));
        assert!(
            check(&parens)
                .unwrap_err()
                .to_string()
                .contains("limit of 64")
        );
        let nots = "NOT ".repeat(3_000) + "a";
        assert!(
            check(&nots)
                .unwrap_err()
                .to_string()
                .contains("over the limit")
        );
        let long = "NOT ".repeat(50_000) + "a";
        assert!(check(&long).unwrap_err().to_string().contains("bytes"));
        let unclosed = "(".repeat(65);
        assert!(check(&unclosed).is_err());
        let at_limit = format!("{}a{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(check(&at_limit), Ok(()));
        assert!(
            check("details.use\u{0}name:root")
                .unwrap_err()
                .to_string()
                .contains("U+0000")
        );
        assert_eq!(check("a\tb\nc"), Ok(()));
    }

    #[test]
    fn aggregation_nesting_is_bounded() {
        let ok = json!({"u": {"terms": {"field": "hostname"}, "aggs": {"c": {"cardinality": {"field": "x"}}}}});
        assert_eq!(check_aggregations(&ok), Ok(()));
        let mut deep = json!({"terms": {"field": "hostname"}});
        for _ in 0..20 {
            deep = json!({"terms": {"field": "hostname"}, "aggs": {"n": deep}});
        }
        assert!(
            check_aggregations(&json!({ "top": deep }))
                .unwrap_err()
                .to_string()
                .contains("levels")
        );
        let wide: serde_json::Map<String, Value> = (0..200)
            .map(|i| (format!("a{i}"), json!({"terms": {"field": "hostname"}})))
            .collect();
        assert!(
            check_aggregations(&Value::Object(wide))
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
        assert!(check_aggregations(&json!([1])).is_err());
    }
}
