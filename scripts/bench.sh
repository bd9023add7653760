#!/usr/bin/env bash
# Build (first run) or refresh (later runs) a Frappe v15 + ERPNext bench with
# this app (atlas_integrations) linked into it, plus one site ready for tests.
#
# Idempotent: every step checks its own state first, so a second run with
# nothing changed only does a few cheap checks (a few seconds).
#
# Environment (all optional):
#   ATLAS_BENCH       bench directory                  (default: $HOME/atlas-bench)
#   ATLAS_SITE        site name                        (default: atlas.localhost)
#   ATLAS_SET_DEFAULT_SITE 0 = leave the bench's default_site as it is (a second site)   (default: 1)
#   ATLAS_APP_PATH    app checkout to link             (default: repo root of this script)
#   FRAPPE_PATH       git repo/URL for frappe          (default: https://github.com/frappe/frappe)
#   ERPNEXT_PATH      git repo/URL for erpnext         (default: https://github.com/frappe/erpnext)
#   PAYMENTS_PATH     git repo/URL for payments        (default: https://github.com/frappe/payments)
#   ATLAS_BRANCH      branch to use for remote URLs    (default: version-15)
#   ATLAS_PYTHON      python for the bench env         (default: first of python3.11/3.12/3.10)
#   ATLAS_SKIP_ASSETS 1 = never run `bench build`       (default: 0, assets are built)
#   ATLAS_DB_HOST / ATLAS_DB_PORT / ATLAS_DB_ROOT_USER / ATLAS_DB_ROOT_PASSWORD
#                     MariaDB admin connection          (default: 127.0.0.1 / 3306 / root / "")
#   ATLAS_REDIS_URL   redis for cache, queue, socketio (default: redis://127.0.0.1:6379)
#   ATLAS_ADMIN_PASSWORD  site Administrator password  (default: admin)
#
# Local git repos given via *_PATH are cloned (committed code only) into
# ${ATLAS_BENCH}-src/, where fix-ups for this offline machine are committed:
#   * frappe pyproject: gunicorn from a GitHub git URL  -> gunicorn~=23.0 (PyPI)
#   * frappe package.json/yarn.lock: air-datepicker from github:frappe/...
#                                                        -> air-datepicker@2.2.3 (npm)
set -euo pipefail

T0=$SECONDS
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

ATLAS_APP_PATH="${ATLAS_APP_PATH:-$(cd "$SCRIPT_DIR/.." && pwd -P)}"
ATLAS_APP_PATH="$(cd "$ATLAS_APP_PATH" && pwd -P)"
ATLAS_BENCH="${ATLAS_BENCH:-$HOME/atlas-bench}"
ATLAS_SITE="${ATLAS_SITE:-atlas.localhost}"
ATLAS_BRANCH="${ATLAS_BRANCH:-version-15}"
FRAPPE_PATH="${FRAPPE_PATH:-https://github.com/frappe/frappe}"
ERPNEXT_PATH="${ERPNEXT_PATH:-https://github.com/frappe/erpnext}"
PAYMENTS_PATH="${PAYMENTS_PATH:-https://github.com/frappe/payments}"
ATLAS_SKIP_ASSETS="${ATLAS_SKIP_ASSETS:-0}"
ATLAS_DB_HOST="${ATLAS_DB_HOST:-127.0.0.1}"
ATLAS_DB_PORT="${ATLAS_DB_PORT:-3306}"
ATLAS_DB_ROOT_USER="${ATLAS_DB_ROOT_USER:-root}"
ATLAS_DB_ROOT_PASSWORD="${ATLAS_DB_ROOT_PASSWORD:-}"
ATLAS_REDIS_URL="${ATLAS_REDIS_URL:-redis://127.0.0.1:6379}"
ATLAS_ADMIN_PASSWORD="${ATLAS_ADMIN_PASSWORD:-admin}"

APP=atlas_integrations
mkdir -p "$(dirname "$ATLAS_BENCH")"
ATLAS_BENCH="$(cd "$(dirname "$ATLAS_BENCH")" && pwd -P)/$(basename "$ATLAS_BENCH")"
SRC_DIR="${ATLAS_BENCH}-src"
SITE_DIR="$ATLAS_BENCH/sites/$ATLAS_SITE"
ENV_PY="$ATLAS_BENCH/env/bin/python"
RUN_USER="$(id -un)"

# Local paths -> absolute, so clones work from any cwd.
for var in FRAPPE_PATH ERPNEXT_PATH PAYMENTS_PATH; do
	if [ -d "${!var}" ]; then
		printf -v "$var" '%s' "$(cd "${!var}" && pwd -P)"
	fi
done

# ---------------------------------------------------------------- helpers ---
STEP="start"
DONE=()
say() { printf '[bench.sh] %s\n' "$*"; }
did() { DONE+=("$*"); say "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }
step() { STEP="$*"; }
on_exit() {
	local rc=$?
	if [ "$rc" -ne 0 ]; then
		say "FAILED (exit $rc) in step: $STEP, after $((SECONDS - T0))s" >&2
	fi
}
trap on_exit EXIT

# bench refuses to run as root unless sites/common_site_config.json has frappe_user,
# and some sub-commands are only found when run from the bench directory.
run_bench() { (cd "$ATLAS_BENCH" && bench "$@"); }

# Merge KEY=<json value> pairs into a JSON file; only rewrites it on change.
# Prints the changed keys (empty output = nothing changed).
json_set() {
	python3 - "$@" <<'PY'
import json, os, sys
path, pairs = sys.argv[1], sys.argv[2:]
data = {}
if os.path.exists(path):
    with open(path) as f:
        data = json.load(f)
changed = []
for pair in pairs:
    key, value = pair.split("=", 1)
    value = json.loads(value)
    if key not in data or data[key] != value:
        data[key] = value
        changed.append(key)
if changed:
    tmp = path + ".atlas-tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
    print(",".join(changed))
PY
}
# JSON string literal (pure bash: python3 behind a pyenv shim costs ~0.1s per call).
jstr() {
	local v="${1//\\/\\\\}"
	v="${v//\"/\\\"}"
	printf '"%s"' "$v"
}

# Always returns 0: a missing directory is not an error (set -e would abort).
add_to_path_if_dir() { case ":$PATH:" in *":$1:"*) ;; *) if [ -d "$1" ]; then PATH="$1:$PATH"; fi ;; esac; return 0; }
refresh_path() {
	if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
	add_to_path_if_dir "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
	add_to_path_if_dir "$HOME/.local/bin"
	if [ "${1:-}" = npm ]; then add_to_path_if_dir "$(npm prefix -g 2>/dev/null)/bin"; fi
	export PATH
	hash -r
}

# ------------------------------------------------------------------ tools ---
ensure_tools() {
	step "tools"
	local t
	for t in git python3 node npm; do
		command -v "$t" >/dev/null 2>&1 || die "'$t' is required but not on PATH"
	done
	command -v bench >/dev/null 2>&1 && command -v uv >/dev/null 2>&1 || refresh_path
	if ! command -v bench >/dev/null 2>&1; then
		python3 -m pip install -q frappe-bench
		refresh_path
		command -v bench >/dev/null 2>&1 || die "installed frappe-bench but 'bench' is not on PATH"
		did "installed frappe-bench ($(bench --version 2>/dev/null))"
	fi
	if ! command -v uv >/dev/null 2>&1; then
		python3 -m pip install -q uv
		refresh_path
		command -v uv >/dev/null 2>&1 || die "installed uv but 'uv' is not on PATH"
		did "installed uv"
	fi
	MYSQL_CLI="$(command -v mariadb || command -v mysql || true)"
	[ -n "$MYSQL_CLI" ] || die "a MariaDB client (mariadb/mysql) is required (frappe uses it too)"
}

# yarn v1 is only needed to fetch JS deps / build assets, so it is checked lazily
# (`yarn --version` alone costs ~0.5s).
YARN_OK=0
ensure_yarn() {
	[ "$YARN_OK" = 1 ] && return 0
	if ! { command -v yarn >/dev/null 2>&1 && [[ "$(yarn --version 2>/dev/null)" == 1.* ]]; }; then
		npm install -g --force yarn@1 >/dev/null
		refresh_path npm
		[[ "$(yarn --version 2>/dev/null)" == 1.* ]] || die "could not get yarn v1 on PATH"
		did "installed yarn $(yarn --version)"
	fi
	YARN_OK=1
}

dbq() {
	if [ -n "$ATLAS_DB_ROOT_PASSWORD" ]; then
		MYSQL_PWD="$ATLAS_DB_ROOT_PASSWORD" "$MYSQL_CLI" -h"$ATLAS_DB_HOST" -P"$ATLAS_DB_PORT" -u"$ATLAS_DB_ROOT_USER" -N -B -e "$1"
	else
		"$MYSQL_CLI" -h"$ATLAS_DB_HOST" -P"$ATLAS_DB_PORT" -u"$ATLAS_DB_ROOT_USER" -N -B -e "$1"
	fi
}

# ---------------------------------------------------------------- mariadb ---
MARIADB_CNF_DIR=/etc/mysql/mariadb.conf.d
MARIADB_CNF="$MARIADB_CNF_DIR/99-atlas-frappe.cnf"
ensure_mariadb() {
	step "mariadb"
	dbq "SELECT 1" >/dev/null || die "MariaDB does not answer at $ATLAS_DB_HOST:$ATLAS_DB_PORT as $ATLAS_DB_ROOT_USER"
	local cur
	cur="$(dbq "SELECT CONCAT(@@GLOBAL.character_set_server, ' ', @@GLOBAL.collation_server)")"
	if [ "$cur" != "utf8mb4 utf8mb4_unicode_ci" ]; then
		dbq "SET GLOBAL character_set_server = 'utf8mb4'; SET GLOBAL collation_server = 'utf8mb4_unicode_ci'"
		did "MariaDB: SET GLOBAL character_set_server=utf8mb4, collation_server=utf8mb4_unicode_ci (was: $cur)"
	fi
	# Persist it for restarts (only possible when MariaDB's config is on this machine).
	if [ -d /etc/mysql ] && [ -w /etc/mysql ]; then
		local want
		want="$(printf '%s\n' \
			'# Written by atlas_integrations scripts/bench.sh: Frappe needs utf8mb4_unicode_ci.' \
			'[mysqld]' \
			'character-set-server = utf8mb4' \
			'collation-server = utf8mb4_unicode_ci' \
			'' \
			'[mysql]' \
			'default-character-set = utf8mb4')"
		if [ "$(cat "$MARIADB_CNF" 2>/dev/null)" != "$want" ]; then
			mkdir -p "$MARIADB_CNF_DIR"
			printf '%s\n' "$want" >"$MARIADB_CNF"
			did "wrote $MARIADB_CNF"
		fi
		# Debian's stock my.cnf includes mariadb.conf.d; a hand-written one may not.
		if [ -f /etc/mysql/my.cnf ] && [ -w /etc/mysql/my.cnf ] &&
			! grep -Eq '^[[:space:]]*!includedir[[:space:]]+/etc/mysql/mariadb\.conf\.d/?[[:space:]]*$' /etc/mysql/my.cnf; then
			printf '\n# added by atlas_integrations scripts/bench.sh (must stay last to override the above)\n!includedir /etc/mysql/mariadb.conf.d/\n' >>/etc/mysql/my.cnf
			did "appended '!includedir /etc/mysql/mariadb.conf.d/' to /etc/mysql/my.cnf"
		fi
	fi
}

# ------------------------------------------------------------------ redis ---
ensure_redis() {
	step "redis"
	local hp host port
	hp="${ATLAS_REDIS_URL#redis://}"
	hp="${hp##*@}"
	hp="${hp%%/*}"
	host="${hp%:*}"
	port="${hp##*:}"
	if command -v redis-cli >/dev/null 2>&1; then
		[ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" = "PONG" ] || die "redis does not answer at $host:$port"
	else
		local reply=""
		exec 8<>"/dev/tcp/$host/$port" || die "redis does not answer at $host:$port"
		printf 'PING\r\n' >&8
		read -r -t 3 reply <&8 || true
		exec 8>&- 8<&-
		[[ "$reply" == +PONG* ]] || die "redis at $host:$port did not reply PONG"
	fi
}

# -------------------------------------------------------- prepared sources ---
# Clone committed code of $2 into $SRC_DIR/$1, apply offline fix-ups, commit them.
prepare_src() {
	local name="$1" src="$2" dst="$SRC_DIR/$1"
	rm -rf "$dst"
	mkdir -p "$SRC_DIR"
	if [ -d "$src" ]; then
		git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || die "$src is not a git repository (bench clones committed code only)"
		git clone -q "$src" "$dst"
		git -C "$dst" checkout -q -B "$ATLAS_BRANCH"
	else
		git clone -q --depth 1 --branch "$ATLAS_BRANCH" "$src" "$dst"
	fi
	python3 - "$dst" <<'PY'
import json, pathlib, re, sys

d = pathlib.Path(sys.argv[1])
notes, unknown = [], []

pp = d / "pyproject.toml"
if pp.exists():
    text = pp.read_text()
    new = re.sub(r'"gunicorn\s*@\s*git\+[^"]*"', '"gunicorn~=23.0"', text)
    if new != text:
        pp.write_text(new)
        notes.append("pyproject.toml: gunicorn git URL -> gunicorn~=23.0")
    unknown += [m.group(0) for m in re.finditer(r'"[^"\n]*@\s*git\+[^"]*"', new)]

pj = d / "package.json"
if pj.exists():
    text = pj.read_text()
    new = re.sub(r'("air-datepicker"\s*:\s*)"github:frappe/air-datepicker[^"]*"', r'\1"2.2.3"', text)
    if new != text:
        pj.write_text(new)
        notes.append("package.json: air-datepicker github:frappe/air-datepicker -> 2.2.3")
    pkg = json.loads(new)
    for section in ("dependencies", "devDependencies", "optionalDependencies"):
        for dep, spec in (pkg.get(section) or {}).items():
            if re.match(r"(github:|git\+|git:|https?://(www\.)?github\.com|[\w.-]+/[\w.-]+(#.*)?$)", str(spec)):
                unknown.append(f"package.json {dep}: {spec}")

yl = d / "yarn.lock"
if yl.exists():
    text = yl.read_text()
    block = (
        "air-datepicker@2.2.3:\n"
        '  version "2.2.3"\n'
        '  resolved "https://registry.yarnpkg.com/air-datepicker/-/air-datepicker-2.2.3.tgz'
        '#9dbb6bc6bc8c9d9db380475091370dad82c2f787"\n'
        "  integrity sha512-8cBl1TvpF1nucRFwrhtLbFQ7pRTmqSRuzBCUIvM/8RrCM0OJDvptN0CNwDlRheEoZc1vCM+3/s94DHZ5y4eoAQ==\n"
        "  dependencies:\n"
        '    jquery ">=2.0.0 <4.0.0"\n'
    )
    new = re.sub(r'^"?air-datepicker@github:frappe/air-datepicker[^\n]*:\n(?:  [^\n]*\n)*', block, text, flags=re.M)
    if new != text:
        yl.write_text(new)
        notes.append("yarn.lock: air-datepicker entry -> npm registry 2.2.3")
    unknown += sorted({m.group(0) for m in re.finditer(r"https://codeload\.github\.com/[^\s\"]+", new)})

for n in notes:
    print(f"[bench.sh]   fix-up {d.name}: {n}")
for u in unknown:
    print(f"[bench.sh]   WARNING {d.name}: dependency still fetched from git/GitHub: {u}", file=sys.stderr)
PY
	if ! git -C "$dst" diff --quiet; then
		git -C "$dst" -c user.email=bench-sh@atlas.invalid -c user.name="atlas bench.sh" \
			commit -q -am "atlas bench.sh: offline fix-ups (no GitHub access)"
	fi
	say "prepared $name at $dst ($(git -C "$dst" log -1 --format=%h) on $(git -C "$dst" rev-parse --abbrev-ref HEAD))"
}

pick_python() {
	local c exe
	for c in ${ATLAS_PYTHON:-python3.11 python3.12 python3.10}; do
		if exe="$("$c" -c 'import sys; assert (3, 10) <= sys.version_info[:2] < (3, 14); print(sys.executable)' 2>/dev/null)"; then
			echo "$exe"
			return 0
		fi
	done
	die "no usable python (3.10-3.13) found; set ATLAS_PYTHON"
}

# ------------------------------------------------------------------ bench ---
ensure_bench() {
	step "bench init"
	if [ -d "$ATLAS_BENCH/apps/frappe" ]; then
		return 0
	fi
	if [ -e "$ATLAS_BENCH" ]; then
		# A previous `bench init` died half-way. bench would just say "already exists".
		if compgen -G "$ATLAS_BENCH/sites/*/site_config.json" >/dev/null; then
			local aside
			aside="${ATLAS_BENCH}.incomplete.$(date +%Y%m%d%H%M%S)"
			mv "$ATLAS_BENCH" "$aside"
			did "moved incomplete bench (no apps/frappe) aside to $aside"
		else
			rm -rf "$ATLAS_BENCH"
			did "removed incomplete bench $ATLAS_BENCH (no apps/frappe, no sites)"
		fi
	fi
	local t=$SECONDS py
	ensure_yarn
	py="$(pick_python)"
	prepare_src frappe "$FRAPPE_PATH"
	# `bench init` as root only proceeds when ./sites/common_site_config.json names a frappe_user.
	mkdir -p "$SRC_DIR/sites"
	json_set "$SRC_DIR/sites/common_site_config.json" "frappe_user=$(jstr "$RUN_USER")" >/dev/null
	(cd "$SRC_DIR" && bench init \
		--frappe-path "$SRC_DIR/frappe" \
		--frappe-branch "$ATLAS_BRANCH" \
		--python "$py" \
		--skip-redis-config-generation \
		--skip-assets \
		--no-backups \
		"$ATLAS_BENCH")
	[ -d "$ATLAS_BENCH/apps/frappe" ] || die "bench init did not create $ATLAS_BENCH/apps/frappe"
	did "bench init $ATLAS_BENCH (python $py) in $((SECONDS - t))s"
}

ensure_common_config() {
	step "common_site_config"
	local changed
	changed="$(json_set "$ATLAS_BENCH/sites/common_site_config.json" \
		"frappe_user=$(jstr "$RUN_USER")" \
		"db_host=$(jstr "$ATLAS_DB_HOST")" \
		"db_port=$ATLAS_DB_PORT" \
		"redis_cache=$(jstr "$ATLAS_REDIS_URL")" \
		"redis_queue=$(jstr "$ATLAS_REDIS_URL")" \
		"redis_socketio=$(jstr "$ATLAS_REDIS_URL")" \
		"allow_tests=true")"
	if [ -n "$changed" ]; then did "common_site_config.json: set $changed"; fi
}

# pkg_resources is gone from setuptools>=81; some frappe deps still import it.
# Checked on the dist-info name: starting python here costs ~0.4s.
ensure_setuptools() {
	step "setuptools"
	local sp major=""
	sp="$(site_packages)"
	if [ -d "$sp/pkg_resources" ]; then
		local di
		for di in "$sp"/setuptools-*.dist-info; do
			[ -d "$di" ] || continue
			di="${di##*/setuptools-}"
			major="${di%%.*}"
		done
	fi
	if [ -z "$major" ] || [ "$major" -ge 81 ]; then
		uv pip install -q --python "$ENV_PY" "setuptools<81"
		did "bench env: installed setuptools<81 ($("$ENV_PY" -c 'import setuptools; print(setuptools.__version__)'))"
	fi
}

site_packages() {
	local d
	for d in "$ATLAS_BENCH"/env/lib/python3*/site-packages; do
		[ -d "$d" ] && { echo "$d"; return 0; }
	done
	die "no site-packages under $ATLAS_BENCH/env"
}

app_in_env() { compgen -G "$(site_packages)/$1-*.dist-info" >/dev/null; }
app_in_apps_txt() { grep -qx "$1" "$ATLAS_BENCH/sites/apps.txt" 2>/dev/null; }

ensure_bench_app() {
	local name="$1" src="$2"
	step "get-app $name"
	if [ -d "$ATLAS_BENCH/apps/$name" ] && app_in_apps_txt "$name" && app_in_env "$name"; then
		return 0
	fi
	local t=$SECONDS overwrite=()
	[ -e "$ATLAS_BENCH/apps/$name" ] && overwrite=(--overwrite)
	ensure_yarn
	prepare_src "$name" "$src"
	run_bench get-app --skip-assets "${overwrite[@]}" "$SRC_DIR/$name"
	app_in_apps_txt "$name" && app_in_env "$name" || die "bench get-app $name did not register/install $name"
	did "bench get-app $name in $((SECONDS - t))s"
}

ASSETS_STAMP="$ATLAS_BENCH/sites/assets/.atlas_assets_built"
ensure_assets() {
	step "bench build"
	[ "$ATLAS_SKIP_ASSETS" = 1 ] && return 0
	[ -f "$ASSETS_STAMP" ] && return 0
	local t=$SECONDS
	ensure_yarn
	# --force: skip frappe's attempt to download prebuilt assets (GitHub / assets.frappeframework.com)
	run_bench build --force
	date -u +%FT%TZ >"$ASSETS_STAMP"
	did "bench build (all apps) in $((SECONDS - t))s"
}
assets_built() { [ "$ATLAS_SKIP_ASSETS" != 1 ] && [ -f "$ASSETS_STAMP" ]; }

# ------------------------------------------------------------------- site ---
SITE_APPS=""
SITE_SETUP=""
CACHE_STALE=0
# Installed apps + setup-wizard state, read straight from the site's database
# (what frappe.get_installed_apps() / frappe.is_setup_complete() read; starting
# python + frappe would cost ~2s). Returns 1 if the site is unusable.
probe_site() {
	local cfg="$SITE_DIR/site_config.json" creds db pass user out
	[ -f "$cfg" ] || { PROBE_ERR="$cfg does not exist"; return 1; }
	creds="$(python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); print(c["db_name"], c.get("db_user") or c["db_name"], c["db_password"])' "$cfg")" ||
		{ PROBE_ERR="cannot read db_name/db_password from $cfg"; return 1; }
	read -r db user pass <<<"$creds"
	out="$(MYSQL_PWD="$pass" "$MYSQL_CLI" -h"$ATLAS_DB_HOST" -P"$ATLAS_DB_PORT" -u"$user" -N -B "$db" -e "
		SELECT IFNULL((SELECT defvalue FROM tabDefaultValue
			WHERE parent = '__global' AND defkey = 'installed_apps' LIMIT 1), '[]');
		SELECT COUNT(*) = 0 FROM \`tabInstalled Application\`
			WHERE app_name IN ('frappe', 'erpnext') AND IFNULL(is_setup_complete, 0) = 0;" 2>&1)" ||
		{ PROBE_ERR="$out"; return 1; }
	local apps="${out%%$'\n'*}"
	apps="${apps//[\[\]\",]/ }"
	local -a list
	read -r -a list <<<"$apps"
	SITE_APPS=" ${list[*]} "
	SITE_SETUP="${out##*$'\n'}"
}
site_has_app() { [[ "$SITE_APPS" == *" $1 "* ]]; }

ensure_site() {
	step "new-site"
	local marker="$SITE_DIR/.atlas_site_ok"
	if [ -f "$marker" ] && [ -f "$SITE_DIR/site_config.json" ]; then
		return 0
	fi
	if [ -d "$SITE_DIR" ]; then
		if [ -f "$SITE_DIR/site_config.json" ] && probe_site && site_has_app frappe; then
			touch "$marker"
			return 0
		fi
		rm -rf "$SITE_DIR"
		did "removed half-created site dir $SITE_DIR"
	fi
	local t=$SECONDS db_name db_pass scope
	# Same naming scheme frappe uses: "_" + sha1(realpath(site dir))[:16]
	db_name="_$(printf '%s' "$SITE_DIR" | sha1sum | cut -c1-16)"
	db_pass="$(openssl rand -hex 16)"
	# frappe 15 asks for the DB root password with getpass() when it is empty
	# (an empty --db-root-password counts as "not given"). So create database and
	# user here and let `new-site --no-setup-db` only bootstrap the schema.
	scope="$(dbq "SELECT SUBSTRING_INDEX(USER(), '@', -1)")"
	local sql="DROP DATABASE IF EXISTS \`$db_name\`;"
	sql+="CREATE DATABASE \`$db_name\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
	local h
	for h in $(printf '%s\n' "$scope" localhost | sort -u); do
		sql+="DROP USER IF EXISTS '$db_name'@'$h';"
		sql+="CREATE USER '$db_name'@'$h' IDENTIFIED BY '$db_pass';"
		sql+="GRANT ALL PRIVILEGES ON \`$db_name\`.* TO '$db_name'@'$h';"
	done
	sql+="FLUSH PRIVILEGES;"
	dbq "$sql"
	run_bench new-site "$ATLAS_SITE" --no-setup-db --db-name "$db_name" --db-password "$db_pass" \
		--admin-password "$ATLAS_ADMIN_PASSWORD"
	touch "$marker"
	did "bench new-site $ATLAS_SITE (db $db_name) in $((SECONDS - t))s"
}

ensure_site_apps() {
	step "site apps"
	probe_site || die "cannot connect to site $ATLAS_SITE:
$PROBE_ERR"
	local missing=() a
	for a in erpnext payments; do
		site_has_app "$a" || missing+=("$a")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		local t=$SECONDS
		run_bench --site "$ATLAS_SITE" install-app "${missing[@]}"
		did "installed ${missing[*]} on $ATLAS_SITE in $((SECONDS - t))s"
		probe_site || die "cannot connect to site $ATLAS_SITE: $PROBE_ERR"
	fi
}

ensure_setup_wizard() {
	step "setup wizard"
	[ "$SITE_SETUP" = 1 ] && return 0
	local t=$SECONDS year args
	year="$(date +%Y)"
	args="$(python3 -c 'import json,sys; y=sys.argv[1]; print(json.dumps({"args": {
		"language": "English", "country": "United Kingdom", "timezone": "Europe/London",
		"currency": "GBP", "company_name": "Atlas Demo Ltd", "company_abbr": "ADL",
		"chart_of_accounts": "Standard", "fy_start_date": f"{y}-01-01", "fy_end_date": f"{y}-12-31",
		"enable_telemetry": 0}}))' "$year")"
	run_bench --site "$ATLAS_SITE" execute frappe.desk.page.setup_wizard.setup_wizard.setup_complete --kwargs "$args"
	probe_site || die "cannot connect to site $ATLAS_SITE: $PROBE_ERR"
	[ "$SITE_SETUP" = 1 ] || die "setup wizard ran but frappe.is_setup_complete() is still false"
	did "completed ERPNext setup wizard (Atlas Demo Ltd / ADL, GBP, fiscal year $year) in $((SECONDS - t))s"
}

ensure_site_config() {
	step "site config"
	local changed
	changed="$(json_set "$SITE_DIR/site_config.json" "developer_mode=0" "host_name=$(jstr "http://$ATLAS_SITE:8000")")"
	if [ -n "$changed" ]; then did "site_config.json: set $changed"; fi
	# `bench use` stores default_site in common_site_config.json (not for a second site, e.g. the demo's:
	# ATLAS_SET_DEFAULT_SITE=0 leaves the test site the bench's default)
	if [ "${ATLAS_SET_DEFAULT_SITE:-1}" = 1 ] &&
		! grep -qF "\"default_site\": $(jstr "$ATLAS_SITE")" "$ATLAS_BENCH/sites/common_site_config.json"; then
		run_bench use "$ATLAS_SITE" >/dev/null
		did "bench use $ATLAS_SITE"
	fi
}

# ---------------------------------------------------------------- the app ---
link_app() {
	step "link app"
	local link="$ATLAS_BENCH/apps/$APP"
	if [ -L "$link" ] && [ "$(readlink "$link")" = "$ATLAS_APP_PATH" ]; then
		:
	else
		[ -L "$link" ] || [ ! -e "$link" ] || rm -rf "$link"
		ln -sfn "$ATLAS_APP_PATH" "$link"
		did "linked apps/$APP -> $ATLAS_APP_PATH"
	fi
	local apps_txt="$ATLAS_BENCH/sites/apps.txt"
	if ! app_in_apps_txt "$APP"; then
		[ -s "$apps_txt" ] && [ -n "$(tail -c1 "$apps_txt")" ] && echo >>"$apps_txt"
		echo "$APP" >>"$apps_txt"
		CACHE_STALE=1
		did "added $APP to sites/apps.txt"
	fi
	# Assets symlink like `bench build` makes, so /assets/$APP/... works without a build.
	if [ -d "$ATLAS_BENCH/sites/assets" ] && [ -d "$ATLAS_APP_PATH/$APP/public" ]; then
		local want="$ATLAS_BENCH/apps/$APP/$APP/public"
		if [ "$(readlink "$ATLAS_BENCH/sites/assets/$APP" 2>/dev/null)" != "$want" ]; then
			rm -rf "$ATLAS_BENCH/sites/assets/$APP"
			ln -s "$want" "$ATLAS_BENCH/sites/assets/$APP"
		fi
	fi
}

INSTALL_STAMP="$ATLAS_BENCH/env/.atlas_app_install"
install_app_env() {
	step "pip install -e app"
	local want sp
	sp="$(site_packages)"
	want="$(sha256sum "$ATLAS_APP_PATH/pyproject.toml" | cut -d' ' -f1) $ATLAS_APP_PATH"
	# uv records the editable source in direct_url.json; reinstall when the app
	# moved (fresh CI checkout) or its pyproject.toml (dependencies) changed.
	if [ "$want" != "$(cat "$INSTALL_STAMP" 2>/dev/null || true)" ] ||
		! grep -qsF "\"file://$ATLAS_APP_PATH\"" "$sp"/$APP-*.dist-info/direct_url.json; then
		uv pip install -q --python "$ENV_PY" -e "$ATLAS_APP_PATH"
		printf '%s\n' "$want" >"$INSTALL_STAMP"
		did "uv pip install -e $ATLAS_APP_PATH into bench env"
	fi
	# Same range as scripts/test.sh (which only installs pytest when it is missing).
	if ! compgen -G "$sp/pytest-8.*.dist-info" >/dev/null; then
		uv pip install -q --python "$ENV_PY" "pytest>=8,<9"
		did "installed pytest>=8,<9 into bench env"
	fi
}

app_fingerprint() {
	(
		cd "$ATLAS_APP_PATH"
		{
			find "$APP" -type f -name '*.json' \
				-not -path '*/public/*' -not -path '*/node_modules/*' \
				-not -path '*/tests/*' -not -path '*/testing/*' \
				-not -name 'test_*.json' -not -name 'test_records.json' -print0
			find "$APP" -maxdepth 1 -type f \( -name hooks.py -o -name patches.txt -o -name modules.txt \) -print0
			[ -d "$APP/setup" ] && find "$APP/setup" -maxdepth 1 -type f -name '*.py' -print0
			[ -f pyproject.toml ] && printf 'pyproject.toml\0'
		} | LC_ALL=C sort -z | xargs -0 -r sha256sum
	) | sha256sum | cut -d' ' -f1
}

install_or_migrate() {
	step "install-app/migrate $APP"
	local fp_file="$SITE_DIR/atlas_fingerprint.txt" pending="$SITE_DIR/atlas_install_pending" fp t=$SECONDS
	fp="$(app_fingerprint)"
	if ! site_has_app "$APP" || [ -f "$pending" ] || [ "$CACHE_STALE" = 1 ] ||
		[ "$fp" != "$(cat "$fp_file" 2>/dev/null || true)" ]; then
		# frappe keeps the module map ("app_modules") and hooks of every app in
		# apps.txt in redis. After apps.txt, modules.txt or hooks.py changed behind
		# its back the cached copy is stale and install-app would sync no DocTypes.
		run_bench --site "$ATLAS_SITE" clear-cache
	fi
	# frappe marks the app installed *before* its after_install hook runs, so a
	# failed install looks installed. The pending marker makes the next run
	# repeat the whole install (install-app --force) instead of a mere migrate.
	if ! site_has_app "$APP" || [ -f "$pending" ]; then
		local force=()
		site_has_app "$APP" && force=(--force)
		touch "$pending"
		run_bench --site "$ATLAS_SITE" install-app "${force[@]}" "$APP"
		printf '%s\n' "$fp" >"$fp_file"
		rm -f "$pending"
		did "installed $APP on $ATLAS_SITE${force:+ (--force, retrying an unfinished install)} in $((SECONDS - t))s"
	elif [ "$fp" != "$(cat "$fp_file" 2>/dev/null || true)" ]; then
		run_bench --site "$ATLAS_SITE" migrate
		printf '%s\n' "$fp" >"$fp_file"
		did "bench migrate ($APP fingerprint changed) in $((SECONDS - t))s"
	else
		say "$APP unchanged (fingerprint ${fp:0:12}), no migrate needed"
	fi
}

app_bundles_present() {
	# every /assets/$APP/dist/... file sites/assets/assets.json names exists
	local manifest="$ATLAS_BENCH/sites/assets/assets.json"
	[ -f "$manifest" ] || return 1
	"$ATLAS_BENCH/env/bin/python" - "$manifest" "$APP" "$ATLAS_BENCH/sites" <<'PY'
import json, os, sys
manifest, app, sites = sys.argv[1:4]
paths = [v for v in json.load(open(manifest)).values() if isinstance(v, str) and v.startswith(f"/assets/{app}/")]
sys.exit(0 if all(os.path.exists(os.path.join(sites, p.lstrip("/"))) for p in paths) else 1)
PY
}

build_app_assets() {
	step "bench build --app $APP"
	assets_built || return 0
	local pub="$ATLAS_APP_PATH/$APP/public"
	[ -d "$pub" ] || return 0
	[ -n "$(find "$pub" -path "$pub/dist" -prune -o -name '*.bundle.*' -type f -print -quit)" ] || return 0
	local stamp="$ATLAS_BENCH/sites/assets/.atlas_app_assets" fp t=$SECONDS
	fp="$( (cd "$pub" && find . -path ./dist -prune -o -path '*/node_modules' -prune -o -type f -print0 |
		LC_ALL=C sort -z | xargs -0 -r sha256sum; echo "$ATLAS_APP_PATH") | sha256sum | cut -d' ' -f1)"
	# built and every bundle the site serves for the app still on disk (a checkout copied over can lose them)
	[ "$fp" = "$(cat "$stamp" 2>/dev/null || true)" ] && app_bundles_present && return 0
	ensure_yarn
	run_bench build --app "$APP" --force  # --force: never fetch prebuilt assets
	printf '%s\n' "$fp" >"$stamp"
	did "bench build --app $APP in $((SECONDS - t))s"
}

# ------------------------------------------------------------------- main ---
main() {
	say "bench=$ATLAS_BENCH site=$ATLAS_SITE app=$ATLAS_APP_PATH"
	ensure_tools
	ensure_mariadb
	ensure_redis

	mkdir -p "$(dirname "$ATLAS_BENCH")"
	exec 9>"${ATLAS_BENCH}.lock"
	flock 9 # one bench.sh per bench at a time

	ensure_bench
	ensure_common_config
	ensure_setuptools # pycountry (erpnext), razorpay (payments), passlib import pkg_resources
	ensure_bench_app erpnext "$ERPNEXT_PATH"
	ensure_bench_app payments "$PAYMENTS_PATH"
	ensure_setuptools # again: installing apps may have changed setuptools
	ensure_assets

	ensure_site
	ensure_site_apps
	ensure_setup_wizard
	ensure_site_config

	link_app
	install_app_env
	install_or_migrate
	build_app_assets

	step "done"
	if [ "${#DONE[@]}" -eq 0 ]; then
		say "nothing to do: bench, site and $APP were already up to date"
	else
		say "summary:"
		local d
		for d in "${DONE[@]}"; do say "  - $d"; done
	fi
	say "ready: bench $ATLAS_BENCH, site $ATLAS_SITE (Administrator/$ATLAS_ADMIN_PASSWORD); total $((SECONDS - T0))s"
}

main "$@"
