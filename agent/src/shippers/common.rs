//! What both shippers' tables share beyond the common plumbing (secrets and TLS files
//! are `picket_common`'s): batch and timeout checks and their defaults.

use picket_common::config::KeyError;

pub(crate) fn default_batch_max_events() -> usize {
    1000
}
pub(crate) fn default_timeout_secs() -> u64 {
    30
}

pub(crate) fn check_batch(key: &'static str, n: usize) -> Result<(), KeyError> {
    if !(1..=100_000).contains(&n) {
        return Err(KeyError::new(key, "must be between 1 and 100000"));
    }
    Ok(())
}

pub(crate) fn check_timeout(key: &'static str, secs: u64) -> Result<(), KeyError> {
    if secs == 0 {
        return Err(KeyError::new(key, "must be at least 1"));
    }
    Ok(())
}
