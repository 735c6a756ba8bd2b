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
scripts/services.sh benchgrant
# The benchmarks build and truncate tables of their own: they connect as the owner role.
export DATABASE_URL_FILE=$DATABASE_MIGRATE_URL_FILE
unset CELERY_BROKER_URL  # benchmarks time the services themselves, in-process
"$PY" manage.py migrate --noinput -v0
OUT=$REPO/benchmarks/out
mkdir -p "$OUT"
TURNS=${BENCH_TURNS:-1000000}
echo "== correlation_report over 1M turns, 20 releases, 10,000 labelled items (builds and removes its own data)"
"$PY" benchmarks/bench_correlation.py | tee "$OUT/correlation.json"
echo "== core.stats: AUC / Spearman bootstrap intervals, correlation and shadow report statistics"
"$PY" benchmarks/bench_stats.py | tee "$OUT/stats.json"
echo "== the weekly item-AUC alarm: false alarms with nothing changed, weeks to catch a drop (simulation)"
"$PY" benchmarks/sim_alarm.py --years 200
echo "== shadow judge: 1,000 pairs (2,000 calls) against a local judge answering after 200 ms"
"$PY" benchmarks/bench_shadow.py | tee "$OUT/shadow.json"
echo "== the mirroring proxy: median latency it adds over a direct call, plain and streamed (2,000 calls each)"
"$PY" benchmarks/bench_proxy.py | tee "$OUT/proxy.json"
INGEST_TURNS=${BENCH_INGEST_TURNS:-300000}
[ -f "$OUT/log-passages-$INGEST_TURNS.jsonl" ] || "$PY" benchmarks/gen_log.py --answers passages \
  --turns "$INGEST_TURNS" --out "$OUT/log-passages-$INGEST_TURNS.jsonl"
echo "== ingest vs raw COPY into a primary-key-only table ($INGEST_TURNS turns, ~1 KB CAsT passages as answers)"
"$PY" benchmarks/bench_ingest.py "$OUT/log-passages-$INGEST_TURNS.jsonl" --repeat 3 --schema-floor | tee "$OUT/ingest.json"
[ -f "$OUT/log-$TURNS.jsonl" ] || "$PY" benchmarks/gen_log.py --turns "$TURNS" --out "$OUT/log-$TURNS.jsonl"
echo "== ingest of the signals log ($TURNS turns, ~270 bytes a turn; it stays in the database for detect_signals)"
"$PY" benchmarks/bench_ingest.py "$OUT/log-$TURNS.jsonl" | tee "$OUT/ingest-signals-log.json"
echo "== detect_signals, lexical stage only ($TURNS turns)"
"$PY" benchmarks/bench_signals.py lexical | tee "$OUT/signals-lexical.json"
# The semantic stage runs MiniLM on the CPU: measured on a smaller log, every query distinct (no
# embedding is reused across turns), in a database holding only that log.
SEM_TURNS=${BENCH_SEMANTIC_TURNS:-100000}
[ -f "$OUT/log-sem-$SEM_TURNS.jsonl" ] || "$PY" benchmarks/gen_log.py --turns "$SEM_TURNS" --distinct --seed 11 \
  --out "$OUT/log-sem-$SEM_TURNS.jsonl"
scripts/services.sh resetdb
"$PY" manage.py migrate --noinput -v0
"$PY" benchmarks/bench_ingest.py "$OUT/log-sem-$SEM_TURNS.jsonl" > /dev/null
echo "== detect_signals with the semantic check ($SEM_TURNS turns, all queries distinct)"
"$PY" benchmarks/bench_signals.py semantic | tee "$OUT/signals-semantic.json"
echo "== the encoder alone against this CPU's arithmetic (the first 5,000 of the queries it embedded above)"
"$PY" benchmarks/bench_encoder.py "$OUT/encoder-texts.jsonl" 5000 | tee "$OUT/encoder.json"
echo "== freeze and export a 100,000-item version"
"$PY" benchmarks/bench_exports.py | tee "$OUT/exports.json"
echo "== push 10,000 tasks to Label Studio vs its own bulk import, then a re-push"
scripts/labelstudio.sh install >/dev/null && scripts/labelstudio.sh start
trap 'scripts/labelstudio.sh stop >/dev/null 2>&1 || true; scripts/services.sh stop || true' EXIT INT TERM
eval "$(scripts/labelstudio.sh env)"
head -n 12000 "$OUT/log-$TURNS.jsonl" > "$OUT/log-push.jsonl"
"$PY" benchmarks/bench_push.py "$OUT/log-push.jsonl" 10000 | tee "$OUT/push.json"
echo "== issue #14's targets, from this run's figures"
"$PY" benchmarks/summary.py "$OUT" | tee "$OUT/summary.txt"
