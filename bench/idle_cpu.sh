#!/usr/bin/env bash
# Idle cost of the agent's file input: picket-agent (release build) follows 200 files
# through one glob and nothing is written to them. Prints the CPU time it used over
# MEASURE_SECS (default 30) after a 5 s warm-up, and its RSS. Usage: bench/idle_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
measure=${MEASURE_SECS:-30}
cargo build --quiet --release -p picket-agent
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/logs"
for i in $(seq -w 1 200); do echo "Nov 22 09:14:03 web1 app[$i]: started" > "$work/logs/app$i.log"; done
cat > "$work/agent.toml" <<TOML
[agent]
data_dir = "$work/state"
timezone = "UTC"
[agent.inputs.file]
paths = ["$work/logs/*.log"]
start_at = "end"
[agent.shippers.http]
url = "http://127.0.0.1:9/events"
TOML
target/release/picket-agent --config "$work/agent.toml" run 2>"$work/agent.log" &
pid=$!
sleep 5
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
sleep "$measure"
after=$(ticks)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
cpu_ms=$(( (after - before) * 1000 / hz ))
echo "idle agent, 200 files: ${cpu_ms} ms CPU in ${measure} s ($(awk "BEGIN {printf \"%.3f\", $cpu_ms / ($measure * 10)}")% of one core), RSS ${rss} KiB"
grep -q "watching=true" "$work/agent.log" && echo "(inotify wake-ups on)" || echo "(polling: inotify unavailable)"
