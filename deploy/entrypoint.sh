#!/bin/sh
# The image's entry: the first argument picks the service (or `yoco` for the CLI); the rest is passed on
# (e.g. `shard --check-config`).
set -e
service=${1:-coordinator}
[ $# -gt 0 ] && shift
case "$service" in
  shard|coordinator|enroller|embedder) exec node "/app/services/$service/dist/main.js" "$@" ;;
  yoco) exec node /app/packages/cli/bin/yoco.js "$@" ;;
  *) echo "unknown service '$service': shard, coordinator, enroller, embedder or yoco" >&2; exit 2 ;;
esac
