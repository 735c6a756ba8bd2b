#!/usr/bin/env bash
# make faults: the fault-injection suite (faults/) on real, durable services.
#   scripts/faults.sh [RUNS [--scenario NAME ...]]   RUNS per scenario (default 10: 100 runs); FAULT_SEED
#   picks the moments.
# Started from scripts/test.sh (1 run each) it reuses the PostgreSQL cluster and Label Studio that are
# up; alone it starts them and stops them on exit. It always has a database (two roles, as in
# production), a Redis (append-only file, fsync always), workers and a web server of its own, and
# restarts PostgreSQL with fsync, synchronous commit and full-page writes on.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PY=$REPO/.venv/bin/python
RUNS=${1:-${FAULT_RUNS:-10}}
shift || true
FAULTS=$REPO/.run/faults
mkdir -p "$FAULTS"

own_ls=0
cleanup() {
  REDIS_PORT=$FAULT_REDIS_PORT REDIS_DIR=$FAULTS/redis scripts/services.sh redisstop || true
  if [ "$own_ls" = 1 ]; then scripts/labelstudio.sh stop >/dev/null 2>&1 || true; scripts/services.sh stop || true; fi
}
REDIS_PORT=${REDIS_PORT:-63799}
FAULT_REDIS_PORT=${FAULT_REDIS_PORT:-$((REDIS_PORT + 100))}
FAULT_WEB_PORT=${FAULT_WEB_PORT:-$((${LS_PORT:-8089} + 1000))}
export FAULT_REDIS_PORT FAULT_WEB_PORT
trap cleanup EXIT INT TERM

if ! scripts/labelstudio.sh status >/dev/null 2>&1; then
  own_ls=1
  scripts/labelstudio.sh install >/dev/null && scripts/labelstudio.sh start
fi
# Durable PostgreSQL: a crash (pg_ctl -m immediate) may lose nothing that was committed.
scripts/services.sh pgstop
PG_DURABLE=1 scripts/services.sh pg
export PG_DB=evalgap_faults EVALGAP_SECRETS_DIR=$FAULTS/secrets
scripts/services.sh resetdb
eval "$(scripts/services.sh env)"
rm -rf "$FAULTS/redis"
REDIS_PORT=$FAULT_REDIS_PORT REDIS_DIR=$FAULTS/redis REDIS_DURABLE=1 scripts/services.sh redis
export CELERY_BROKER_URL=redis://127.0.0.1:$FAULT_REDIS_PORT/0 CELERY_RESULT_BACKEND=redis://127.0.0.1:$FAULT_REDIS_PORT/1
DATABASE_URL_FILE=$DATABASE_MIGRATE_URL_FILE "$PY" manage.py migrate --noinput -v0
eval "$(scripts/labelstudio.sh env)"
export DJANGO_SETTINGS_MODULE=evalgap.settings
export EVALGAP_PUBLIC_URL=http://127.0.0.1:$FAULT_WEB_PORT LABEL_STUDIO_WEBHOOK_SECRET=faults-webhook-secret
export EVALGAP_MEDIA_ROOT=$FAULTS/media INGEST_SPOOL_DIR=$FAULTS/media/spool
# Small limits keep each run short: poison of every kind, a push in ten chunks, tasks killed in
# seconds by the time limit rather than minutes.
export INGEST_MAX_FIELD_CHARS=50000 INGEST_MAX_LINE_BYTES=200000 LABELLING_PUSH_CHUNK=15
export CELERY_TASK_TIME_LIMIT=180 CELERY_TASK_SOFT_TIME_LIMIT=170 CELERY_VISIBILITY_TIMEOUT=240
export SIGNALS_DETECT_AFTER_INGEST=false LOG_LEVEL=ERROR
"$PY" -m faults --runs "$RUNS" --seed "${FAULT_SEED:-1}" --table "$FAULTS/table.md" "$@"
