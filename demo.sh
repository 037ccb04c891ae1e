#!/usr/bin/env bash
# The README's run command: builds Picket, starts a collector (embedded store, the shipped
# alert rules on) and an agent on loopback, feeds the agent an auth log written just now
# (a copy of this host's when readable, plus a sample with an SSH brute force in it),
# shows the stored events and the alerts they raise, and keeps both running until
# Ctrl-C. State and logs go to <target dir>/demo/.
#
# PICKET_DEMO_PORT: the first port to try (18080). PICKET_DEMO_EXIT=1: stop once the
# first alert is shown instead of running until Ctrl-C (the tests run it so).
set -euo pipefail
cd "$(dirname "$0")"

echo "==> Building picket-agent and picket-collector (the first build takes a few minutes)"
cargo build --bins
# Where cargo put them: CARGO_TARGET_DIR or build.target-dir, else ./target.
target=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' || true)
target=${target:-${CARGO_TARGET_DIR:-target}}
bin=$target/debug
rm -rf "$target/demo"
mkdir -p "$target/demo"
work=$(cd "$target/demo" && pwd)

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${PICKET_DEMO_PORT:-18080}
while port_busy "$port"; do port=$((port + 1)); done
url="http://127.0.0.1:$port"

# The agent follows a copy: the demo never writes to this host's own log.
log="$work/auth.log"
: >"$log"
for candidate in /var/log/auth.log /var/log/secure; do
  if [ -r "$candidate" ] && [ -s "$candidate" ]; then
    tail -n 1000 "$candidate" >>"$log"
    echo "==> Copied the last 1,000 lines of $candidate into $log"
    break
  fi
done

# The sample, dated in the last two minutes so that `--since 1h` finds it and the rules'
# windows hold it: a day's ordinary work, then 12 wrong root passwords from one address
# and a login from it.
stamp() { date -d "@$(($(date +%s) - $1))" '+%b %e %H:%M:%S'; }
host=$(hostname)
i=0
while IFS= read -r line; do
  echo "$(stamp $((110 - i))) $host ${line#* * * * }" >>"$log"
  i=$((i + 1))
done <tests/fixtures/sample/auth.log
for n in $(seq 1 12); do
  echo "$(stamp $((60 - n * 4))) $host sshd[$((3100 + n))]: Failed password for root from 203.0.113.77 port 5$((1000 + n)) ssh2" >>"$log"
done
echo "$(stamp 5) $host sshd[3199]: Accepted password for root from 203.0.113.77 port 52000 ssh2" >>"$log"
echo "==> Wrote a sample auth log, dated just now, into $log"

cat >"$work/picket.toml" <<TOML
[agent]
data_dir = "$work/agent-state"
timezone = "local"

[agent.inputs.file]
paths = ["$log"]
start_at = "beginning"

[agent.shippers.http]
url = "$url/events"

[collector]
data_dir = "$work/collector-data"

[collector.http]
listen = "127.0.0.1:$port"

[collector.alerts]
rules_dir = "$PWD/rules"
TOML

pids=()
stopped=""
cleanup() {
  [ -n "$stopped" ] && return
  stopped=1
  trap - EXIT INT TERM
  echo
  echo "==> Stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

"$bin/picket-collector" --config "$work/picket.toml" serve 2>"$work/collector.log" &
pids+=($!)
for _ in $(seq 1 100); do port_busy "$port" && break; sleep 0.1; done
port_busy "$port" || { echo "collector did not start; see $work/collector.log"; exit 1; }
echo "==> Collector listening on $url, the shipped alert rules on (log: $work/collector.log)"

"$bin/picket-agent" --config "$work/picket.toml" run 2>"$work/agent.log" &
pids+=($!)
echo "==> Agent following $log (log: $work/agent.log)"

search=("$bin/picket-collector" --config "$work/picket.toml" search --url "$url")
for _ in $(seq 1 100); do
  found=$("${search[@]}" 'details.sourceipaddress:203.0.113.77' --size 1 2>/dev/null || true)
  [ -n "$found" ] && break
  sleep 0.2
done

echo
echo "==> Newest stored events from sshd in the last hour:"
"${search[@]}" 'processname:sshd' --since 1h --size 10
echo
echo "==> Waiting for the alert rules' next run (they run every minute)"
alerts=""
for _ in $(seq 1 90); do
  alerts=$(grep -F 'Alert.' "$work/collector.log" || true)
  [ -n "$alerts" ] && break
  printf '.'
  sleep 1
done
echo
if [ -z "$alerts" ]; then
  echo "No alert after 90 s; see $work/collector.log"
  exit 1
fi
echo "==> Alerts raised (from $work/collector.log):"
sleep 2
grep -F 'Alert.' "$work/collector.log" | sed 's/.*Alert\. /  /'
echo
if [ "${PICKET_DEMO_EXIT:-}" = 1 ]; then
  exit 0
fi
cat <<TEXT
==> Picket is running. In another terminal, try:

  ${search[*]} 'processname:sshd AND summary:accepted'
  ${search[*]} 'processname:sudo' --json
  ${search[*]} '*' --since 1h
  $bin/picket-collector --config $work/picket.toml alerts test ssh-bruteforce --since 1h --url $url

Open the console in a browser on this machine (log in with the collector's own read
token, the line in $work/collector-data/read.token):

  http://localhost:$port/console/

Append a line to the agent's copy of the log and search for it:

  echo "\$(date '+%b %e %H:%M:%S') \$(hostname) sshd[4242]: Accepted password for demo from 192.0.2.9 port 22 ssh2" >> $log
  ${search[*]} 'summary:demo'

Press Ctrl-C to stop both.
TEXT
wait
