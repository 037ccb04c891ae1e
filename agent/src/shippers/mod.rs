//! Where events go. Today: [`http`], NDJSON batches POSTed to a collector. A shipper
//! sends one batch and says what happened ([`Outcome`]); the pipeline decides what to
//! do about it (retry, split, move on).

pub mod http;

use std::time::Duration;

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The collector stored the batch; `rejected` lists the items it refused
    /// (position, reason), which resending will not fix.
    Delivered { rejected: Vec<(usize, String)> },
    /// A failure that may pass: network, timeout, 429, 5xx. `after` is the server's
    /// `Retry-After`, when it gave one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The collector refused the whole batch; resending the same bytes will not help.
    /// `too_large` says a smaller batch may pass.
    Reject { reason: String, too_large: bool },
}
