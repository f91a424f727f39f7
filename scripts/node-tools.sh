# Sourced by ./test: the npm packages the tests use, at the exact versions of
# scripts/node-tools/package-lock.json (package.json says what each is for): @forge/manifest to
# validate manifest.yml (and tslib, which it needs but does not declare), axe-core for accessibility
# checks, TypeScript to check the panel's JavaScript (static/jsconfig.json). Installed with `npm ci`
# into .cache/node (ignored by git) when missing, or again when package.json or the lock changes.
# Also the pinned tools that build static/vendor/forge-bridge.js (scripts/bridge/, npm ci), for the build check.
set -euo pipefail
node_dir="$root/.cache/node"
node_tools="$root/scripts/node-tools"
node_stamp="$node_dir/.installed-$(cat "$node_tools/package.json" "$node_tools/package-lock.json" | sha256sum | cut -c1-16)"
if [ ! -f "$node_stamp" ]; then
  command -v npm >/dev/null || { echo "npm is needed for the test tools (manifest check, axe-core, tsc); install Node.js 20+" >&2; exit 1; }
  echo "==> installing @forge/manifest, axe-core and TypeScript into .cache/node (npm ci)" >&2
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp "$node_tools/package.json" "$node_tools/package-lock.json" "$node_dir/"
  # --ignore-scripts: no package runs code at install (none of these needs to).
  (cd "$node_dir" && npm ci --silent --ignore-scripts --no-audit --no-fund >/dev/null)
  touch "$node_stamp"
fi
export ACCESS_DESK_NODE_MODULES="$node_dir/node_modules"
"$root/scripts/build-bridge.sh" --install
