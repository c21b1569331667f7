#!/usr/bin/env bash
# Make sure a Redis answers at the configured URL (CELERIAC_REDIS_URL, default
# redis://127.0.0.1:6379). When none answers on this machine, start a local redis-server with
# AOF on and its data under ./data/, installing it with apt-get first when it is missing and we
# are root. Used by `make run` and `make test`.
set -euo pipefail

url="${CELERIAC_REDIS_URL:-redis://127.0.0.1:6379}"
hostport="${url#*://}"
hostport="${hostport##*@}"
hostport="${hostport%%/*}"
host="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=6379
[ -n "$host" ] || host=127.0.0.1

ping() {
  # RESP PING over bash's /dev/tcp: no client needed.
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port && printf 'PING\r\n' >&3 && head -c 7 <&3" 2>/dev/null \
    | grep -q -e PONG -e NOAUTH
}

if ping; then
  exit 0
fi

case "$host" in
  127.0.0.1|localhost|::1) ;;
  *)
    echo "error: no Redis answers at $host:$port (from CELERIAC_REDIS_URL); start it, or unset CELERIAC_REDIS_URL to use a local one" >&2
    exit 1 ;;
esac

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server is not installed; installing it with apt-get…" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  else
    cat >&2 <<MSG
error: no Redis answers at $host:$port and redis-server is not installed.
Install Redis 7 or later, then run this again:
  Debian/Ubuntu: sudo apt-get install redis-server
  macOS:         brew install redis
  Docker:        docker run -d -p 6379:6379 redis:7
MSG
    exit 1
  fi
fi

mkdir -p data
echo "starting redis-server on $host:$port (AOF on, data in ./data/, log in data/redis.log)" >&2
redis-server --port "$port" --bind 127.0.0.1 --appendonly yes --appendfsync everysec \
  --dir "$PWD/data" --daemonize yes --logfile "$PWD/data/redis.log" --pidfile "$PWD/data/redis.pid" >&2

for _ in $(seq 1 50); do
  if ping; then exit 0; fi
  sleep 0.1
done
echo "error: redis-server did not answer on $host:$port within 5 s; see data/redis.log" >&2
exit 1
