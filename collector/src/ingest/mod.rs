//! Ways events come in: [`http`], MozDef's loginput routes plus the search API and
//! status, guarded by [`auth`]; [`amqp`], MozDef's RabbitMQ queue.

pub mod amqp;
pub mod auth;
pub mod http;
