//! Reading a request body: within the size limit, no slower than the configured rate
//! after a grace period, and gunzipped (within the same limit) when it says gzip.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;

/// Why a body could not be read.
pub(crate) enum BodyRead {
    TooLarge,
    TooSlow { bytes: usize, seconds: u64 },
    Failed,
}

/// How long any body may take before the minimum rate applies.
pub(crate) const BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a body of at most `limit` bytes, arriving at `min_rate` bytes/s or faster
/// after its first [`BODY_GRACE`] (0: no minimum): a client trickling a body a byte at
/// a time is cut off in seconds, not after the whole request timeout, so a few
/// hundred of them cannot hold every request slot.
pub(crate) async fn read_body(
    mut body: axum::body::Body,
    limit: usize,
    min_rate: u64,
) -> Result<Bytes, BodyRead> {
    let started = tokio::time::Instant::now();
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let frame = if min_rate == 0 {
            body.frame().await
        } else {
            let allowed = BODY_GRACE
                + std::time::Duration::from_secs_f64(buffer.len() as f64 / min_rate as f64);
            match tokio::time::timeout_at(started + allowed, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => {
                    return Err(BodyRead::TooSlow {
                        bytes: buffer.len(),
                        seconds: started.elapsed().as_secs(),
                    });
                }
            }
        };
        match frame {
            None => return Ok(Bytes::from(buffer)),
            Some(Err(_)) => return Err(BodyRead::Failed),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buffer.len() + data.len() > limit {
                        return Err(BodyRead::TooLarge);
                    }
                    buffer.extend_from_slice(&data);
                }
            }
        }
    }
}

pub(crate) enum Encoding {
    Identity,
    Gzip,
    Other(String),
}

pub(crate) fn content_encoding(headers: &HeaderMap) -> Encoding {
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => Encoding::Identity,
        Some(v) if v.is_empty() || v == "identity" => Encoding::Identity,
        Some(v) if v == "gzip" || v == "x-gzip" => Encoding::Gzip,
        Some(v) => Encoding::Other(v),
    }
}

/// Inflates a gzip body; `None` when it would exceed `limit` bytes (a zip bomb stops
/// there, not at the end of memory).
pub(crate) fn gunzip(compressed: &[u8], limit: usize) -> std::io::Result<Option<Bytes>> {
    use std::io::Read as _;
    let mut plain = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut plain)?;
    if plain.len() > limit {
        return Ok(None);
    }
    Ok(Some(Bytes::from(plain)))
}
