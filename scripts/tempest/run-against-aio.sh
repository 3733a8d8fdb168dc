#!/usr/bin/env bash
# Starts a throw-away `bulwark all-in-one` with tempest's accounts in its config,
# runs scripts/tempest/run.sh against it, stops it, and prints
# "tempest: passed N, failed N, skipped N". Usage: run-against-aio.sh [WORKDIR]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${1:-$(mktemp -d /tmp/bulwark-tempest-XXXX)}"
mkdir -p "$WORK"
WORKERS="${TEMPEST_CONCURRENCY:-2}"

node "$ROOT/scripts/tempest/accounts.mjs" --workers "$WORKERS" --out-dir "$WORK" --keep-defaults >/dev/null
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 - "$WORK" "$PORT" <<'PY'
import json, sys
work, port = sys.argv[1], int(sys.argv[2])
identity = json.load(open(f"{work}/identity.json"))["identity"]
cfg = {"dataDir": f"{work}/data", "api": {"listen": {"host": "127.0.0.1", "port": port}},
       "identity": identity, "logLevel": "warn"}
json.dump(cfg, open(f"{work}/bulwark.json", "w"), indent=2)
PY
chmod 600 "$WORK/bulwark.json"

node "$ROOT/bin/bulwark.js" all-in-one -c "$WORK/bulwark.json" >"$WORK/bulwark.log" 2>&1 &
AIO=$!
cleanup() { kill -TERM "$AIO" 2>/dev/null; wait "$AIO" 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$PORT/identity/v3" >/dev/null 2>&1 && break
  kill -0 "$AIO" 2>/dev/null || { echo "bulwark all-in-one exited; see $WORK/bulwark.log"; tail -20 "$WORK/bulwark.log"; echo "tempest: passed 0, failed 1, skipped 0"; exit 1; }
  sleep 0.2
done

TEMPEST_BACKUP="${TEMPEST_BACKUP:-true}" TEMPEST_VENDOR_NAME="${TEMPEST_VENDOR_NAME:-Bulwark}" TEMPEST_STORAGE_PROTOCOL="${TEMPEST_STORAGE_PROTOCOL:-nbd}" BULWARK_URL="http://127.0.0.1:$PORT" TEMPEST_ACCOUNTS="$WORK/accounts.yaml" TEMPEST_CONCURRENCY="$WORKERS" \
  TEMPEST_WORKSPACE="$WORK/ws" bash "$ROOT/scripts/tempest/run.sh" | tee "$WORK/run.out"
rc=${PIPESTATUS[0]}
line=$(grep -E '^passed [0-9]+, failed [0-9]+, skipped [0-9]+' "$WORK/run.out" | tail -1)
if [ -n "$line" ]; then echo "tempest: $line"; else echo "tempest: passed 0, failed 1, skipped 0"; fi
exit "$rc"
