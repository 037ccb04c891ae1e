#!/usr/bin/env bash
# Seeds for the fuzz targets from the project's own fixtures: each parser's fixture
# lines (the message after the program's tag for the per-parser targets, whole lines
# for `line`), and queries from the README and the shipped rules.
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../tests/fixtures
rm -rf seeds && mkdir -p seeds
n=0
seed() { mkdir -p "seeds/$1"; printf '%s' "$2" > "seeds/$1/$((n++))"; }
for file in "$fixtures"/*/*.log "$fixtures"/sample/auth.log; do
  while IFS= read -r line || [ -n "$line" ]; do
    [ -n "$line" ] || continue
    seed line "$line"
    message=${line#*: }
    case "$file" in
      */sshd/*) seed sshd "$message" ;;
      */sudo/*) seed sudo "$message" ;;
      */su/*) seed su "$message" ;;
      */account/*) seed account "$message" ;;
      */cef/*) seed cef "${line#*CEF:0|}" ;;
      */json/*) seed json_line "${message#\{}" ;;
    esac
  done < "$file"
done
for q in '*' 'details.username:root AND category:authentication' 'hostname:web* OR NOT (a AND b)' \
  'details.sourceport:[1 TO 1024]' 'summary:"failed password"' 'processid:42' 'eventid:x^2' \
  'category:(authentication OR session) AND -details.success:true' 'utctimestamp:[2026-01-01T00:00:00Z TO *]' \
  '_exists_:details.username' 'NOT _exists_:details' 'summary:*' 'details.a.b:*' 'utctimestamp:{2026-11-23 TO 2026-11-24]' \
  'receivedtimestamp:>=2026-11-23' 'utctimestamp:<2026-02-30'; do
  seed query "$q"
done
seed ingest_body '{"summary":"a","hostname":"h","timestamp":"2026-11-22T08:00:00Z"}'
seed ingest_body '[{"summary":"a"},1,{"details":{"x":1}}]'
seed ingest_body $'{"a":1}\n{broken\n{"utctimestamp":"9999-01-01"}'
for target in sshd sudo su account cef json_line query ingest_body line; do
  echo "$target: $(ls "seeds/$target" 2>/dev/null | wc -l) seeds"
done
