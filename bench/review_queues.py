"""Benchmark: many annotators claiming and deciding review tasks at once (the target of issue 3).

    With 1,000,000 open tasks in PostgreSQL and 32 concurrent annotators claiming and deciding: claim-next
    p95 under 25 ms, and zero tasks held by two annotators at once. The same run on SQLite with 4 annotators.

    python bench/review_queues.py --database postgres://postgres@127.0.0.1:5432/twin_bench \\
        --tasks 1000000 --annotators 32 --seconds 60
    python bench/review_queues.py --database sqlite:////tmp/twin-bench.sqlite3 \\
        --tasks 1000000 --annotators 4 --seconds 60

The database is created if missing, migrated and filled with --tasks open image-verification tasks (set-based
SQL, a few thousand real catalog rows for them to point at). A database filled before is reused: the
decisions of the previous run are deleted and its tasks reopened, so every phase starts from --tasks open
tasks (--rebuild fills it again from scratch).

Each annotator is a separate process with its own connection and its own user. It warms up once before the
clock starts (one claim, one refused answer, the task given back), as a web worker that has served requests
would be. Its loop: claim the next task (``review_tasks_claim(hold=1)``, timed), think (--think-ms, varied
by +-50%; 0 is pure stress), decide it with the lease token (``review_decision_submit``, timed). Two phases
of --seconds each run on the same data, reopened in between:

- baseline: the same services, with the claim step replaced by what a simpler tool would write. PostgreSQL:
  ``select_for_update()`` without ``skip_locked`` on the first free task, so concurrent claimers queue on
  the same row. SQLite: read the first free task, then update it with no "still free?" condition.
- service: ``annotation.review.leases`` as shipped: one conditional UPDATE whose scalar subquery picks the
  task (with FOR UPDATE SKIP LOCKED on PostgreSQL).

Afterwards the parent checks every claim's window for overlaps with another annotator's window of the same
task, counts regular tasks given to two annotators, checks the database for tasks with too many decisions,
then prints both phases side by side and a verdict on the service phase: PASS when claim-next p95 is under
25 ms and nothing was held twice or decided twice. The CPU rows say where the cores went: on a small machine
the annotator processes themselves compete with the database for them, and so does anything else running.
"""

import argparse
import contextlib
import multiprocessing as mp
import os
import pickle
import platform
import random
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
KIND = "image_verification"
TARGET_P95_MS = 25.0
# A few thousand catalog rows are plenty for a million tasks to point at: tasks may share images.
CATEGORIES, PRODUCTS, IMAGES_PER_PRODUCT = 20, 2000, 2
# Answers the annotators pick from, "keep" the most often. "Reject product" is left out on purpose: it closes
# every other task of the product at once (hundreds here, since tasks share images), which would measure bulk
# closing instead.
ACTIONS = ("keep", "keep", "keep", "reject_unclear", "reject_not_object")
PHASES = {
    "baseline": "baseline: naive claim",
    "service": "service: annotation.review",
}


# --- settings and the database itself --------------------------------------------------------------------


def django_setup(database_url: str, data_dir: str) -> None:
    """Configures Django for the bench database; the parent and every annotator process call it."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DATABASE_URL"] = database_url
    os.environ["TWIN_DATA_DIR"] = data_dir
    os.environ["DJANGO_DEBUG"] = "false"  # DEBUG keeps every query in memory: a leak over a long run
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def database_name_check(name: str) -> None:
    """Refuses the databases that tests and the server itself use: this script drops and fills its own."""
    lowered = name.lower()
    if lowered in ("test", "postgres", "template0", "template1") or lowered.startswith("test_"):
        raise SystemExit(f"refusing to use the database {name!r}: pick a name of its own, e.g. twin_bench")


def database_prepare(database_url: str, *, fresh: bool) -> None:
    """Creates the bench database if missing; with ``fresh``, drops it first."""
    parts = urlsplit(database_url)
    if parts.scheme.startswith("sqlite"):
        path = Path(unquote(parts.path))
        database_name_check(path.stem)
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not parts.scheme.startswith("postgres"):
        raise SystemExit(f"unsupported database URL {database_url!r}: postgres://... or sqlite:////path")
    import psycopg
    from psycopg import sql

    name = unquote(parts.path.lstrip("/"))
    database_name_check(name)
    # The maintenance database of the same server: CREATE/DROP DATABASE can't run inside the target.
    server = psycopg.conninfo.make_conninfo(
        host=parts.hostname or "",
        port=parts.port or 5432,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        dbname="postgres",
    )
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


# --- filling and resetting ------------------------------------------------------------------------------


def catalog_fill() -> tuple[int, int]:
    """A small real catalog; returns the first image id and the number of images (ids are contiguous)."""
    from annotation.models import Category, Image, Instance, Product

    categories = Category.objects.bulk_create(Category(name=f"bench category {i}") for i in range(CATEGORIES))
    instances = Instance.objects.bulk_create(
        Instance(category=categories[i % CATEGORIES], name=f"bench object {i}") for i in range(PRODUCTS)
    )
    products = Product.objects.bulk_create(
        Product(
            source="bench",
            external_id=f"bench-{i}",
            title=f"Bench product {i}",
            category=instance.category,
            instance=instance,
        )
        for i, instance in enumerate(instances)
    )
    Image.objects.bulk_create(
        (
            Image(
                product=product,
                file=f"images/bench/{product.pk}-{position}.jpg",
                sha256=uuid.uuid5(uuid.NAMESPACE_URL, f"bench:{product.pk}:{position}").hex.ljust(64, "0"),
                position=position,
                width=640,
                height=480,
            )
            for product in products
            for position in range(IMAGES_PER_PRODUCT)
        ),
        batch_size=2000,
    )
    ids = sorted(Image.objects.values_list("pk", flat=True))
    # The set-based fill addresses images by arithmetic on their ids.
    assert ids == list(range(ids[0], ids[0] + len(ids))), "image ids of a fresh database are contiguous"
    return ids[0], len(ids)


def tasks_fill(*, tasks: int, gold: int) -> None:
    """Inserts ``tasks`` open tasks in one set-based statement; the last ``gold`` of them are gold tasks."""
    from django.db import connection, transaction
    from django.utils import timezone

    first_image, images = catalog_fill()
    created_at = connection.ops.adapt_datetimefield_value(timezone.now())
    columns = (
        "kind, status, subject_key, image_id, payload, priority, required_decisions, decision_count, is_gold, "
        "gold_answer, outcome, outcome_reason, outcome_effects, created_at"
    )
    # One row per number of the series: task g points at image (g mod images), gold for the last `gold`.
    values = (
        "'{kind}', 'open', CASE WHEN g > {regular} THEN 'gold:bench:' ELSE 'bench:' END || g, "
        "{first} + (g - 1) %% {images}, '{{}}'{json}, 0, 1, 0, g > {regular}, "
        "CASE WHEN g > {regular} THEN 'keep' ELSE '' END, '', '', '{{}}'{json}, %s"
    )
    params = {"kind": KIND, "regular": tasks - gold, "first": first_image, "images": images}
    if is_postgres():
        select = values.format(json="::jsonb", **params)
        statement = (
            f"INSERT INTO annotation_reviewtask ({columns}) SELECT {select} FROM generate_series(1, %s) AS g"
        )
    else:
        select = values.format(json="", **params)
        statement = (
            "WITH RECURSIVE series(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM series WHERE g < %s) "
            f"INSERT INTO annotation_reviewtask ({columns}) SELECT {select} FROM series"
        )
    with transaction.atomic(), connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(statement, [created_at, tasks])
        else:
            cursor.execute(statement, [tasks, created_at])


def database_analyze() -> None:
    """Fresh statistics (and on PostgreSQL, dead rows of the previous phase gone) before a phase starts."""
    from django.db import connection

    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute("VACUUM ANALYZE annotation_reviewtask")
            cursor.execute("VACUUM ANALYZE annotation_reviewdecision")
        else:
            cursor.execute("ANALYZE")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def tasks_reopen() -> int:
    """Undoes a previous phase: deletes its decisions, reopens and releases its tasks. Returns rows reset."""
    from django.db import transaction

    from annotation.models import (
        Image,
        Product,
        ReviewDecision,
        ReviewSkip,
        ReviewStatus,
        ReviewTask,
    )

    with transaction.atomic():
        ReviewDecision.objects.all().delete()
        ReviewSkip.objects.all().delete()
        reset = (
            ReviewTask.objects.filter(kind=KIND)
            .exclude(status=ReviewTask.Status.OPEN, decision_count=0, leased_by=None)
            .update(
                status=ReviewTask.Status.OPEN,
                decision_count=0,
                outcome="",
                outcome_reason="",
                outcome_effects={},
                resolved_at=None,
                obsoleted_by=None,
                leased_by=None,
                lease_token=None,
                leased_at=None,
                lease_expires_at=None,
            )
        )
        Image.objects.exclude(review_status=ReviewStatus.PENDING).update(
            review_status=ReviewStatus.PENDING, rejection_reason=""
        )
        Product.objects.exclude(review_status=ReviewStatus.PENDING).update(
            review_status=ReviewStatus.PENDING, rejection_reason=""
        )
    return reset


def open_tasks() -> tuple[int, int]:
    """(open regular tasks, open gold tasks) of the bench queue."""
    from django.db.models import Count

    from annotation.models import ReviewTask

    counts = dict(
        ReviewTask.objects.filter(kind=KIND, status=ReviewTask.Status.OPEN)
        .values("is_gold")
        .annotate(n=Count("pk"))
        .values_list("is_gold", "n")
    )
    return counts.get(False, 0), counts.get(True, 0)


def bench_database_ready(database_url: str, *, tasks: int, gold: int, rebuild: bool) -> None:
    """Every task of the bench queue open and free: a database of the right size is reopened, any other
    (another size, a fill that was interrupted) is dropped and filled again. Django must be set up on it."""
    from django.core.management import call_command
    from django.db import connections

    started = time.perf_counter()
    reset = tasks_reopen()
    regular, gold_open = open_tasks()
    if (regular, gold_open) != (tasks - gold, gold):
        if not rebuild:
            print(f"bench database has {regular + gold_open:,} open tasks, not {tasks:,}: filling it again")
            connections.close_all()
            database_prepare(database_url, fresh=True)
            call_command("migrate", verbosity=0)
        tasks_fill(tasks=tasks, gold=gold)
        database_analyze()
        print(f"filled {tasks:,} open tasks in {time.perf_counter() - started:.1f} s (with ANALYZE)")
    else:
        print(f"reused the bench database: reopened {reset:,} tasks in {time.perf_counter() - started:.1f} s")


ANNOTATOR_PREFIX = "bench-annotator-"


def annotators_ensure(count: int, *, password: str | None = None) -> list[str]:
    """Real annotator accounts (in the annotator group), one per process; with ``password``, all of them sign
    in with it (one hash for them all: hashing is what takes the time)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from annotation.roles import ANNOTATOR

    group = Group.objects.get(name=ANNOTATOR)
    names = [f"{ANNOTATOR_PREFIX}{i:02d}" for i in range(1, count + 1)]
    for name in names:
        user, created = get_user_model().objects.get_or_create(username=name)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            user.groups.add(group)
    if password:
        get_user_model().objects.filter(username__in=names).update(password=make_password(password))
    return names


# --- the claim of the baseline ------------------------------------------------------------------------------


def naive_claim(*, annotator: Any, kind: str, gold: bool) -> Any:
    """What a simpler tool would write; replaces ``leases._claim`` in the baseline phase's processes only.

    PostgreSQL: lock the first free task with a plain FOR UPDATE. Correct (the lock serializes claimers),
    but every concurrent claimer picks the same first row and waits for its holder to commit, then moves to
    the next one: claims queue behind each other. SQLite: read the first free task, then take it with an
    UPDATE that doesn't re-check that it is still free, so two readers of the same row both "win".
    """
    from django.db import transaction
    from django.utils import timezone

    from annotation.models import ReviewTask
    from annotation.review.leases import claimable_tasks, lease_duration

    now = timezone.now()
    lease = {
        "leased_by": annotator,
        "lease_token": uuid.uuid4(),
        "leased_at": now,
        "lease_expires_at": now + lease_duration(),
    }
    candidates = claimable_tasks(annotator=annotator, kind=kind, gold=gold, now=now)
    if is_postgres():
        with transaction.atomic():
            pk = candidates.select_for_update(of=("self",)).values_list("pk", flat=True).first()
            if pk is None:
                return None
            ReviewTask.objects.filter(pk=pk).update(**lease)
    else:
        pk = candidates.values_list("pk", flat=True).first()
        if pk is None:
            return None
        ReviewTask.objects.filter(pk=pk).update(**lease)
    return ReviewTask.objects.get(pk=pk)


# --- CPU accounting: on a small machine the cores are what the annotators compete for -----------------------


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backend_pid() -> int | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return None  # SQLite runs inside the process: its CPU is the process's
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def backend_cpu_s(pid: int | None) -> float | None:
    """CPU time of a local PostgreSQL backend, from /proc; None when it runs elsewhere or can't be read.
    SQLite has no backend: its work is in the process's own CPU time (0 here)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (all but idle and iowait), from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# --- one annotator process ----------------------------------------------------------------------------------


@dataclass
class WorkerSpec:
    username: str
    database_url: str
    data_dir: str
    phase: str
    seconds: float
    think_ms: float
    output: str
    seed: int


@dataclass
class WorkerResult:
    username: str
    started_ns: int = 0
    ended_ns: int = 0
    claim_ms: list[float] = field(default_factory=list)
    decide_ms: list[float] = field(default_factory=list)
    # (task id, is gold, claim returned at, decision sent at): a window inside the time the task was held
    holds: list[tuple[int, bool, int, int]] = field(default_factory=list)
    decided: int = 0
    empty_claims: int = 0
    rejected: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    cpu_s: float = 0.0  # this process, during the timed loop
    db_cpu_s: float | None = None  # its PostgreSQL backend, when that runs on this machine


def annotator_work(spec: WorkerSpec, barrier: Any) -> None:
    """One annotator: claim, think, decide, until the phase's time is up. Writes a WorkerResult pickle."""
    django_setup(spec.database_url, spec.data_dir)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.review import leases
    from annotation.review.decisions import DecisionRejected, review_decision_submit
    from annotation.review.leases import review_task_release, review_tasks_claim

    if spec.phase == "baseline":
        leases._claim = naive_claim  # review_task_claim_one looks the name up at call time
    rng = random.Random(spec.seed)
    annotator = get_user_model().objects.get(username=spec.username)
    connection.ensure_connection()  # connect before the clock starts, as a web worker would be
    backend = backend_pid()
    # Warm the code paths once (first queries compiled, caches filled), as in a web worker that has served
    # requests before: claim a task, have an answer with a wrong token refused, give the task back.
    warm = review_tasks_claim(annotator=annotator, kind=KIND, hold=1)
    if warm:
        with contextlib.suppress(DecisionRejected):
            review_decision_submit(
                annotator=annotator, task_id=warm[0].pk, submission_key=uuid.uuid4(), action=ACTIONS[0]
            )
        review_task_release(annotator=annotator, task_id=warm[0].pk)
    result = WorkerResult(username=spec.username)
    barrier.wait()
    result.started_ns = time.monotonic_ns()
    cpu_started, db_cpu_started = process_cpu_s(), backend_cpu_s(backend)
    deadline = result.started_ns + int(spec.seconds * 1e9)
    while time.monotonic_ns() < deadline:
        started = time.perf_counter()
        try:
            held = review_tasks_claim(annotator=annotator, kind=KIND, hold=1)
        except Exception as exc:  # a deadlock or a lock timeout is a result to report, not a crash
            result.errors[f"claim: {type(exc).__name__}: {str(exc)[:80]}"] += 1
            time.sleep(0.01)
            continue
        result.claim_ms.append((time.perf_counter() - started) * 1000)
        claimed_ns = time.monotonic_ns()
        if not held:
            result.empty_claims += 1
            time.sleep(0.01)
            continue
        task = held[0]
        if spec.think_ms:
            # People don't answer in lockstep: between half and one and a half times the mean.
            time.sleep(spec.think_ms * rng.uniform(0.5, 1.5) / 1000)
        sent_ns = time.monotonic_ns()
        started = time.perf_counter()
        try:
            review_decision_submit(
                annotator=annotator,
                task_id=task.pk,
                submission_key=task.lease_token,
                action=rng.choice(ACTIONS),
                duration_ms=int((sent_ns - claimed_ns) / 1e6),
            )
            result.decided += 1
        except DecisionRejected as exc:
            result.rejected[exc.code] += 1
        except Exception as exc:
            result.errors[f"decide: {type(exc).__name__}: {str(exc)[:80]}"] += 1
        result.decide_ms.append((time.perf_counter() - started) * 1000)
        result.holds.append((task.pk, task.is_gold, claimed_ns, sent_ns))
    result.ended_ns = time.monotonic_ns()
    result.cpu_s = process_cpu_s() - cpu_started
    db_cpu_ended = backend_cpu_s(backend)
    if db_cpu_started is not None and db_cpu_ended is not None:
        result.db_cpu_s = db_cpu_ended - db_cpu_started
    connection.close()
    # As a plain dict: a class pickled in a spawned child is named __mp_main__.WorkerResult, unknown to the
    # parent. (Not dataclasses.asdict: it rebuilds a Counter from its items, which counts the pairs.)
    Path(spec.output).write_bytes(pickle.dumps(vars(result)))


# --- one phase, and what it measured ------------------------------------------------------------------------


@dataclass
class PhaseReport:
    phase: str
    seconds: float
    claims: int
    decided: int
    claim_ms: list[float]
    decide_ms: list[float]
    empty_claims: int
    rejected: Counter
    errors: Counter
    max_holders: int
    double_held: int
    handed_twice: int
    db_over_required: int
    db_decided_not_one: int
    db_gold_twice_by_one: int
    db_decisions: int
    machine_busy_cores: float
    annotators_cpu_s: float
    backends_cpu_s: float | None


def phase_run(args: argparse.Namespace, phase: str, usernames: list[str], data_dir: str) -> PhaseReport:
    from django.db import connections

    connections.close_all()  # nothing of the parent's connection must leak into the children
    context = mp.get_context("spawn")
    barrier = context.Barrier(len(usernames) + 1)
    outputs = [Path(data_dir) / f"{phase}-{i}.pickle" for i in range(len(usernames))]
    processes = [
        context.Process(
            target=annotator_work,
            args=(
                WorkerSpec(
                    username=name,
                    database_url=args.database,
                    data_dir=data_dir,
                    phase=phase,
                    seconds=args.seconds,
                    think_ms=args.think_ms,
                    output=str(outputs[i]),
                    seed=args.seed * 1000 + i,
                ),
                barrier,
            ),
        )
        for i, name in enumerate(usernames)
    ]
    for process in processes:
        process.start()
    barrier.wait(timeout=600)  # every annotator is connected: the clock starts for all at once
    busy_started, wall_started = machine_busy_s(), time.monotonic()
    for process in processes:
        process.join()
    # Busy cores over the same window (it ends when the last process has exited, a little after the loops).
    busy_cores = (machine_busy_s() - busy_started) / (time.monotonic() - wall_started)
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise SystemExit(f"{len(failed)} annotator processes failed (exit codes {failed})")
    results = [WorkerResult(**pickle.loads(path.read_bytes())) for path in outputs]
    started = min(r.started_ns for r in results)
    ended = max(r.ended_ns for r in results)
    holds = [(h, r.username) for r in results for h in r.holds]
    max_holders, double_held, handed_twice = holds_check(holds)
    db = decisions_check()
    return PhaseReport(
        phase=phase,
        seconds=(ended - started) / 1e9,
        claims=sum(len(r.holds) for r in results),
        decided=sum(r.decided for r in results),
        claim_ms=sorted(ms for r in results for ms in r.claim_ms),
        decide_ms=sorted(ms for r in results for ms in r.decide_ms),
        empty_claims=sum(r.empty_claims for r in results),
        rejected=sum((r.rejected for r in results), Counter()),
        errors=sum((r.errors for r in results), Counter()),
        max_holders=max_holders,
        double_held=double_held,
        handed_twice=handed_twice,
        machine_busy_cores=busy_cores,
        annotators_cpu_s=sum(r.cpu_s for r in results),
        backends_cpu_s=None if any(r.db_cpu_s is None for r in results) else sum(r.db_cpu_s for r in results),
        **db,
    )


def holds_check(holds: list[tuple[tuple[int, bool, int, int], str]]) -> tuple[int, int, int]:
    """(most annotators holding one task at one instant, tasks held by two at once, regular tasks handed to
    two annotators).

    A window runs from the moment the claim returned to the moment the decision was sent: the lease was
    certainly held all that time, so overlapping windows of two annotators are a certain double hold. The
    windows are narrow under pure stress (think 0), so the exact count next to it matters as much: a regular
    task needs one decision and no lease lapses during a run, so it must be handed to one annotator only.
    Gold tasks stay open and every annotator gets them in turn: for them only overlaps count.
    """
    by_task: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    gold_tasks: set[int] = set()
    for (task_id, gold, start, end), who in holds:
        by_task[task_id].append((start, end, who))
        if gold:
            gold_tasks.add(task_id)
    max_holders = 1 if holds else 0
    double_held = handed_twice = 0
    for task_id, windows in by_task.items():
        if len(windows) < 2:
            continue
        handed_twice += task_id not in gold_tasks and len({who for _, _, who in windows}) > 1
        # At each window's start, count the distinct annotators whose window covers that instant.
        most = max(
            len({who for start, end, who in windows if start <= instant <= end}) for instant, _, _ in windows
        )
        max_holders = max(max_holders, most)
        double_held += most > 1
    return max_holders, double_held, handed_twice


def others_cpu_s(report: PhaseReport) -> float | None:
    """CPU the machine spent on anything but the annotators and their backends: other people's work,
    autovacuum, the WAL writer... On a shared machine it competes with the benchmark for the cores."""
    if report.backends_cpu_s is None:
        return None
    bench_cores = (report.annotators_cpu_s + report.backends_cpu_s) / report.seconds
    return max(0.0, report.machine_busy_cores - bench_cores) * report.seconds


def decisions_check() -> dict[str, int]:
    """What the database says, independently of the processes' own records."""
    from django.db.models import Count, F, Q

    from annotation.models import ReviewDecision, ReviewTask

    live = ReviewDecision.objects.filter(kind=KIND, undone_at=None)
    over_required = (
        live.filter(task__is_gold=False)
        .values("task_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=F("task__required_decisions"))
        .count()
    )
    # Closed regular tasks (the status index finds them) must have exactly one decision each.
    decided_not_one = (
        ReviewTask.objects.filter(kind=KIND, is_gold=False)
        .exclude(status=ReviewTask.Status.OPEN)
        .annotate(n=Count("decisions", filter=Q(decisions__undone_at=None)))
        .exclude(n=1)
        .count()
    )
    gold_twice = (
        live.filter(is_gold=True)
        .values("task_id", "annotator_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    return {
        "db_over_required": over_required,
        "db_decided_not_one": decided_not_one,
        "db_gold_twice_by_one": gold_twice,
        "db_decisions": ReviewDecision.objects.filter(kind=KIND).count(),
    }


# --- printing -------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def machine_print() -> None:
    from django import get_version
    from django.db import connection

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    memory = next(
        (line.split(":")[1].strip() for line in meminfo.splitlines() if line.startswith("MemTotal")), "?"
    )
    print(f"machine: {os.cpu_count()} cores, {memory} memory, load {load}; {platform.platform()}")
    print(f"python {platform.python_version()}, Django {get_version()}")
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute("SELECT version()")
            print(f"database: {cursor.fetchone()[0]}")
            facts = []
            for name in ("max_connections", "shared_buffers", "work_mem", "synchronous_commit", "jit"):
                cursor.execute(f"SHOW {name}")
                facts.append(f"{name}={cursor.fetchone()[0]}")
            print(f"          {', '.join(facts)}")
        else:
            cursor.execute("SELECT sqlite_version()")
            version = cursor.fetchone()[0]
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            print(f"database: SQLite {version}, journal_mode={journal}, synchronous={cursor.fetchone()[0]}")


def plan_print(username: str, title: str) -> None:
    """The plan of the claim query of ``claimable_tasks(...)`` as ``leases._claim`` sends it.

    PostgreSQL: EXPLAIN ANALYZE of the SELECT ... FOR UPDATE SKIP LOCKED (run, then rolled back). SQLite:
    EXPLAIN QUERY PLAN of the query, then of the conditional UPDATE that embeds it.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.db.models import sql
    from django.utils import timezone

    from annotation.models import ReviewTask
    from annotation.review.leases import claimable_tasks, lease_is_free_q

    annotator = get_user_model().objects.get(username=username)
    now = timezone.now()
    candidates = claimable_tasks(annotator=annotator, kind=KIND, gold=False, now=now)
    print(f"\n{title}")
    if is_postgres():
        query = candidates.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[:1]
        with transaction.atomic():
            plan = query.explain(analyze=True, buffers=True)
            transaction.set_rollback(True)  # EXPLAIN ANALYZE really locked the row
    else:
        plan = candidates.values("pk")[:1].explain()
        # The statement that claims: UPDATE ... WHERE id IN (that query) AND still open AND still free.
        update = (
            ReviewTask.objects.filter(pk__in=candidates.values("pk")[:1], status=ReviewTask.Status.OPEN)
            .filter(lease_is_free_q(now))
            .query.chain(sql.UpdateQuery)
        )
        update.add_update_values(
            {"leased_by": annotator, "lease_token": uuid.uuid4(), "leased_at": now, "lease_expires_at": now}
        )
        statement, params = update.get_compiler(connection.alias).as_sql()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params)
            rows = cursor.fetchall()
        plan += "\nthe claiming UPDATE:\n" + "\n".join(" ".join(str(v) for v in row) for row in rows)
    for line in plan.splitlines():
        print(f"    {line}")


def reports_print(reports: list[PhaseReport], args: argparse.Namespace, vendor: str) -> bool:
    """The side-by-side table and the verdict; returns whether the run passed."""
    width = 34

    def row(label: str, values: list[str]) -> None:
        print(f"{label:<30}" + "".join(f"{value:>{width}}" for value in values))

    def rate(count: int, report: PhaseReport) -> str:
        return f"{count / report.seconds:,.1f}"

    def cores(cpu_s: float | None, report: PhaseReport) -> str:
        return "-" if cpu_s is None else f"{cpu_s / report.seconds:.2f}"

    def cpu_per_decision(report: PhaseReport) -> str:
        cpu_s = report.annotators_cpu_s + (report.backends_cpu_s or 0)
        return f"{cpu_s * 1000 / report.decided:.1f}" if report.decided else "-"

    def ms(values: list[float], *qs: float) -> str:
        return " / ".join(f"{percentile(values, q):.1f}" for q in qs)

    print()
    row("", [PHASES[r.phase] for r in reports])
    row("duration s", [f"{r.seconds:.1f}" for r in reports])
    row("claims (tasks handed out)", [f"{r.claims:,}" for r in reports])
    row("claims/s", [rate(r.claims, r) for r in reports])
    row("decisions/s", [rate(r.decided, r) for r in reports])
    row("claim ms p50 / p95 / p99", [ms(r.claim_ms, 50, 95, 99) for r in reports])
    row("claim ms max", [f"{r.claim_ms[-1]:.1f}" if r.claim_ms else "-" for r in reports])
    row("decide ms p50 / p95", [ms(r.decide_ms, 50, 95) for r in reports])
    row("max holders of one task", [str(r.max_holders) for r in reports])
    row("tasks held by two at once", [str(r.double_held) for r in reports])
    row("regular tasks given to two", [str(r.handed_twice) for r in reports])
    row("lost decisions (lease_lost)", [str(r.rejected.get("lease_lost", 0)) for r in reports])
    row(
        "other rejections", [str(sum(r.rejected.values()) - r.rejected.get("lease_lost", 0)) for r in reports]
    )
    row("errors", [str(sum(r.errors.values())) for r in reports])
    row(
        "cpu: machine busy, cores",
        [f"{r.machine_busy_cores:.2f} of {os.cpu_count()}" for r in reports],
    )
    row("cpu: annotator processes", [f"{r.annotators_cpu_s / r.seconds:.2f}" for r in reports])
    row(
        "cpu: their db backends",
        [cores(r.backends_cpu_s, r) if vendor == "postgresql" else "(in process)" for r in reports],
    )
    row("cpu: everything else", [cores(others_cpu_s(r), r) for r in reports])
    row("cpu ms per decision (bench)", [cpu_per_decision(r) for r in reports])
    row("empty claims", [str(r.empty_claims) for r in reports])
    row("db: decisions recorded", [f"{r.db_decisions:,}" for r in reports])
    row("db: tasks over required", [str(r.db_over_required) for r in reports])
    row("db: decided, not 1 decision", [str(r.db_decided_not_one) for r in reports])
    row("db: gold decided twice by one", [str(r.db_gold_twice_by_one) for r in reports])
    for report in reports:
        for error, count in report.errors.most_common(5):
            print(f"  {report.phase} error x{count}: {error}")

    by_phase = {report.phase: report for report in reports}
    if "baseline" in by_phase and "service" in by_phase:
        ratio = percentile(by_phase["baseline"].claim_ms, 95) / percentile(by_phase["service"].claim_ms, 95)
        print(f"\nclaim p95, baseline / service: {ratio:.2f}x")
    service = by_phase.get("service")
    if service is None:
        print("\nno verdict: the service phase did not run")
        return False
    p95 = percentile(service.claim_ms, 95)
    clean = (
        service.max_holders <= 1
        and service.double_held == 0
        and service.handed_twice == 0
        and service.db_over_required == 0
        and service.db_decided_not_one == 0
        and service.db_gold_twice_by_one == 0
        and service.db_decisions == service.decided
        and not service.errors
    )
    passed = p95 < TARGET_P95_MS and clean
    print(
        f"VERDICT {vendor}, {args.tasks:,} tasks, {args.annotators} annotators, think {args.think_ms:g} ms: "
        f"{'PASS' if passed else 'FAIL'} (claim-next p95 {p95:.1f} ms, target < {TARGET_P95_MS:g} ms: "
        f"{'met' if p95 < TARGET_P95_MS else 'missed'}; tasks held by two annotators at once: "
        f"{service.double_held}, regular tasks given to two: {service.handed_twice}; "
        f"database consistent: {'yes' if clean else 'NO'})"
    )
    return passed


# --- main -------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", required=True, help="postgres://user@host:port/name or sqlite:////path")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="open tasks at the start of each phase")
    parser.add_argument("--gold", type=int, default=2000, help="how many of them are gold tasks")
    parser.add_argument("--annotators", type=int, default=32, help="concurrent annotator processes")
    parser.add_argument("--seconds", type=float, default=60, help="duration of each phase")
    parser.add_argument("--think-ms", type=float, default=0, help="mean time on a card; 0 = pure stress")
    parser.add_argument("--phases", default="baseline,service", help="which phases to run, in order")
    parser.add_argument("--rebuild", action="store_true", help="drop the bench database and fill it again")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    if not set(phases) <= set(PHASES) or not phases:
        parser.error(f"--phases: choose among {', '.join(PHASES)}")

    with tempfile.TemporaryDirectory(prefix="twin-bench-") as data_dir:
        database_prepare(args.database, fresh=args.rebuild)
        django_setup(args.database, data_dir)
        from django.core.management import call_command
        from django.db import connection, connections

        call_command("migrate", verbosity=0)
        vendor = connection.vendor
        machine_print()

        bench_database_ready(args.database, tasks=args.tasks, gold=args.gold, rebuild=args.rebuild)
        usernames = annotators_ensure(args.annotators)
        from annotation.review.leases import review_queue_get

        queue = review_queue_get(kind=KIND)
        print(
            f"queue {KIND}: {args.tasks:,} open tasks ({args.gold:,} gold), gold rate {queue.gold_rate:g}, "
            f"{queue.required_decisions} decision per task; {args.annotators} annotators, "
            f"{args.seconds:g} s per phase, think {args.think_ms:g} ms"
        )

        database_analyze()
        plan_print(usernames[0], "claim query plan (regular task, before the run):")
        reports = []
        for phase in phases:
            if reports:
                reset = tasks_reopen()
                database_analyze()
                print(f"\nreopened {reset:,} tasks for the next phase")
            print(f"\nrunning {PHASES[phase]} ...", flush=True)
            reports.append(phase_run(args, phase, usernames, data_dir))
            report = reports[-1]
            print(
                f"  {report.claims:,} claims, {report.decided:,} decisions in {report.seconds:.1f} s; claim p95 "
                f"{percentile(report.claim_ms, 95):.1f} ms",
                flush=True,
            )
        plan_print(usernames[0], "claim query plan (regular task, after the last phase, before vacuum):")
        passed = reports_print(reports, args, vendor)
        connections.close_all()
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
