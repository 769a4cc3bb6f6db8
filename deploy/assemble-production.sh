#!/usr/bin/env bash
# Assembles YOCO's production tree in DEST from a built checkout (npm ci && npm run build):
# every workspace's package.json and dist/, the protos, the Lua scripts, the lock file; then
# `npm ci --omit=dev`, so only what the services declare as dependencies is there. The Dockerfile
# runs this; so does test/integration/production-tree.test.ts (which then starts every service
# from DEST), so a runtime dependency that only a root devDependency provided fails CI.
#   deploy/assemble-production.sh DEST [--offline]   (--offline: from npm's cache where it can, as tests do)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: assemble-production.sh DEST [--offline]}
mkdir -p "$dest"
cd "$src"
[[ -d packages/rpc/dist ]] || { echo "not built: run npm ci && npm run build first" >&2; exit 1; }
# The root manifest without its devDependencies and scripts: a production tree runs, it does not build.
node -e '
  const p = require("./package.json");
  delete p.devDependencies; p.scripts = {};
  require("fs").writeFileSync(process.argv[1] + "/package.json", JSON.stringify(p, null, 2) + "\n");
' "$dest"
cp package-lock.json .npmrc "$dest/"
cp -r proto "$dest/proto"
for ws in packages/* services/*; do
  mkdir -p "$dest/$ws"
  cp "$ws/package.json" "$dest/$ws/"
  cp -r "$ws/dist" "$dest/$ws/dist"
  [[ -d $ws/bin ]] && cp -r "$ws/bin" "$dest/$ws/bin"
  # Read at run time from src/: the store's Lua.
  [[ -d $ws/src/scripts ]] && mkdir -p "$dest/$ws/src" && cp -r "$ws/src/scripts" "$dest/$ws/src/scripts"
done
# Declarations, maps and build info are not needed to run.
find "$dest/packages" "$dest/services" \( -name '*.d.ts' -o -name '*.d.ts.map' -o -name '*.js.map' -o -name '.tsbuildinfo' \) -delete
cd "$dest"
offline=()
[[ ${2:-} == --offline ]] && offline=(--prefer-offline)
npm ci --omit=dev --no-audit --no-fund --loglevel=error "${offline[@]}"
