#!/usr/bin/env bash
# Sizing a collector fleet by simulation (issue 22): simulated agents (heartbeats every
# 60 s, auth traffic of quiet, internet-exposed and brute-forced hosts) publish into a
# three-node RabbitMQ cluster (quorum `eventtask`) in front of OpenSearch and 1, then 2,
# release picket-collectors running the shipped alert rules under the lease. See
# tests/examples/fleet_sim.rs for the model and what each figure means; docs/scaling.md
# for how to read them. Needs rabbitmq-server, a JDK 17 and Maven (Maven Central
# reachable).
#
#   bench/fleet.sh                                   # the BENCHMARKS.md table, ~30 min
#   bench/fleet.sh --hosts 2000 --seconds 60 --collectors 1   # a quick look
#   bench/fleet.sh --opensearch 3 --collectors 1,2,3          # another shape
#
# Arguments go to the simulator (defaults: --hosts 1000,10000,50000 --collectors 1,2
# --seconds 150 --rabbitmq 3 --opensearch 1 --connections 16 --pack 100 --backlog 100000).
# Prints `RESULT …` lines; the raw output is kept in target/bench-results/fleet_sim.txt.
# Interrupted (Ctrl-C), it leaves its brokers and nodes running: `pkill -f beam.smp;
# pkill -f picket-opensearch`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p picket-collector -p picket-agent
cargo build --quiet --release -p picket-tests --example fleet_sim
mkdir -p target/bench-results
# Progress (a line per run) and results as they come; everything in the file.
set +e
target/release/examples/fleet_sim "$@" 2>&1 | tee target/bench-results/fleet_sim.txt \
  | grep -a --line-buffered '^RESULT\|^fleet_sim'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  grep -a -A20 'panicked' target/bench-results/fleet_sim.txt || tail -40 target/bench-results/fleet_sim.txt
  exit "$status"
fi
