#!/usr/bin/env bash
# `make stop`: end the demo's live desk (honcho and every process it supervises).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
STATE=${ATLAS_DEMO_STATE:-$ROOT/.atlas/demo}
pidfile="$STATE/honcho.pid"
if [ ! -f "$pidfile" ]; then
  echo "No demo is running (no $pidfile)."
  exit 0
fi
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"   # honcho leads its own process group
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  echo "Stopped the demo (honcho pid $pid and its processes)."
else
  echo "The demo was not running (stale pid $pid)."
fi
rm -f "$pidfile"
