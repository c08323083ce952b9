"""Settings read from the environment, checked in fresh processes (settings are read once per process).

Every subprocess starts from the inherited environment with the project's own variables removed, so a
DATABASE_URL or REDIS_URL of the test run itself can't leak into what is checked, and gets a data folder of
its own under tmp_path.
"""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.utils import get_random_secret_key

ROOT = Path(__file__).resolve().parents[2]
PROJECT_VARIABLES = ("DJANGO_", "DATABASE_", "REDIS_", "TWIN_", "AWS_", "CELERY_")
POSTGRES_URL = "postgres://twin:s3cret@db.example.org:5433/twin"


class ProcessEnv(dict):
    """A subprocess's environment that shows only the project's variables in failure reports."""

    def __repr__(self) -> str:
        return repr({name: value for name, value in self.items() if name.startswith(PROJECT_VARIABLES)})


def project_env(
    tmp_path: Path, settings_module: str = "config.settings.local", **variables: str
) -> ProcessEnv:
    env = ProcessEnv(
        (name, value) for name, value in os.environ.items() if not name.startswith(PROJECT_VARIABLES)
    )
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    env["TWIN_DATA_DIR"] = str(tmp_path / "data")
    env.update(variables)
    return env


def run_python(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def run_script(script: str, env: dict) -> dict:
    """Runs the script after django.setup() and returns what it printed as JSON on its last line."""
    completed = run_python(["-c", "import json\nimport django\ndjango.setup()\n" + script], env)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def start_up_error(completed: subprocess.CompletedProcess) -> str:
    """The ImproperlyConfigured message a process stopped with."""
    assert completed.returncode != 0, completed.stdout + completed.stderr
    match = re.search(
        r"^django\.core\.exceptions\.ImproperlyConfigured: (.+)$", completed.stderr, re.MULTILINE
    )
    assert match, completed.stderr
    return match[1]


# --- Production settings --------------------------------------------------------------------------------


def production_env(tmp_path: Path, **variables: str) -> ProcessEnv:
    required = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "twin.example.org,www.twin.example.org",
        "DATABASE_URL": POSTGRES_URL,
    }
    return project_env(tmp_path, "config.settings.production", **{**required, **variables})


def deploy_check(env: dict) -> subprocess.CompletedProcess:
    return run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)


def test_production_deploy_check_passes_with_the_required_environment(tmp_path: Path):
    completed = deploy_check(production_env(tmp_path))

    assert completed.returncode == 0, completed.stderr
    assert "System check identified no issues" in completed.stdout


def test_production_ignores_a_debug_flag_in_the_environment(tmp_path: Path):
    env = production_env(tmp_path, DJANGO_DEBUG="true")

    assert deploy_check(env).returncode == 0
    assert run_script("from django.conf import settings; print(json.dumps(settings.DEBUG))", env) is False


def test_production_deploy_check_fails_on_a_weakened_security_setting(tmp_path: Path):
    """The check really runs at WARNING level: turning HSTS off is enough to fail it."""
    completed = deploy_check(production_env(tmp_path, DJANGO_SECURE_HSTS_SECONDS="0"))

    assert completed.returncode != 0
    assert "security.W004" in completed.stderr


@pytest.mark.parametrize("name", ["DJANGO_SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS"])
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_production_refuses_to_start_without_a_required_variable(tmp_path: Path, name: str, how: str):
    env = production_env(tmp_path)
    if how == "unset":
        del env[name]
    else:
        env[name] = ""

    completed = deploy_check(env)

    assert name in start_up_error(completed)


@pytest.mark.parametrize(
    "key",
    ["x" * 49 + "y", "".join(secrets.choice("abcd") for _ in range(60))],
    ids=["short", "few-characters"],
)
def test_production_refuses_a_weak_secret_key(tmp_path: Path, key: str):
    assert "DJANGO_SECRET_KEY" in start_up_error(
        deploy_check(production_env(tmp_path, DJANGO_SECRET_KEY=key))
    )


def test_production_takes_the_secret_key_as_written_even_when_it_starts_with_a_dollar(tmp_path: Path):
    """Django's own key generator uses "$"; django-environ would read "$name" as a reference to a variable."""
    key = "$" + get_random_secret_key()
    env = production_env(tmp_path, DJANGO_SECRET_KEY=key)

    assert deploy_check(env).returncode == 0
    printed = run_script("from django.conf import settings; print(json.dumps(settings.SECRET_KEY))", env)
    assert printed == key


def test_production_reads_hosts_and_database_from_the_environment(tmp_path: Path):
    printed = run_script(
        "from django.conf import settings\n"
        "db = settings.DATABASES['default']\n"
        "print(json.dumps([settings.ALLOWED_HOSTS, db['ENGINE'], db['HOST'], db['PORT'], db['NAME'],"
        " settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT]))",
        production_env(tmp_path),
    )

    assert printed == [
        ["twin.example.org", "www.twin.example.org"],
        "django.db.backends.postgresql",
        "db.example.org",
        5433,
        "twin",
        True,
        True,
        True,
    ]


# --- The database follows DATABASE_URL --------------------------------------------------------------------

DATABASE_SCRIPT = """
import json, sqlite3
from django.conf import settings
from django.db import connection, transaction

db = settings.DATABASES["default"]
keys = ("ENGINE", "NAME", "HOST", "PORT", "OPTIONS", "CONN_MAX_AGE", "CONN_HEALTH_CHECKS")
out = {key: db.get(key) for key in keys}
if db["ENGINE"] == "django.db.backends.sqlite3":
    with connection.cursor() as cursor:
        out["journal_mode"] = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        out["foreign_keys"] = cursor.execute("PRAGMA foreign_keys").fetchone()[0]
        out["busy_timeout"] = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
    # IMMEDIATE: an atomic block holds the write lock from BEGIN on, before it writes anything, so a second
    # writer waits (here: gives up at once) instead of both failing later on lock upgrade.
    with transaction.atomic():
        other = sqlite3.connect(db["NAME"], timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            out["second_writer"] = "got the write lock"
            other.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            out["second_writer"] = str(exc)
        finally:
            other.close()
print(json.dumps(out))
"""


def test_without_database_url_the_database_is_a_tuned_sqlite_file(tmp_path: Path):
    printed = run_script(DATABASE_SCRIPT, project_env(tmp_path))

    assert printed["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(printed["NAME"]) == (tmp_path / "data" / "twin.sqlite3").resolve()
    assert Path(printed["NAME"]).is_file()
    assert printed["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert printed["OPTIONS"]["timeout"] >= 5
    assert "journal_mode=WAL" in printed["OPTIONS"]["init_command"]
    assert printed["journal_mode"] == "wal"
    assert printed["foreign_keys"] == 1
    assert printed["busy_timeout"] == printed["OPTIONS"]["timeout"] * 1000
    assert printed["second_writer"] == "database is locked"


def test_with_a_postgres_database_url_the_database_is_postgres(tmp_path: Path):
    printed = run_script(DATABASE_SCRIPT, project_env(tmp_path, DATABASE_URL=POSTGRES_URL))

    assert printed["ENGINE"] == "django.db.backends.postgresql"
    assert (printed["HOST"], printed["PORT"], printed["NAME"]) == ("db.example.org", 5433, "twin")
    assert printed["CONN_MAX_AGE"] == 60
    assert printed["CONN_HEALTH_CHECKS"] is True
    assert not (tmp_path / "data" / "twin.sqlite3").exists()


def test_database_connection_age_comes_from_the_environment(tmp_path: Path):
    printed = run_script(
        DATABASE_SCRIPT, project_env(tmp_path, DATABASE_URL=POSTGRES_URL, DATABASE_CONN_MAX_AGE="0")
    )

    assert printed["CONN_MAX_AGE"] == 0


def test_an_sqlite_database_url_gets_the_same_tuning(tmp_path: Path):
    path = tmp_path / "elsewhere" / "catalog.sqlite3"

    printed = run_script(DATABASE_SCRIPT, project_env(tmp_path, DATABASE_URL=f"sqlite:///{path}"))

    assert printed["ENGINE"] == "django.db.backends.sqlite3"
    assert printed["NAME"] == str(path)
    assert printed["journal_mode"] == "wal"
    assert printed["second_writer"] == "database is locked"


@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="needs the PostgreSQL of the PostgreSQL run")
def test_the_database_url_of_this_run_connects(tmp_path: Path):
    printed = run_script(
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SELECT version()')\n"
        "    print(json.dumps([connection.vendor, cursor.fetchone()[0]]))",
        project_env(tmp_path, DATABASE_URL=os.environ["DATABASE_URL"]),
    )

    assert printed[0] == "postgresql"
    assert printed[1].startswith("PostgreSQL")


# --- The Celery broker follows REDIS_URL ------------------------------------------------------------------

BROKER_SCRIPT = """
import json, os
from config import celery_app

conf = celery_app.conf
with celery_app.connection_for_write() as connection:
    driver = connection.transport.driver_type
print(json.dumps({
    "broker_url": str(conf.broker_url),
    "result_backend": str(conf.result_backend),
    "options": conf.broker_transport_options,
    "driver": driver,
    "eager": conf.task_always_eager,
    "acks_late": conf.task_acks_late,
    "prefetch": conf.worker_prefetch_multiplier,
}))
"""


def test_without_redis_url_celery_uses_the_filesystem_broker(tmp_path: Path):
    env = project_env(tmp_path)
    data = (tmp_path / "data").resolve()

    printed = run_script(BROKER_SCRIPT, env)

    assert printed["broker_url"] == "filesystem://"
    assert printed["driver"] == "filesystem"
    assert printed["result_backend"] == f"file://{data / 'celery' / 'results'}"
    assert printed["options"]["data_folder_in"] == printed["options"]["data_folder_out"]
    assert Path(printed["options"]["data_folder_in"]) == data / "celery" / "broker"
    assert printed["eager"] is False
    assert printed["acks_late"] is True and printed["prefetch"] == 1
    # The folders are made when the app is configured, by whichever process comes first.
    for folder in ("broker", "control", "results"):
        assert (data / "celery" / folder).is_dir()


def test_a_task_sent_without_redis_lands_in_the_broker_folder(tmp_path: Path):
    env = project_env(tmp_path)

    run_script(
        "from config import celery_app\n"
        "result = celery_app.send_task('annotation.tasks.catalog_import_task', args=[41])\n"
        "print(json.dumps(result.id))",
        env,
    )

    messages = list((tmp_path / "data" / "celery" / "broker").iterdir())
    assert len(messages) == 1
    message = json.loads(messages[0].read_text())
    assert message["headers"]["task"] == "annotation.tasks.catalog_import_task"


def test_with_redis_url_celery_uses_redis(tmp_path: Path):
    url = "redis://cache.example.org:6380/3"

    printed = run_script(BROKER_SCRIPT, project_env(tmp_path, REDIS_URL=url))

    assert printed["broker_url"] == url
    assert printed["result_backend"] == url
    assert printed["driver"] == "redis"
    assert printed["options"] == {"visibility_timeout": 6 * 3600}
    assert not (tmp_path / "data" / "celery").exists()


# --- Media storage ----------------------------------------------------------------------------------------

STORAGE_SCRIPT = """
import json
from django.core.files.storage import default_storage
from jobs.models import Job

def class_name(storage):
    cls = storage.__class__  # through the lazy wrapper to the configured backend
    return f"{cls.__module__}.{cls.__qualname__}"

out = {
    "default_storage": class_name(default_storage),
    "job_files": class_name(Job._meta.get_field("result_file").storage),
}
if out["default_storage"].startswith("storages."):
    out.update(
        bucket=default_storage.bucket_name,
        endpoint=default_storage.endpoint_url,
        file_overwrite=default_storage.file_overwrite,
        url=default_storage.url("jobs/report.json"),
    )
else:
    out["location"] = default_storage.location
print(json.dumps(out))
"""


def test_media_is_stored_on_the_filesystem_by_default(tmp_path: Path):
    printed = run_script(STORAGE_SCRIPT, project_env(tmp_path))

    assert printed["default_storage"] == "django.core.files.storage.filesystem.FileSystemStorage"
    assert printed["job_files"] == printed["default_storage"]
    assert Path(printed["location"]) == (tmp_path / "data" / "media").resolve()


def test_media_storage_s3_makes_default_storage_an_s3_bucket(tmp_path: Path):
    env = project_env(
        tmp_path,
        TWIN_MEDIA_STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME="twin-media",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:9",  # never contacted: signing a URL needs no network
        AWS_S3_REGION_NAME="eu-west-1",
        AWS_ACCESS_KEY_ID="AKIAEXAMPLEONLY",
        AWS_SECRET_ACCESS_KEY="example-only",
    )

    printed = run_script(STORAGE_SCRIPT, env)

    assert printed["default_storage"] == "storages.backends.s3.S3Storage"
    assert printed["job_files"] == "storages.backends.s3.S3Storage"
    assert printed["bucket"] == "twin-media"
    assert printed["endpoint"] == "http://127.0.0.1:9"
    assert printed["file_overwrite"] is False
    assert printed["url"].startswith("http://127.0.0.1:9/twin-media/jobs/report.json?")
    assert "Signature=" in printed["url"]  # private bucket: links are signed


def test_media_storage_s3_without_a_bucket_refuses_to_start(tmp_path: Path):
    completed = run_python(
        ["-c", "import django; django.setup()"], project_env(tmp_path, TWIN_MEDIA_STORAGE="s3")
    )

    assert "AWS_STORAGE_BUCKET_NAME" in start_up_error(completed)


def test_an_unknown_media_storage_refuses_to_start(tmp_path: Path):
    completed = run_python(
        ["-c", "import django; django.setup()"], project_env(tmp_path, TWIN_MEDIA_STORAGE="ftp")
    )

    message = start_up_error(completed)
    assert "TWIN_MEDIA_STORAGE" in message and "'ftp'" in message


def test_production_responses_carry_the_security_headers(tmp_path: Path):
    """A real response of the production settings (an anonymous API call: no database needed)."""
    headers = run_script(
        "from django.test import Client\n"
        "client = Client()\n"
        "plain = client.get('/api/v1/snapshots/', HTTP_HOST='twin.example.org')\n"
        "secure = client.get('/api/v1/snapshots/', HTTP_HOST='twin.example.org', HTTP_X_FORWARDED_PROTO='https')\n"
        "print(json.dumps({'plain': [plain.status_code, plain.get('Location')], 'secure': dict(secure.items()),\n"
        "    'status': secure.status_code}))",
        production_env(tmp_path),
    )
    assert headers["plain"] == [301, "https://twin.example.org/api/v1/snapshots/"]  # HTTP goes to HTTPS
    secure = headers["secure"]
    assert headers["status"] == 401
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert secure["X-Content-Type-Options"] == "nosniff"
    assert secure["X-Frame-Options"] == "DENY"
    assert secure["Referrer-Policy"] == "same-origin"
    assert secure["Cross-Origin-Opener-Policy"] == "same-origin"
    # The cookies' Secure flags are what check --deploy checks (the test above).
