#!/usr/bin/env bash
# Print the path of a Chromium the browser tests can drive, installing Debian's package first when
# there is none. Playwright's own browser download (`playwright install`) needs network this
# machine does not have; Debian's chromium comes from the package mirror.
set -euo pipefail

find_chromium() {
  command -v chromium || command -v chromium-browser || true
}

path=$(find_chromium)
if [ -z "$path" ]; then
  echo "chromium: not found, installing with apt-get" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
  path=$(find_chromium)
fi
if [ -z "$path" ]; then
  echo "chromium: still not found after apt-get install chromium" >&2
  exit 1
fi
echo "$path"
