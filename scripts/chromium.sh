# Sourced by ./test: Debian's Chromium for the browser tests, installed with apt-get when missing.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium (browser tests)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
export ACCESS_DESK_CHROMIUM=/usr/bin/chromium
