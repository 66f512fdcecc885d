#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and RabbitMQ answer on 127.0.0.1; start them when they are installed but down.
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

wait_for() {  # wait_for <check> <seconds>: by the clock, as a check may itself take seconds
  local until=$((SECONDS + $2))
  while ((SECONDS < until)); do "$1" && return 0; sleep 0.1; done
  "$1"
}

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is down; starting it" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  wait_for pg_up 30 || {
    echo "error: PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started." >&2
    echo "       Install it (apt-get install postgresql) or start it, with trust auth for user postgres." >&2
    exit 1
  }
fi

if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "Redis is down; starting it" >&2
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  wait_for redis_up 20 || {
    echo "error: Redis is not reachable on 127.0.0.1:6379 and could not be started." >&2
    echo "       Install it (apt-get install redis-server) or start it." >&2
    exit 1
  }
fi

# RabbitMQ: the broker destination's tests publish to it (guest/guest on 127.0.0.1:5672).
rabbitmq_up() {
  timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672' 2>/dev/null || return 1
  ! command -v rabbitmq-diagnostics >/dev/null 2>&1 || timeout 10 rabbitmq-diagnostics -q ping >/dev/null 2>&1
}

if ! rabbitmq_up; then
  rabbitmq_wait=2  # not installed: nothing to wait for
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is down; starting it" >&2
    rabbitmq_wait=60
    rabbitmq-server -detached >/dev/null 2>&1 || true
    # A node that runs with its app stopped (rabbitmqctl stop_app) only needs the app started.
    command -v rabbitmqctl >/dev/null 2>&1 && timeout 20 rabbitmqctl -q start_app >/dev/null 2>&1 || true
  fi
  wait_for rabbitmq_up "$rabbitmq_wait" || {
    echo "error: RabbitMQ is not reachable on 127.0.0.1:5672 and could not be started." >&2
    echo "       Install it (apt-get install rabbitmq-server) or start it, with the guest account allowed from localhost." >&2
    exit 1
  }
fi
