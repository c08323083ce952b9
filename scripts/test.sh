#!/usr/bin/env bash
# Installs what the tests need and runs them: on SQLite with the embedded broker, then (when DATABASE_URL and
# REDIS_URL are set) again on PostgreSQL and Redis. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
source scripts/venv.sh requirements-dev.txt

# Debian packages some tests use: Chromium for the browser tests (Playwright's own browser download needs a
# network these machines don't have), docker-compose 1.29 to validate the compose file (no Docker engine).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "== Installing Debian's ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
      || echo "!! could not install ${missing[*]}: the tests that need them will be skipped" >&2
  else
    echo "!! ${missing[*]} not installed and can't be installed here: the tests that need them will be skipped" >&2
  fi
fi

echo "== ruff"
ruff check .
ruff format --check .

echo "== Tests on SQLite, embedded broker"
env -u DATABASE_URL -u REDIS_URL python -m pytest "$@"

if [ -n "${DATABASE_URL:-}" ]; then
  echo "== Tests on $(echo "$DATABASE_URL" | sed -E 's#://[^@]*@#://#')${REDIS_URL:+ and Redis}"
  python -m pytest "$@"
fi
