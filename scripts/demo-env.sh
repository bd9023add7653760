# Sourced by the scripts that act on a running demo (demo-mail.sh, demo-check.sh): its state directory
# and environment (ports, site, the bench's Python), or a clear message when no demo was started here.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BENCH=${ATLAS_BENCH:-$HOME/atlas-bench}
STATE=${ATLAS_DEMO_STATE:-$ROOT/.atlas/demo}
CORPUS=${ATLAS_CORPUS:-$ROOT/../shared/corpus}
[ -f "$STATE/demo.env" ] || { echo "No demo here: run 'make demo' first." >&2; exit 1; }
# shellcheck disable=SC1091
set -a; . "$STATE/demo.env"; set +a
