#!/usr/bin/env bash
# Run a Python script of this repo with the bench's Python, from the bench's sites/ folder.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BENCH=${ATLAS_BENCH:-$HOME/atlas-bench}
[ -x "$BENCH/env/bin/python" ] || { echo "no bench at $BENCH: run 'make bench' first" >&2; exit 1; }
script=$1; shift
cd "$BENCH/sites"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$BENCH/env/bin/python" "$ROOT/$script" "$@"
