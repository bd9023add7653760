#!/usr/bin/env bash
# Run the whole test suite.
#  - With a bench at $ATLAS_BENCH (default ~/atlas-bench): pytest runs in the bench's Python, so the
#    real-site tests run against site $ATLAS_SITE (default atlas.localhost) with real MariaDB, Redis and
#    rq workers.
#  - Without one: a local .venv gets the pure-test dependencies; real-site tests are skipped and the run
#    ends with one loud line saying so.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BENCH=${ATLAS_BENCH:-$HOME/atlas-bench}
SITE=${ATLAS_SITE:-atlas.localhost}
export ATLAS_BENCH=$BENCH ATLAS_SITE=$SITE
cd "$ROOT"

if [ -x "$BENCH/env/bin/python" ] && [ -f "$BENCH/sites/$SITE/site_config.json" ]; then
  PY="$BENCH/env/bin/python"
  "$PY" -c "import pytest" 2>/dev/null || "$PY" -m pip install -q "pytest>=8,<9"
  "$PY" -c "import pytest_randomly" 2>/dev/null || "$PY" -m pip install -q "pytest-randomly>=3.15,<4"
  # The browser tests: Debian's Chromium, driven by Playwright for Python
  bash "$ROOT/scripts/browser-deps.sh"
  # request bodies sent to Xero are validated against Xero's OpenAPI spec with jsonschema
  "$PY" -c "import jsonschema, yaml" 2>/dev/null || "$PY" -m pip install -q "jsonschema>=4.17,<5" "pyyaml>=6"
else
  echo "No bench at $BENCH (site $SITE): running pure tests only."
  PY="$ROOT/.venv/bin/python"
  if [ ! -x "$PY" ]; then
    python3 -m venv "$ROOT/.venv"
  fi
  "$PY" -m pip install -q --disable-pip-version-check "pytest>=8,<9" "pytest-randomly>=3.15,<4" "requests>=2.31" \
    "google-api-python-client>=2.100,<3" "google-auth>=2.20,<3" "google-auth-oauthlib>=1.1,<2" \
    "google-auth-httplib2>=0.2,<1" "nh3>=0.2.14,<1" "werkzeug>=3,<4" \
    "google-re2>=1.1,<2" "redis>=4,<6" "xero-python>=9,<16" "requests-oauthlib>=1.3,<3" \
    "pyyaml>=6" "jsonschema>=4.17,<5"
fi
exec "$PY" -m pytest -p no:cacheprovider "$@"
