#!/usr/bin/env bash
# Installs what the tests need and runs them: on SQLite with the embedded broker, then (when DATABASE_URL and
# REDIS_URL are set) again on PostgreSQL and Redis. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
source scripts/venv.sh requirements-dev.txt

echo "== ruff"
ruff check .
ruff format --check .

echo "== Tests on SQLite, embedded broker"
env -u DATABASE_URL -u REDIS_URL python -m pytest "$@"

if [ -n "${DATABASE_URL:-}" ]; then
  echo "== Tests on $(echo "$DATABASE_URL" | sed -E 's#://[^@]*@#://#')${REDIS_URL:+ and Redis}"
  python -m pytest "$@"
fi
