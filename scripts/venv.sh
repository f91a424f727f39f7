# Sourced by ./dev and ./test: make the virtualenv and install the project when missing or out of date.
#
#   source scripts/venv.sh run    what running needs (./dev): requirements/run.lock, then the project
#   source scripts/venv.sh test   the same plus the [dev] extra (./test): requirements/test.lock
#                                 (pytest, ruff, mypy, Playwright...), then the project
#
# Every package comes at the exact version its lock file names (scripts/lock.sh writes them from
# pyproject.toml); the project itself is then installed editable with --no-deps, and `pip check`
# makes sure nothing it needs is missing (a lock older than pyproject.toml).
# The virtualenv is .venv/ (ACCESS_DESK_VENV names another folder). Each mode has its own stamp file
# named after the hash of pyproject.toml and both lock files, so the two share one virtualenv: a
# test install serves ./dev as it is, ./dev never removes the test tools, and ./test after ./dev
# adds them. Editing pyproject.toml or a lock makes both install again. pip's downloads are cached
# in .cache/pip (ignored by git).
#
# Progress: one line per step. On a terminal pip's output is kept in <virtualenv>/pip.log and its
# latest step shows on one line that is rewritten in place (the whole log is printed if pip fails);
# elsewhere (CI, a pipe) pip's output is printed as it comes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PIP_CACHE_DIR="$root/.cache/pip" PIP_DISABLE_PIP_VERSION_CHECK=1
venv_mode="${1:-test}"
venv="${ACCESS_DESK_VENV:-$root/.venv}"
venv_shown="${venv#"$root"/}"
case "$venv_mode" in
  run | test) venv_lock="requirements/$venv_mode.lock" ;;
  *) echo "scripts/venv.sh: mode must be 'run' or 'test', not '$venv_mode'" >&2; exit 2 ;;
esac
venv_hash="$(cat pyproject.toml requirements/run.lock requirements/test.lock | sha256sum | cut -c1-16)"
venv_stamp="$venv/.installed-$venv_mode-$venv_hash"
venv_test_stamp="$venv/.installed-test-$venv_hash"

venv_status_line() {  # pip's output in, its latest step out, rewritten in place on one line
  local line columns width
  columns="$(stty size <&2 2>/dev/null | cut -d' ' -f2)"
  width=$((${columns:-80} > 20 ? ${columns:-80} - 6 : 74))
  while IFS= read -r line; do
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in
      Collecting* | Processing* | Downloading* | "Using cached"* | Building* | Installing* | Successfully*)
        printf '\r\033[K    %s' "${line:0:$width}" >&2 ;;
    esac
  done
  printf '\r\033[K' >&2
}

venv_pip() {  # pip install "$@", showing progress as the header says
  if [ ! -t 2 ]; then
    "$venv/bin/python" -m pip install "$@"
    return
  fi
  if ! "$venv/bin/python" -m pip install --progress-bar off "$@" 2>&1 | tee "$venv/pip.log" | venv_status_line; then
    echo "pip failed; its output (also in $venv_shown/pip.log):" >&2
    cat "$venv/pip.log" >&2
    return 1
  fi
}

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
  venv_started=$SECONDS
  echo "==> [1/2] updating pip in $venv_shown (a few seconds)" >&2
  venv_pip --quiet --upgrade pip
  echo "==> [2/2] installing $venv_what into $venv_shown ($venv_lock)" >&2
  echo "    about a minute the first time, seconds once .cache/pip holds the downloads" >&2
  venv_pip -r "$venv_lock"
  venv_pip --no-deps -e .
  if ! venv_check="$("$venv/bin/python" -m pip check 2>&1)"; then
    echo "$venv_check" >&2
    echo "pip check: a package lacks what it needs. Is $venv_lock older than pyproject.toml? Then" \
      "run scripts/lock.sh (README, \"Pinned versions\"). Else delete $venv_shown and try again." >&2
    exit 1
  fi
  touch "$venv_stamp"
  echo "==> installed in $((SECONDS - venv_started)) s" >&2
fi
export PATH="$venv/bin:$PATH"
