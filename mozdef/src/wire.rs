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
/// It holds every item at once: the collector reads bodies with [`for_each_item`].
pub fn split_body(body: &[u8], max_item_bytes: usize) -> Result<Vec<Item>, BodyError> {
    let mut items = Vec::new();
    for_each_item(body, max_item_bytes, |position, item| {
        items.push((position, item));
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(items)
}

/// Hands each item of `body` to `each`, in order, as it is read: no list of items is
/// built, so a body of millions of tiny or broken items costs the memory of one at a
/// time (and of what `each` keeps). `each` may stop the reading with
/// `ControlFlow::Break`. A body refused whole ([`BodyError`]) has handed `each`
/// nothing, except an NDJSON body none of whose lines is JSON: its lines were handed
/// over, as refused items, before the body is refused.
pub fn for_each_item(
    body: &[u8],
    max_item_bytes: usize,
    each: impl FnMut(usize, Result<Value, ItemError>) -> std::ops::ControlFlow<()>,
) -> Result<(), BodyError> {
    for_each_item_read(body, max_item_bytes, read_item, each)
}

/// [`for_each_item`] with the item's reading its caller's: `read` gets each item's
/// bytes (within the size limit) and makes of them what the caller wants (the
/// collector reads an agent's events without a `Value` on the way); it answers
/// [`ItemError::NotJson`] for what is not JSON, as [`read_item`] does.
pub fn for_each_item_read<T>(
    body: &[u8],
    max_item_bytes: usize,
    mut read: impl FnMut(&[u8], usize) -> Result<T, ItemError>,
    mut each: impl FnMut(usize, Result<T, ItemError>) -> std::ops::ControlFlow<()>,
) -> Result<(), BodyError> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    match serde_json::from_slice::<&RawValue>(trimmed) {
        Ok(_) if trimmed.first() == Some(&b'[') => {
            let mut deserializer = serde_json::Deserializer::from_slice(trimmed);
            serde::de::DeserializeSeed::deserialize(
                EachElement {
                    each: &mut each,
                    read: &mut read,
                    limit: max_item_bytes,
                },
                &mut deserializer,
            )
            .map_err(|e| BodyError::NotJson(e.to_string()))?;
            Ok(())
        }
        Ok(raw) => {
            let _ = each(0, read(raw.get().as_bytes(), max_item_bytes));
            Ok(())
        }
        Err(whole) => {
            let mut lines = trimmed
                .split(|b| *b == b'\n')
                .map(<[u8]>::trim_ascii)
                .filter(|line| !line.is_empty())
                .peekable();
            let first = lines.next().unwrap_or_default();
            if lines.peek().is_none() {
                return Err(BodyError::NotJson(whole.to_string()));
            }
            let mut any_json = false;
            for (i, line) in std::iter::once(first).chain(lines).enumerate() {
                let item = read(line, max_item_bytes);
                any_json |= !matches!(item, Err(ItemError::NotJson(_)));
                if each(i, item).is_break() {
                    return Ok(());
                }
            }
            if !any_json {
                return Err(BodyError::NotJson(format!("line 1: {whole}")));
            }
            Ok(())
        }
    }
}

/// Reads a JSON array element by element, handing each to the callback.
struct EachElement<'f, F, R> {
    each: &'f mut F,
    read: &'f mut R,
    limit: usize,
}

impl<'de, T, F, R> serde::de::DeserializeSeed<'de> for EachElement<'_, F, R>
where
    F: FnMut(usize, Result<T, ItemError>) -> std::ops::ControlFlow<()>,
    R: FnMut(&[u8], usize) -> Result<T, ItemError>,
{
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T, F, R> serde::de::Visitor<'de> for EachElement<'_, F, R>
where
    F: FnMut(usize, Result<T, ItemError>) -> std::ops::ControlFlow<()>,
    R: FnMut(&[u8], usize) -> Result<T, ItemError>,
{
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut position = 0;
        let mut stopped = false;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if !stopped {
                stopped =
                    (self.each)(position, (self.read)(raw.get().as_bytes(), self.limit)).is_break();
            }
            position += 1;
        }
        Ok(())
    }
}

/// An item's value: refused when over `limit` bytes or not JSON.
pub fn read_item(bytes: &[u8], limit: usize) -> Result<Value, ItemError> {
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
