#!/usr/bin/env bash
# Stop what services-up.sh started (pid files under $AIRLOOP_SERVICES_DIR), in reverse order:
# workers first (they finish their running tasks: Celery's warm shutdown), the S3 server last.
# PostgreSQL and Redis are not ours: they keep running, with their data.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT}"
export PATH="$ROOT/.venv/bin:$PATH"
export AIRLOOP_PROFILE="${AIRLOOP_PROFILE:-services}"
source "$ROOT/scripts/services-env.sh"

stopped_any=0
for name in $(echo "$SERVICE_NAMES" | tr ' ' '\n' | tac); do
  if [ -f "$SERVICES_DIR/$name.pid" ]; then
    case "$name" in worker-*) grace="${AIRLOOP_WORKER_STOP_GRACE_S:-60}" ;; *) grace=20 ;; esac
    stop_service "$name" "$grace"
    stopped_any=1
  fi
done
[ "$stopped_any" = 1 ] || echo "[services-down] nothing to stop (no pid files in $SERVICES_DIR)"
