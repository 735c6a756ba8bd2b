#!/usr/bin/env bash
# Local PostgreSQL, Redis and one Celery worker on loopback, for tests and benchmarks.
# Usage: scripts/services.sh start|stop|env   (state lives in .run/; as root, PostgreSQL's files
# live where the postgres user can reach them, see PGROOT)
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

env_lines() {
  echo "export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB"
  echo "export CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0"
  echo "export CELERY_RESULT_BACKEND=redis://127.0.0.1:$REDIS_PORT/1"
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
  as_postgres pg_ctl -D "$PGDATA" -l "$PGROOT/log" -w -t 60 \
    -o "-p $PG_PORT -k $PGSOCK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
  as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -q 1 \
    || as_postgres createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres "$PG_DB"
}

pg_stop() {
  pg_bin
  if [ -f "$PGDATA/postmaster.pid" ]; then as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null || true; fi
}

pg_resetdb() {
  # A clean database, so every test or bench run starts from the current migrations.
  as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 \
    -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$PG_DB' AND pid <> pg_backend_pid()" \
    -c "DROP DATABASE IF EXISTS \"$PG_DB\"" -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
}

redis_start() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server: not found, installing with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  mkdir -p "$RUN/redis"
  if [ -f "$RUN/redis/pid" ] && kill -0 "$(cat "$RUN/redis/pid")" 2>/dev/null; then return; fi
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
    --dir "$RUN/redis" --pidfile "$RUN/redis/pid" --logfile "$RUN/redis/log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis did not answer on 127.0.0.1:$REDIS_PORT" >&2; exit 1
}

redis_stop() {
  if [ -f "$RUN/redis/pid" ]; then kill "$(cat "$RUN/redis/pid")" 2>/dev/null || true; rm -f "$RUN/redis/pid"; fi
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
  purge) worker_stop; redis_stop; pg_stop; rm -rf "$PGROOT" ;;
  *) echo "usage: $0 start|worker|stop|env|pg|resetdb|purge" >&2; exit 2 ;;
esac
