"""Settings shared by every environment; everything that differs between machines comes from the environment.

Embedded defaults (no DATABASE_URL, no REDIS_URL): an SQLite file and a filesystem Celery broker under DATA_DIR,
so a fresh clone runs with nothing else installed. Production path: PostgreSQL and Redis from the environment.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("TWIN_DATA_DIR", default=str(BASE_DIR / "data"))).resolve()

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "jobs",
    "annotation",
    "mining",
    "training",
    "evaluation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.database_errors.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# --- Database ------------------------------------------------------------------------------------------

SQLITE_PATH = DATA_DIR / "twin.sqlite3"


def sqlite_database(path: Path | str) -> dict:
    """SQLite tuned for several processes (web, worker, command line) writing at once.

    WAL lets readers run beside one writer; IMMEDIATE transactions take the write lock at BEGIN, so two
    writers queue on the busy timeout instead of failing with "database is locked" on lock upgrade.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        },
    }


if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        # An SQLite file named by URL gets the same tuning as the embedded one.
        DATABASES = {"default": sqlite_database(DATABASES["default"]["NAME"])}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Parameters sent apart from the statement: psycopg then prepares a statement run five times on one
        # connection, and PostgreSQL stops parsing and planning the review page's statements on every answer.
        DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env.bool(
            "DATABASE_SERVER_SIDE_BINDING", default=True
        )
else:
    DATABASES = {"default": sqlite_database(SQLITE_PATH)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Auth ----------------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The signed-in user, their permissions and their session come from the shared cache, with the database behind
# it: the review page checks all three on every answer (config/permission_cache.py, config/sessions.py).
AUTHENTICATION_BACKENDS = ["config.permission_cache.CachedPermissionsBackend"]
SESSION_ENGINE = "config.sessions"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"


# --- Internationalization ------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True


# --- Static files and media ----------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]

MEDIA_URL = env.str("DJANGO_MEDIA_URL", default="/media/")
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(DATA_DIR / "media")))

# "filesystem" keeps media under MEDIA_ROOT; "s3" stores it in a bucket through django-storages. Nothing
# else in the code knows which one is in use: it only talks to django.core.files.storage.default_storage.
MEDIA_STORAGE = env.str("TWIN_MEDIA_STORAGE", default="filesystem")
if MEDIA_STORAGE == "s3":
    _media_backend = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
elif MEDIA_STORAGE == "filesystem":
    _media_backend = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
else:
    raise environ.ImproperlyConfigured(
        f"TWIN_MEDIA_STORAGE must be 'filesystem' or 's3', not {MEDIA_STORAGE!r}"
    )

STORAGES = {
    "default": _media_backend,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Uploads above this size are streamed to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024


# --- Catalog import ------------------------------------------------------------------------------------

# Server-side folders a researcher may import images from through the admin page. Paths outside these
# roots are refused, so the admin page can't be used to read arbitrary files on the server.
CATALOG_IMPORT_ROOTS = [
    Path(p).resolve()
    for p in env.list(
        "TWIN_IMPORT_ROOTS", default=[str(DATA_DIR / "incoming"), str(BASE_DIR / "annotation" / "demo_data")]
    )
]
# Where uploaded manifests and image archives are unpacked before an import job reads them.
CATALOG_UPLOAD_DIR = DATA_DIR / "uploads"
# Images larger than this many pixels are rejected before decoding (decompression bombs).
CATALOG_MAX_IMAGE_PIXELS = env.int("TWIN_MAX_IMAGE_PIXELS", default=40_000_000)
CATALOG_MAX_IMAGE_BYTES = env.int("TWIN_MAX_IMAGE_BYTES", default=50 * 1024 * 1024)
# Threads that read and decode images ahead of the database writes (decoding releases the GIL).
CATALOG_IMPORT_THREADS = env.int("TWIN_IMPORT_THREADS", default=4)
# Limits on an uploaded zip of images, checked before anything is extracted (zip bombs).
CATALOG_MAX_ZIP_UNCOMPRESSED_BYTES = env.int("TWIN_MAX_ZIP_BYTES", default=20 * 1024**3)
CATALOG_MAX_ZIP_ENTRIES = env.int("TWIN_MAX_ZIP_ENTRIES", default=2_000_000)


# --- Celery --------------------------------------------------------------------------------------------


def embedded_celery_broker(data_dir: Path, *, polling_interval: float) -> tuple[dict, str]:
    """Transport options of kombu's filesystem broker, and a file result backend, under ``data_dir``."""
    broker_dir = data_dir / "celery" / "broker"
    options = {
        "data_folder_in": str(broker_dir),
        "data_folder_out": str(broker_dir),
        "control_folder": str(data_dir / "celery" / "control"),
        "polling_interval": polling_interval,
    }
    return options, f"file://{data_dir / 'celery' / 'results'}"


REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
else:
    # Embedded broker: messages are files in a folder that a local worker polls. It needs no server, and a
    # job started from the admin page still runs in a real worker process, out of the web request.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS, CELERY_RESULT_BACKEND = embedded_celery_broker(
        DATA_DIR, polling_interval=0.5
    )

# The cache holds the rate limits' counters (login attempts, API requests), so every web process must share it:
# Redis in production, files under DATA_DIR otherwise. The rate limits let requests through when the cache is
# down (config/throttling.py), so Redis going away never takes the site with it.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.redis_cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "twin",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "KEY_PREFIX": "twin",
        }
    }

# Without a worker at all (CELERY_TASK_ALWAYS_EAGER=1) tasks run inside the caller; jobs are recorded the same.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
CELERY_TIMEZONE = TIME_ZONE


# A running job whose worker sent no progress for this long is taken to be dead; its redelivered task message
# (acks_late) then runs it again. Every stage reports progress well within this.
JOB_STALE_AFTER_SECONDS = env.int("TWIN_JOB_STALE_AFTER_SECONDS", default=600)
# The job monitor sends a queued job again when it has waited this long since its last send without starting (a
# lost message); a run waiting behind others on the GPU queue just gets a duplicate message, which is harmless.
JOB_RESEND_QUEUED_SECONDS = env.int("TWIN_JOB_RESEND_QUEUED_SECONDS", default=3600)


# --- Review queues -------------------------------------------------------------------------------------

# A claimed task is the annotator's for this long; the open review page renews it every heartbeat.
REVIEW_LEASE_SECONDS = env.int("TWIN_REVIEW_LEASE_SECONDS", default=120)
REVIEW_HEARTBEAT_SECONDS = env.int("TWIN_REVIEW_HEARTBEAT_SECONDS", default=30)
# Tasks an annotator holds per queue: the card on screen and the next one, already in the page.
REVIEW_HELD_TASKS = env.int("TWIN_REVIEW_HELD_TASKS", default=2)
# With no key pressed for this long the page stops renewing its leases, so an idle tab frees its tasks.
REVIEW_IDLE_SECONDS = env.int("TWIN_REVIEW_IDLE_SECONDS", default=600)


# --- Mining --------------------------------------------------------------------------------------------

# The default embedder: "open_clip:<model>:<pretrained tag or weights file>", or "descriptor" (the weightless
# colour and layout descriptor). open_clip looks for weights in TWIN_MODEL_CACHE_DIR (default: the Hugging Face
# cache); it never downloads inside a worker that has no network, and never falls back to random weights.
MINING_EMBEDDER = env.str("TWIN_MINING_EMBEDDER", default="open_clip:ViT-B-32:laion2b_s34b_b79k")
MINING_MODEL_CACHE_DIR = env.str("TWIN_MODEL_CACHE_DIR", default="") or None
# Random weights ("open_clip:<model>:random", DreamBooth "tiny-random") are refused unless this is set: the
# tests and the demo (which has no weights to load) set it; a production worker never should.
MINING_ALLOW_RANDOM_WEIGHTS = env.bool("TWIN_MINING_ALLOW_RANDOM_WEIGHTS", default=False)
MINING_DEVICE = env.str("TWIN_MINING_DEVICE", default="auto")
MINING_EMBED_BATCH_SIZE = env.int("TWIN_MINING_EMBED_BATCH_SIZE", default=64)
MINING_EMBED_WORKERS = env.int("TWIN_MINING_EMBED_WORKERS", default=2)  # image decoding processes
MINING_EMBED_CHUNK_SIZE = env.int("TWIN_MINING_EMBED_CHUNK_SIZE", default=1024)  # images per Celery task
# Nearest neighbours: exact blocked products up to this many vectors, FAISS HNSW above.
MINING_EXACT_SEARCH_MAX = env.int("TWIN_MINING_EXACT_SEARCH_MAX", default=200_000)
# DreamBooth base model: a folder in diffusers layout or a hub id already in the Hugging Face cache.
MINING_DREAMBOOTH_MODEL = env.str(
    "TWIN_MINING_DREAMBOOTH_MODEL", default="stable-diffusion-v1-5/stable-diffusion-v1-5"
)
# Queues: GPU work (CLIP embedding, DreamBooth) goes to its own queue, consumed by workers on GPU nodes.
MINING_GPU_QUEUE = env.str("TWIN_MINING_GPU_QUEUE", default="gpu")
MINING_CPU_QUEUE = env.str("TWIN_MINING_CPU_QUEUE", default="celery")
# A chunk whose worker sent no heartbeat for this long is taken to be lost and is given to another worker;
# the watchdog of a chunked job looks for that every MINING_WATCH_SECONDS.
MINING_CHUNK_STALE_SECONDS = env.int("TWIN_MINING_CHUNK_STALE_SECONDS", default=300)
MINING_WATCH_SECONDS = env.int("TWIN_MINING_WATCH_SECONDS", default=60)


# --- Training ------------------------------------------------------------------------------------------

# Training runs go to the GPU queue, one at a time per worker (see README: a GPU node runs
# "celery -A config worker -Q gpu --concurrency 1").
TRAINING_GPU_QUEUE = env.str("TWIN_TRAINING_GPU_QUEUE", default="gpu")
# Each run writes its data, checkpoints and full log under TRAINING_ROOT/run-<id>. With the Ray launcher this
# must be a filesystem that the cluster's nodes share with the worker (NFS, Lustre...).
TRAINING_ROOT = Path(env.str("TWIN_TRAINING_ROOT", default=str(DATA_DIR / "training"))).resolve()
# "local": the training command is a child process of the GPU worker; "ray": it is submitted to the Ray
# cluster at TRAINING_RAY_ADDRESS with the ray CLI (ray job submit), and its logs are followed from the worker.
TRAINING_LAUNCHER = env.str("TWIN_TRAINING_LAUNCHER", default="local")
TRAINING_RAY_ADDRESS = env.str("TWIN_RAY_ADDRESS", default="http://127.0.0.1:8265")
# The Python that runs the training command (a GPU node's venv with requirements-gpu.txt); the worker's own by
# default.
TRAINING_PYTHON = env.str("TWIN_TRAINING_PYTHON", default="") or None
# After a cancel, the training processes get this long to exit on SIGTERM before they are killed.
TRAINING_STOP_GRACE_SECONDS = env.int("TWIN_TRAINING_STOP_GRACE_SECONDS", default=20)
# The newest log lines of a run kept in the database for its page; the whole log is a file in the run folder.
TRAINING_LOG_LINES_KEPT = env.int("TWIN_TRAINING_LOG_LINES_KEPT", default=2000)


# --- Evaluation ----------------------------------------------------------------------------------------

# Evaluation runs load a model (vLLM or transformers) and go to the GPU queue like training runs; an
# OpenAI-compatible backend needs no GPU, but one queue keeps the order of runs simple.
EVALUATION_QUEUE = env.str("TWIN_EVALUATION_QUEUE", default="gpu")
# Building a benchmark reads a local copy of its source and embeds a sample of it: the CPU queue.
EVALUATION_BUILD_QUEUE = env.str("TWIN_EVALUATION_BUILD_QUEUE", default="celery")
# Where a worker keeps benchmark images downloaded from S3 (unused with the filesystem storage).
EVALUATION_CACHE_DIR = Path(
    env.str("TWIN_EVALUATION_CACHE_DIR", default=str(DATA_DIR / "evaluation-cache"))
).resolve()
# Benchmark sources must lie under one of these folders (":"-separated; empty: anywhere the worker can read),
# so that an admin form can't make a worker read arbitrary files.
EVALUATION_SOURCE_ROOTS = [
    Path(root).resolve() for root in env.str("TWIN_EVALUATION_SOURCE_ROOTS", default="").split(":") if root
]


# --- REST framework ------------------------------------------------------------------------------------

# API rate limits, per client: anonymous callers by address, signed-in ones (tokens, sessions) by user. An engineer
# paging through a snapshot at 100 pairs a page stays well under the user rate; a script gone wild does not.
API_RATE_ANONYMOUS = env.str("TWIN_API_RATE_ANONYMOUS", default="60/minute")
API_RATE_USER = env.str("TWIN_API_RATE_USER", default="1200/minute")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "config.throttling.AnonymousRateThrottle",
        "config.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": API_RATE_ANONYMOUS, "user": API_RATE_USER},
}

# Sign-in attempts: after LOGIN_MAX_FAILURES failed attempts for one user name from one address, or 5 times as
# many from one address, within LOGIN_WINDOW_SECONDS, the sign-in page refuses (429) until the window passes.
LOGIN_MAX_FAILURES = env.int("TWIN_LOGIN_MAX_FAILURES", default=10)
LOGIN_WINDOW_SECONDS = env.int("TWIN_LOGIN_WINDOW_SECONDS", default=900)

SPECTACULAR_SETTINGS = {
    "TITLE": "TWIN data engine API",
    "DESCRIPTION": (
        'The TWIN dataset: frozen snapshots of "same object instance?" image pairs, their instances and '
        "images, and their exports. Authenticate with a token (header `Authorization: Token <key>`) or a "
        "session; researchers and API users only."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
}


# --- Logging -------------------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}
