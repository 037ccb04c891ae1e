//! How a day's index keeps event ids, and how an id is found in it.
//!
//! A term of its own for every event was the largest single cost of indexing: an id is
//! 32 random hex characters, a term dictionary entry and a postings list of one
//! document each, built once per segment and again at every merge (with `eventid` left
//! out of the index, the collector spent a third less CPU per event on the HTTPS path).
//! Days created since 2026-12-08 keep instead, per event:
//!
//! - in `eventid`'s term index, the id's bucket: one of [`BUCKETS`] terms, so a
//!   segment's dictionary holds at most that many however many events it has, and an
//!   event adds a document to a postings list that exists already;
//! - in the fast field `eventid_digest`, 64 further bits of the id's digest.
//!
//! Both come from one keyed digest (SipHash-1-3-128 under a random key the day was
//! created with, kept in its schema as the name of `eventid`'s tokenizer), so nobody
//! sending events can make two ids meet. An id is found by its bucket's postings,
//! filtered by the digest column: the 76 bits together make a false match within a day
//! about n²/2⁷⁷ likely (one in ten million at a billion events a day). Such a match
//! would take one id for the other: a new event refused as a conflict (counted as
//! every conflict is), or, for an alert document replaced, the other deleted with it.
//!
//! Days created before keep the id itself as the term ([`IdTerms::Raw`]).

use tantivy::query::{EnableScoring, Explanation, Query, Scorer, TermQuery, Weight};
use tantivy::schema::{Field, FieldType, IndexRecordOption, Schema};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

use siphasher::sip128::SipHasher13;

/// The fast field of a day's id digests.
pub(super) const DIGEST_FIELD: &str = "eventid_digest";
/// Buckets of ids in a day's term index (12 bits of the digest, three hex digits).
pub(super) const BUCKETS: u32 = 1 << 12;
/// The name of a digest tokenizer starts so; the key follows, as 32 hex digits.
const TOKENIZER: &str = "picket_id_v2_";

/// How a day's index keeps ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IdTerms {
    /// The id itself is the term (days created before 2026-12-08).
    Raw,
    /// The id's bucket is the term, its digest in [`DIGEST_FIELD`].
    Bucketed(IdKey),
}

/// A day's digest key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct IdKey {
    k0: u64,
    k1: u64,
}

/// An id's digest: its bucket (the term) and the value of [`DIGEST_FIELD`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Digest {
    pub(super) bucket: u32,
    pub(super) value: u64,
}

impl Digest {
    /// The bucket's term text: three lower-case hex digits.
    pub(super) fn bucket_text(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for shift in [8, 4, 0] {
            out.push(char::from(HEX[((self.bucket >> shift) & 0xf) as usize]));
        }
    }
}

impl IdKey {
    /// A fresh key, from the system's random source.
    pub(super) fn random() -> Result<IdKey, super::StoreError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| {
            super::StoreError::Log(format!("no random key for event id digests: {e}"))
        })?;
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&bytes[..8]);
        k1.copy_from_slice(&bytes[8..]);
        Ok(IdKey {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1),
        })
    }

    /// The tokenizer name that carries this key in a day's schema.
    pub(super) fn tokenizer_name(&self) -> String {
        format!("{TOKENIZER}{:016x}{:016x}", self.k0, self.k1)
    }

    fn from_tokenizer_name(name: &str) -> Option<IdKey> {
        let hex = name.strip_prefix(TOKENIZER)?;
        if hex.len() != 32 {
            return None;
        }
        Some(IdKey {
            k0: u64::from_str_radix(hex.get(..16)?, 16).ok()?,
            k1: u64::from_str_radix(hex.get(16..)?, 16).ok()?,
        })
    }

    /// `id`'s digest under this key.
    pub(super) fn digest(&self, id: &str) -> Digest {
        let hash = SipHasher13::new_with_keys(self.k0, self.k1)
            .hash(id.as_bytes())
            .as_u128();
        Digest {
            bucket: (hash >> 116) as u32 & (BUCKETS - 1),
            value: hash as u64,
        }
    }

    /// The tokenizer a day with this key indexes `eventid` with: one token, the id's
    /// bucket.
    pub(super) fn tokenizer(&self) -> IdTokenizer {
        IdTokenizer {
            key: *self,
            token: Token::default(),
        }
    }
}

/// The name of `eventid`'s tokenizer in `schema`.
pub(super) fn eventid_tokenizer(schema: &Schema) -> Option<&str> {
    let field = schema.get_field("eventid").ok()?;
    match schema.get_field_entry(field).field_type() {
        FieldType::Str(options) => options
            .get_indexing_options()
            .map(|indexing| indexing.tokenizer()),
        _ => None,
    }
}

impl IdTerms {
    /// How the index of `schema` keeps ids: by the name of its `eventid` tokenizer.
    pub(super) fn of(schema: &Schema) -> IdTerms {
        match eventid_tokenizer(schema).and_then(IdKey::from_tokenizer_name) {
            Some(key) if schema.get_field(DIGEST_FIELD).is_ok() => IdTerms::Bucketed(key),
            _ => IdTerms::Raw,
        }
    }
}

/// `eventid`'s tokenizer on days of digests: the whole id becomes one token, its
/// bucket.
#[derive(Clone)]
pub(super) struct IdTokenizer {
    key: IdKey,
    token: Token,
}

pub(super) struct IdTokenStream<'a> {
    token: &'a mut Token,
    has_token: bool,
}

impl Tokenizer for IdTokenizer {
    type TokenStream<'a> = IdTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> IdTokenStream<'a> {
        self.token.reset();
        self.token.position = 0;
        self.token.position_length = 1;
        self.token.offset_from = 0;
        self.token.offset_to = text.len();
        self.token.text.clear();
        self.key.digest(text).bucket_text(&mut self.token.text);
        IdTokenStream {
            token: &mut self.token,
            has_token: true,
        }
    }
}

impl TokenStream for IdTokenStream<'_> {
    fn advance(&mut self) -> bool {
        std::mem::take(&mut self.has_token)
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// The documents whose id is `id`, in whichever way the searched day keeps ids (its
/// own schema says): `eventid:<id>` in a search, the lookup that decides a write, the
/// delete of a replaced document.
#[derive(Clone, Debug)]
pub(super) struct IdQuery {
    field: Field,
    id: String,
}

impl IdQuery {
    /// `field` is the `eventid` field.
    pub(super) fn new(field: Field, id: impl Into<String>) -> IdQuery {
        IdQuery {
            field,
            id: id.into(),
        }
    }
}

impl Query for IdQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        match IdTerms::of(scoring.schema()) {
            IdTerms::Raw => {
                let term = Term::from_field_text(self.field, &self.id);
                TermQuery::new(term, IndexRecordOption::Basic).weight(scoring)
            }
            IdTerms::Bucketed(key) => {
                let digest = key.digest(&self.id);
                let mut text = String::with_capacity(3);
                digest.bucket_text(&mut text);
                let term = Term::from_field_text(self.field, &text);
                Ok(Box::new(IdWeight {
                    bucket: TermQuery::new(term, IndexRecordOption::Basic).weight(scoring)?,
                    value: digest.value,
                }))
            }
        }
    }
}

/// A bucket's postings, kept where the digest column matches.
struct IdWeight {
    bucket: Box<dyn Weight>,
    value: u64,
}

impl IdWeight {
    fn matches(&self, reader: &SegmentReader) -> tantivy::Result<Vec<DocId>> {
        let column = reader.fast_fields().u64(DIGEST_FIELD)?;
        let mut bucket = self.bucket.scorer(reader, 1.0)?;
        let mut docs = Vec::new();
        let mut doc = bucket.doc();
        while doc != TERMINATED {
            if column.values_for_doc(doc).any(|v| v == self.value) {
                docs.push(doc);
            }
            doc = bucket.advance();
        }
        Ok(docs)
    }
}

impl Weight for IdWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(Matches {
            docs: self.matches(reader)?,
            at: 0,
            score: boost,
        }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if self.matches(reader)?.contains(&doc) {
            Ok(Explanation::new("eventid", 1.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} does not have this eventid"
            )))
        }
    }
}

/// A segment's documents with the id, in order (a handful at most).
struct Matches {
    docs: Vec<DocId>,
    at: usize,
    score: Score,
}

impl DocSet for Matches {
    fn advance(&mut self) -> DocId {
        self.at = (self.at + 1).min(self.docs.len());
        self.doc()
    }

    fn doc(&self) -> DocId {
        self.docs.get(self.at).copied().unwrap_or(TERMINATED)
    }

    fn size_hint(&self) -> u32 {
        self.docs.len() as u32
    }
}

impl Scorer for Matches {
    fn score(&mut self) -> Score {
        self.score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_its_tokenizer_name_and_digests_spread_over_the_buckets() {
        let key = IdKey::random().unwrap();
        assert_eq!(IdKey::from_tokenizer_name(&key.tokenizer_name()), Some(key));
        assert_eq!(IdKey::from_tokenizer_name("raw"), None);
        assert_ne!(IdKey::random().unwrap(), key);
        let mut seen = vec![0u32; BUCKETS as usize];
        for n in 0..(BUCKETS * 8) {
            let digest = key.digest(&format!("{n:032x}"));
            assert_eq!(digest, key.digest(&format!("{n:032x}")), "stable");
            seen[digest.bucket as usize] += 1;
            let mut text = String::new();
            digest.bucket_text(&mut text);
            assert_eq!(u32::from_str_radix(&text, 16).unwrap(), digest.bucket);
        }
        // 8 ids a bucket on average: nearly every bucket is used, none crowded.
        let empty = seen.iter().filter(|n| **n == 0).count();
        assert!(empty < 20, "{empty} buckets of {BUCKETS} unused");
        assert!(*seen.iter().max().unwrap() < 30);
    }
}
