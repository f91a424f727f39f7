# Sourced by ./dev and ./test: make the virtualenv and install the project when missing or out of date.
#
#   source scripts/venv.sh run    what running needs (./dev): the project and its dependencies
#   source scripts/venv.sh test   the same plus the [dev] extras (./test): pytest, ruff, mypy, Playwright
#
# The virtualenv is .venv/ (ACCESS_DESK_VENV names another folder). Each mode has its own stamp file
# named after pyproject.toml's hash, so the two share one virtualenv: a test install serves ./dev
# as it is, ./dev never removes the test tools, and ./test after ./dev adds them. Editing
# pyproject.toml makes both install again. pip's downloads are cached in .cache/pip (ignored by git).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PIP_CACHE_DIR="$root/.cache/pip" PIP_DISABLE_PIP_VERSION_CHECK=1
venv_mode="${1:-test}"
venv="${ACCESS_DESK_VENV:-$root/.venv}"
venv_shown="${venv#"$root"/}"
case "$venv_mode" in
  run) venv_spec="." ;;
  test) venv_spec=".[dev]" ;;
  *) echo "scripts/venv.sh: mode must be 'run' or 'test', not '$venv_mode'" >&2; exit 2 ;;
esac
venv_hash="$(sha256sum pyproject.toml | cut -c1-16)"
venv_stamp="$venv/.installed-$venv_mode-$venv_hash"
venv_test_stamp="$venv/.installed-test-$venv_hash"

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating the virtualenv $venv_shown (python3 -m venv, a few seconds)" >&2
  python3 -m venv "$venv"
fi
if [ ! -f "$venv_stamp" ] && [ ! -f "$venv_test_stamp" ]; then
  for old in "$venv"/.installed-*; do  # stamps of another pyproject.toml (or of older scripts)
    case "$old" in "$venv/.installed-run-$venv_hash" | "$venv_test_stamp") ;; *) rm -f "$old" ;; esac
  done
  if [ "$venv_mode" = run ]; then
    venv_what="Access Desk and what it needs to run (Flask, gunicorn, SQLAlchemy, cryptography...)"
  else
    venv_what="Access Desk and the test tools (pytest, ruff, mypy, Playwright, hypothesis...)"
  fi
  echo "==> [1/2] updating pip in $venv_shown (a few seconds)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  echo "==> [2/2] installing $venv_what into $venv_shown" >&2
  echo "    about a minute the first time, seconds once .cache/pip holds the downloads" >&2
  "$venv/bin/python" -m pip install --progress-bar on -e "$venv_spec"
  touch "$venv_stamp"
  echo "==> installed" >&2
fi
export PATH="$venv/bin:$PATH"
