//! Ways events come in. Today: [`http`], MozDef's loginput `/events` route plus the
//! search API and status.

pub mod http;
