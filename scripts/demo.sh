#!/usr/bin/env bash
# Start Airflow standalone (api-server, scheduler, dag-processor, triggerer) on SQLite.
#
# A demo, closed by default: its secrets and the login's password file are readable by their
# owner only (0600), and connections and variables are encrypted with a Fernet key. The login is
# Airflow's simple auth manager, which is for this demo only (see the README's "Production").
# AIRLOOP_DEMO_PREPARE_ONLY=1 prepares all that and stops before seeding and starting Airflow.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="$PWD" PATH="$PWD/.venv/bin:$PATH"

# Every component must sign and verify task tokens with the same secret; without one set,
# each process makes its own and tasks are refused ("Signature verification failed").
# Generated once per checkout under data/ (git-ignored), never committed.
secrets_file="data/airflow-secrets.env"
mkdir -p data
if [ ! -f "$secrets_file" ]; then
  (umask 077; python - >"$secrets_file" <<'PY'
import secrets
print(f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(32)}")
print(f"AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}")
PY
  )
fi
# Connections and variables are stored encrypted only with a Fernet key. A key already in the
# environment wins; otherwise one is made once per checkout, beside the other secrets.
if [ -z "${AIRFLOW__CORE__FERNET_KEY:-}" ] && ! grep -q '^AIRFLOW__CORE__FERNET_KEY=.' "$secrets_file"; then
  (umask 077; python -c 'from cryptography.fernet import Fernet; print(f"AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}")' >>"$secrets_file")
fi
chmod 600 "$secrets_file"  # also a file made by an older checkout, before this was enforced
fernet_from_env="${AIRFLOW__CORE__FERNET_KEY:-}"
set -a; source "$secrets_file"; set +a
export AIRFLOW__CORE__FERNET_KEY="${fernet_from_env:-$AIRFLOW__CORE__FERNET_KEY}"
fernet_source="${fernet_from_env:+the environment}"

# The simple auth manager writes the generated admin password into this file, with the mode the
# umask gives (0644: world-readable). Created here first as 0600, it keeps that mode: Airflow
# appends to the file, it does not replace it.
passwords_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated}"
(umask 077; touch "$passwords_file")
chmod 600 "$passwords_file"

if [ -n "${AIRLOOP_DEMO_PREPARE_ONLY:-}" ]; then
  echo "demo prepared: $secrets_file and $passwords_file (mode 600), Fernet key from ${fernet_source:-$secrets_file}"
  exit 0
fi

# The replayed calendar: the source's year shifted (by whole weeks) so that yesterday has data,
# with the seed's weeks and training window before it. Chosen once per checkout and kept in
# data/replay.env, because the lake's partitions are named by it; AIRLOOP_REPLAY_OFFSET_DAYS in
# the environment wins. Until 2026-12-29 this is the default calendar the README uses.
replay_file="data/replay.env"
if [ -z "${AIRLOOP_REPLAY_OFFSET_DAYS:-}" ]; then
  [ -f "$replay_file" ] || airloop replay-offset --write "$replay_file" >/dev/null || echo "Keeping the default replay offset"
  if [ -f "$replay_file" ]; then set -a; source "$replay_file"; set +a; fi
fi

# A living loop from the first screen: the history the DAGs read (the features' raw lookback,
# feature days, a first champion, a scored and monitored week up to yesterday), made with the
# same library calls as the DAGs, in one process, before Airflow starts. A second run finds it
# in place. AIRLOOP_DEMO_SEED=0 starts Airflow on an empty lake instead.
if [ "${AIRLOOP_DEMO_SEED:-1}" != "0" ]; then
  echo "Seeding the history the DAGs need (a few minutes; progress below; AIRLOOP_DEMO_SEED=0 skips it)"
  started=$SECONDS
  if airloop seed; then
    echo "Seeded in $((SECONDS - started)) s"
  else
    echo "Seeding stopped after $((SECONDS - started)) s (the reason is above); Airflow starts anyway"
  fi
fi

# OpenLineage: every task's inputs and outputs (lake URIs, model versions) as events, written by
# the provider's file transport under the Airflow home; `airloop lineage ... --events` reads them.
# airflow.cfg cannot name a path under $AIRFLOW_HOME (3.3 does not expand it), so it is set here.
# A transport already in the environment (HTTP to a lineage server, docs/lineage.md) wins.
if [ -z "${AIRFLOW__OPENLINEAGE__TRANSPORT:-}" ]; then
  export AIRFLOW__OPENLINEAGE__TRANSPORT="{\"type\": \"file\", \"log_file_path\": \"$AIRFLOW_HOME/logs/openlineage/events\"}"
  mkdir -p "$AIRFLOW_HOME/logs/openlineage"
fi

cat <<MSG

  Airloop is starting: Airflow UI at http://localhost:8080
  Log in as user 'admin'; the password is printed below by Airflow and kept in
  $passwords_file (readable by you only)
  DAGs start unpaused: ingest_flights processes yesterday's replayed flights right away;
  the seeded history lets features, scoring and monitoring run green from the first night.
  Stop with Ctrl-C.

MSG
exec airflow standalone
