//! Field names of the MozDef schema, in one place so parsers, stores and queries agree.

pub const EVENTID: &str = "eventid";
pub const TIMESTAMP: &str = "timestamp";
pub const UTCTIMESTAMP: &str = "utctimestamp";
pub const RECEIVEDTIMESTAMP: &str = "receivedtimestamp";
pub const HOSTNAME: &str = "hostname";
pub const PROCESSNAME: &str = "processname";
pub const PROCESSID: &str = "processid";
pub const SEVERITY: &str = "severity";
pub const SUMMARY: &str = "summary";
pub const CATEGORY: &str = "category";
pub const SOURCE: &str = "source";
pub const TAGS: &str = "tags";
pub const DETAILS: &str = "details";

/// The top-level fields of an event, in the order the contract lists them.
pub const TOP_LEVEL: [&str; 13] = [
    EVENTID,
    TIMESTAMP,
    UTCTIMESTAMP,
    RECEIVEDTIMESTAMP,
    HOSTNAME,
    PROCESSNAME,
    PROCESSID,
    SEVERITY,
    SUMMARY,
    CATEGORY,
    SOURCE,
    TAGS,
    DETAILS,
];

/// `details` keys the contract names.
pub mod details {
    pub const PROGRAM: &str = "program";
    pub const MESSAGE: &str = "message";
    pub const TRUNCATED: &str = "truncated";
    pub const TIMESTAMPERROR: &str = "timestamperror";
    pub const STRUCTUREDDATA: &str = "structureddata";
    pub const REPEATCOUNT: &str = "repeatcount";
    pub const USERNAME: &str = "username";
    pub const SOURCEIPADDRESS: &str = "sourceipaddress";
    /// The address a network syslog message came from (the relay's sender).
    pub const SENDERIPADDRESS: &str = "senderipaddress";
}

/// Value of `category` for lines no parser recognises.
pub const CATEGORY_SYSLOG: &str = "syslog";
/// Value of `processname` when a line names no program (agent side).
pub const PROCESSNAME_UNKNOWN: &str = "unknown";
/// What the collector fills into a missing mandatory string field, as MozDef does.
pub const UNKNOWN: &str = "UNKNOWN";
/// The longest `summary`, in bytes.
pub const SUMMARY_MAX_BYTES: usize = 4096;
