#!/usr/bin/env bash
# Every benchmark of issue 9, and BENCHMARKS.md's "Picket on this machine" table
# regenerated from their output (between the two marker comments; the rest of the file
# is left as written).
#
#   bench/all.sh             # ~10 minutes on 2 cores, after a release build
#   LINES=200000 bench/all.sh  (a quicker, smaller workload)
#
# Runs: bench/delivery.sh sink, amqps (one event a message, then 100) and https (the
# agent on the standard workload),
# bench/idle_cpu.sh (200 idle files), the file input's and the syslog listener's benches
# (messages/s over TCP and UDP against the file input's lines/s), the collector's ingest bench (1,000
# connections, embedded store) and bench/opensearch.sh (the collector storing into real
# OpenSearch, one node and three). Raw outputs are kept in target/bench-results/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-results
mkdir -p "$out"
for mode in sink amqps https; do
  echo "== delivery $mode" >&2
  bench/delivery.sh "$mode" | tee "$out/delivery-$mode.txt"
done
echo "== delivery amqps, 100 events a message" >&2
SHIPPER_KEYS="events_per_message = 100" bench/delivery.sh amqps | tee "$out/delivery-amqps-packed.txt"
echo "== idle CPU" >&2
bench/idle_cpu.sh | tee "$out/idle.txt"
echo "== collector ingest" >&2
EVENTS=${COLLECTOR_EVENTS:-1000000} cargo bench --quiet -p picket-collector --bench ingest 2>/dev/null | tee "$out/ingest.txt"
echo "== inputs: the file input and the syslog listener (read + parse, one thread)" >&2
PICKET_BENCH_FILE_MIB=${FILE_MIB:-256} cargo bench --quiet -p picket-agent --bench file_input 2>/dev/null | grep "^file input" | tee "$out/file-input.txt"
cargo bench --quiet -p picket-agent --bench syslog_input 2>/dev/null | grep "^syslog" | tee "$out/syslog-input.txt"
echo "== collector → OpenSearch" >&2
EVENTS=${OPENSEARCH_EVENTS:-200000} bench/opensearch.sh 2>/dev/null | tee "$out/opensearch.txt"

python3 - "$out" <<'PY'
import datetime, pathlib, platform, re, subprocess, sys
out = pathlib.Path(sys.argv[1])
def result(mode):
    text = (out / f"delivery-{mode}.txt").read_text()
    line = [l for l in text.splitlines() if l.startswith("RESULT ")][-1]
    return dict(kv.split("=", 1) for kv in line.split()[1:])
rows = []
labels = {"sink": "picket-agent → HTTP counting sink (the peers' workload)",
          "amqps": "picket-agent → AMQPS → RabbitMQ (confirms, persistent)",
          "amqps-packed": "picket-agent → AMQPS → RabbitMQ, `events_per_message = 100`",
          "https": "picket-agent → HTTPS (mTLS + token) → picket-collector"}
for mode in ("sink", "amqps", "amqps-packed", "https"):
    r = result(mode)
    rows.append(f"| {labels[mode]} | {int(r['lines_per_s']):,} | {r['cpu_us']} | "
                f"{r['peak_mib']} MiB | {r['idle_mib']} MiB | {r['bytes_per_event']} |")
idle = (out / "idle.txt").read_text().splitlines()[0]
ingest = (out / "ingest.txt").read_text()
stored = re.search(r"([\d.]+) events/s stored", ingest)
cpu = re.search(r"collector CPU ([\d.]+) s \(([\d.]+) µs per event\), peak RSS ([\d.]+) MiB", ingest)
lat = re.search(r"request latency (.*)", ingest)
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
inputs = []
for name in ("file-input.txt", "syslog-input.txt"):
    for line in (out / name).read_text().splitlines():
        inputs.append(f"- Input, {line.strip()}")
opensearch = []
for line in (out / "opensearch.txt").read_text().splitlines():
    if line.startswith("RESULT "):
        r = dict(kv.split("=", 1) for kv in line.split()[1:])
        opensearch.append(f"- Collector → OpenSearch 2.19.6, {r['nodes']} node(s) (512 MiB heap each, one replica): "
                          f"{int(r['events_per_s']):,} events/s stored; collector CPU {r['collector_cpu_us']} µs per event, "
                          f"OpenSearch CPU {r['opensearch_cpu_us']} µs per event ({int(r['events']):,} events, 4 connections, batches of 1,000).")
table = "\n".join([
    f"Measured {datetime.date.today()} at commit {commit} on {cores} cores ({cpu_model}), kernel {platform.release()}.",
    "",
    "| agent path | lines/s | CPU µs per line | peak RSS (backlog) | idle RSS | bytes/event |",
    "|---|---|---|---|---|---|",
    *rows,
    "",
    f"- Idle CPU: {idle}",
    f"- Collector ingest (1,000 connections, embedded store): {float(stored.group(1)):,.0f} events/s stored; "
    f"CPU {cpu.group(2)} µs per event, peak RSS {cpu.group(3)} MiB; {lat.group(1)}." if stored and cpu and lat else "- Collector ingest: see target/bench-results/ingest.txt",
    *opensearch,
    *inputs,
])
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
start, end = "<!-- results: bench/all.sh writes below -->", "<!-- results end -->"
before, rest = text.split(start, 1)
_, after = rest.split(end, 1)
path.write_text(f"{before}{start}\n{table}\n{end}{after}")
print(table)
PY
