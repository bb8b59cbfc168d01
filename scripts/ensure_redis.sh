#!/usr/bin/env bash
# Makes sure Redis answers on 127.0.0.1:6379 (the Celery broker for the scale-out tests).
set -uo pipefail
ping() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
ping && exit 0
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) >&2 || true
fi
if command -v redis-server >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2 || true
fi
for _ in $(seq 1 20); do ping && exit 0; sleep 0.5; done
echo "Redis is not reachable on 127.0.0.1:6379" >&2
exit 1
