//! `cargo bench -p picket-agent --bench parse`: lines per second for parse + serialize
//! on one core, over the standard workload (`../shared/bench/gen_authlog.py`, seed 42:
//! 40% sshd, 25% sudo, 10% CEF, 25% other syslog). Set `PICKET_BENCH_INPUT` to a log
//! file to measure another mix, `PICKET_BENCH_LINES` to change the generated size,
//! `PICKET_BENCH_ROUNDS` the passes (best is reported; 5).

use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};

// The allocator the agent binary uses.
mod support;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn workload() -> PathBuf {
    if let Ok(path) = std::env::var("PICKET_BENCH_INPUT") {
        return PathBuf::from(path);
    }
    let lines = std::env::var("PICKET_BENCH_LINES").unwrap_or_else(|_| "200000".into());
    support::standard_workload(&lines)
}

/// One pass over the lines: parse each into a borrowed draft and write its JSON line,
/// as the file input does. Not inlined, so that
/// `valgrind --tool=callgrind --toggle-collect='*parse_round*'` counts exactly this.
#[inline(never)]
fn parse_round(
    parser: &LineParser,
    lines: &[&[u8]],
    read_at: chrono::DateTime<Utc>,
    out: &mut Vec<u8>,
    mut seen: impl FnMut(&'static str),
) {
    let mut offset = 0u64;
    for line in lines {
        let context = LineContext {
            source: "/var/log/auth.log",
            source_identity: "file:1:2:3",
            offset,
            read_at,
        };
        offset += line.len() as u64 + 1;
        parser.parse_line(line, &context, |draft| {
            draft.write_json_line(out);
            seen(draft.parser);
        });
    }
}

fn main() {
    let path = workload();
    let text = std::fs::read(&path).expect("workload readable");
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let parser = LineParser::new(
        HostIdentity::named("bench.example.com"),
        TimeZoneChoice::parse("UTC").expect("UTC is a zone"),
    );
    let read_at = Utc::now();
    let rounds: usize = std::env::var("PICKET_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let mut out = Vec::with_capacity(64 * 1024 * 1024);
    let mut best = f64::MAX;
    let mut tags: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for round in 0..rounds {
        out.clear();
        let started = Instant::now();
        parse_round(&parser, &lines, read_at, &mut out, |parser| {
            if round == 0 {
                *tags.entry(parser).or_default() += 1;
            }
        });
        best = best.min(started.elapsed().as_secs_f64());
    }
    let per_second = lines.len() as f64 / best;
    println!(
        "parse+serialize: {} lines ({:.1} MiB) from {}",
        lines.len(),
        text.len() as f64 / 1048576.0,
        path.display()
    );
    println!(
        "best of {rounds}: {:.3} s = {:.0} lines/s = {:.1} MiB/s in, {:.2} µs/line (one core)",
        best,
        per_second,
        text.len() as f64 / 1048576.0 / best,
        best * 1e6 / lines.len() as f64
    );
    println!("parsers: {tags:?}");
}
