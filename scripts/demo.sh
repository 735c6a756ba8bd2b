#!/usr/bin/env bash
# make demo: the main job on embedded defaults (SQLite, tasks in-process, the example log).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PY=$REPO/.venv/bin/python
unset DATABASE_URL CELERY_BROKER_URL
export DJANGO_SETTINGS_MODULE=evalgap.settings

"$PY" manage.py migrate --noinput -v0
echo "== ingest the example production log (examples/, real public data)"
for name in canard cast hint3; do
  printf '%-7s ' "$name"
  "$PY" manage.py ingest "examples/${name}_log.jsonl" --source "$name"
done
echo
echo "== detect implicit signals (what users and agents did after each answer)"
"$PY" manage.py detect_signals
echo
echo "== what evalgap holds"
"$PY" manage.py report
