#!/usr/bin/env bash
# The main job: build the bench if needed, then sync the corpus mailbox into the real site through the
# local Gmail server and the real OAuth flow, on a real rq worker, and print the result.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BENCH=${ATLAS_BENCH:-$HOME/atlas-bench}
SITE=${ATLAS_SITE:-atlas.localhost}
CORPUS=${ATLAS_CORPUS:-$ROOT/../shared/corpus}
bash "$ROOT/scripts/bench.sh"
cd "$BENCH/sites"
exec "$BENCH/env/bin/python" -m atlas_integrations.testing.demo --site "$SITE" --corpus "$CORPUS" "$@"
