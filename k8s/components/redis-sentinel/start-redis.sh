#!/bin/sh
# One Redis of the set. It starts as a replica of the primary the sentinels name; when no sentinel
# answers (the whole set restarting), of the last primary its own pod's sentinel knew (kept on the data
# volume: after a failover that is not redis-0, whose older data must not win); on a first start, of redis-0.
set -eu
pw=$(cat "${AUTH_FILE:-/etc/redis-auth/password}")
conf=${CONF_DIR:-/conf}
data=${DATA_DIR:-/data}
me="$(hostname).yoco-redis-headless"
primary=""
for i in 0 1 2; do
  answer=$(REDISCLI_AUTH="$pw" redis-cli -h "redis-$i.yoco-redis-headless" -p 26379 SENTINEL get-master-addr-by-name yoco 2>/dev/null | head -n 1 || true)
  if [ -n "$answer" ]; then primary=$answer; break; fi
done
if [ -z "$primary" ] && [ -f "$data/sentinel.conf" ]; then
  primary=$(sed -n 's/^sentinel monitor yoco \([^ ]*\) .*/\1/p' "$data/sentinel.conf" | head -n 1)
fi
[ -n "$primary" ] || primary="redis-0.yoco-redis-headless"
cat > "$conf/redis.conf" <<CONF
port 6379
dir $data
appendonly yes
appendfsync always
save ""
requirepass $pw
masterauth $pw
min-replicas-to-write 1
min-replicas-max-lag 10
replica-serve-stale-data no
replica-announce-ip $me
CONF
if [ "$primary" != "$me" ]; then echo "replicaof $primary 6379" >> "$conf/redis.conf"; fi
exec redis-server "$conf/redis.conf"
