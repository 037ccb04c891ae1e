#![no_main]
//! A whole line, header included: every header reader and every parser it can reach.

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::check(data);
});
