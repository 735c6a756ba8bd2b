#!/usr/bin/env bash
# make bench: the benchmarks of benchmarks/README.md, on a local Postgres started (and stopped) here.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PY=$REPO/.venv/bin/python
export PG_DB=evalgap_bench
trap 'scripts/services.sh stop || true' EXIT INT TERM
scripts/services.sh start
eval "$(scripts/services.sh env)"
scripts/services.sh resetdb
unset CELERY_BROKER_URL  # benchmarks time the services themselves, in-process
"$PY" manage.py migrate --noinput -v0
OUT=$REPO/benchmarks/out
mkdir -p "$OUT"
TURNS=${BENCH_TURNS:-1000000}
[ -f "$OUT/log-$TURNS.jsonl" ] || "$PY" benchmarks/gen_log.py --turns "$TURNS" --out "$OUT/log-$TURNS.jsonl"
echo "== ingest vs raw COPY ($TURNS turns)"
"$PY" benchmarks/bench_ingest.py "$OUT/log-$TURNS.jsonl" | tee "$OUT/ingest.json"
echo "== detect_signals, lexical stage only ($TURNS turns)"
"$PY" benchmarks/bench_signals.py lexical | tee "$OUT/signals-lexical.json"
# The semantic stage runs MiniLM on the CPU: measured on a smaller log to keep `make bench` short.
SEM_TURNS=${BENCH_SEMANTIC_TURNS:-100000}
head -n "$SEM_TURNS" "$OUT/log-$TURNS.jsonl" > "$OUT/log-sem.jsonl"
"$PY" benchmarks/bench_ingest.py "$OUT/log-sem.jsonl" > /dev/null
echo "== detect_signals with the semantic check ($SEM_TURNS turns)"
"$PY" benchmarks/bench_signals.py semantic | tee "$OUT/signals-semantic.json"
