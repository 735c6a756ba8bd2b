#!/usr/bin/env bash
# Local PostgreSQL, Redis and one Celery worker on loopback, for tests and benchmarks.
# Usage: scripts/services.sh start|stop|env   (state lives in .run/; as root, PostgreSQL's files
# live where the postgres user can reach them, see PGROOT)
#
# The database is set up as docker-compose.yml sets it up (deploy/postgres/roles.sql): evalgap_owner
# owns the tables and runs the migrations; the app, the worker and the tests connect as evalgap_app,
# which may only read and write rows. Secrets are files named by the same variables compose sets
# (DATABASE_URL_FILE, DJANGO_SECRET_KEY_FILE); DATABASE_MIGRATE_URL_FILE is the owner's URL.
# PG_DURABLE=1 / REDIS_DURABLE=1 start them with fsync and persistence on (the fault suite).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUN=${EVALGAP_RUN_DIR:-$REPO/.run}
PG_PORT=${PG_PORT:-54329}
REDIS_PORT=${REDIS_PORT:-63799}
PG_DB=${PG_DB:-evalgap_test}
PY=${PY:-$REPO/.venv/bin/python}
# initdb/postgres refuse to run as root, so as root they run as the postgres user, who may not be
# able to enter the clone (a home directory of mode 700): the cluster, its socket and its log then
# live in a directory of postgres' own, one per clone (keyed by a hash of the clone's path).
if [ -n "${EVALGAP_PG_DIR:-}" ]; then
  PGROOT=$EVALGAP_PG_DIR
elif [ "$(id -u)" = 0 ]; then
  PGROOT=/tmp/evalgap-pg-$(printf '%s' "$REPO" | sha256sum | cut -c1-16)
else
  PGROOT=$RUN/pg
fi
PGDATA=$PGROOT/data
PGSOCK=$PGROOT/sock
SECRETS=${EVALGAP_SECRETS_DIR:-$RUN/secrets}
REDIS_DIR=${REDIS_DIR:-$RUN/redis}
PG_OWNER=evalgap_owner
PG_APP=evalgap_app
PG_PASSWORD=evalgap-test-only  # loopback cluster with trust auth: the password is never checked

as_postgres() {
  # From / : the postgres user may not be allowed into the current directory (the clone).
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_bin() {
  if command -v pg_ctl >/dev/null 2>&1; then return; fi
  local d; d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$d" ]; then
    echo "postgres: not found, installing with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  export PATH=$d:$PATH
}

secrets_write() {
  mkdir -p "$SECRETS"
  chmod 700 "$SECRETS"
  printf 'postgres://%s:%s@127.0.0.1:%s/%s\n' "$PG_APP" "$PG_PASSWORD" "$PG_PORT" "$PG_DB" > "$SECRETS/database_url"
  printf 'postgres://%s:%s@127.0.0.1:%s/%s\n' "$PG_OWNER" "$PG_PASSWORD" "$PG_PORT" "$PG_DB" > "$SECRETS/database_migrate_url"
  [ -s "$SECRETS/django_secret_key" ] || "$PY" -c "import secrets; print(secrets.token_urlsafe(64))" > "$SECRETS/django_secret_key"
}

env_lines() {
  secrets_write
  echo "export DATABASE_URL_FILE=$SECRETS/database_url"
  echo "export DATABASE_MIGRATE_URL_FILE=$SECRETS/database_migrate_url"
  echo "export DJANGO_SECRET_KEY_FILE=$SECRETS/django_secret_key"
  echo "unset DATABASE_URL DJANGO_SECRET_KEY"
  echo "export CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0"
  echo "export CELERY_RESULT_BACKEND=redis://127.0.0.1:$REDIS_PORT/1"
}

pg_roles() {
  # Creates the roles and the database (owned by evalgap_owner) if missing; grants the app role DML.
  as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
    -v owner="$PG_OWNER" -v app="$PG_APP" -v db="$PG_DB" -v owner_password="$PG_PASSWORD" \
    -v app_password="$PG_PASSWORD" -f - < "$REPO/deploy/postgres/roles.sql" >/dev/null
}

pg_options() {
  local o="-p $PG_PORT -k $PGSOCK -c listen_addresses=127.0.0.1"
  if [ "${PG_DURABLE:-0}" = 1 ]; then
    echo "$o -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
  else
    echo "$o -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
}

pg_start() {
  pg_bin
  mkdir -p "$PGROOT"
  if [ "$(id -u)" = 0 ]; then chown postgres "$PGROOT"; chmod 700 "$PGROOT"; fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    as_postgres initdb -D "$PGDATA" -A trust -U postgres >/dev/null
  fi
  as_postgres mkdir -p "$PGSOCK"
  if as_postgres pg_ctl -D "$PGDATA" status >/dev/null 2>&1; then return; fi
  as_postgres pg_ctl -D "$PGDATA" -l "$PGROOT/log" -w -t 60 -o "$(pg_options)" start >/dev/null
  pg_roles
}

pg_stop() {
  pg_bin
  if [ -f "$PGDATA/postmaster.pid" ]; then as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null || true; fi
}

pg_resetdb() {
  # A clean database, so every test or bench run starts from the current migrations.
  as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 \
    -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$PG_DB' AND pid <> pg_backend_pid()" \
    -c "DROP DATABASE IF EXISTS \"$PG_DB\"" >/dev/null
  pg_roles
}

pg_bench_grant() {
  # Benchmarks only (scripts/bench.sh): they CHECKPOINT before each timed COPY, which PostgreSQL 15
  # allows the owner role only through pg_checkpoint. The test and deployment roles never get it.
  as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
    -c "SET client_min_messages = warning" -c "GRANT pg_checkpoint TO $PG_OWNER" >/dev/null
}

redis_start() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server: not found, installing with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  mkdir -p "$REDIS_DIR"
  if [ -f "$REDIS_DIR/pid" ] && kill -0 "$(cat "$REDIS_DIR/pid")" 2>/dev/null; then return; fi
  local persist=(--save "" --appendonly no)
  [ "${REDIS_DURABLE:-0}" = 1 ] && persist=(--save "" --appendonly yes --appendfsync always)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes "${persist[@]}" \
    --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/pid" --logfile "$REDIS_DIR/log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis did not answer on 127.0.0.1:$REDIS_PORT" >&2; exit 1
}

redis_stop() {
  if [ -f "$REDIS_DIR/pid" ]; then kill "$(cat "$REDIS_DIR/pid")" 2>/dev/null || true; rm -f "$REDIS_DIR/pid"; fi
}

redis_crash() {
  # kill -9: what a power cut leaves is what the append-only file has (REDIS_DURABLE=1: everything).
  if [ -f "$REDIS_DIR/pid" ]; then
    local pid; pid=$(cat "$REDIS_DIR/pid")
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$REDIS_DIR/pid"
  fi
}

pg_crash() {
  # An immediate shutdown: no checkpoint, the next start replays the WAL (a crash, as far as data goes).
  pg_bin
  if [ -f "$PGDATA/postmaster.pid" ]; then as_postgres pg_ctl -D "$PGDATA" -m immediate -w stop >/dev/null || true; fi
}

worker_start() {
  eval "$(env_lines)"
  mkdir -p "$RUN/celery"
  if [ -f "$RUN/celery/pid" ] && kill -0 "$(cat "$RUN/celery/pid")" 2>/dev/null; then return; fi
  (cd "$REPO" && "$PY" -m celery -A evalgap worker --concurrency 1 --loglevel INFO --without-gossip \
     --without-mingle --pidfile "$RUN/celery/pid" --logfile "$RUN/celery/log" --detach)
  for _ in $(seq 100); do
    (cd "$REPO" && "$PY" -m celery -A evalgap inspect ping --timeout 1 >/dev/null 2>&1) && return
    sleep 0.5
  done
  echo "celery worker did not answer; see $RUN/celery/log" >&2; exit 1
}

worker_stop() {
  if [ -f "$RUN/celery/pid" ]; then
    local pid; pid=$(cat "$RUN/celery/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$RUN/celery/pid"
  fi
}

case "${1:-}" in
  start) pg_start; redis_start ;;
  worker) worker_start ;;
  stop) worker_stop; redis_stop; pg_stop ;;
  env) env_lines ;;
  pg) pg_start ;;
  resetdb) pg_resetdb ;;
  benchgrant) pg_bench_grant ;;
  pgstop) pg_stop ;;
  pgcrash) pg_crash ;;
  redis) redis_start ;;
  redisstop) redis_stop ;;
  rediscrash) redis_crash ;;
  purge) worker_stop; redis_stop; pg_stop; rm -rf "$PGROOT" ;;
  *) echo "usage: $0 start|worker|stop|env|pg|resetdb|benchgrant|pgstop|pgcrash|redis|redisstop|rediscrash|purge" >&2; exit 2 ;;
esac
