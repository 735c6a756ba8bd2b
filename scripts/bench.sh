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
echo "== correlation_report over 1M turns, 20 releases, 10,000 labelled items (builds and removes its own data)"
"$PY" benchmarks/bench_correlation.py | tee "$OUT/correlation.json"
echo "== core.stats: AUC / Spearman bootstrap intervals, correlation and shadow report statistics"
"$PY" benchmarks/bench_stats.py | tee "$OUT/stats.json"
echo "== shadow judge: 1,000 pairs (2,000 calls) against a local judge answering after 200 ms"
"$PY" benchmarks/bench_shadow.py | tee "$OUT/shadow.json"
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
echo "== freeze and export a 100,000-item version"
"$PY" benchmarks/bench_exports.py | tee "$OUT/exports.json"
echo "== push 10,000 tasks to Label Studio vs its own bulk import, then a re-push"
scripts/labelstudio.sh install >/dev/null && scripts/labelstudio.sh start
trap 'scripts/labelstudio.sh stop >/dev/null 2>&1 || true; scripts/services.sh stop || true' EXIT INT TERM
eval "$(scripts/labelstudio.sh env)"
head -n 12000 "$OUT/log-$TURNS.jsonl" > "$OUT/log-push.jsonl"
"$PY" benchmarks/bench_push.py "$OUT/log-push.jsonl" 10000 | tee "$OUT/push.json"
