"""Load test of the review flow over HTTP (issue 8): Locust annotators against the site served by gunicorn.

    python bench/review_load.py --database postgres://postgres@127.0.0.1:5432/twin_load \\
        --tasks 1000000 --users 1,32,128 --seconds 60 --think-ms 2000

The bench database is created if missing, migrated and filled with --tasks open image-verification tasks, as
``bench/review_queues.py`` does (the same helpers; a database of the right size is reopened). The site is
served by gunicorn (``--workers``, ``--threads``) with the local settings and DEBUG off, on that database, and
with ``--redis-url`` its cache in Redis as in production. Each phase runs ``bench/review_locustfile.py`` with
that many annotators, each on its own account: they sign in, open the queue, then answer card after card
(``--think-ms`` per card, +-50%). The first phase is the baseline: one annotator alone shows the latency of
an idle server, measured in the same run. Every phase starts from the same open tasks.

Measured in a window of --seconds that starts --warmup seconds after the last annotator got its first cards:
answers recorded per second, the latency of each kind of request (p50, p95, p99), and where the CPU went
(gunicorn, PostgreSQL, Locust itself, the whole machine: on a small machine they share the cores).

Checked over the whole phase: no request failed (an HTTP error, a lost lease, a closed task); no task was held
by two annotators at once, and no regular task was given to two (from every annotator's hold windows: from
the answer that brought the card to the answer that decided it); and the database holds exactly the answers
the annotators were told were recorded, one per regular task. PASS when all of that holds in every phase.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from review_queues import (  # noqa: E402
    ANNOTATOR_PREFIX,
    KIND,
    annotators_ensure,
    bench_database_ready,
    database_analyze,
    database_prepare,
    decisions_check,
    django_setup,
    holds_check,
    machine_print,
    percentile,
    tasks_reopen,
)

PASSWORD = "bench-load-password"
REQUESTS_SHOWN = ("decide", "cards", "heartbeat", "image")


def pictures_write() -> int:
    """A picture file for every catalog image (the bench fills rows only), so the cards' images load."""
    import io

    import numpy as np
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image as Picture

    from annotation.models import Image

    rng = np.random.default_rng(0)
    written = 0
    for image in Image.objects.only("pk", "file", "width", "height").iterator(chunk_size=2000):
        # Smooth colour fields with a few blocks compress like photos (tens of kB), unlike noise.
        corners = rng.integers(0, 256, size=(2, 2, 3), dtype=np.uint8)
        small = Picture.fromarray(corners, "RGB").resize((image.width, image.height), Picture.BILINEAR)
        for _ in range(4):
            x, y = int(rng.integers(0, image.width - 80)), int(rng.integers(0, image.height - 80))
            small.paste(tuple(int(v) for v in rng.integers(0, 256, size=3)), (x, y, x + 80, y + 80))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=85)
        default_storage.save(image.file.name, ContentFile(buffer.getvalue()))
        written += 1
    return written


def _postmaster_pid() -> int:
    """The PostgreSQL server's main process on this machine (0 for SQLite, or a server elsewhere)."""
    import psutil
    from django.db import connection

    local = connection.settings_dict["HOST"] in ("", "localhost", "127.0.0.1", "::1")
    if connection.vendor != "postgresql" or not local:
        return 0
    for process in psutil.process_iter(["name", "ppid"]):
        if (process.info["name"] or "").startswith("postgres"):
            with contextlib.suppress(psutil.Error):
                if not (psutil.Process(process.info["ppid"]).name() or "").startswith("postgres"):
                    return process.pid
    return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_start(args: argparse.Namespace, data_dir: str) -> tuple[subprocess.Popen, str]:
    """gunicorn on the bench database; returns the process and the site's address once it answers."""
    port = args.port or _free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": args.database,
        "TWIN_DATA_DIR": data_dir,
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    environment.pop("REDIS_URL", None)
    if args.redis_url:
        environment["REDIS_URL"] = args.redis_url
    command = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(args.workers), "--timeout", "120", "--backlog", "2048"]
    if args.threads > 1:
        command += ["--worker-class", "gthread", "--threads", str(args.threads)]
    log = Path(data_dir) / "gunicorn.log"
    server = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            requests.get(f"{base}/accounts/login/", timeout=5)
            return server, base
        except requests.RequestException:
            time.sleep(0.3)
    server.kill()
    raise SystemExit(f"gunicorn did not start:\n{log.read_text()[-3000:]}")


def phase_run(
    args: argparse.Namespace,
    users: int,
    base: str,
    server: subprocess.Popen,
    database_pid: int,
    data_dir: str,
) -> dict:
    record_file = Path(data_dir) / f"records-{users}.json"
    options = {
        "--host": base,
        "--users": users,
        "--spawn-rate": args.spawn_rate,
        "--warmup": args.warmup,
        "--seconds": args.seconds,
        "--think-ms": args.think_ms,
        "--annotator-prefix": ANNOTATOR_PREFIX,
        "--annotator-password": PASSWORD,
        "--record-file": record_file,
        "--server-pid": server.pid,
        "--database-pid": database_pid,
    }
    command = [sys.executable, str(BENCH / "review_locustfile.py")]
    for option, value in options.items():
        command += [option, str(value)]
    if args.images:
        command.append("--images")
    log = Path(data_dir) / f"locust-{users}.log"
    budget = args.seconds + args.warmup + 300 + users / args.spawn_rate
    finished = subprocess.run(
        command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, timeout=budget
    )
    if finished.returncode != 0 or not record_file.exists():
        raise SystemExit(f"the load generator failed ({finished.returncode}):\n{log.read_text()[-3000:]}")
    return json.loads(record_file.read_text())


def phase_report(records: dict) -> dict:
    """Window figures from the records, then the checks over the whole phase against the database."""
    from annotation.models import ReviewDecision, ReviewTask

    start, end = records["window"]
    seconds = end - start
    in_window = [r for r in records["requests"] if start <= r[1] < end]
    latency: dict[str, list[float]] = {}
    for name, _, ms, _ok, _ in in_window:
        latency.setdefault(name, []).append(ms)
        latency.setdefault("all", []).append(ms)
    for values in latency.values():
        values.sort()
    decided_in_window = sum(1 for name, _, _, ok, _ in in_window if name == "decide" and ok)
    failures = Counter(f"{name}: {error}" for name, _, _, ok, error in records["requests"] if not ok)

    held_tasks = {task for task, _, _, _ in records["holds"]}
    gold = set(ReviewTask.objects.filter(pk__in=held_tasks, is_gold=True).values_list("pk", flat=True))
    holds = [((task, task in gold, int(s * 1e9), int(e * 1e9)), who) for task, who, s, e in records["holds"]]
    max_holders, double_held, handed_twice = holds_check(holds)

    told = Counter((task, who) for task, who in records["decided"])
    stored = Counter(
        ReviewDecision.objects.filter(kind=KIND, undone_at=None).values_list("task_id", "annotator__username")
    )
    return {
        "users": records["users"],
        "seconds": seconds,
        "all_in_s": records["all_in_s"],
        "decided_in_window": decided_in_window,
        "requests_in_window": len(in_window),
        "latency": latency,
        "failures": failures,
        "max_holders": max_holders,
        "double_held": double_held,
        "handed_twice": handed_twice,
        "answers_confirmed": sum(told.values()),
        "answers_missing": sum((told - stored).values()),
        "answers_unconfirmed": sum((stored - told).values()),
        "cpu_s": records["cpu_s"],
        **decisions_check(),
    }


def reports_print(reports: list[dict], args: argparse.Namespace, *, database_measured: bool) -> bool:
    width = 22

    def row(label: str, values: list[str]) -> None:
        print(f"{label:<34}" + "".join(f"{value:>{width}}" for value in values))

    def ms(report: dict, name: str) -> str:
        values = report["latency"].get(name, [])
        return " / ".join(f"{percentile(values, q):.0f}" for q in (50, 95, 99)) if values else "-"

    def cores(report: dict, part: str) -> str:
        return f"{report['cpu_s'][part] / report['seconds']:.2f}"

    print()
    row("annotators", [f"{r['users']}" + (" (baseline)" if i == 0 else "") for i, r in enumerate(reports)])
    row("window s", [f"{r['seconds']:.1f}" for r in reports])
    row("all signed in after s", [f"{r['all_in_s']:.1f}" for r in reports])
    row("decisions/s (sustained)", [f"{r['decided_in_window'] / r['seconds']:.1f}" for r in reports])
    row("requests/s", [f"{r['requests_in_window'] / r['seconds']:.1f}" for r in reports])
    for name in REQUESTS_SHOWN:
        if any(name in r["latency"] for r in reports):
            row(f"{name} ms p50 / p95 / p99", [ms(r, name) for r in reports])
    row("all requests ms p50 / p95 / p99", [ms(r, "all") for r in reports])
    row("failed requests (whole phase)", [str(sum(r["failures"].values())) for r in reports])
    row("tasks held by two at once", [str(r["double_held"]) for r in reports])
    row("regular tasks given to two", [str(r["handed_twice"]) for r in reports])
    row("answers confirmed to annotators", [f"{r['answers_confirmed']:,}" for r in reports])
    row("  of them missing in the db", [str(r["answers_missing"]) for r in reports])
    row("db answers nobody was told of", [str(r["answers_unconfirmed"]) for r in reports])
    row("db: tasks over required", [str(r["db_over_required"]) for r in reports])
    row("db: decided, not 1 decision", [str(r["db_decided_not_one"]) for r in reports])
    row("cpu: machine busy, cores", [f"{cores(r, 'machine')} of {os.cpu_count()}" for r in reports])
    row("cpu: gunicorn", [cores(r, "server") for r in reports])
    row(
        "cpu: postgresql (all backends)",
        [cores(r, "database") if database_measured else "-" for r in reports],
    )
    row("cpu: locust", [cores(r, "load_generator") for r in reports])
    for report in reports:
        for failure, count in report["failures"].most_common(5):
            print(f"  {report['users']} annotators, failed x{count}: {failure}")

    baseline = reports[0]["latency"].get("decide", [])
    for report in reports[1:]:
        decide = report["latency"].get("decide", [])
        if baseline and decide:
            print(
                f"decide p95 with {report['users']} annotators / with {reports[0]['users']}: "
                f"{percentile(decide, 95) / percentile(baseline, 95):.2f}x"
            )
    clean = all(
        not r["failures"]
        and r["max_holders"] <= 1
        and r["double_held"] == 0
        and r["handed_twice"] == 0
        and r["answers_missing"] == 0
        and r["answers_unconfirmed"] == 0
        and r["db_over_required"] == 0
        and r["db_decided_not_one"] == 0
        and r["decided_in_window"] > 0
        for r in reports
    )
    summary = "; ".join(
        f"{r['users']} annotators: {r['decided_in_window'] / r['seconds']:.1f} decisions/s, "
        f"decide p95 {percentile(r['latency'].get('decide', []), 95):.0f} ms"
        for r in reports
    )
    print(
        f"VERDICT review flow over HTTP, think {args.think_ms:g} ms, {args.workers} gunicorn workers"
        f"{f' x {args.threads} threads' if args.threads > 1 else ''}: {'PASS' if clean else 'FAIL'} ({summary}; "
        f"failed requests, tasks given to two, answers lost: "
        f"{'none' if clean else 'SEE ABOVE'})"
    )
    return clean


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/twin_load")
    parser.add_argument("--tasks", type=int, default=200_000, help="open tasks at the start of each phase")
    parser.add_argument("--gold", type=int, default=400, help="how many of them are gold tasks")
    parser.add_argument("--users", default="1,32,128", help="annotators per phase; the first is the baseline")
    parser.add_argument("--seconds", type=float, default=60, help="the measured window of each phase")
    parser.add_argument(
        "--warmup", type=float, default=10, help="seconds between the last sign-in and the window"
    )
    parser.add_argument("--think-ms", type=float, default=2000, help="mean time on a card")
    parser.add_argument("--spawn-rate", type=float, default=8, help="annotators starting per second")
    # One worker more than the cores, as the compose file's web service runs on two: the workers share the cores
    # with PostgreSQL, and 2 x cores + 1 of them thrash (measured on 2 cores: about 30% fewer answers per second).
    parser.add_argument(
        "--workers", type=int, default=(os.cpu_count() or 1) + 1, help="gunicorn workers (default: cores + 1)"
    )
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread above 1)")
    parser.add_argument("--images", action="store_true", help="annotators also fetch the cards' pictures")
    parser.add_argument("--redis-url", default="", help="the site's cache in Redis, as in production")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="drop the bench database and fill it again")
    args = parser.parse_args()
    phases = [int(part) for part in args.users.split(",") if part.strip()]
    if not phases or min(phases) < 1:
        parser.error("--users: annotators per phase, e.g. 1,32,128")

    with tempfile.TemporaryDirectory(prefix="twin-load-") as data_dir:
        database_prepare(args.database, fresh=args.rebuild)
        django_setup(args.database, data_dir)
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        machine_print()
        bench_database_ready(args.database, tasks=args.tasks, gold=args.gold, rebuild=args.rebuild)
        from annotation.review.leases import review_queue_get

        queue = review_queue_get(kind=KIND)
        annotators_ensure(max(phases), password=PASSWORD)
        if args.images:
            print(f"wrote {pictures_write():,} pictures for the catalog's images", flush=True)
        server, base = server_start(args, data_dir)
        database_pid = _postmaster_pid()
        threads = f" x {args.threads} threads" if args.threads > 1 else ""
        print(
            f"queue {KIND}: {args.tasks:,} open tasks ({args.gold:,} gold), gold rate {queue.gold_rate:g}; "
            f"gunicorn {args.workers} workers{threads} at {base}, cache in "
            f"{'Redis' if args.redis_url else 'files'}; think {args.think_ms:g} ms, {args.seconds:g} s windows"
        )
        reports = []
        try:
            for index, users in enumerate(phases):
                if index:
                    reset = tasks_reopen()
                    database_analyze()
                    print(f"reopened {reset:,} tasks for the next phase")
                connections.close_all()
                print(f"running {users} annotator{'s' if users > 1 else ''} ...", flush=True)
                reports.append(phase_report(phase_run(args, users, base, server, database_pid, data_dir)))
                report = reports[-1]
                print(
                    f"  {report['decided_in_window']:,} decisions in {report['seconds']:.1f} s, "
                    f"{sum(report['failures'].values())} failed requests",
                    flush=True,
                )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            log = (Path(data_dir) / "gunicorn.log").read_text()
            if "Traceback" in log:
                print(f"\ngunicorn logged errors:\n{log[-3000:]}")
        passed = reports_print(reports, args, database_measured=database_pid > 0)
        connections.close_all()
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
