#![no_main]
//! The json_line parser: a line whose header sends it there, the fuzzer's bytes after it.

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::with_header(b"Dec  3 12:00:00 host app[9]: {", data);
});
