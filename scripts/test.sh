#!/usr/bin/env bash
# The test suite, as `make test` (and CI) runs it. Services (PostgreSQL, Redis) are used when
# reachable and their tests skip with a reason when not; Debian's chromium is installed for the
# browser tests when apt is available, else those tests skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="$PWD"
export PATH="$PWD/.venv/bin:$PATH"
bash scripts/ensure-chromium.sh || true
bash scripts/ensure-services.sh || true
mkdir -p test-artifacts
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
