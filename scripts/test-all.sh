#!/usr/bin/env bash
# Every test: installs what is needed, starts a shared PostgreSQL for the store
# suites, runs node's test runner over dist/test, then the OpenStack-client and
# tempest checks, and ends with one summary line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

# Debian's python tools must run on Debian's python, whatever else is on PATH.
export PATH="/usr/bin:$PATH"

passed=0; failed=0; skipped=0
LOG_DIR=$(mktemp -d /tmp/bulwark-test-XXXX)

# --- unit and integration tests (node:test) --------------------------------
node dist/test/harness/start-postgres.js "$LOG_DIR/pg.env" &
pg_pid=$!
for _ in $(seq 1 100); do [ -s "$LOG_DIR/pg.env" ] && break; sleep 0.2; done
[ -s "$LOG_DIR/pg.env" ] && export BULWARK_TEST_PG_URL="$(cat "$LOG_DIR/pg.env")"

node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$LOG_DIR/node.tap" $(find dist/test -name '*.test.js' | sort)
node_rc=$?
n_pass=$(grep -Ec '^ok ' "$LOG_DIR/node.tap" || true)
n_fail=$(grep -Ec '^not ok ' "$LOG_DIR/node.tap" || true)
# Count leaf tests from the TAP summary (suites are not tests).
if grep -q '^# pass' "$LOG_DIR/node.tap"; then
  n_pass=$(awk '/^# pass/ {print $3}' "$LOG_DIR/node.tap")
  n_fail=$(awk '/^# fail/ {print $3}' "$LOG_DIR/node.tap")
  n_skip=$(awk '/^# skipped/ {print $3}' "$LOG_DIR/node.tap")
  skipped=$((skipped + ${n_skip:-0}))
fi
passed=$((passed + ${n_pass:-0})); failed=$((failed + ${n_fail:-0}))
[ "$node_rc" -eq 0 ] || [ "${n_fail:-0}" -gt 0 ] || failed=$((failed + 1))
kill "$pg_pid" 2>/dev/null; wait "$pg_pid" 2>/dev/null

# --- tempest against a live all-in-one -------------------------------------
if [ "${BULWARK_SKIP_TEMPEST:-0}" != "1" ]; then
  bash scripts/tempest/run-against-aio.sh "$LOG_DIR/tempest" | tee "$LOG_DIR/tempest.out"
  line=$(grep -E '^tempest: passed [0-9]+, failed [0-9]+, skipped [0-9]+' "$LOG_DIR/tempest.out" | tail -1)
  if [ -n "$line" ]; then
    t_pass=$(echo "$line" | sed -E 's/.*passed ([0-9]+).*/\1/')
    t_fail=$(echo "$line" | sed -E 's/.*failed ([0-9]+).*/\1/')
    t_skip=$(echo "$line" | sed -E 's/.*skipped ([0-9]+).*/\1/')
    passed=$((passed + t_pass)); failed=$((failed + t_fail)); skipped=$((skipped + t_skip))
  else
    echo "tempest produced no result line"; failed=$((failed + 1))
  fi
fi

echo
echo "logs: $LOG_DIR"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
