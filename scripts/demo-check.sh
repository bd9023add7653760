#!/usr/bin/env bash
# `make demo-check`: the running demo's desk is live (headless Chromium; see atlas_integrations/testing/demo_check.py).
set -euo pipefail
. "$(dirname "$0")/demo-env.sh"
bash "$ROOT/scripts/browser-deps.sh"
cd "$BENCH/sites"
exec "$ATLAS_PY" -m atlas_integrations.testing.demo_check --site "$ATLAS_DEMO_SITE" --state "$STATE" \
  --corpus "$CORPUS" --gmail-url "http://127.0.0.1:$GMAIL_PORT"
