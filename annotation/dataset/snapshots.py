"""Freezing dataset snapshots: the pairs of reviewed work, copied into rows nothing changes afterwards.

``snapshot_create`` records the snapshot (its name, next version and parameters) and a job; the job's worker
runs ``snapshot_freeze_execute``, which writes the pairs in batches (each in its own transaction, so
annotators keep working meanwhile), counts the statistics and the content hash in the same pass, and marks the
snapshot frozen. Until then the snapshot is "building" and nothing reads it; a failed build leaves no pairs.
"""

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from annotation.dataset.pairs import Pair, PairRules, pair_catalog_read, pairs_iter, pairs_sample, pairs_total
from annotation.dataset.statistics import SnapshotStatistics, statistics_warnings
from annotation.iterables import batched
from annotation.models import Category, DatasetSnapshot, Image, Instance, SnapshotPair
from jobs.dispatch import job_send_on_commit
from jobs.models import Job, JobLogEntry
from jobs.services import job_advance, job_create, job_finish, job_log, job_running

SNAPSHOT_FREEZE_JOB = "snapshot_freeze"
WRITE_BATCH_SIZE = 5000


class SnapshotError(Exception):
    pass


@dataclass(frozen=True)
class SnapshotParameters:
    """The pair rules, and an optional sample of ``sample_size`` pairs (keeping the proportions)."""

    sources: tuple[str, ...] = ()
    verified_only: bool = True
    eval_fraction: float = 0.1
    seed: int = 0
    negatives: str = "hard"
    sample_size: int | None = None
    sample_seed: int = 0

    def __post_init__(self) -> None:
        self.rules()  # validates the rules
        if self.sample_size is not None and self.sample_size < 1:
            raise ValueError("sample_size must be at least 1")

    def rules(self) -> PairRules:
        names = {f.name for f in fields(PairRules)}
        return PairRules(**{name: value for name, value in asdict(self).items() if name in names})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SnapshotParameters":
        known = {f.name for f in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        if "sources" in values:
            values["sources"] = tuple(values["sources"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = list(self.sources)
        return data


def snapshot_create(
    *,
    name: str,
    parameters: SnapshotParameters,
    description: str = "",
    created_by: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> DatasetSnapshot:
    """Records a snapshot to freeze (the next version of ``name``) and its job, and sends the job to a worker
    (or, with ``enqueue=False``, leaves it for ``snapshot_run_inline``)."""
    user = created_by if created_by is not None and created_by.is_authenticated else None
    for _attempt in range(
        5
    ):  # two researchers freezing the same name at once: the loser takes the next version
        try:
            with transaction.atomic():
                latest = DatasetSnapshot.objects.filter(name=name).aggregate(latest=Max("version"))["latest"]
                job = job_create(
                    kind=SNAPSHOT_FREEZE_JOB,
                    parameters={"name": name, **parameters.to_json()},
                    created_by=user,
                )
                snapshot = DatasetSnapshot.objects.create(
                    name=name,
                    version=(latest or 0) + 1,
                    description=description,
                    parameters=parameters.to_json(),
                    job=job,
                    created_by=user,
                )
                job.parameters["snapshot"] = snapshot.pk
                job.save(update_fields=["parameters"])
                if enqueue:
                    job_send_on_commit(job)
                return snapshot
        except IntegrityError:
            continue
    raise SnapshotError(f"Could not pick a version for {name!r}: too many snapshots frozen at once.")


def snapshot_freeze_execute(*, job: Job) -> DatasetSnapshot:
    """The job's work: builds and writes the snapshot's pairs, then freezes it. Safe to run again."""
    snapshot = DatasetSnapshot.objects.get(pk=job.parameters["snapshot"])
    if snapshot.is_frozen:
        raise SnapshotError(f"Snapshot {snapshot} is frozen already.")
    parameters = SnapshotParameters.from_json(snapshot.parameters)
    rules = parameters.rules()
    with job_running(job=job):
        try:
            SnapshotPair.objects.filter(snapshot=snapshot).delete()  # a dead worker's partial build
            catalog = pair_catalog_read(rules)
            if parameters.sample_size is not None:
                pairs = pairs_sample(
                    lambda: pairs_iter(catalog, rules),
                    size=parameters.sample_size,
                    seed=parameters.sample_seed,
                )
                total = min(parameters.sample_size, pairs_total(catalog))
            else:
                pairs = pairs_iter(catalog, rules)
                total = pairs_total(catalog)
            job_advance(job=job, done=0, total=total, message=f"Writing {total:,} pairs.")
            for reason, count in sorted(catalog.dropped.items()):
                job_log(job=job, message=f"Dropped {count} {reason.replace('_', ' ')}.")
            statistics, content_hash = _pairs_write(snapshot, pairs, job=job)
            result = statistics.result(dropped=dict(catalog.dropped))
            for warning in statistics_warnings(result):
                job_log(job=job, message=warning, level=JobLogEntry.Level.WARNING)
        except BaseException:
            SnapshotPair.objects.filter(snapshot=snapshot).delete()
            DatasetSnapshot.objects.filter(pk=snapshot.pk).update(status=DatasetSnapshot.Status.FAILED)
            raise
        snapshot.status = DatasetSnapshot.Status.FROZEN
        snapshot.frozen_at = timezone.now()
        snapshot.content_hash = content_hash
        snapshot.statistics = result
        snapshot.pair_count = result["pairs"]
        snapshot.positive_count = result["positive"]
        snapshot.negative_count = result["negative"]
        snapshot.image_count = result["real_images"] + result["generated_images"]
        snapshot.instance_count = result["instances"]
        snapshot.save()
        job_finish(
            job=job,
            result={"snapshot": snapshot.pk, "pairs": snapshot.pair_count, "content_hash": content_hash},
            message=f"Froze {snapshot}: {snapshot.pair_count:,} pairs.",
        )
    return snapshot


def _pairs_write(
    snapshot: DatasetSnapshot, pairs: Iterable[Pair], *, job: Job
) -> tuple[SnapshotStatistics, str]:
    categories = {
        pk: (name, supercategory)
        for pk, name, supercategory in Category.objects.values_list("pk", "name", "supercategory")
    }
    statistics = SnapshotStatistics(category_of=categories)
    lookups = _Lookups()
    digest = hashlib.sha256()
    written = 0
    for batch in batched(pairs, WRITE_BATCH_SIZE):
        lookups.fill(batch)
        rows = []
        for pair in batch:
            category_id = lookups.category_of_instance[pair.instance_a_id]
            statistics.add(pair, category_id=category_id)
            digest.update(_hash_line(pair, lookups.sha256_of_image))
            rows.append(
                (snapshot.pk, pair.image_a_id, pair.image_b_id, pair.same, str(pair.source), str(pair.split),
                 pair.instance_a_id, pair.instance_b_id, category_id)
            )  # fmt: skip
        _pair_rows_insert(rows)
        written += len(rows)
        job_advance(job=job, done=written)
    return statistics, digest.hexdigest()


_INSERTED_FIELDS = (
    "snapshot", "image_a", "image_b", "same", "source", "split", "instance_a", "instance_b", "category"
)  # fmt: skip


def _pair_rows_insert(rows: list[tuple]) -> None:
    """One batch of pair rows in one statement run many times. The bench showed ``bulk_create`` spending most
    of a 561K-pair freeze building model instances and SQL, and SQLite's parameter bound split each batch into
    inserts of about a hundred rows; ``executemany`` with one prepared statement writes them 3x faster."""
    quote = connection.ops.quote_name
    table = quote(SnapshotPair._meta.db_table)
    columns = ", ".join(quote(SnapshotPair._meta.get_field(name).column) for name in _INSERTED_FIELDS)
    parameter_marks = ", ".join(["%s"] * len(_INSERTED_FIELDS))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({parameter_marks})", rows)


def _hash_line(pair: Pair, sha256_of_image: dict[int, str]) -> bytes:
    label = "yes" if pair.same else "no"
    a, b = sha256_of_image[pair.image_a_id], sha256_of_image[pair.image_b_id]
    return f"{a} {b} {label} {pair.source} {pair.split}\n".encode()


class _Lookups:
    """Each instance's category and each image's SHA-256, read as the batches first need them."""

    QUERY_CHUNK = 900  # under SQLite's bound on query parameters

    def __init__(self) -> None:
        self.category_of_instance: dict[int, int] = {}
        self.sha256_of_image: dict[int, str] = {}

    def fill(self, batch: Sequence[Pair]) -> None:
        instances = sorted({pair.instance_a_id for pair in batch} - self.category_of_instance.keys())
        for chunk in batched(instances, self.QUERY_CHUNK):
            self.category_of_instance.update(
                Instance.objects.filter(pk__in=chunk).values_list("pk", "category_id")
            )
        images = {pair.image_a_id for pair in batch} | {pair.image_b_id for pair in batch}
        for chunk in batched(sorted(images - self.sha256_of_image.keys()), self.QUERY_CHUNK):
            self.sha256_of_image.update(Image.objects.filter(pk__in=chunk).values_list("pk", "sha256"))


def snapshot_run_inline(*, snapshot: DatasetSnapshot) -> DatasetSnapshot:
    """Freezes a snapshot in this process (the management command and the demo), whatever the broker."""
    job = snapshot.job
    if job is None or job.status != Job.Status.QUEUED:
        raise SnapshotError(f"Snapshot {snapshot} has no queued job to run.")
    return snapshot_freeze_execute(job=job)


def snapshot_delete(*, snapshot: DatasetSnapshot) -> None:
    """Deletes a snapshot with its pairs (one DELETE: nothing refers to a pair) and its exports' archives.

    The archives belong to the training app's exports; they are removed from the storage once the rows are gone.
    """
    archive_names = [name for name in snapshot.exports.values_list("file", flat=True) if name]
    with transaction.atomic():
        SnapshotPair.objects.filter(snapshot=snapshot).delete()
        snapshot.delete()
    for name in archive_names:
        transaction.on_commit(lambda name=name: default_storage.delete(name))
