#!/usr/bin/env bash
# Runs every fuzz target (or those named after SECONDS) for SECONDS (default 30) from
# its seeds and the corpus earlier runs grew; exits non-zero on
# the first crash (its input is in fuzz/artifacts/<target>/). Needs nightly and
# cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(line sshd sudo su account cef json_line query ingest_body)
[ -d seeds ] || ./seeds.sh >/dev/null
cargo +nightly fuzz build -O >/dev/null
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "==> fuzz $target for ${seconds}s"
  cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=16384 -print_final_stats=1 2>&1 \
    | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|SUMMARY|panicked|ERROR' || true
  # cargo fuzz exits non-zero on a crash; the pipe above hides it, the artifact does not.
  if compgen -G "artifacts/$target/crash-*" >/dev/null || compgen -G "artifacts/$target/oom-*" >/dev/null; then
    echo "fuzz $target found a failing input: $(ls artifacts/$target/)"
    exit 1
  fi
done
