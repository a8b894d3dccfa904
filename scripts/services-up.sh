#!/usr/bin/env bash
# Bring up the services profile on this machine: Airflow on PostgreSQL with CeleryExecutor
# (Redis broker), two Celery workers (queues cpu and gpu), and a local S3 server (moto, standing
# in for MinIO). Needs PostgreSQL and Redis running; everything else it starts in the background,
# with pid files and logs under $AIRLOOP_SERVICES_DIR (data/services). Stop with services-down.sh.
#
# Configuration is the profile file (profiles/$AIRLOOP_PROFILE.env, default "services");
# variables already in the environment win, as they do in airloop.core.config.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT}"
export PATH="$ROOT/.venv/bin:$PATH"
export AIRLOOP_PROFILE="${AIRLOOP_PROFILE:-services}"
source "$ROOT/scripts/services-env.sh"

say() { printf '[services-up] %s\n' "$*"; }
die() {
  printf '[services-up] ERROR: %s\n' "$*" >&2
  if [ "${STARTED_ANY:-0}" = 1 ]; then
    echo "[services-up] stopping what was started (logs stay in $SERVICES_DIR)" >&2
    bash "$ROOT/scripts/services-down.sh" >&2 || true
  fi
  exit 1
}

for name in $SERVICE_NAMES; do
  if service_alive "$name"; then
    die "$name is already running (pid $(cat "$SERVICES_DIR/$name.pid")); run scripts/services-down.sh first"
  fi
done

# 1. The servers we do not start must be there: a bounded check with one line per missing one.
say "checking PostgreSQL and Redis (timeout ${AIRLOOP_SERVICES_TIMEOUT_S}s each)"
timeout $((AIRLOOP_SERVICES_TIMEOUT_S * 6 + 20)) airloop services check --timeout "$AIRLOOP_SERVICES_TIMEOUT_S" \
  || die "a server the profile needs is not reachable (above). Nothing was started."
timeout 60 airloop services create-databases || die "could not create the databases"

# 2. The local S3 server (moto) on the endpoint's port, unless the endpoint is a real server.
if [ "${AIRLOOP_S3_LOCAL_SERVER:-none}" = moto ]; then
  s3_host=$(python -c 'import os,urllib.parse as u; print(u.urlsplit(os.environ["AIRLOOP_S3_ENDPOINT_URL"]).hostname)')
  s3_port=$(python -c 'import os,urllib.parse as u; print(u.urlsplit(os.environ["AIRLOOP_S3_ENDPOINT_URL"]).port)')
  STARTED_ANY=1
  start_service s3 moto_server -H "$s3_host" -p "$s3_port"
fi
timeout 60 bash -c 'until airloop services check --s3 --timeout 2 >/dev/null 2>&1; do sleep 1; done' \
  || die "the S3 server at $AIRLOOP_S3_ENDPOINT_URL did not answer within 60 s (log: $SERVICES_DIR/s3.log)"

# 3. Airflow's database, then Airloop's set-up (folders, source, bucket, pools, stages' steps).
say "migrating Airflow's database"
timeout 600 airflow db migrate >"$SERVICES_DIR/migrate.log" 2>&1 \
  || die "airflow db migrate failed (log: $SERVICES_DIR/migrate.log)"
say "running airloop setup"
timeout 900 python -m airloop setup 2>&1 | tee "$SERVICES_DIR/setup.log" | sed 's/^/  /'
[ "${PIPESTATUS[0]}" = 0 ] || die "airloop setup failed (log: $SERVICES_DIR/setup.log)"

# 4. Airflow's components, each in its own process group. The simple auth manager writes the
# generated admin password into the passwords file with the mode the umask gives (0644: world-
# readable); created here first as 0600, it keeps that mode (Airflow appends, never replaces).
passwords_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated}"
(umask 077; touch "$passwords_file")
chmod 600 "$passwords_file"
api_port="${AIRFLOW__API__PORT:-8080}"
STARTED_ANY=1
start_service api-server airflow api-server --port "$api_port" --workers 1
start_service scheduler airflow scheduler
start_service dag-processor airflow dag-processor
start_service triggerer airflow triggerer
# Two workers on one machine: distinct Celery node names and log-server ports. Each tells its
# tasks which queue it serves (AIRLOOP_WORKER_QUEUE: logs and tests show where a task ran).
AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="$CPU_WORKER_LOG_PORT" AIRLOOP_WORKER_QUEUE=cpu \
  start_service worker-cpu airflow celery worker --queues cpu --celery-hostname "cpu@%h"
AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="$GPU_WORKER_LOG_PORT" AIRLOOP_WORKER_QUEUE=gpu \
  start_service worker-gpu airflow celery worker --queues gpu --celery-hostname "gpu@%h" \
  --concurrency "${AIRLOOP_GPU_WORKER_CONCURRENCY:-1}"

# 5. Wait for the api-server, then make sure every process is still alive.
say "waiting for the api-server on port $api_port"
if ! timeout 180 bash -c "until curl -fsS http://127.0.0.1:$api_port/api/v2/monitor/health >/dev/null 2>&1; do sleep 2; done"; then
  die "the api-server did not answer within 180 s (log: $SERVICES_DIR/api-server.log)"
fi
for name in $SERVICE_NAMES; do
  [ "$name" = s3 ] && [ "${AIRLOOP_S3_LOCAL_SERVER:-none}" != moto ] && continue
  service_alive "$name" || die "$name exited during start-up (log: $SERVICES_DIR/$name.log)"
done

cat <<MSG

  Airloop services profile is up.
    Airflow UI       http://127.0.0.1:$api_port  (user admin; password in
                     $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)
    metadata DB      $(python -c 'import os; from airloop.core.config import redact_url; print(redact_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))')
    broker           $(python -c 'import os; from airloop.core.config import redact_url; print(redact_url(os.environ["AIRFLOW__CELERY__BROKER_URL"]))')
    workers          cpu@$(hostname) (queue cpu), gpu@$(hostname) (queue gpu)
    lake             $AIRLOOP_LAKE_URL via $AIRLOOP_S3_ENDPOINT_URL
    logs, pid files  $SERVICES_DIR/<service>.log, <service>.pid
    task logs        ${AIRFLOW__LOGGING__BASE_LOG_FOLDER:-$AIRFLOW_HOME/logs} (also in the UI)
  Stop with: make services-down   (or scripts/services-down.sh)

MSG
