#!/usr/bin/env bash
# make venv: the app's venv (requirements.txt + requirements-build.txt, which builds the encoder's
# ONNX graph, + requirements-test.txt) and that graph. Both live in the machine's cache (scripts/cache.sh),
# keyed by a hash of the three requirement files; .venv and .run/encoder are links to them. A clone
# whose .venv is a directory of its own (made before the cache) keeps it and installs into it.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
. scripts/cache.sh
PYTHON=${PYTHON:-python3.11}
REQS=(requirements.txt requirements-build.txt requirements-test.txt)
HASH=$(cat "${REQS[@]}" | sha256sum | cut -c1-12)

install_into() {  # VENV: install the pins and build the encoder's graph, then mark it done
  local venv=$1
  command -v "$PYTHON" >/dev/null 2>&1 || { echo "need $PYTHON" >&2; exit 1; }
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements-build.txt -r requirements-test.txt
  touch "$venv/.installed-$HASH"
}

mkdir -p .run
if [ -d .venv ] && [ ! -L .venv ]; then
  [ -f ".venv/.installed-$HASH" ] || install_into "$REPO/.venv"
else
  VENV=$EVALGAP_CACHE/venv-$HASH
  (
    cache_lock "venv-$HASH"
    [ -f "$VENV/.installed-$HASH" ] || { rm -rf "$VENV"; install_into "$VENV"; }
  )
  ln -sfn "$VENV" .venv
  # The graph depends on the model package and the export version only (its file name says both).
  if [ ! -e .run/encoder ] || [ -L .run/encoder ]; then
    mkdir -p "$EVALGAP_CACHE/encoder"
    ln -sfn "$EVALGAP_CACHE/encoder" .run/encoder
  fi
fi
( cache_lock encoder; .venv/bin/python -c "from rephrase.encoder import ensure_built; ensure_built()" )
