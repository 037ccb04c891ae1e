#!/usr/bin/env bash
# The web console's budget (issue 23): the first load's bytes and, for every page loaded
# afresh and reached from another, the time until it is shown and until every panel is
# filled, in Debian's chromium against a release collector holding EVENTS events
# (default 100,000) from the agent's parser. Fails when a page takes more than
# BUDGET_MS (default 1000) to fill. Needs what tests/tests/console.rs needs (Node.js,
# chromium).
#
#   bench/console.sh
#   EVENTS=1000000 BUDGET_MS=2000 bench/console.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONSOLE_EVENTS=${EVENTS:-100000} CONSOLE_BUDGET_MS=${BUDGET_MS:-1000} \
  cargo test --release --quiet -p picket-tests --test console -- --nocapture 2>&1 \
  | grep -E "background events|first load|page timings|shown .* filled|^not ok|^# (pass|fail)|took"
