//! The error a component's config table gives its root: which key is wrong and why.
//! The root (`AgentConfig::build_with` in `config.rs`) adds the file that set the key.

/// A key of a config table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The key's full path (`agent.buffer.sync_interval_ms`).
    pub key: &'static str,
    pub message: String,
}

impl KeyError {
    pub fn new(key: &'static str, message: impl Into<String>) -> KeyError {
        KeyError {
            key,
            message: message.into(),
        }
    }
}
