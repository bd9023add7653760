#!/usr/bin/env bash
# `make demo-mail`: one more corpus message arrives in the running demo's mailbox (see scripts/demo.sh).
set -euo pipefail
. "$(dirname "$0")/demo-env.sh"
cd "$BENCH/sites"
exec "$ATLAS_PY" -m atlas_integrations.testing.demo --site "$ATLAS_DEMO_SITE" --corpus "$CORPUS" --mail \
  --desk-url "http://127.0.0.1:$DESK_PORT" --gmail-url "http://127.0.0.1:$GMAIL_PORT" \
  --xero-url "http://127.0.0.1:$XERO_PORT" --state "$STATE"
