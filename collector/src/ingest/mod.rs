//! Ways events come in. Today: [`http`], MozDef's loginput `/events` route plus the
//! search API and status, guarded by [`auth`].

pub mod auth;
pub mod http;
