#!/usr/bin/env bash
# Local, loopback-only Label Studio for evalgap dev/tests.
#   scripts/labelstudio.sh install|start|stop|status|env
# LS pins its own Django, so it lives in its own venv and talks to us over HTTP only.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${LS_RUN_DIR:-$REPO/.run}"
LS_VERSION="1.23.2"
# The venv is the machine's, one per version (scripts/cache.sh); the data directory is this clone's.
. "$REPO/scripts/cache.sh"
LS_VENV="${LS_VENV:-$EVALGAP_CACHE/ls-venv-$LS_VERSION}"
LS_DATA="${LS_DATA:-$RUN_DIR/ls-data}"
LS_HOST="127.0.0.1"
LS_PORT="${LS_PORT:-8089}"
LS_PYTHON="${LS_PYTHON:-python3}"
# One pid/log per port, so a second instance on another port never adopts or stops the first.
PID_FILE="$RUN_DIR/labelstudio-$LS_PORT.pid"
LOG_FILE="$RUN_DIR/labelstudio-$LS_PORT.log"
START_TIMEOUT="${LS_START_TIMEOUT:-120}"
URL="http://$LS_HOST:$LS_PORT"
# Demo credentials for the local loopback instance only; override via env.
LS_USERNAME="${LS_USERNAME:-admin@example.com}"
LS_PASSWORD="${LS_PASSWORD:-evalgap-ls-Passw0rd!}"
# Legacy token: only written when the admin is first created (first start on a fresh data dir).
LS_TOKEN="${LS_TOKEN:-e7a1c0de5eed0fa11ab1ec0ffee0ddba11fa57e1}"
MARKER="$LS_VENV/.evalgap-installed-$LS_VERSION"

log() { echo "labelstudio.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_running() {
  [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

# Answer must come from the EXACT url: LS silently moves to the next port if ours is busy.
probe() {
  "$LS_PYTHON" - "$URL/api/version/" <<'PY' 2>/dev/null
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        body = json.load(r)
    sys.exit(0 if r.status == 200 and "release" in body else 1)
except Exception:
    sys.exit(1)
PY
}

port_busy() {
  "$LS_PYTHON" - "$LS_HOST" "$LS_PORT" <<'PY'
import socket, sys
s = socket.socket()
# As the server itself will: a port left in TIME_WAIT by a stopped instance is free.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
PY
}

cmd_install() {
  if [[ -f "$MARKER" ]]; then log "already installed ($LS_VENV)"; return 0; fi
  cache_lock "ls-venv-$LS_VERSION"
  if [[ -f "$MARKER" ]]; then log "installed by another clone meanwhile ($LS_VENV)"; return 0; fi
  mkdir -p "$RUN_DIR"
  [[ -x "$LS_VENV/bin/python" ]] || "$LS_PYTHON" -m venv "$LS_VENV"
  "$LS_VENV/bin/python" -m pip install --disable-pip-version-check -q "label-studio==$LS_VERSION"
  "$LS_VENV/bin/label-studio" --help >/dev/null  # fail now rather than at start
  touch "$MARKER"
  log "installed label-studio $LS_VERSION into $LS_VENV"
}

cmd_start() {
  [[ -f "$MARKER" ]] || die "not installed; run: $0 install"
  local launched=0
  if is_running; then
    if probe; then log "already running at $URL (pid $(cat "$PID_FILE"))"; return 0; fi
    log "pid $(cat "$PID_FILE") alive but $URL not answering yet; waiting"
  else
    rm -f "$PID_FILE"
    if probe; then die "something already answers at $URL but is not ours (no pid file); stop it or set LS_PORT"; fi
    if port_busy; then die "port $LS_PORT on $LS_HOST is busy; LS would silently move to another port. Set LS_PORT."; fi
    mkdir -p "$RUN_DIR" "$LS_DATA"
    (
      export LABEL_STUDIO_BASE_DATA_DIR="$LS_DATA"
      export LABEL_STUDIO_USERNAME="$LS_USERNAME" LABEL_STUDIO_PASSWORD="$LS_PASSWORD"
      export LABEL_STUDIO_USER_TOKEN="$LS_TOKEN"
      export LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true
      # Keep SSRF protection but drop 127/8 from the ban list so webhooks to our loopback Django work.
      export USE_DEFAULT_BANNED_SUBNETS=false
      export USER_ADDITIONAL_BANNED_SUBNETS=169.254.0.0/16,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10
      export LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true
      export COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false
      # Empty DSNs disable the Sentry error reporting LS ships enabled (offline machine, private data).
      export SENTRY_DSN= FRONTEND_SENTRY_DSN=
      # Generic USERNAME/PASSWORD/PORT are LS fallbacks; don't let the caller's leak in.
      # LS is its own Django project: none of evalgap's settings may leak into it.
      unset USERNAME PASSWORD PORT LABEL_STUDIO_PORT DJANGO_SETTINGS_MODULE DATABASE_URL CELERY_BROKER_URL \
        DATABASE_URL_FILE DATABASE_MIGRATE_URL_FILE DJANGO_SECRET_KEY DJANGO_SECRET_KEY_FILE SECRET_KEY
      exec setsid "$LS_VENV/bin/label-studio" start --no-browser \
        --internal-host "$LS_HOST" --port "$LS_PORT" --data-dir "$LS_DATA" \
        --username "$LS_USERNAME" --password "$LS_PASSWORD" \
        --user-token "$LS_TOKEN" --enable-legacy-api-token --log-level WARNING
    ) >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    launched=1
    log "starting (pid $(cat "$PID_FILE"), log $LOG_FILE)"
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if probe; then log "up at $URL"; return 0; fi
    if ! is_running; then
      tail -n 30 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      die "label-studio exited during startup (see $LOG_FILE)"
    fi
    if grep -qE "port $LS_PORT is (busy|in use)|Port $LS_PORT.*(busy|in use)" "$LOG_FILE" 2>/dev/null; then
      cmd_stop || true
      die "LS reports port $LS_PORT busy (it would move to another port); set LS_PORT"
    fi
    sleep 1
  done
  tail -n 30 "$LOG_FILE" >&2 || true
  ((launched)) && { cmd_stop || true; }
  die "no answer from $URL/api/version/ within ${START_TIMEOUT}s (LS may have moved ports; see $LOG_FILE)"
}

cmd_stop() {
  if ! is_running; then rm -f "$PID_FILE"; log "not running"; return 0; fi
  local pid; pid="$(cat "$PID_FILE")"
  # setsid made LS a process-group leader: signal its group only.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PID_FILE"; log "stopped"; return 0; }
    sleep 0.5
  done
  log "still alive after 15s; sending KILL"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
  rm -f "$PID_FILE"
  log "killed"
}

cmd_status() {
  if is_running && probe; then echo "running pid=$(cat "$PID_FILE") url=$URL"; return 0; fi
  if is_running; then echo "starting/unhealthy pid=$(cat "$PID_FILE") url=$URL"; return 1; fi
  echo "stopped"; return 3
}

cmd_env() {
  printf 'export LABEL_STUDIO_URL=%q\n' "$URL"
  printf 'export LABEL_STUDIO_API_KEY=%q\n' "$LS_TOKEN"
  printf 'export LABEL_STUDIO_USERNAME=%q\n' "$LS_USERNAME"
  printf 'export LABEL_STUDIO_PASSWORD=%q\n' "$LS_PASSWORD"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 {install|start|stop|status|env}" >&2; exit 2 ;;
esac
