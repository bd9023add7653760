#!/usr/bin/env bash
# CI: `make demo` on a throwaway fresh site of the bench (new site, ERPNext, the setup wizard), then its live
# desk checked in Chromium (`make demo-check`), then everything stopped and the site dropped: a demo that only
# works on a developer's site cannot land.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BENCH=${ATLAS_BENCH:-$HOME/atlas-bench}
SITE="ci-demo-$(date +%s)-$$.localhost"
export ATLAS_DEMO_SITE="$SITE" ATLAS_DEMO_STATE="$ROOT/.atlas/ci-demo"
DB_ARGS=(-h"${ATLAS_DB_HOST:-127.0.0.1}" -P"${ATLAS_DB_PORT:-3306}" -u"${ATLAS_DB_ROOT_USER:-root}")
[ -n "${ATLAS_DB_ROOT_PASSWORD:-}" ] && DB_ARGS+=(-p"$ATLAS_DB_ROOT_PASSWORD")
MYSQL="$(command -v mariadb || command -v mysql)"

drop_site() {
  bash "$ROOT/scripts/stop.sh" || true
  local conf="$BENCH/sites/$SITE/site_config.json" db
  if [ -f "$conf" ]; then
    db=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["db_name"])' "$conf")
    "$MYSQL" "${DB_ARGS[@]}" -e "DROP DATABASE IF EXISTS \`$db\`; DROP USER IF EXISTS '$db'@'localhost';
      DROP USER IF EXISTS '$db'@'127.0.0.1'; DROP USER IF EXISTS '$db'@'%';" || true
  fi
  rm -rf "${BENCH:?}/sites/$SITE"
  echo "ci-demo: stopped and dropped the throwaway site $SITE"
}
trap drop_site EXIT

T0=$SECONDS
echo "ci-demo: make demo on a fresh site $SITE"
bash "$ROOT/scripts/demo.sh"
T1=$SECONDS
bash "$ROOT/scripts/demo-check.sh"
echo "ci-demo: fresh-site demo in $((T1 - T0)) s (new site, ERPNext, setup wizard, the demo); live desk checked in $((SECONDS - T1)) s"
