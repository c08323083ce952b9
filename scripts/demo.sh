#!/usr/bin/env bash
# The main job on embedded defaults: installs, migrates, creates the demo users, makes and imports the demo
# catalogs, runs the mining pipeline on each (which fills the four review queues), starts a Celery worker on
# the embedded broker and serves the site on http://127.0.0.1:8000/.
# With DATABASE_URL / REDIS_URL set it uses PostgreSQL / Redis instead.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-8000}"
HOST="${HOST:-127.0.0.1}"
DEMO_INSTANCES="${DEMO_INSTANCES:-60}"
DEMO_SEED="${DEMO_SEED:-7}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
export PYTHONUNBUFFERED=1

source scripts/venv.sh requirements-ml.txt
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

# No CLIP or Stable Diffusion weights can be downloaded here, so the demo embeds with the weightless colour and
# layout descriptor and runs DreamBooth on tiny random-weight components (its images are noise: it shows the
# plumbing, not the quality). With weights at hand: DEMO_EMBEDDER=open_clip:ViT-B-32:laion2b_s34b_b79k and
# DEMO_DREAMBOOTH_MODEL=<Stable Diffusion folder or cached hub id> DEMO_DREAMBOOTH="" (the paper's settings).
DEMO_EMBEDDER="${DEMO_EMBEDDER:-descriptor}"
DEMO_DREAMBOOTH_MODEL="${DEMO_DREAMBOOTH_MODEL:-tiny-random}"
DEMO_DREAMBOOTH="${DEMO_DREAMBOOTH---set resolution=32 --set train_steps=20 --set inference_steps=4 --set instances_limit=4}"
export TWIN_MINING_ALLOW_RANDOM_WEIGHTS="${TWIN_MINING_ALLOW_RANDOM_WEIGHTS:-1}"
for SOURCE in demo-generated dreambooth; do
  echo "== Mining pipeline on $SOURCE: verification, embed ($DEMO_EMBEDDER), duplicates, hard negatives, DreamBooth ($DEMO_DREAMBOOTH_MODEL)"
  # shellcheck disable=SC2086  # DEMO_DREAMBOOTH is a list of options
  python manage.py mine pipeline --source "$SOURCE" --embedder "$DEMO_EMBEDDER" \
    --set model="$DEMO_DREAMBOOTH_MODEL" --set seed="$DEMO_SEED" $DEMO_DREAMBOOTH
done
echo "== Gold tasks from the ground truth (a rerun adds nothing)"
python manage.py make_demo_review_tasks --source demo-generated --ground-truth "$DATA/demo/generated/ground_truth.json" --seed "$DEMO_SEED" --gold-only
python manage.py make_demo_review_tasks --source dreambooth --seed "$DEMO_SEED" --gold-only

# One queue (DEMO_OVERLAP_QUEUE, "none" for none) gets two decisions per task from two simulated annotators who
# make mistakes (annotator-sim-a, annotator-sim-b), so the statistics page shows kappa and gold accuracy and the
# adjudication page has disputes; the oracles answer the other queues. More gold there, to catch the mistakes.
DEMO_OVERLAP_QUEUE="${DEMO_OVERLAP_QUEUE:-hard_negative}"
if [ "${DEMO_ANSWER_QUEUES:-1}" = "1" ]; then
  echo "== Simulated annotators answer the demo-generated queues from the ground truth (DEMO_ANSWER_QUEUES=0: leave them open)"
  if [ "$DEMO_OVERLAP_QUEUE" != "none" ]; then
    python manage.py make_demo_review_tasks --source demo-generated --ground-truth "$DATA/demo/generated/ground_truth.json" \
      --seed "$DEMO_SEED" --gold-only --kinds "$DEMO_OVERLAP_QUEUE" --gold-per-queue 12
  fi
  python manage.py answer_demo_tasks --source demo-generated --ground-truth "$DATA/demo/generated/ground_truth.json" \
    --seed "$DEMO_SEED" --overlap-queue "$DEMO_OVERLAP_QUEUE"
fi
echo "== Dataset snapshot twin-demo (frozen once), exported as verl, Hugging Face and plain archives"
python manage.py freeze_snapshot twin-demo --eval-fraction 0.2 --seed "$DEMO_SEED" --unless-frozen \
  --description "The demo catalogs as the simulated annotators left them."
python manage.py export_snapshot twin-demo verl huggingface plain
echo "== A draft training run that the CPU can carry out (a tiny random-weight Qwen2.5-VL): launch it in the admin"
python manage.py create_demo_training_run twin-demo
echo "== A small FGVQA from the demo catalogs, and a draft evaluation run of the tiny model: launch it in the admin"
python manage.py create_demo_evaluation twin-demo

WORKER_PID=""
if [ "${CELERY_TASK_ALWAYS_EAGER:-0}" != "1" ]; then
  echo "== Starting a Celery worker (log: $DATA/worker.log)"
  # One worker for both queues here; in production GPU nodes consume "gpu" (see README).
  celery -A config worker -Q celery,gpu --loglevel INFO --concurrency 1 --pool threads >"$DATA/worker.log" 2>&1 &
  WORKER_PID=$!
  trap '[ -n "$WORKER_PID" ] && kill "$WORKER_PID" 2>/dev/null || true' EXIT INT TERM
fi

echo "== Serving on http://$HOST:$PORT/  (admin: http://$HOST:$PORT/admin/)  Ctrl-C stops."
python manage.py runserver "$HOST:$PORT" --noreload
