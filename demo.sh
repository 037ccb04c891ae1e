#!/usr/bin/env bash
# The README's run command: builds Picket, starts a collector (embedded store) and an
# agent on loopback, feeds the agent an auth log (this host's own when readable, else
# the sample in tests/fixtures/sample/auth.log), shows the stored events, and keeps both
# running until Ctrl-C. State and logs go to target/demo/.
set -euo pipefail
cd "$(dirname "$0")"

echo "==> Building picket-agent and picket-collector (the first build takes a few minutes)"
cargo build --quiet --bins
bin=target/debug
work=target/demo
rm -rf "$work"
mkdir -p "$work"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${PICKET_DEMO_PORT:-18080}
while port_busy "$port"; do port=$((port + 1)); done
url="http://127.0.0.1:$port"

log=""
for candidate in /var/log/auth.log /var/log/secure; do
  if [ -r "$candidate" ] && [ -s "$candidate" ]; then log=$candidate; break; fi
done
if [ -z "$log" ]; then
  cp tests/fixtures/sample/auth.log "$work/auth.log"
  log="$PWD/$work/auth.log"
  echo "==> This host's auth log is not readable; using the sample auth log ($log)"
else
  echo "==> Reading this host's auth log: $log"
fi

cat > "$work/picket.toml" <<TOML
[agent]
data_dir = "$PWD/$work/agent-state"
timezone = "local"

[agent.inputs.file]
paths = ["$log"]
start_at = "beginning"

[agent.shippers.http]
url = "$url/events"

[collector]
data_dir = "$PWD/$work/collector-data"

[collector.http]
listen = "127.0.0.1:$port"
TOML

pids=()
cleanup() {
  echo
  echo "==> Stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$bin/picket-collector" --config "$work/picket.toml" serve 2>"$work/collector.log" &
pids+=($!)
for _ in $(seq 1 100); do port_busy "$port" && break; sleep 0.1; done
port_busy "$port" || { echo "collector did not start; see $work/collector.log"; exit 1; }
echo "==> Collector listening on $url (log: $work/collector.log)"

"$bin/picket-agent" --config "$work/picket.toml" run 2>"$work/agent.log" &
pids+=($!)
echo "==> Agent following $log (log: $work/agent.log)"

search=("$bin/picket-collector" --config "$work/picket.toml" search --url "$url")
for _ in $(seq 1 100); do
  if "${search[@]}" '*' --size 1 2>/dev/null | grep -q .; then break; fi
  sleep 0.2
done

echo
echo "==> Newest stored events from sshd:"
"${search[@]}" 'processname:sshd' --size 10
echo
cat <<TEXT
==> Picket is running. In another terminal, try:

  ${search[*]} 'processname:sshd AND summary:accepted'
  ${search[*]} 'processname:sudo' --json
  ${search[*]} '*' --since 1h

Append a line and search for it:

  echo "\$(date '+%b %e %H:%M:%S') \$(hostname) sshd[4242]: Accepted password for demo from 192.0.2.9 port 22 ssh2" >> $log
  ${search[*]} 'summary:demo'

Press Ctrl-C to stop both.
TEXT
wait
