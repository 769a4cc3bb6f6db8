#!/bin/sh
# One sentinel. Its file lives on the pod's data volume, where Sentinel rewrites it as it learns the
# topology: a sentinel that restarts (or the whole set) resumes from what it last knew. On a first
# start it watches the primary its peers name, or redis-0.
set -eu
pw=$(cat "${AUTH_FILE:-/etc/redis-auth/password}")
data=${DATA_DIR:-/data}
me="$(hostname).yoco-redis-headless"
if [ ! -f "$data/sentinel.conf" ]; then
  primary=""
  for i in 0 1 2; do
    answer=$(REDISCLI_AUTH="$pw" redis-cli -h "redis-$i.yoco-redis-headless" -p 26379 SENTINEL get-master-addr-by-name yoco 2>/dev/null | head -n 1 || true)
    if [ -n "$answer" ]; then primary=$answer; break; fi
  done
  [ -n "$primary" ] || primary="redis-0.yoco-redis-headless"
  cat > "$data/sentinel.conf.new" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $me
requirepass $pw
sentinel monitor yoco $primary 6379 2
sentinel auth-pass yoco $pw
sentinel down-after-milliseconds yoco 5000
sentinel failover-timeout yoco 60000
sentinel parallel-syncs yoco 1
CONF
  mv "$data/sentinel.conf.new" "$data/sentinel.conf"
fi
exec redis-server "$data/sentinel.conf" --sentinel
