"""The review-flow load test at a small scale: ``bench/review_load.py`` serves the site with gunicorn on a
database of its own (PostgreSQL when the suite runs on it, else an SQLite file), runs a lone annotator and then
six at once through Locust, and passes only if no request failed, no task was held by two annotators at once
or given to two, and the database holds exactly the answers the annotators were told were recorded.

The figures of the full run (1, 32 and 128 annotators, a million tasks) are in the README; this checks that the
bench and its checks work, and the review flow's guarantees under a little real concurrency over HTTP.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection
from psycopg import sql

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_database(tmp_path):
    """A database for the bench alone (it drops and fills its own): never the suite's test database."""
    database = connection.settings_dict
    if database["ENGINE"] != "django.db.backends.postgresql":
        yield f"sqlite:///{tmp_path / 'twin_load.sqlite3'}"
        return
    name = f"twin_load_ci_{os.getpid()}"
    server = {
        "host": database["HOST"] or "127.0.0.1",
        "port": int(database["PORT"] or 5432),
        "user": database["USER"],
    }
    yield f"postgres://{server['user']}@{server['host']}:{server['port']}/{name}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as maintenance:
        maintenance.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_review_flow_under_load_loses_nothing_and_hands_nothing_twice(bench_database):
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("DJANGO_SETTINGS_MODULE", None)  # the bench sets up its own
    if django_settings.REDIS_URL:
        environment["REDIS_URL"] = django_settings.REDIS_URL
    command = [sys.executable, "bench/review_load.py", "--database", bench_database, "--tasks", "2000"]
    command += ["--gold", "20", "--users", "1,6", "--seconds", "4", "--warmup", "1", "--think-ms", "100"]
    command += ["--workers", "3"]
    if django_settings.REDIS_URL:
        command += ["--redis-url", django_settings.REDIS_URL]
    finished = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]

    verdict = next(line for line in output.splitlines() if line.startswith("VERDICT"))
    assert ": PASS (" in verdict, output[-4000:]

    def row(label: str) -> list[str]:
        line = next(line for line in output.splitlines() if line.startswith(label))
        return line[len(label) :].split()

    assert row("tasks held by two at once") == ["0", "0"]
    assert row("regular tasks given to two") == ["0", "0"]
    assert row("failed requests (whole phase)") == ["0", "0"]
    confirmed = [int(value.replace(",", "")) for value in row("answers confirmed to annotators")]
    assert confirmed[0] > 0 and confirmed[1] > confirmed[0]  # six annotators answered more than one
    assert row("  of them missing in the db") == ["0", "0"]
    assert row("db answers nobody was told of") == ["0", "0"]
    assert re.search(r"decide ms p50 / p95 / p99\s+\d+ / \d+ / \d+", output)
