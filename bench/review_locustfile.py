"""Locust annotators working the image-verification queue over HTTP, as the review page's script does.

Each simulated annotator signs in with its own account (``--annotator-prefix`` + a two-digit number, from 01),
opens ``/review/images/``, and then, card after card: looks at the card (``--think-ms``, varied by +-50%),
sends its answer with the card's lease token to ``decide/`` together with the cards it still holds, and takes
the new card the answer brings back. Every ``--heartbeat-seconds`` it renews its leases; with ``--images``
it also fetches each new card's pictures, as a browser would. Any answer that is not recorded (an HTTP error,
a lost lease, a closed task) is a failure.

Two ways to run it:

- by ``bench/review_load.py``, which prepares the database, serves the site, runs this file as a script
  (``python bench/review_locustfile.py --host ... --users N --seconds S --record-file F``) and checks the
  records it writes: every request, every window during which an annotator held a task, every answer recorded;
- by hand with Locust's own command line and web page, against a site you serve yourself:
  ``locust -f bench/review_locustfile.py --host http://127.0.0.1:8000 --annotator-password ...``.
"""

import gevent.monkey

gevent.monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from locust import FastHttpUser, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from review_queues import ACTIONS, machine_busy_s  # noqa: E402

QUEUE = "images"
CARD_START = '<article class="review-card"'
CARD = re.compile(r'data-task="(\d+)" data-key="([^"]+)"')
IMAGE_SOURCE = re.compile(r'<img src="(/review/images/\d+/\d+/)"')
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')


@dataclass
class Card:
    task: int
    key: str
    received_at: float
    images: list[str]


class Records:
    """What the run did, for ``review_load.py`` to check: one process, so plain lists will do."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, float, float, bool, str]] = []  # name, start, ms, ok, error
        self.holds: list[tuple[int, str, float, float]] = []  # task, annotator, held from, held until
        self.decided: list[tuple[int, str]] = []  # (task, annotator) of each answer the server confirmed
        self.ready: list[float] = []  # when each annotator had its first cards
        self.in_flight = 0
        self.stopping = False

    def dump(self, path: str, **extra) -> None:
        Path(path).write_text(
            json.dumps(
                {
                    "requests": self.requests,
                    "holds": self.holds,
                    "decided": self.decided,
                    "ready": self.ready,
                    **extra,
                }
            )
        )


RECORDS = Records()
_numbers = itertools.count(1)


def options_add(parser) -> None:
    """The options of these users; Locust's own parser and the script's take the same ones."""
    parser.add_argument("--think-ms", type=float, default=2000, help="mean time on a card (default 2000)")
    parser.add_argument(
        "--annotator-prefix", default="load-annotator-", help="accounts: PREFIX01, PREFIX02..."
    )
    parser.add_argument("--annotator-password", default="", help="the password of every load-test account")
    parser.add_argument("--heartbeat-seconds", type=float, default=30, help="lease renewal interval")
    parser.add_argument("--images", action="store_true", help="fetch every new card's pictures")
    parser.add_argument("--record-file", default="", help="write the run's records here as JSON on exit")


@events.init_command_line_parser.add_listener
def _locust_options(parser) -> None:
    options_add(parser)


@events.request.add_listener
def _request_recorded(request_type, name, response_time, exception=None, start_time=None, **kwargs) -> None:
    started = start_time if start_time is not None else time.time() - response_time / 1000
    RECORDS.requests.append((name, started, response_time, exception is None, str(exception or "")[:200]))


@events.quitting.add_listener
def _records_written(environment, **kwargs) -> None:
    options = environment.parsed_options
    if options is not None and options.record_file and not getattr(options, "library_mode", False):
        RECORDS.dump(options.record_file)


class ReviewAnnotator(FastHttpUser):
    # One sign-in per annotator and one page load; then answers only.
    connection_timeout = 30.0
    network_timeout = 60.0

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5) * self.environment.parsed_options.think_ms / 1000

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.username = f"{options.annotator_prefix}{next(_numbers):02d}"
        self.deck: list[Card] = []
        self.seen_images: set[str] = set()
        self.shown_at = time.time()
        self.last_heartbeat = time.time()
        self.csrf = ""
        self._sign_in(options.annotator_password)
        page = self.client.get(f"/review/{QUEUE}/", name="queue page")
        if page.status_code == 200:
            match = CSRF_HEADER.search(page.text)
            self.csrf = match.group(1) if match else ""
            self._cards_take(page.text)
        RECORDS.ready.append(time.time())

    def on_stop(self) -> None:
        ended = time.time()
        for card in self.deck:
            RECORDS.holds.append((card.task, self.username, card.received_at, ended))
        self.deck = []

    def _sign_in(self, password: str) -> None:
        form = self.client.get("/accounts/login/", name="sign-in page")
        token = CSRF_INPUT.search(form.text or "")
        with self.client.post(
            "/accounts/login/",
            data={
                "username": self.username,
                "password": password,
                "csrfmiddlewaretoken": token and token.group(1),
            },
            allow_redirects=False,
            name="sign in",
            catch_response=True,
        ) as response:
            if response.status_code != 302:
                response.failure(f"sign-in of {self.username} answered {response.status_code}")

    def _headers(self) -> dict:
        return {"X-CSRFToken": self.csrf, "Accept": "application/json"}

    def _have(self, *extra: int) -> str:
        return ",".join(str(task) for task in [*(card.task for card in self.deck), *extra])

    def _cards_take(self, html: str) -> None:
        """Adds the cards of an HTML fragment to the deck (in page order) and fetches their pictures."""
        now = time.time()
        was_empty = not self.deck
        held = {card.task for card in self.deck}
        for chunk in html.split(CARD_START)[1:]:
            match = CARD.match(chunk.lstrip())
            if match is None or int(match.group(1)) in held:
                continue
            card = Card(int(match.group(1)), match.group(2), now, IMAGE_SOURCE.findall(chunk))
            self.deck.append(card)
            held.add(card.task)
            if self.environment.parsed_options.images:
                self._images_fetch(card)
        if was_empty and self.deck:
            self.shown_at = now  # a card is on screen again

    def _images_fetch(self, card: Card) -> None:
        for source in card.images:
            if source not in self.seen_images:  # the browser's cache: image URLs never change content
                self.seen_images.add(source)
                self.client.get(source, name="image")

    @task
    def answer_the_card_on_screen(self) -> None:
        if RECORDS.stopping:
            gevent.sleep(0.5)
            return
        options = self.environment.parsed_options
        if time.time() - self.last_heartbeat >= options.heartbeat_seconds:
            self._heartbeat()
        if not self.deck:
            refill = self.client.get(f"/review/{QUEUE}/cards/?have=", name="cards")
            if refill.status_code == 200:
                self._cards_take(refill.json().get("cards", ""))
            if not self.deck:
                gevent.sleep(1)  # the queue ran dry
                return
        card = self.deck.pop(0)
        sent_at = time.time()
        # The key press shows the next card at once (it is already in the page): its time starts now.
        duration_ms, self.shown_at = int((sent_at - self.shown_at) * 1000), sent_at
        RECORDS.holds.append((card.task, self.username, card.received_at, sent_at))
        RECORDS.in_flight += 1
        try:
            with self.client.post(
                f"/review/{QUEUE}/decide/",
                data={
                    "task": card.task,
                    "key": card.key,
                    "action": random.choice(ACTIONS),
                    "duration_ms": duration_ms,
                    "have": self._have(card.task),
                },
                headers=self._headers(),
                name="decide",
                catch_response=True,
            ) as response:
                data = _json(response)
                if response.status_code != 200 or not data.get("ok"):
                    response.failure(
                        f"{response.status_code} {data.get('code', '')}: {data.get('message', '')}"
                    )
                else:
                    RECORDS.decided.append((card.task, self.username))
                self._cards_take(data.get("cards", ""))
        finally:
            RECORDS.in_flight -= 1

    def _heartbeat(self) -> None:
        self.last_heartbeat = time.time()
        with self.client.post(
            f"/review/{QUEUE}/heartbeat/",
            data={"have": self._have()},
            headers=self._headers(),
            name="heartbeat",
            catch_response=True,
        ) as response:
            data = _json(response)
            if response.status_code != 200 or data.get("lost"):
                response.failure(f"{response.status_code}, leases lost: {data.get('lost')}")


def _json(response) -> dict:
    try:
        data = response.json()
    except Exception:  # noqa: BLE001 - an HTML error page, a cut connection: not JSON
        return {}
    return data if isinstance(data, dict) else {}


# --- run as a script by review_load.py ---------------------------------------------------------------------


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its descendants, the exited ones included (their time is in the
    parent's children_* fields once reaped), so new and recycled children (gunicorn workers, PostgreSQL
    backends of recycled connections) are counted too."""
    import psutil

    if pid <= 0:
        return 0.0
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
    except psutil.Error:
        return 0.0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description="Runs the annotators for a fixed window and records it.")
    parser.add_argument("--host", required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--spawn-rate", type=float, default=16)
    parser.add_argument("--warmup", type=float, default=10, help="seconds after every annotator is in")
    parser.add_argument("--seconds", type=float, default=60, help="the measured window")
    parser.add_argument("--server-pid", type=int, default=0, help="gunicorn's master, for its CPU time")
    parser.add_argument("--database-pid", type=int, default=0, help="PostgreSQL's main process, likewise")
    options_add(parser)
    options = parser.parse_args()
    options.library_mode = True

    environment = Environment(
        user_classes=[ReviewAnnotator], events=events, host=options.host, parsed_options=options
    )
    runner = environment.create_local_runner()
    runner.start(options.users, spawn_rate=options.spawn_rate)
    deadline = time.time() + 120 + options.users / options.spawn_rate
    while len(RECORDS.ready) < options.users and time.time() < deadline:
        gevent.sleep(0.1)
    all_in = time.time()
    gevent.sleep(options.warmup)

    pids = (options.server_pid, options.database_pid)
    cpu_before = (*map(_tree_cpu_s, pids), _own_cpu_s(), machine_busy_s())
    window_start = time.time()
    gevent.sleep(options.seconds)
    window_end = time.time()
    cpu_after = (*map(_tree_cpu_s, pids), _own_cpu_s(), machine_busy_s())

    # Let the answers in flight come back, so that the records and the database can be compared exactly.
    RECORDS.stopping = True
    drain = time.time() + 60
    while RECORDS.in_flight and time.time() < drain:
        gevent.sleep(0.05)
    runner.quit()
    parts = ("server", "database", "load_generator", "machine")
    cpu = {part: after - before for part, before, after in zip(parts, cpu_before, cpu_after, strict=True)}
    RECORDS.dump(
        options.record_file or os.devnull,
        users=options.users,
        all_in_s=all_in - min(RECORDS.ready, default=all_in),
        window=[window_start, window_end],
        cpu_s=cpu,
    )


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
