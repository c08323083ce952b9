"""Settings for the test suite: SQLite in memory unless DATABASE_URL is set, tasks run eagerly by default.

Tests that need a real worker start one on the configured broker (the filesystem broker, or Redis when
REDIS_URL is set) and switch eager mode off for themselves.
"""

import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import DATABASES, embedded_celery_broker, env

SECRET_KEY = "test-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
# The tests build tiny models with random weights; nothing is downloaded.
MINING_ALLOW_RANDOM_WEIGHTS = True
MINING_EMBED_WORKERS = env.int("TWIN_MINING_EMBED_WORKERS", default=0)
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# Serve static files from the app folders as in development; the tests never run collectstatic.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# Each test run gets its own data directory; the media root is reset per test by a fixture.
DATA_DIR = Path(tempfile.mkdtemp(prefix="twin-test-"))
MEDIA_ROOT = DATA_DIR / "media"
CATALOG_UPLOAD_DIR = DATA_DIR / "uploads"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["NAME"] = str(DATA_DIR / "test.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
if not env.str("REDIS_URL", default=""):
    CELERY_BROKER_TRANSPORT_OPTIONS, CELERY_RESULT_BACKEND = embedded_celery_broker(
        DATA_DIR, polling_interval=0.1
    )
# Each test process has its own cache (the rate limits' counters), cleared per test by a fixture; the API's
# rate limits are out of reach of the functional tests and tested on their own (tests/config/test_rate_limits.py).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "twin-tests"}}
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"anon": "100000/minute", "user": "100000/minute"}  # noqa: F405
