#!/usr/bin/env bash
# make test: real PostgreSQL, Redis, one Celery worker and Label Studio on loopback, then pytest
# against them. Everything started here is stopped on exit, also when a test fails.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PY=$REPO/.venv/bin/python
mkdir -p .run

ls_setup=""
consumers_setup=""
cleanup() {
  # Let a Label Studio start still under way finish, so that stop finds its pid file.
  [ -n "$ls_setup" ] && wait "$ls_setup" 2>/dev/null || true
  [ -n "$consumers_setup" ] && wait "$consumers_setup" 2>/dev/null || true
  scripts/labelstudio.sh stop >/dev/null 2>&1 || true
  scripts/services.sh stop || true
}
trap cleanup EXIT INT TERM

# The app boundaries (.importlinter) first: a broken contract fails the run before anything starts.
"$REPO/.venv/bin/lint-imports" --config "$REPO/.importlinter"

# Label Studio installs (~90 s the first time) and starts (~35 s) while the rest is set up.
(scripts/labelstudio.sh install && scripts/labelstudio.sh start) > .run/labelstudio-setup.log 2>&1 &
ls_setup=$!
# The export consumers (datasets, ragas, deepeval) live in their own venv; ~5 min the first time.
scripts/consumers_venv.sh > .run/consumers-python 2> .run/consumers-setup.log &
consumers_setup=$!

scripts/services.sh start
eval "$(scripts/services.sh env)"
export EVALGAP_TEST_EXISTING_DB=1 DJANGO_SETTINGS_MODULE=evalgap.settings
export INGEST_SPOOL_DIR=$REPO/.run/spool
export LABEL_STUDIO_WEBHOOK_SECRET=test-webhook-secret
# A clean database each run, migrated once (as the owner role, like compose's migrate service); the
# worker and pytest share it and connect as the app role, which may only read and write rows.
scripts/services.sh resetdb
DATABASE_URL_FILE=$DATABASE_MIGRATE_URL_FILE "$PY" manage.py migrate --noinput -v0

if ! wait "$ls_setup"; then
  cat .run/labelstudio-setup.log >&2
  echo "Label Studio could not be installed or started" >&2
  exit 1
fi
eval "$(scripts/labelstudio.sh env)"
scripts/services.sh worker
if ! wait "$consumers_setup"; then
  tail -n 30 .run/consumers-setup.log >&2
  echo "the export-consumers venv could not be installed: export tests will fail" >&2
fi
EVALGAP_CONSUMERS_PYTHON=$(cat .run/consumers-python)
export EVALGAP_CONSUMERS_PYTHON
# Browser tests drive Debian's Chromium (Playwright cannot download its own here).
CHROMIUM_PATH=$(scripts/chromium.sh) || echo "chromium unavailable: browser tests will fail" >&2
export CHROMIUM_PATH
status=0
"$PY" -m pytest "$@" || status=$?
# The whole suite (no arguments) goes on with a small run of the fault-injection suite (make faults
# runs 10 per scenario): one run of each scenario, on the services started here.
if [ $# -eq 0 ]; then
  scripts/faults.sh "${FAULT_RUNS_IN_TEST:-1}" || status=$?
fi

# On SQLite, what `make demo` and first-time users run (a private in-memory database, tasks run
# in-process): the tests marked `sqlite`, whose code can differ between the two databases
# (tests/conftest.py says which). Left out: tests that need a PostgreSQL feature, Label Studio, the
# worker, the browser or the consumers venv (all of them ran above). EVALGAP_TEST_SQLITE=0 skips this
# pass; EVALGAP_TEST_SQLITE=all runs every test that can run there.
if [ "${EVALGAP_TEST_SQLITE:-1}" != 0 ]; then
  echo "--- on SQLite: the tests marked sqlite ---"
  cleanup  # the services are not needed any more: their memory and CPU go to this pass
  sqlite_status=0
  sqlite_pick="sqlite and"
  [ "${EVALGAP_TEST_SQLITE:-1}" = all ] && sqlite_pick=""
  env -u DATABASE_URL -u DATABASE_URL_FILE -u DATABASE_MIGRATE_URL_FILE -u EVALGAP_TEST_EXISTING_DB -u CELERY_BROKER_URL -u CELERY_RESULT_BACKEND \
    -u LABEL_STUDIO_URL -u LABEL_STUDIO_API_KEY \
    "$PY" -m pytest -m "$sqlite_pick not postgres and not labelstudio and not worker and not browser and not consumers" \
    --timeout 600 "$@" || sqlite_status=$?
  # 5: nothing left to run on SQLite among the tests asked for
  if [ "$sqlite_status" != 0 ] && [ "$sqlite_status" != 5 ]; then status=$sqlite_status; fi
fi
exit "$status"
