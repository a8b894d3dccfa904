#!/usr/bin/env bash
# Before the test suite: make PostgreSQL and Redis reachable on 127.0.0.1 when this machine has
# them installed but stopped (CI machines start them; this only helps when one went down), then
# say plainly whether the services tests (tests/deploy/test_services_profile.py, tests/e2e/test_services_e2e.py) will run
# or be skipped. Never fails the caller: the tests skip with the reason when a server is missing.
cd "$(dirname "$0")/.."
PY=.venv/bin/python

reachable() {  # reachable HOST PORT
  "$PY" -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()" "$1" "$2" 2>/dev/null
}

if ! reachable 127.0.0.1 5432 && [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "[services] PostgreSQL is not reachable: trying to start the local cluster"
  timeout 60 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 || true
fi
if ! reachable 127.0.0.1 6379 && command -v redis-server >/dev/null 2>&1; then
  echo "[services] Redis is not reachable: trying to start a local redis-server (no persistence)"
  timeout 30 redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null 2>&1 || true
  sleep 1
fi

missing=()
reachable 127.0.0.1 5432 || missing+=("PostgreSQL on 127.0.0.1:5432")
reachable 127.0.0.1 6379 || missing+=("Redis on 127.0.0.1:6379")
if [ ${#missing[@]} -eq 0 ]; then
  echo "[services] PostgreSQL and Redis reachable: the services-profile tests WILL RUN (tests/deploy/test_services_profile.py, tests/e2e/test_services_e2e.py)"
else
  echo "[services] SKIPPING the services-profile tests: not reachable: ${missing[*]}"
fi
exit 0
