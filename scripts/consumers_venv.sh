#!/usr/bin/env bash
# A separate venv with the eval tools that consume our exports (tests/test_exports.py loads each export
# with them): Hugging Face datasets, RAGAS, DeepEval. They pull langchain & co., so they stay out of
# .venv. Idempotent (a marker file per pin set); prints the venv's python path on stdout, nothing else.
#   export EVALGAP_CONSUMERS_PYTHON=$(scripts/consumers_venv.sh)
# Needs PyPI only here, at install time; the tests run it offline with telemetry off.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/cache.sh"
PYTHON=${CONSUMERS_PYTHON_BIN:-python3.11}

# The four the exports target, and what pip resolved them to (datasets 5.2 needs click>=8.4.2, which
# deepeval 4.3.1 refuses: datasets 5.0.1 is the newest that installs beside it).
PINS=(
  "datasets==5.0.1"
  "ragas==0.4.3"
  "langchain-community==0.3.31"
  "deepeval==4.3.1"
  "huggingface-hub==1.16.1"
  "click==8.3.3"
  "langchain==1.5.2"
  "langchain-core==1.8.3"
  "langchain-openai==1.1.9"
  "pandas==3.1.1"
  "pyarrow==26.0.1"
)
STAMP=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)
# One venv per pin set, in the machine's cache (scripts/cache.sh), shared by every clone.
VENV=$EVALGAP_CACHE/consumers-$STAMP
MARKER=$VENV/.evalgap-consumers-$STAMP

[ -f "$MARKER" ] || cache_lock "consumers-$STAMP"
if [ ! -f "$MARKER" ]; then
  command -v "$PYTHON" >/dev/null 2>&1 || { echo "consumers_venv.sh: need $PYTHON" >&2; exit 1; }
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}" >&2
  # Import once, offline and with telemetry off, so a broken install fails here and not in a test.
  DEEPEVAL_TELEMETRY_OPT_OUT=YES RAGAS_DO_NOT_TRACK=true HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    "$VENV/bin/python" -c "import datasets, ragas, deepeval; from ragas import EvaluationDataset; \
from deepeval.dataset import EvaluationDataset, Golden" >&2
  touch "$MARKER"
fi
echo "$VENV/bin/python"
