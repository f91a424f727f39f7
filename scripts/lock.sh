#!/usr/bin/env bash
# Writes the Python lock files from pyproject.toml: the exact version of every package, direct or
# transitive, for each of the two installs scripts/venv.sh makes (and the Dockerfile, and CI through
# ./test):
#   requirements/run.lock    [project].dependencies: what running needs (./dev, the Docker image)
#   requirements/test.lock   the same plus the [dev] extra: the test tools (./test)
# Resolved by uv (`uv pip compile`, the version below, installed into .cache/lock-tools) for every
# platform and every Python pyproject.toml allows (--universal: a package only some platforms need
# carries its marker). Shared packages get the same version in both files (run.lock is resolved
# within test.lock), so ./dev and ./test can share one .venv. No hashes: pip also installs from
# local wheel folders where a machine has them.
#   scripts/lock.sh                          keep every locked version that still fits, add and drop
#                                            what pyproject.toml changed (run it after editing it)
#   scripts/lock.sh --upgrade                every package to the newest version pyproject.toml allows
#   scripts/lock.sh --upgrade-package NAME   that package only (and what it needs)
# tests/packaging/test_locks.py fails while pyproject.toml and the lock files disagree.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
uv_version="0.13.8"
tools="$root/.cache/lock-tools"
if [ "$("$tools/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
  echo "==> installing uv $uv_version into .cache/lock-tools" >&2
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
fi
compile() {  # compile OUTPUT [uv pip compile options...]
  local out="$1"
  shift
  echo "==> $out" >&2
  "$tools/bin/uv" pip compile pyproject.toml --universal --quiet --no-progress \
    --custom-compile-command "scripts/lock.sh" --output-file "$out" "$@"
}
compile requirements/test.lock --extra dev "$@"
compile requirements/run.lock --constraints requirements/test.lock "$@"
