#!/usr/bin/env bash
# Start Airflow standalone (api-server, scheduler, dag-processor, triggerer) on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="$PWD" PATH="$PWD/.venv/bin:$PATH"
cat <<MSG

  Airloop is starting: Airflow UI at http://localhost:8080
  Log in as user 'admin'; the password is printed below by Airflow and kept in
  $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
  DAGs start unpaused: ingest_flights processes yesterday's replayed flights right away.
  Stop with Ctrl-C.

MSG
exec airflow standalone
