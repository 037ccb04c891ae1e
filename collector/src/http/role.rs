//! What a token or a user may do: the roles of `tokens_file` and `users_file`.

/// What a token or a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Send events; nothing else (the token every host of a fleet holds).
    Shipper,
    /// Search events and alerts, read `/metrics`.
    Reader,
    /// A reader who may also triage alerts.
    Analyst,
}

impl Role {
    pub(crate) fn parse(text: &str) -> Option<Role> {
        match text {
            "shipper" => Some(Role::Shipper),
            "reader" => Some(Role::Reader),
            "analyst" => Some(Role::Analyst),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Shipper => "shipper",
            Role::Reader => "reader",
            Role::Analyst => "analyst",
        }
    }

    /// May send events.
    pub fn ingests(self) -> bool {
        self == Role::Shipper
    }

    /// May search.
    pub fn reads(self) -> bool {
        matches!(self, Role::Reader | Role::Analyst)
    }
}
