#!/usr/bin/env bash
# Debian's chromium and Playwright for Python in the bench's env (Playwright's own browser download is never
# used: the browser tests launch /usr/bin/chromium). Idempotent.
set -euo pipefail
BENCH=${ATLAS_BENCH:-$HOME/atlas-bench}
PY="$BENCH/env/bin/python"
if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests…"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  fi
fi
"$PY" -c "import playwright" 2>/dev/null || "$PY" -m pip install -q "playwright>=1.40,<2"
