#!/usr/bin/env bash
# Start Airflow standalone (api-server, scheduler, dag-processor, triggerer) on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="$PWD" PATH="$PWD/.venv/bin:$PATH"

# Every component must sign and verify task tokens with the same secret; without one set,
# each process makes its own and tasks are refused ("Signature verification failed").
# Generated once per checkout under data/ (git-ignored), never committed.
secrets_file="data/airflow-secrets.env"
if [ ! -f "$secrets_file" ]; then
  mkdir -p data
  (umask 077; python - >"$secrets_file" <<'PY'
import secrets
print(f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(32)}")
print(f"AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}")
PY
  )
fi
set -a; source "$secrets_file"; set +a

cat <<MSG

  Airloop is starting: Airflow UI at http://localhost:8080
  Log in as user 'admin'; the password is printed below by Airflow and kept in
  $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
  DAGs start unpaused: ingest_flights processes yesterday's replayed flights right away.
  Stop with Ctrl-C.

MSG
exec airflow standalone
