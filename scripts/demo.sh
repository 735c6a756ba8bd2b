#!/usr/bin/env bash
# make demo: the main job on embedded defaults — SQLite, tasks in-process, a local Label Studio
# started here, the example production log in examples/.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PY=$REPO/.venv/bin/python
unset DATABASE_URL DATABASE_URL_FILE CELERY_BROKER_URL
export DJANGO_SETTINGS_MODULE=evalgap.settings
mkdir -p .run/secrets
# The app refuses to start without a secret key: the demo keeps one of its own in .run/.
[ -s .run/secrets/django_secret_key ] || "$PY" -c "import secrets; print(secrets.token_urlsafe(64))" \
  > .run/secrets/django_secret_key
export DJANGO_SECRET_KEY_FILE=$REPO/.run/secrets/django_secret_key

echo "== Label Studio: installing (first time ~90 s) and starting in the background"
(scripts/labelstudio.sh install && scripts/labelstudio.sh start) > .run/labelstudio-setup.log 2>&1 &
ls_setup=$!

"$PY" manage.py migrate --noinput -v0
# A local admin for the web UI and the Django admin (demo database only).
DJANGO_SUPERUSER_PASSWORD=evalgap-demo "$PY" manage.py createsuperuser --noinput --username admin \
  --email admin@example.com >/dev/null 2>&1 || true
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

echo
echo "== labelling: failure candidates + the monthly sample, pushed to Label Studio"
if ! wait "$ls_setup"; then
  cat .run/labelstudio-setup.log >&2
  echo "Label Studio could not be started (log above); the demo stops here." >&2
  exit 1
fi
eval "$(scripts/labelstudio.sh env)"
# Last month of the example log (it runs September to November 2026).
"$PY" manage.py select_for_labelling --failures --sample 100 --month "${DEMO_MONTH:-2026-10}" --seed 1
"$PY" manage.py push_to_labelstudio
PROJECT=$("$PY" manage.py shell -c "from labelling.models import LabelStudioProject as P; print(P.objects.get(title__startswith='evalgap: production').ls_project_id)" 2>/dev/null | tail -n1)

echo
echo "== judgements back: the datasets' own human labels stand in for annotators (see examples/README.md)"
"$PY" examples/label_from_dataset.py --per-source 40
"$PY" manage.py pull_annotations
echo
echo "== promote judged items and freeze the first test-set version"
"$PY" manage.py promote
"$PY" manage.py freeze_testset production --note "make demo" || true
VERSION=$("$PY" manage.py shell -c "from testsets.selectors import latest_frozen as f; v = f(); print(v.number if v else '')" 2>/dev/null | tail -n1)
mkdir -p .run/exports
if [ -n "$VERSION" ]; then
  "$PY" manage.py export_testset production --version "$VERSION" --format jsonl --output ".run/exports/production-v$VERSION.jsonl"
fi

echo
echo "== targeted cases for the most frequent failure mode (offline generator, seeded from its real failures)"
MODE=$("$PY" manage.py shell -c "
from collections import Counter
from labelling.models import Annotation
c = Counter(m for fm in Annotation.objects.filter(deleted=False).values_list('failure_modes', flat=True) for m in fm)
print(c.most_common(1)[0][0] if c else '')" 2>/dev/null | tail -n1)
if [ -n "$MODE" ]; then
  "$PY" manage.py generate_cases --failure-mode "$MODE" --n 10 --offline
else
  echo "no labelled failure modes yet: nothing to generate from"
fi

echo
echo "== shadow evaluation: a candidate release answered the same queries, never shown to users"
echo "   (mirrored answers from real pairwise data; its human preferences stand in for the LLM judge)"
"$PY" examples/shadow_demo_log.py --out-dir .run/demo
"$PY" manage.py release_add demo-candidate --model demo-candidate-model >/dev/null 2>&1 \
  || echo "release demo-candidate exists"
"$PY" manage.py ingest .run/demo/shadow_log.jsonl --source shadow-demo
# One release per model that served the logs (the shadow demo's served model is the baseline).
"$PY" manage.py releases_from_models
"$PY" manage.py shadow_judge --release demo-candidate --humans-from .run/demo/shadow_prefs.jsonl
"$PY" manage.py shadow_report --release demo-candidate

echo
echo "== offline scores against production signal rates, per release"
"$PY" manage.py correlation_report

echo
echo "== the release gate: may demo-candidate replace demo-served-model? (exit 0 ship, 1 block, 3 insufficient evidence)"
gate_status=0
"$PY" manage.py release_gate --candidate demo-candidate --baseline demo-served-model || gate_status=$?
echo "release_gate exited $gate_status"
if [ -z "${JUDGE_MODEL:-}${OPENAI_BASE_URL:-}" ]; then
  echo
  echo "No LLM endpoint is set, so nothing above pretended to be one: human preferences judged the shadow pairs,"
  echo "and there are no offline scores. To run them with a model (any OpenAI-compatible endpoint):"
  echo "  export OPENAI_BASE_URL=... OPENAI_API_KEY=...     # default endpoint for every role"
  echo "  export JUDGE_MODEL=... [JUDGE_BASE_URL=... JUDGE_API_KEY=...]   # the pairwise judge (shadow_judge)"
  echo "  export GRADER_MODEL=...                            # offline grading (offline_run)"
  echo "  .venv/bin/python manage.py shadow_judge --release demo-candidate"
  echo "  .venv/bin/python manage.py offline_run --release demo-candidate --testset production --version ${VERSION:-1}"
fi

echo
echo "Label Studio is running; open the project and label:"
echo "  $LABEL_STUDIO_URL/projects/$PROJECT/data"
echo "  login: $LABEL_STUDIO_USERNAME  password: $LABEL_STUDIO_PASSWORD"
echo "then pull the judgements back:  .venv/bin/python manage.py pull_annotations"
if [ -n "$VERSION" ]; then
  echo "The first frozen test-set version, production v$VERSION:"
  echo "  downloaded to  .run/exports/production-v$VERSION.jsonl"
  echo "  other formats: .venv/bin/python manage.py export_testset production --version $VERSION --format ragas|deepeval|promptfoo|hf|csv|parquet --output PATH"
  echo "  in the web UI: .venv/bin/python manage.py runserver, then http://127.0.0.1:8000/testsets/ (API: /api/testsets/production/versions/$VERSION/export/jsonl/)"
fi
echo "web UI and admin login (demo):   admin / evalgap-demo"
echo "stop Label Studio with:          scripts/labelstudio.sh stop"
