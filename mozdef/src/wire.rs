//! The wire format between shippers and the collector: a request body is one JSON
//! object, a JSON array of objects, or NDJSON (one object per line). [`split_body`]
//! turns a body into items, each a JSON value or the reason it was refused, so that one
//! bad item never costs the good ones.
//!
//! A body is first read as a single JSON value (an object or an array); only when that
//! fails and the body has several lines is it read as NDJSON, line by line. Items are
//! numbered from 0 in the order they were sent (NDJSON: non-blank lines).

use serde_json::Value;
use serde_json::value::RawValue;
use thiserror::Error;

/// Why a whole body was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BodyError {
    #[error("request body is empty")]
    Empty,
    #[error("request body is not JSON: {0}")]
    NotJson(String),
}

/// Why one item was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ItemError {
    #[error("event is {bytes} bytes, over the limit of {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("{0}")]
    Invalid(String),
}

/// One item of a body: where it was and what it holds.
pub type Item = (usize, Result<Value, ItemError>);

/// Splits `body` into items; an item longer than `max_item_bytes` is refused unread.
pub fn split_body(body: &[u8], max_item_bytes: usize) -> Result<Vec<Item>, BodyError> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    match serde_json::from_slice::<&RawValue>(trimmed) {
        Ok(raw) if trimmed.first() == Some(&b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_str(raw.get()).map_err(|e| BodyError::NotJson(e.to_string()))?;
            Ok(items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (i, read_item(item.get().as_bytes(), max_item_bytes)))
                .collect())
        }
        Ok(raw) => Ok(vec![(0, read_item(raw.get().as_bytes(), max_item_bytes))]),
        Err(whole) => {
            let lines: Vec<&[u8]> = trimmed
                .split(|b| *b == b'\n')
                .map(<[u8]>::trim_ascii)
                .filter(|line| !line.is_empty())
                .collect();
            if lines.len() < 2 {
                return Err(BodyError::NotJson(whole.to_string()));
            }
            let items: Vec<Item> = lines
                .into_iter()
                .enumerate()
                .map(|(i, line)| (i, read_item(line, max_item_bytes)))
                .collect();
            if items
                .iter()
                .all(|(_, item)| matches!(item, Err(ItemError::NotJson(_))))
            {
                return Err(BodyError::NotJson(format!("line 1: {whole}")));
            }
            Ok(items)
        }
    }
}

fn read_item(bytes: &[u8], limit: usize) -> Result<Value, ItemError> {
    if bytes.len() > limit {
        return Err(ItemError::TooLarge {
            bytes: bytes.len(),
            limit,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| ItemError::NotJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn values(items: &[Item]) -> Vec<Option<Value>> {
        items
            .iter()
            .map(|(_, r)| r.as_ref().ok().cloned())
            .collect()
    }

    #[test]
    fn one_object_is_one_item() {
        let items = split_body(br#" {"summary": "a"} "#, 1024).unwrap();
        assert_eq!(values(&items), vec![Some(json!({"summary": "a"}))]);
    }

    #[test]
    fn an_array_is_one_item_per_element() {
        let items = split_body(br#"[{"a":1}, 2, {"b":2}]"#, 1024).unwrap();
        assert_eq!(
            values(&items),
            vec![Some(json!({"a": 1})), Some(json!(2)), Some(json!({"b": 2}))]
        );
        assert_eq!(items[2].0, 2);
    }

    #[test]
    fn ndjson_is_one_item_per_line_and_a_bad_line_stays_alone() {
        let body = b"{\"a\":1}\n\n{broken\n{\"c\":3}\n";
        let items = split_body(body, 1024).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].1, Ok(json!({"a": 1})));
        assert!(matches!(items[1], (1, Err(ItemError::NotJson(_)))));
        assert_eq!(items[2], (2, Ok(json!({"c": 3}))));
    }

    #[test]
    fn oversized_items_are_refused_by_position() {
        let big = format!("{{\"summary\":\"{}\"}}", "x".repeat(100));
        let body = format!("[{{\"a\":1}},{big}]");
        let items = split_body(body.as_bytes(), 50).unwrap();
        assert_eq!(items[0].1, Ok(json!({"a": 1})));
        assert!(matches!(
            items[1],
            (1, Err(ItemError::TooLarge { limit: 50, .. }))
        ));
    }

    #[test]
    fn what_is_not_json_is_refused_whole() {
        assert_eq!(split_body(b"", 10), Err(BodyError::Empty));
        assert_eq!(split_body(b" \n\t", 10), Err(BodyError::Empty));
        assert!(matches!(
            split_body(b"hello", 10),
            Err(BodyError::NotJson(_))
        ));
        assert!(matches!(
            split_body(b"{\"a\":", 10),
            Err(BodyError::NotJson(_))
        ));
        assert!(matches!(
            split_body(b"foo\nbar\n", 10),
            Err(BodyError::NotJson(_))
        ));
        assert!(matches!(split_body(b"[1,", 10), Err(BodyError::NotJson(_))));
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let items = split_body(b"\xef\xbb\xbf{\"a\":1}", 100).unwrap();
        assert_eq!(values(&items), vec![Some(json!({"a": 1}))]);
    }
}
