#!/usr/bin/env bash
# Delivery benchmark: the standard workload (../shared/bench/gen_authlog.py, seed 42)
# tailed from the start of the file by picket-agent (release build, default config but
# for paths, start_at and the destination; disk buffer on, fsync group commit), until
# every event has arrived.
#
#   bench/delivery.sh sink        agent → plain HTTP → ../shared/bench/http_sink.py
#                                 (counts only; the agent side alone)
#   bench/delivery.sh https       agent → HTTPS with client certificates and a bearer
#                                 token → picket-collector (embedded store)
#   bench/delivery.sh amqps       agent → AMQPS (TLS, EXTERNAL auth, publisher confirms)
#                                 → a private RabbitMQ (tests/examples/amqp_sink.rs
#                                 starts it and counts the queue)
#
# Elapsed is from the agent's start to the last event's arrival (the sink's t_done;
# for https and amqps, the first poll that sees them all, every 0.1 s).
# Prints lines/s, the agent's CPU seconds and µs per line (user+system, from
# /proc/PID/stat), its peak RSS (VmHWM), its idle RSS (VmRSS 5 s after starting on an
# empty file, same config), bytes per event (the JSON lines delivered, from the agent's
# bytes_shipped; no HTTP/AMQP/TLS framing), and its fsyncs of the disk buffer and
# their rate. The last line, `RESULT …`, is what bench/all.sh puts in BENCHMARKS.md. LINES=N (default 1000000) changes the size; BATCH=N sets the agent's
# batch_max_events and COMMIT_MS=N the collector's commit_interval_ms (defaults
# otherwise); AGENT_CPUS=0 pins the agent to CPU 0 (taskset), for "on one core".
# Heartbeats are turned off so counts are exact. AGENT_BIN and COLLECTOR_BIN run other
# builds (an older commit's, for a before/after in one run; keys they do not know are
# not set); SHIPPER_KEYS adds lines to the shipper's table (`gzip = true`), STORE_KEYS to the
# collector's `[collector.stores.embedded]`.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-sink}
lines=${LINES:-1000000}
shared=${SHARED:-../shared}
[ -f "$shared/bench/gen_authlog.py" ] || { echo "needs $shared/bench (SHARED=...)" >&2; exit 2; }

cargo build --quiet --release -p picket-agent -p picket-collector
agent_bin=${AGENT_BIN:-target/release/picket-agent}
collector_bin=${COLLECTOR_BIN:-target/release/picket-collector}
if [ "$mode" = amqps ]; then cargo build --quiet --release -p picket-tests --example amqp_sink; fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

python3 "$shared/bench/gen_authlog.py" -n "$lines" --seed 42 -o "$work/auth.log"
port=$(free_port)

case $mode in
  sink)
    python3 "$shared/bench/http_sink.py" serve --port "$port" --expect "$lines" \
      --result "$work/sink.json" --timeout 900 --ready-file "$work/ready" >"$work/sink.log" 2>&1 &
    pids+=($!); sink_pid=$!
    while [ ! -e "$work/ready" ]; do sleep 0.05; done
    shipper="[agent.shippers.http]
url = \"http://127.0.0.1:$port/events\""
    ;;
  https)
    (cd "$work" &&
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
        -keyout ca.key -out ca.pem 2>/dev/null &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout server.key -out server.csr 2>/dev/null &&
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile <(printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth') -out server.pem 2>/dev/null &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench-agent \
        -keyout client.key -out client.csr 2>/dev/null &&
      openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile <(printf 'extendedKeyUsage=clientAuth') -out client.pem 2>/dev/null &&
      echo "bench-token-0123456789abcdef" > token)
    cat > "$work/collector.toml" <<TOML
[collector]
data_dir = "$work/collector"
[collector.http]
listen = "127.0.0.1:$port"
tls_cert_file = "$work/server.pem"
tls_key_file = "$work/server.key"
client_ca_file = "$work/ca.pem"
tokens_file = "$work/token"
[collector.stores.embedded]
${COMMIT_MS:+commit_interval_ms = $COMMIT_MS}
${STORE_KEYS:-}
TOML
    "$collector_bin" --config "$work/collector.toml" serve 2>"$work/collector.log" &
    pids+=($!); collector_pid=$!
    until curl -sf --cacert "$work/ca.pem" --cert "$work/client.pem" --key "$work/client.key" \
      "https://localhost:$port/status" >/dev/null; do sleep 0.1; done
    shipper="[agent.shippers.http]
url = \"https://localhost:$port/events\"
ca_file = \"$work/ca.pem\"
client_cert_file = \"$work/client.pem\"
client_key_file = \"$work/client.key\"
token_file = \"$work/token\"
batch_max_events = ${BATCH:-1000}"
    ;;
  amqps)
    mkdir -p "$work/amqp"
    target/release/examples/amqp_sink "$work/amqp" "$lines" >"$work/amqp.log" 2>&1 &
    pids+=($!)
    until [ -e "$work/amqp/env" ]; do
      kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/amqp.log" >&2; exit 1; }
      sleep 0.2
    done
    # shellcheck disable=SC1091
    . "$work/amqp/env"
    shipper="[agent.shippers.amqp]
url = \"$AMQPS_URL\"
auth = \"external\"
ca_file = \"$CA\"
client_cert_file = \"$CLIENT_CERT\"
client_key_file = \"$CLIENT_KEY\""
    ;;
  *) echo "usage: $0 sink|https|amqps" >&2; exit 2 ;;
esac

write_config() {
  cat > "$work/agent.toml" <<TOML
[agent]
data_dir = "$2"
timezone = "UTC"
heartbeat_secs = 0
[agent.inputs.file]
paths = ["$1"]
start_at = "beginning"
[agent.inputs.journald]
mode = "off"
$shipper
${SHIPPER_KEYS:-}
TOML
}

# Idle: the same agent on an empty file, 5 s after start.
: > "$work/empty.log"
write_config "$work/empty.log" "$work/idle-state"
"$agent_bin" --config "$work/agent.toml" run 2>"$work/idle.log" &
idle_pid=$!
sleep 5
idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$idle_pid/status")
kill -TERM "$idle_pid"; wait "$idle_pid" || true

write_config "$work/auth.log" "$work/agent"
start=$(date +%s.%N)
${AGENT_CPUS:+taskset -c $AGENT_CPUS} "$agent_bin" --config "$work/agent.toml" run 2>"$work/agent.log" &
pids+=($!); agent=$!
stat_agent() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
delivered() {
  if [ "$mode" = sink ]; then
    [ -s "$work/sink.json" ]
  elif [ "$mode" = amqps ]; then
    [ -e "$work/amqp/done" ]
  else
    local total
    total=$(curl -sf --cacert "$work/ca.pem" --cert "$work/client.pem" --key "$work/client.key" \
      -H "Authorization: Bearer $(cat "$work/collector/read.token")" \
      "https://localhost:$port/api/events?q=*&size=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
    [ "${total:-0}" -ge "$lines" ]
  fi
}
until delivered; do
  kill -0 "$agent" 2>/dev/null || { echo "agent exited:" >&2; tail "$work/agent.log" >&2; exit 1; }
  sleep 0.1
done
end=$(date +%s.%N)
if [ "$mode" = sink ]; then
  # The sink writes its result --linger (0.5 s) after the last event arrived, to see
  # duplicates; delivery ended at its t_done (wall clock, as `date` here).
  end=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["t_done"])' "$work/sink.json")
fi
hz=$(getconf CLK_TCK)
ticks=$(stat_agent)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$agent/status")
kill -TERM "$agent"; wait "$agent" || true
syncs=$(grep -o 'buffer_syncs=[0-9]*' "$work/agent.log" | tail -1 | cut -d= -f2)
shipped=$(grep -o 'bytes_shipped=[0-9]*' "$work/agent.log" | tail -1 | cut -d= -f2)
python3 - "$mode" "$lines" "$start" "$end" "$ticks" "$hz" "$hwm" "${syncs:-0}" "$idle_rss" "${shipped:-0}" <<'PY'
import sys
mode, lines, start, end, ticks, hz, hwm, syncs, idle, shipped = sys.argv[1:]
lines = int(lines); secs = float(end) - float(start); cpu = int(ticks) / int(hz)
print(f"mode={mode} lines={lines}")
print(f"  elapsed            {secs:8.2f} s   ({lines / secs:,.0f} lines/s)")
print(f"  agent CPU          {cpu:8.2f} s   ({cpu * 1e6 / lines:.2f} µs per line)")
print(f"  agent peak RSS     {int(hwm) / 1024:8.1f} MiB")
print(f"  agent idle RSS     {int(idle) / 1024:8.1f} MiB")
print(f"  bytes per event    {int(shipped) / lines:8.0f}")
print(f"  buffer fsyncs      {int(syncs):8d}     ({int(syncs) / secs:.1f} per second)")
print(f"RESULT mode={mode} lines_per_s={lines / secs:.0f} cpu_us={cpu * 1e6 / lines:.2f} "
      f"peak_mib={int(hwm) / 1024:.1f} idle_mib={int(idle) / 1024:.1f} bytes_per_event={int(shipped) / lines:.0f}")
PY
if [ "$mode" = sink ]; then
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  sink:", {k: r[k] for k in r if k in ("events","bytes","requests","elapsed","rate")})' "$work/sink.json"
elif [ "$mode" = https ]; then
  echo "  collector peak RSS $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$collector_pid/status"), CPU $(awk -v hz="$hz" '{printf "%.2f s", ($14+$15)/hz}' "/proc/$collector_pid/stat")"
fi
