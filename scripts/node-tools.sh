# Sourced by ./test: npm packages the tests use (@forge/manifest to validate manifest.yml, axe-core for
# accessibility checks; tslib, which @forge/manifest needs but does not declare), installed into .cache/node (ignored by git) when missing.
# Also the pinned tools that build static/vendor/forge-bridge.js (scripts/bridge/, npm ci), for the build check.
set -euo pipefail
node_dir="$root/.cache/node"
if [ ! -f "$node_dir/.installed-v2" ]; then
  command -v npm >/dev/null || { echo "npm is needed to validate manifest.yml; install Node.js 20+" >&2; exit 1; }
  echo "==> installing @forge/manifest and axe-core into .cache/node" >&2
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{"private": true}' > "$node_dir/package.json"
  (cd "$node_dir" && npm install --silent --no-audit --no-fund @forge/manifest@13 tslib@2 axe-core@4 >/dev/null)
  touch "$node_dir/.installed-v2"
fi
export ACCESS_DESK_NODE_MODULES="$node_dir/node_modules"
"$root/scripts/build-bridge.sh" --install
