"""A database restart under a running web server: clean errors while it is gone, no half-written decision, and
the annotator's answer recorded exactly once when the page sends it again.

A real gunicorn serves the site from the test database through a TCP proxy (``tests/tcp_proxy.py``);
cutting the proxy and terminating the backends behind it is what a PostgreSQL restart does to its clients.
The decision is caught in the middle of its transaction: the test holds a lock on the image row that the
"keep" outcome updates, so the request has inserted its decision row, not committed it, when the database
goes away.
"""

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.db import connection

from annotation.models import Image, ReviewDecision, ReviewQueue, ReviewStatus, ReviewTask
from annotation.review.task_creation import image_verification_tasks_create
from annotation.roles import API_USER
from tests.annotation.review.test_views import _held_cards
from tests.factories import AnnotatorFactory, ImageFactory
from tests.mining.test_worker_kill import _wait_for
from tests.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
IS_POSTGRES = django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL only: SQLite has no server to restart"),
]
PASSWORD = "restart-pw-1234"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_start(database_port: int, log: Path) -> tuple[subprocess.Popen, str]:
    database = connection.settings_dict
    port = _free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": f"postgres://{database['USER']}@127.0.0.1:{database_port}/{database['NAME']}",
        "TWIN_DATA_DIR": str(django_settings.DATA_DIR),
        "DJANGO_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
    }
    environment.pop("REDIS_URL", None)  # the cache in files: this test is about the database alone
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "2", "--timeout", "60"],
        cwd=ROOT,
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/accounts/login/", timeout=2)
            return server, base
        except requests.ConnectionError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError(f"gunicorn did not start\n{log.read_text()[-3000:]}")


def _signed_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    signed_in = session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    return session


def _decide(session: requests.Session, base: str, task: int, key: str) -> requests.Response:
    return session.post(
        f"{base}/review/images/decide/",
        data={"task": task, "key": key, "action": "keep", "duration_ms": 900},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Accept": "application/json"},
        timeout=30,
    )


@pytest.mark.django_db(transaction=True)
def test_a_database_restart_mid_decision_leaves_nothing_half_written(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # what the server checks
    ReviewQueue.objects.all().update(gold_rate=0.0)
    for _ in range(3):
        ImageFactory()
    image_verification_tasks_create()
    annotator = AnnotatorFactory(username="restart-annie")
    annotator.set_password(PASSWORD)
    annotator.save()
    # She reads the dataset over the API too: with her session and permissions served from the cache, only a
    # request she may make reaches the database (an annotator alone gets a 403 without it).
    annotator.groups.add(Group.objects.get(name=API_USER))

    database = connection.settings_dict
    address = {"host": database["HOST"] or "127.0.0.1", "port": int(database["PORT"] or 5432)}
    proxy = TcpProxy((address["host"], address["port"])).start()
    log = tmp_path / "gunicorn.log"
    server, base = _server_start(proxy.port, log)
    # The test's own connections go straight to the database, past the proxy.
    direct = psycopg.connect(**address, user=database["USER"], dbname=database["NAME"], autocommit=True)
    try:
        session = _signed_in(base, "restart-annie")
        page = session.get(f"{base}/review/images/", timeout=10)
        assert page.status_code == 200
        (task_id, key), *_ = _held_cards(page.text)
        task = ReviewTask.objects.get(pk=task_id)

        # Hold the image row the "keep" outcome updates: the decision blocks after inserting its row.
        locker = psycopg.connect(**address, user=database["USER"], dbname=database["NAME"])
        locker.execute("SELECT 1 FROM annotation_image WHERE id = %s FOR UPDATE", [task.image_id])
        answer: dict = {}
        sender = threading.Thread(target=lambda: answer.update(first=_decide(session, base, task_id, key)))
        sender.start()

        def decision_waits_on_the_lock() -> bool:
            return bool(
                direct.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                    ["%annotation_image%"],
                ).fetchone()
            )

        _wait_for(decision_waits_on_the_lock, "the decision to block inside its transaction", [log])

        # The restart: every connection through the proxy is dropped, its backends end, new ones are refused.
        backend_ports = proxy.upstream_ports()
        proxy.cut()
        direct.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE client_port = ANY(%s)",
            [backend_ports],
        )
        locker.rollback()
        locker.close()
        sender.join(timeout=30)
        first = answer["first"]

        assert first.status_code == 503
        assert first.headers["Retry-After"]
        assert first.json()["code"] == "database_unavailable"
        # Nothing of the decision reached the database, and the annotator still holds the card.
        assert not ReviewDecision.objects.filter(task_id=task_id).exists()
        task.refresh_from_db()
        assert (task.status, task.decision_count) == (ReviewTask.Status.OPEN, 0)
        assert task.leased_by_id == annotator.pk and str(task.lease_token) == key
        assert Image.objects.get(pk=task.image_id).review_status == ReviewStatus.PENDING

        # While the database is away: clean, quick answers, the page for people and JSON for the page's script.
        started = time.monotonic()
        queue_page = session.get(f"{base}/review/images/", timeout=30)
        assert queue_page.status_code == 503
        assert "Back in a moment" in queue_page.text and "Traceback" not in queue_page.text
        retried_while_down = _decide(session, base, task_id, key)
        assert retried_while_down.status_code == 503
        assert retried_while_down.json()["code"] == "database_unavailable"
        api = session.get(f"{base}/api/v1/snapshots/", timeout=30)
        assert api.status_code == 503 and api.json()["code"] == "database_unavailable"
        assert time.monotonic() - started < 10

        # Back: the page's outbox sends the same answer again, and it is recorded once.
        proxy.resume()
        again = _decide(session, base, task_id, key)
        assert again.status_code == 200, again.text[:500]
        assert again.json()["ok"] and not again.json()["replayed"]
        replayed = _decide(session, base, task_id, key)
        assert replayed.json()["ok"] and replayed.json()["replayed"]
        assert ReviewDecision.objects.filter(task_id=task_id).count() == 1
        assert Image.objects.get(pk=task.image_id).review_status == ReviewStatus.ACCEPTED
        assert session.get(f"{base}/review/images/", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        proxy.cut()
        direct.close()

    server_log = log.read_text()
    assert "database unavailable during POST /review/images/decide/" in server_log
    assert "Traceback" not in server_log, server_log[-3000:]
