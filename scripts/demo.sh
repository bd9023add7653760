#!/usr/bin/env bash
# `make demo`: the main job on real input, leaving a live desk.
#  1. the bench, and the demo's own site (new site, ERPNext, the setup wizard) on first use;
#  2. the live desk under honcho (scripts/demo.Procfile): the site's web server, Frappe's realtime server
#     behind the desk's front door, an rq worker and the scheduler of the demo site alone (queues of its
#     own: the test site's jobs are never taken), the local Gmail-, Graph- and Xero-compatible servers;
#  3. the demo itself against them (atlas_integrations/testing/demo.py); the desk keeps running.
# `make stop` ends it; `make demo-mail` delivers one more message.
#
# Environment: ATLAS_DEMO_SITE (default demo.localhost), ATLAS_DEMO_PORT (the desk, default 8000; the others
# follow: web +1, gmail 8765, xero 8766, graph 8767, socketio 9100, free ones when taken), ATLAS_CORPUS, ATLAS_BENCH.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
BENCH=${ATLAS_BENCH:-$HOME/atlas-bench}
SITE=${ATLAS_DEMO_SITE:-demo.localhost}
CORPUS=${ATLAS_CORPUS:-$ROOT/../shared/corpus}
STATE=${ATLAS_DEMO_STATE:-$ROOT/.atlas/demo}
T0=$SECONDS

ATLAS_SITE="$SITE" ATLAS_SET_DEFAULT_SITE=0 bash "$ROOT/scripts/bench.sh"
PY="$BENCH/env/bin/python"
bash "$ROOT/scripts/stop.sh" >/dev/null
mkdir -p "$STATE"
python3 -c "import honcho" 2>/dev/null || python3 -m pip install -q "honcho>=1.1,<3"

# ports: the usual ones when free
read -r DESK WEB GMAIL XERO SOCKETIO GRAPH < <("$PY" - "${ATLAS_DEMO_PORT:-8000}" <<'PY'
import socket, sys
desk = int(sys.argv[1])
taken = set()
def free(preferred):
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            got = s.getsockname()[1]
            if got not in taken:
                taken.add(got)
                return got
    return free(0)
print(*(free(p) for p in (desk, desk + 1, 8765, 8766, 9100, 8767)))
PY
)
DESK_URL="http://127.0.0.1:$DESK"

# the demo site: its own queue names (bench_id), its scheduler on, its URLs through the desk's front door
cd "$BENCH/sites"
frappe_cmd() { "$PY" -m frappe.utils.bench_helper frappe --site "$SITE" "$@" >/dev/null; }
frappe_cmd set-config bench_id "atlas-demo-$SITE"
frappe_cmd set-config host_name "$DESK_URL"
frappe_cmd set-config pause_scheduler 0 --parse
frappe_cmd scheduler enable

cat >"$STATE/demo.env" <<ENV
ATLAS_PY=$PY
ATLAS_DEMO_SITE=$SITE
DESK_PORT=$DESK
WEB_PORT=$WEB
GMAIL_PORT=$GMAIL
XERO_PORT=$XERO
SOCKETIO_PORT=$SOCKETIO
GRAPH_PORT=$GRAPH
GRAPH_CLIENT=atlas-demo-outlook-$(python3 -c 'import uuid; print(uuid.uuid4())'):$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
OUTLOOK_MAILBOX=outlook-demo@contoso-demo.example
ATLAS_CORPUS=$CORPUS
ATLAS_DEMO_STATE=$STATE
ENV
rm -f "$STATE/graph.json"
# honcho leads a process group of its own: `make stop` ends it and everything it supervises
setsid python3 -m honcho -d "$BENCH/sites" -f "$ROOT/scripts/demo.Procfile" -e "$STATE/demo.env" start \
  >"$STATE/honcho.log" 2>&1 < /dev/null &
echo $! >"$STATE/honcho.pid"
for url in "$DESK_URL/api/method/ping" "http://127.0.0.1:$GMAIL/" "http://127.0.0.1:$XERO/"; do
  for _ in $(seq 1 240); do
    curl -s -o /dev/null "$url" && break
    sleep 0.25
  done
  curl -s -o /dev/null "$url" || { echo "$url did not answer; see $STATE/honcho.log" >&2; tail -30 "$STATE/honcho.log" >&2; exit 1; }
done
# the local Graph server writes its line (URLs, its certificate, the app registration) once it serves
for _ in $(seq 1 240); do [ -s "$STATE/graph.json" ] && break; sleep 0.25; done
[ -s "$STATE/graph.json" ] || { echo "the local Graph server did not start; see $STATE/honcho.log" >&2; exit 1; }
echo "Live desk started under honcho (pid $(cat "$STATE/honcho.pid")): web, socketio, desk front door, worker, scheduler, Gmail, Graph, Xero"

cd "$BENCH/sites"
set +e
"$PY" -m atlas_integrations.testing.demo --site "$SITE" --corpus "$CORPUS" --desk-url "$DESK_URL" \
  --gmail-url "http://127.0.0.1:$GMAIL" --xero-url "http://127.0.0.1:$XERO" --graph-state "$STATE/graph.json" \
  --state "$STATE" "$@"
rc=$?
set -e
cat <<MSG

The desk is live at $DESK_URL  (Administrator / admin; the Smart Inbox: $DESK_URL/app/smart-inbox)
  local Gmail server  http://127.0.0.1:$GMAIL      local Xero server  http://127.0.0.1:$XERO
  local Microsoft identity platform + Graph server  https://127.0.0.1:$GRAPH (its own certificate)
  supervised by honcho: $STATE/honcho.log (web, socketio, desk, worker, schedule, gmail, graph, xero)
  make demo-mail   one more message arrives in the mailbox and on the open Smart Inbox page
  make stop        end the live desk
Demo finished in $((SECONDS - T0)) s with exit code $rc.
MSG
exit $rc
