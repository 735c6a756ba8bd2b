#!/usr/bin/env bash
# make test: real PostgreSQL, Redis and one Celery worker on loopback, then pytest against them.
# Everything started here is stopped on exit, also when a test fails.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PY=$REPO/.venv/bin/python

cleanup() {
  scripts/services.sh stop || true
}
trap cleanup EXIT INT TERM

scripts/services.sh start
eval "$(scripts/services.sh env)"
export EVALGAP_TEST_EXISTING_DB=1 DJANGO_SETTINGS_MODULE=evalgap.settings
export INGEST_SPOOL_DIR=$REPO/.run/spool
# A clean database each run, migrated once; the worker and pytest share it.
scripts/services.sh resetdb
"$PY" manage.py migrate --noinput -v0
scripts/services.sh worker
"$PY" -m pytest "$@"
