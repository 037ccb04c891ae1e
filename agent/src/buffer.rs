//! The agent's disk buffer: [`picket_common::wal`] under `data_dir/buffer`, which holds
//! events between the inputs and the shipper (`pipeline/`: the buffer stage appends and
//! fsyncs, the ship stage reads durable records and acknowledges them after a 2xx), and
//! its `[agent.buffer]` table ([`config`]); [`inspect`] reads it for `picket-agent buffer
//! inspect|verify`.

pub mod config;
pub mod inspect;

pub use picket_common::wal::*;
