#!/usr/bin/env bash
# The collector storing into real OpenSearch 2.19.6: one node, then three (one
# replica), each fed EVENTS events (default 200,000; the shared workload through the
# agent's parser) by 4 connections POSTing NDJSON batches of 1,000. See
# tests/examples/opensearch_bench.rs. Needs a JDK 17, Maven (Maven Central reachable)
# and ../shared/bench.
#
#   bench/opensearch.sh            # both, ~5 minutes on 2 cores
#   NODES=3 EVENTS=500000 bench/opensearch.sh
#
# Prints one `RESULT nodes=N …` line per cluster size (bench/all.sh reads them).
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-200000}
cargo build --quiet --release -p picket-collector -p picket-agent
cargo build --quiet --release -p picket-tests --example opensearch_bench
for nodes in ${NODES:-1 3}; do
  target/release/examples/opensearch_bench "$nodes" "$events" 4 1000
done
