# Sourced by services-up.sh and services-down.sh: export the profile to every process they start,
# and the helpers that start and stop one background service.
#
# The profile file is read line by line (KEY=VALUE, no shell expansion) and a variable already in
# the environment wins, exactly as airloop.core.config reads it, so both always agree.

profile_file="${AIRLOOP_ENV_FILE:-$ROOT/profiles/$AIRLOOP_PROFILE.env}"
if [ ! -f "$profile_file" ]; then
  echo "[services] ERROR: AIRLOOP_PROFILE=$AIRLOOP_PROFILE needs $profile_file, which does not exist" >&2
  exit 1
fi

export_env_file() {
  local line key value
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in ''|'#'*) continue ;; *=*) ;; *) continue ;; esac
    key="${line%%=*}"; key="${key%"${key##*[![:space:]]}"}"
    value="${line#*=}"; value="${value#"${value%%[![:space:]]*}"}"; value="${value%"${value##*[![:space:]]}"}"
    if [ -z "${!key+set}" ]; then export "$key=$value"; fi
  done <"$1"
}
export_env_file "$profile_file"

# Absolute folders for every component (Airflow 3.3.2 does not expand {AIRFLOW_HOME} in
# airflow.cfg: dags_folder there stays the literal string).
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$ROOT/plugins}"
export AIRFLOW__LOGGING__BASE_LOG_FOLDER="${AIRFLOW__LOGGING__BASE_LOG_FOLDER:-$ROOT/logs}"

SERVICES_DIR="${AIRLOOP_SERVICES_DIR:-data/services}"
case "$SERVICES_DIR" in /*) ;; *) SERVICES_DIR="$ROOT/$SERVICES_DIR" ;; esac
export AIRLOOP_SERVICES_DIR="$SERVICES_DIR"
mkdir -p "$SERVICES_DIR"
AIRLOOP_SERVICES_TIMEOUT_S="${AIRLOOP_SERVICES_TIMEOUT_S:-5}"
CPU_WORKER_LOG_PORT="${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-8793}"
GPU_WORKER_LOG_PORT="${AIRLOOP_GPU_WORKER_LOG_PORT:-$((CPU_WORKER_LOG_PORT + 2))}"

# Secrets every Airflow component must share (JWT for the task API, Fernet for connections).
# Generated once per machine, never committed.
secrets_file="$SERVICES_DIR/secrets.env"
if [ ! -f "$secrets_file" ]; then
  (umask 077; "$ROOT/.venv/bin/python" - >"$secrets_file" <<'PY'
import secrets
from cryptography.fernet import Fernet
print(f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(32)}")
print(f"AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}")
print(f"AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}")
PY
  )
fi
export_env_file "$secrets_file"

# Order matters: services-down stops them in reverse.
SERVICE_NAMES="s3 api-server scheduler dag-processor triggerer worker-cpu worker-gpu"

service_alive() {
  local pidfile="$SERVICES_DIR/$1.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# start_service NAME CMD...: run CMD in its own session (so stopping it stops its children),
# stdout and stderr to NAME.log, its pid (= process group id) in NAME.pid.
start_service() {
  local name="$1"; shift
  setsid "$@" >"$SERVICES_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$SERVICES_DIR/$name.pid"
  printf '[services-up] started %-13s pid %-7s log %s\n' "$name" "$!" "$SERVICES_DIR/$name.log"
}

# stop_service NAME [GRACE_S]: SIGTERM to the process group (Celery workers finish running tasks
# first: warm shutdown), SIGKILL after GRACE_S seconds.
stop_service() {
  local name="$1" grace="${2:-30}" pidfile="$SERVICES_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$grace" ]; do sleep 1; waited=$((waited + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[services-down] $name did not stop within ${grace}s: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "[services-down] stopped $name (pid $pid)"
  fi
  # Children that outlived the leader (same process group) go too.
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
}
