#!/usr/bin/env bash
# The main job on embedded defaults: installs, migrates, creates the demo users, makes and imports the demo
# catalogs, fills the review queues from them, starts a Celery worker on the embedded broker and serves the
# site on http://127.0.0.1:8000/.
# With DATABASE_URL / REDIS_URL set it uses PostgreSQL / Redis instead.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-8000}"
HOST="${HOST:-127.0.0.1}"
DEMO_INSTANCES="${DEMO_INSTANCES:-60}"
DEMO_SEED="${DEMO_SEED:-7}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
export PYTHONUNBUFFERED=1

source scripts/venv.sh requirements.txt
DATA="${TWIN_DATA_DIR:-data}"
mkdir -p "$DATA/demo"

echo "== Migrating the database"
python manage.py migrate --no-input -v 0
echo "== Demo users"
python manage.py create_demo_users

echo "== Demo catalog 1: $DEMO_INSTANCES generated instances (seed $DEMO_SEED)"
python manage.py make_demo_catalog --instances "$DEMO_INSTANCES" --seed "$DEMO_SEED" --output "$DATA/demo/generated"
python manage.py import_catalog "$DATA/demo/generated/manifest.jsonl" --images-root "$DATA/demo/generated/images" \
  --source demo-generated --report "$DATA/demo/generated/import-report.json" --no-progress

echo "== Demo catalog 2: the real DreamBooth subset (20 instances, 105 photos)"
python manage.py make_folder_manifest annotation/demo_data/dreambooth_subset --output "$DATA/demo/dreambooth-manifest.jsonl"
python manage.py import_catalog "$DATA/demo/dreambooth-manifest.jsonl" --images-root annotation/demo_data/dreambooth_subset \
  --source dreambooth --report "$DATA/demo/dreambooth-import-report.json" --no-progress

echo "== Demo review tasks (a stand-in for mining until it exists; a rerun adds nothing)"
python manage.py make_demo_review_tasks --source demo-generated --ground-truth "$DATA/demo/generated/ground_truth.json" --seed "$DEMO_SEED"
python manage.py make_demo_review_tasks --source dreambooth --seed "$DEMO_SEED"

WORKER_PID=""
if [ "${CELERY_TASK_ALWAYS_EAGER:-0}" != "1" ]; then
  echo "== Starting a Celery worker (log: $DATA/worker.log)"
  celery -A config worker --loglevel INFO --concurrency 1 --pool threads >"$DATA/worker.log" 2>&1 &
  WORKER_PID=$!
  trap '[ -n "$WORKER_PID" ] && kill "$WORKER_PID" 2>/dev/null || true' EXIT INT TERM
fi

echo "== Serving on http://$HOST:$PORT/  (admin: http://$HOST:$PORT/admin/)  Ctrl-C stops."
python manage.py runserver "$HOST:$PORT" --noreload
