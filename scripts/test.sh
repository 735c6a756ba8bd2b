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
"$PY" - <<'PY'
import os, psycopg2
from urllib.parse import urlparse
u = urlparse(os.environ["DATABASE_URL"])
conn = psycopg2.connect(host=u.hostname, port=u.port, user=u.username, dbname="postgres")
conn.autocommit = True
db = u.path.lstrip("/")
with conn.cursor() as c:
    c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [db])
    c.execute(f'DROP DATABASE IF EXISTS "{db}"')
    c.execute(f'CREATE DATABASE "{db}"')
PY
"$PY" manage.py migrate --noinput -v0
scripts/services.sh worker
"$PY" -m pytest "$@"
