"""Benchmark: building, freezing and exporting a dataset of the TWIN paper's size (561K pairs).

A catalog of the paper's shape is written straight into the models with ``bulk_create`` (no image files: a file
name and a distinct SHA-256 per image are all that pairs, freezing and the JSON lines use):

- 1,836 instances in 36 categories of 6 supercategories, one accepted product each with 12 accepted real
  images (22,032 images): 1,836 x 66 = 121,176 positive pairs;
- 2.6 approved generated images per instance (4,774), each against the 12 real images of its instance:
  57,288 synthetic negatives;
- 1.447 approved hard-negative instance pairs per instance (2,657), each two instances of one category and
  of one split (so the builder keeps them all and the count is exact), 12 x 12 image pairs each: 382,608
  hard negatives. In all 561,072 pairs (paper: ~561K, ~123K positive, ~438K negative).

``--scale`` shrinks the instances, categories, generated images and hard-negative pairs alike (12 images per
instance at every scale). Measured, in the same run as the baseline each is compared with:

1. Pair building: ``pair_catalog_read`` (the catalog read once), then counting ``pairs_iter`` as it streams,
   against the baseline ``list(pairs_iter(...))`` (all pairs held at once).
2. Freezing: ``snapshot_create`` + ``snapshot_run_inline`` of the whole snapshot (writes every
   ``SnapshotPair`` row in batches, with its statistics and content hash). It is heavy, so it runs once
   timed (``--freeze-repeat`` for more) and once more under tracemalloc for its peak, a second snapshot
   version of the same pairs.
3. Streamed JSONL export: the whole snapshot through the REST API's ``/api/v1/snapshots/<id>/pairs.jsonl``
   with Django's test ``Client`` (an API user, logged in), its ``streaming_content`` consumed chunk by chunk,
   counting lines and bytes without keeping them, against the baseline of the same rows materialized as a
   list of dicts (``PairRow.to_json()`` of every ``snapshot_pair_rows`` row).
4. With ``--sample M``: freezing a proportional sample of M pairs (``SnapshotParameters(sample_size=M)``).
5. With ``--exports verl,huggingface,plain``: each export built by its job's code (``export_create`` +
   ``export_run_inline``: the writer streams the rows into the archive, then it is checksummed and stored),
   once, timed with its RSS growth. Every image file is then written first as the same small JPEG (32x24): the
   figures are those of the rows, the parquet and the archive, not of decoding and shrinking photos (which
   real catalogs add once per distinct image, not per pair).

Times are medians of ``--repeat`` runs (1 and 3; default 3) made without tracing; the Python peak is
``tracemalloc``'s, from one more run of each step under tracing (tracing slows allocation-heavy code 2-3x, so
it never feeds the times). "RSS peak +" is the growth of ``getrusage(RUSAGE_SELF).ru_maxrss`` over the RSS the
step started at, the high-water mark being reset before each step (Linux ``/proc/self/clear_refs``; where it
can't be, the growth over the previous high-water mark, 0 when the step stayed under it); the largest of the
timed runs. Before each step the garbage is collected and the C allocator asked to give freed memory back
(glibc ``malloc_trim``), so memory a previous step freed is not counted as this one's; what is left of the
earlier steps' heap may still absorb some of a step's growth. It includes SQLite's page cache.

    .venv/bin/python bench/dataset_scale.py --scale 0.1
    .venv/bin/python bench/dataset_scale.py                      # full size, 561K pairs: ~6.5 min on 2 cores
    .venv/bin/python bench/dataset_scale.py --sample 50000 --exports verl,huggingface,plain
    .venv/bin/python bench/dataset_scale.py --database-url postgres://postgres@127.0.0.1:5432/twin_bench_dataset

The default database is a throwaway SQLite file in a temporary directory. A PostgreSQL URL names a database
of the bench's own: it is dropped if it exists, created, migrated, and dropped again at the end
(``--keep-database`` keeps it).
"""

import argparse
import ctypes
import ctypes.util
import gc
import hashlib
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent

# The TWIN paper's shape at --scale 1.
INSTANCES = 1836
IMAGES_PER_INSTANCE = 12
GENERATED_PER_INSTANCE = 2.6
HARD_NEGATIVE_PAIRS_PER_INSTANCE = 1.447
EVAL_FRACTION = 0.1
SUPERCATEGORIES = {
    "Home & Kitchen": ("vase", "mug", "teapot", "cutting board", "candle holder", "salad bowl"),
    "Tools & Home Improvement": ("lamp", "drill", "hammer", "faucet", "tape measure", "wrench"),
    "Sports & Outdoors": ("water bottle", "backpack", "tent", "yoga mat", "dumbbell", "helmet"),
    "Toys & Games": ("plush toy", "puzzle", "toy car", "action figure", "board game", "kite"),
    "Electronics": ("earbuds", "headphones", "phone case", "keyboard", "mouse", "speaker"),
    "Clothing, Shoes & Jewelry": ("sneaker", "watch", "sunglasses", "handbag", "ring", "hat"),
}
SNAPSHOT_NAME = "bench"
MB = 2**20


# --- settings and the database ------------------------------------------------------------------------------


def django_setup(database_url: str, data_dir: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DATABASE_URL"] = database_url
    os.environ["TWIN_DATA_DIR"] = data_dir
    os.environ["DJANGO_DEBUG"] = "false"  # DEBUG keeps every query in memory: it would pollute the peaks
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)  # no collectstatic
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def postgres_server(database_url: str) -> tuple[str, str]:
    """(conninfo of the server's maintenance database, the bench database's name)."""
    import psycopg

    parts = urlsplit(database_url)
    name = unquote(parts.path.lstrip("/"))
    lowered = name.lower()
    if not name or lowered in ("test", "postgres", "template0", "template1") or lowered.startswith("test_"):
        raise SystemExit(
            f"refusing to use the database {name!r}: pick a name of its own, e.g. twin_bench_dataset"
        )
    server = psycopg.conninfo.make_conninfo(
        host=parts.hostname or "",
        port=parts.port or 5432,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        dbname="postgres",
    )
    return server, name


def postgres_recreate(database_url: str, *, create: bool) -> None:
    """Drops the bench database if it exists; with ``create``, creates it empty."""
    import psycopg
    from psycopg import sql

    server, name = postgres_server(database_url)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def machine_print(scale: float) -> None:
    from django import get_version
    from django.db import connection

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load {load}; {platform.platform()}")
    print(f"python {platform.python_version()}, Django {get_version()}")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT version()")
            print(f"database: {cursor.fetchone()[0]}")
        else:
            cursor.execute("SELECT sqlite_version()")
            print(f"database: SQLite {cursor.fetchone()[0]} ({connection.settings_dict['NAME']})")
    print(f"scale {scale:g} of the TWIN paper's catalog")


# --- the catalog ----------------------------------------------------------------------------------------------


@dataclass
class CatalogSize:
    categories: int
    instances: int
    real_images: int
    generated_images: int
    hard_negative_pairs: int


def image_sha256(kind: str, owner: int, position: int) -> str:
    return hashlib.sha256(f"bench:{kind}:{owner}:{position}".encode()).hexdigest()


def categories_ordered() -> list[tuple[str, str]]:
    """(name, supercategory), taking the supercategories in turn: a small scale still has several."""
    columns = [[(name, supercategory) for name in names] for supercategory, names in SUPERCATEGORIES.items()]
    return [column[row] for row in range(len(columns[0])) for column in columns]


def catalog_fill(*, scale: float, seed: int) -> CatalogSize:
    """The paper-shaped catalog, every real and generated image accepted, with its hard-negative pairs."""
    from annotation.dataset.pairs import instance_split
    from annotation.models import Category, HardNegativePair, Image, Instance, Product, ReviewStatus

    rng = random.Random(seed)
    accepted = ReviewStatus.ACCEPTED
    instance_count = max(2, round(INSTANCES * scale))
    names = categories_ordered()
    category_count = min(len(names), max(1, round(len(names) * scale)))
    categories = Category.objects.bulk_create(
        Category(name=name, supercategory=supercategory) for name, supercategory in names[:category_count]
    )
    instances = Instance.objects.bulk_create(
        Instance(category=categories[i % category_count], name=f"bench object {i}")
        for i in range(instance_count)
    )
    products = Product.objects.bulk_create(
        (
            Product(
                source="bench",
                external_id=f"bench-{instance.pk}",
                title=f"Bench product {instance.pk}",
                category=instance.category,
                instance=instance,
                review_status=accepted,
            )
            for instance in instances
        ),
        batch_size=2000,
    )
    real = Image.objects.bulk_create(
        (
            Image(
                product=product,
                file=f"images/bench/{product.pk}-{position}.jpg",
                sha256=image_sha256("real", product.pk, position),
                position=position,
                width=640,
                height=480,
                origin=Image.Origin.REAL,
                review_status=accepted,
            )
            for product in products
            for position in range(IMAGES_PER_INSTANCE)
        ),
        batch_size=2000,
    )
    # 2 or 3 generated images per instance, GENERATED_PER_INSTANCE on average.
    generated_total = round(GENERATED_PER_INSTANCE * instance_count)
    generated = Image.objects.bulk_create(
        (
            Image(
                generated_for=instance,
                file=f"images/generated/{instance.pk}-{number}.png",
                sha256=image_sha256("generated", instance.pk, number),
                width=512,
                height=512,
                origin=Image.Origin.GENERATED,
                review_status=accepted,
            )
            for i, instance in enumerate(instances)
            for number in range(
                (i + 1) * generated_total // instance_count - i * generated_total // instance_count
            )
        ),
        batch_size=2000,
    )
    # Hard negatives pair look-alikes: two instances of one category, drawn within one split so that none
    # is dropped for crossing splits (the count of pairs the builder makes is then exact).
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for instance in instances:
        split = instance_split(instance_id=instance.pk, eval_fraction=EVAL_FRACTION, seed=0)
        groups[(instance.category_id, str(split))].append(instance.pk)
    members = [group for group in groups.values() if len(group) >= 2]
    weights = [len(group) * (len(group) - 1) // 2 for group in members]
    wanted = min(round(HARD_NEGATIVE_PAIRS_PER_INSTANCE * instance_count), sum(weights))
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < wanted:
        a, b = rng.sample(rng.choices(members, weights)[0], 2)
        chosen.add((min(a, b), max(a, b)))
    HardNegativePair.objects.bulk_create(
        (HardNegativePair(instance_a_id=a, instance_b_id=b) for a, b in sorted(chosen)), batch_size=2000
    )
    return CatalogSize(category_count, instance_count, len(real), len(generated), len(chosen))


def api_user_make() -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from annotation.roles import API_USER

    user = get_user_model().objects.create(username="bench-api-user")
    user.set_unusable_password()
    user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=API_USER))
    return user


# --- measuring ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rows: int
    size: int = 0  # bytes streamed, where the step streams any
    rss_growth: int | None = None  # bytes
    traced_peak: int | None = None  # bytes


@dataclass
class Step:
    label: str
    runs: list[Run] = field(default_factory=list)  # timed, untraced
    traced: Run | None = None
    baseline: "Step | None" = None

    @property
    def seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def rows(self) -> int:
        return self.runs[0].rows

    @property
    def size(self) -> int:
        return self.runs[0].size

    @property
    def rss_growth(self) -> int | None:
        values = [run.rss_growth for run in self.runs if run.rss_growth is not None]
        return max(values) if values else None

    @property
    def traced_peak(self) -> int | None:
        return self.traced.traced_peak if self.traced else None


def ru_maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def rss_now() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_peak_reset() -> bool:
    """Resets the process's RSS high-water mark (ru_maxrss); False where the system can't."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def heap_trim() -> None:
    """Collects garbage and hands the C heap's free memory back to the system (glibc only; else a no-op)."""
    gc.collect()
    library = ctypes.util.find_library("c")
    if library:
        trim = getattr(ctypes.CDLL(library), "malloc_trim", None)
        if trim is not None:
            trim(0)


def measure(work: Callable[[], tuple[int, int]], *, traced: bool) -> Run:
    """Runs ``work`` (returning rows and bytes) once: wall time, RSS growth, and with ``traced`` the Python peak."""
    heap_trim()
    start_rss = rss_now() if rss_peak_reset() else ru_maxrss()
    if traced:
        tracemalloc.start()
    try:
        started = time.perf_counter()
        rows, size = work()
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if traced else None
    finally:
        if traced:
            tracemalloc.stop()
    growth = None if traced else max(0, ru_maxrss() - start_rss)
    return Run(seconds=seconds, rows=rows, size=size, rss_growth=growth, traced_peak=peak)


def step_measure(label: str, work: Callable[[], tuple[int, int]], *, repeat: int) -> Step:
    """``repeat`` timed runs, then one traced run for the Python peak; prints the step's line."""
    step = Step(label)
    for _ in range(repeat):
        step.runs.append(measure(work, traced=False))
        if step.runs[-1].rows != step.runs[0].rows:
            raise SystemExit(f"{label}: {step.runs[-1].rows:,} rows, then {step.runs[0].rows:,}")
    step.traced = measure(work, traced=True)
    step_print(step)
    return step


def megabytes(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1024:,.1f} KB" if size < MB else f"{size / MB:,.1f} MB"


def step_print(step: Step) -> None:
    times = [run.seconds for run in step.runs]
    spread = f" ({min(times):.2f}-{max(times):.2f})" if len(times) > 1 else ""
    rate = f"{step.rows / step.seconds:,.0f} rows/s"
    if step.size:
        rate += f", {step.size / MB / step.seconds:,.1f} MB/s ({step.size / MB:,.1f} MB)"
    print(
        f"   {step.label}: {step.rows:,} rows in {step.seconds:.2f} s{spread}, {rate}; Python peak "
        f"{megabytes(step.traced_peak)}, RSS peak +{megabytes(step.rss_growth)}",
        flush=True,
    )


def median_note(repeat: int) -> str:
    return f"median of {repeat} timed run(s), then one traced run for the Python peak"


# --- the steps ------------------------------------------------------------------------------------------------


def pair_building(repeat: int) -> list[Step]:
    from annotation.dataset.pairs import PairRules, pair_catalog_read, pair_counts, pairs_iter

    rules = PairRules(eval_fraction=EVAL_FRACTION)
    print(f"\n1. Pair building ({median_note(repeat)})")

    def read() -> tuple[int, int]:
        catalog = pair_catalog_read(rules)
        return sum(len(images) for images in catalog.real_images.values()), 0

    read_step = step_measure("catalog read (pair_catalog_read, rows = real images)", read, repeat=repeat)
    catalog = pair_catalog_read(rules)
    counts = pair_counts(pairs_iter(catalog, rules))
    sources = ", ".join(
        f"{key.removeprefix('source:')} {n:,}" for key, n in counts.items() if "source:" in key
    )
    splits = ", ".join(f"{key.removeprefix('split:')} {n:,}" for key, n in counts.items() if "split:" in key)
    print(
        f"   {counts['pairs']:,} pairs: {counts['positive']:,} positive, {counts['negative']:,} negative; "
        f"by source: {sources}; by split: {splits}; dropped: {dict(catalog.dropped) or 'none'}"
    )

    def streamed() -> tuple[int, int]:
        return sum(1 for _ in pairs_iter(catalog, rules)), 0

    def materialized() -> tuple[int, int]:
        pairs = list(pairs_iter(catalog, rules))
        return len(pairs), 0

    stream_step = step_measure("streamed: count pairs_iter", streamed, repeat=repeat)
    stream_step.baseline = step_measure("baseline: list(pairs_iter)", materialized, repeat=repeat)
    return [read_step, stream_step, stream_step.baseline]


def freezing(repeat: int) -> tuple[Step, Any]:
    from annotation.dataset.snapshots import SnapshotParameters, snapshot_create, snapshot_run_inline

    print(
        f"\n2. Freezing the whole snapshot (snapshot_create + snapshot_run_inline; {repeat} timed run(s), "
        "then one traced run for the Python peak, each a new version)"
    )
    frozen: list[Any] = []

    def freeze() -> tuple[int, int]:
        snapshot = snapshot_create(
            name=SNAPSHOT_NAME, parameters=SnapshotParameters(eval_fraction=EVAL_FRACTION), enqueue=False
        )
        frozen.append(snapshot_run_inline(snapshot=snapshot))
        return frozen[-1].pair_count, 0

    step = step_measure("freeze: write SnapshotPair rows, statistics, hash", freeze, repeat=repeat)
    snapshot = frozen[0]
    hashes = {s.content_hash for s in frozen}
    print(
        f"   {snapshot}: {snapshot.pair_count:,} pairs ({snapshot.positive_count:,} positive, "
        f"{snapshot.negative_count:,} negative), {snapshot.image_count:,} images, {snapshot.instance_count:,} "
        f"instances; content hash {snapshot.content_hash[:16]}... "
        f"({'the same in every version' if len(hashes) == 1 else 'DIFFERS between versions'})"
    )
    return step, snapshot


def sample_freezing(sample: int, full: Step) -> Step:
    from annotation.dataset.snapshots import SnapshotParameters, snapshot_create, snapshot_run_inline

    print(f"\n4. Freezing a proportional sample of {sample:,} pairs (one timed run, no traced run)")

    def freeze() -> tuple[int, int]:
        parameters = SnapshotParameters(eval_fraction=EVAL_FRACTION, sample_size=sample)
        snapshot = snapshot_create(name=f"{SNAPSHOT_NAME}-sample", parameters=parameters, enqueue=False)
        return snapshot_run_inline(snapshot=snapshot).pair_count, 0

    step = Step(f"freeze: sample of {sample:,}")
    step.runs.append(measure(freeze, traced=False))
    step_print(step)
    print(f"   {step.seconds / full.seconds:.2f}x the time of freezing all {full.rows:,} pairs")
    return step


def image_files_write(snapshot: Any) -> None:
    """One small JPEG in the media storage for every image the snapshot shows (the catalog has names only)."""
    import io

    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    from annotation.dataset.selectors import snapshot_images

    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 24), (120, 140, 160)).save(buffer, format="JPEG")
    root = Path(default_storage.location)
    for name in snapshot_images(snapshot=snapshot).values_list("file", flat=True).iterator(chunk_size=5000):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())


def exports_build(snapshot: Any, formats: list[str]) -> list[Step]:
    from training.services.exports import export_create, export_run_inline

    print(f"\n5. Exports of {snapshot} built by the job's code (one timed run each; images: one 32x24 JPEG)")
    started = time.perf_counter()
    image_files_write(snapshot)
    print(f"   {snapshot.image_count:,} image files written in {time.perf_counter() - started:.1f} s")
    steps = []
    for export_format in formats:

        def build(export_format: str = export_format) -> tuple[int, int]:
            export = export_run_inline(
                export=export_create(snapshot=snapshot, format=export_format, enqueue=False)
            )
            return export.row_count, export.size_bytes

        step = Step(f"export: {export_format} archive")
        step.runs.append(measure(build, traced=False))
        step_print(step)
        steps.append(step)
    return steps


def export(snapshot: Any, user: Any, repeat: int) -> list[Step]:
    from django.test import Client

    from annotation.dataset.selectors import snapshot_pair_rows

    url = f"/api/v1/snapshots/{snapshot.pk}/pairs.jsonl"
    print(f"\n3. Streamed JSONL export of {snapshot} through GET {url} ({median_note(repeat)})")
    client = Client()
    client.force_login(user)
    # Warm, as a web worker that has served requests would be: the URLs, views and session are loaded.
    if client.get(f"/api/v1/snapshots/{snapshot.pk}/").status_code != 200:
        raise SystemExit("the API user can't read the snapshot")

    def streamed() -> tuple[int, int]:
        response = client.get(url)
        if response.status_code != 200 or not response.streaming:
            raise SystemExit(f"GET {url}: {response.status_code}, streaming {response.streaming}")
        lines = size = 0
        for chunk in response.streaming_content:
            lines += chunk.count(b"\n")
            size += len(chunk)
        return lines, size

    def materialized() -> tuple[int, int]:
        rows = [row.to_json() for row in snapshot_pair_rows(snapshot=snapshot)]
        return len(rows), 0

    stream_step = step_measure("streamed: JSON lines through the API", streamed, repeat=repeat)
    if stream_step.rows != snapshot.pair_count:
        raise SystemExit(f"the download gave {stream_step.rows:,} lines for {snapshot.pair_count:,} pairs")
    stream_step.baseline = step_measure(
        "baseline: snapshot_pair_rows as a list of dicts", materialized, repeat=repeat
    )
    return [stream_step, stream_step.baseline]


def summary_print(steps: list[Step]) -> None:
    print("\nSummary (times: medians of the timed runs; Python peak: tracemalloc, traced run)")
    header = (
        f"{'step':<52} {'rows':>9} {'time s':>8} {'rows/s':>10} {'Python peak':>12} {'RSS peak +':>12}"
        f"  {'vs baseline':<30}"
    )
    print(header)
    print("-" * len(header))
    for step in steps:
        against = ""
        if step.baseline is not None:
            base = step.baseline
            memory = (
                f"peak {step.traced_peak / base.traced_peak:.2%}"
                if step.traced_peak is not None and base.traced_peak
                else "peak -"
            )
            against = f"time {step.seconds / base.seconds:.2f}x, {memory}"
        print(
            f"{step.label:<52} {step.rows:>9,} {step.seconds:>8.2f} {step.rows / step.seconds:>10,.0f} "
            f"{megabytes(step.traced_peak):>12} {megabytes(step.rss_growth):>12}  {against}"
        )


# --- main ---------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="of the paper's catalog (1: ~561K pairs)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of pair building and the export")
    parser.add_argument("--freeze-repeat", type=int, default=1, help="timed runs of freezing")
    parser.add_argument("--sample", type=int, default=0, help="also freeze a sample of this many pairs")
    parser.add_argument(
        "--database-url", default="", help="a temporary SQLite file unless given (postgres://.../own_name)"
    )
    parser.add_argument("--keep-database", action="store_true", help="don't drop a PostgreSQL database")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--exports", default="", help="also build these exports, comma-separated: verl,huggingface,plain"
    )
    args = parser.parse_args()
    formats = [name for name in args.exports.split(",") if name]
    if set(formats) - {"verl", "huggingface", "plain"}:
        parser.error("--exports takes verl, huggingface and plain")
    if not 0 < args.scale <= 10 or args.repeat < 1 or args.freeze_repeat < 1 or args.sample < 0:
        parser.error("--scale must be in (0, 10], --repeat and --freeze-repeat at least 1, --sample >= 0")

    with tempfile.TemporaryDirectory(prefix="twin-bench-") as data_dir:
        database_url = args.database_url or f"sqlite:///{data_dir}/twin-bench.sqlite3"
        postgres = urlsplit(database_url).scheme.startswith("postgres")
        if postgres:
            postgres_recreate(database_url, create=True)
        elif not urlsplit(database_url).scheme.startswith("sqlite"):
            parser.error(f"unsupported database URL {database_url!r}: postgres://... or sqlite:////path")
        try:
            django_setup(database_url, data_dir)
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            machine_print(args.scale)
            started = time.perf_counter()
            size = catalog_fill(scale=args.scale, seed=args.seed)
            user = api_user_make()
            print(
                f"catalog: {size.categories} categories, {size.instances:,} instances, {size.real_images:,} real "
                f"images, {size.generated_images:,} generated, {size.hard_negative_pairs:,} hard-negative "
                f"instance pairs; filled in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            steps = pair_building(args.repeat)
            freeze_step, snapshot = freezing(args.freeze_repeat)
            steps.append(freeze_step)
            steps += export(snapshot, user, args.repeat)
            if args.sample:
                steps.append(sample_freezing(args.sample, freeze_step))
            if formats:
                steps += exports_build(snapshot, formats)
            summary_print(steps)
            for step in steps:
                if step.baseline is not None and step.traced_peak and step.baseline.traced_peak:
                    print(
                        f"{step.label}: Python peak {megabytes(step.traced_peak)} against "
                        f"{megabytes(step.baseline.traced_peak)} for the baseline "
                        f"({step.baseline.traced_peak / step.traced_peak:,.0f}x less)"
                    )
        finally:
            if postgres:
                from django.db import connections

                connections.close_all()
                if not args.keep_database:
                    postgres_recreate(database_url, create=False)


if __name__ == "__main__":
    main()
