"""FGVQA benchmarks from the researcher's side: recording one, building its queries on a worker, and the
build itself.

A build reads the source's labelled images (a snapshot's eval split for TWIN-Eval, a local copy of a public
dataset otherwise), draws a seeded sample, finds look-alikes for the negatives, builds the pair, multi and
open queries, and stores them with the images they show. The published FGVQA format brings its own queries,
which are stored as they are. Once a run has answered a benchmark, its queries never change.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from evaluation.models import Benchmark, BenchmarkImage, BenchmarkQuery, EvaluationResponse
from evaluation.prompts import multi_question, pair_question, published_question
from evaluation.query_building import BuiltQuery, pool_sample, queries_build
from evaluation.recognition import open_question
from evaluation.services.benchmark_parameters import NO_EMBEDDER, BenchmarkParameters
from evaluation.sources.labelled import LabelledImage
from evaluation.storable import storable_json, storable_text
from jobs.dispatch import job_send_on_commit
from jobs.models import Job
from jobs.services import job_advance, job_create, job_finish, job_log, job_running

BENCHMARK_BUILD_JOB = "benchmark_build"
# Which domain's wording each source's prompts take (paper appendix A.2).
SOURCE_DOMAINS = {
    Benchmark.Source.TWIN_EVAL: Benchmark.Domain.OBJECT,
    Benchmark.Source.ILIAS: Benchmark.Domain.OBJECT,
    Benchmark.Source.GLDV2: Benchmark.Domain.LANDMARK,
    Benchmark.Source.MET: Benchmark.Domain.ARTWORK,
    Benchmark.Source.CUB: Benchmark.Domain.BIRD,
    Benchmark.Source.INQUIRE: Benchmark.Domain.SPECIES,
}
_STORE_BATCH = 500


class BenchmarkError(Exception):
    """The benchmark can't be saved or built as it is; the message says why."""


def benchmark_check(benchmark: Benchmark) -> None:
    """Raises BenchmarkError naming what is wrong with the benchmark's settings."""
    try:
        parameters = BenchmarkParameters.from_json(benchmark.parameters)
    except (TypeError, ValueError) as exc:
        raise BenchmarkError(str(exc)) from exc
    if benchmark.source == Benchmark.Source.TWIN_EVAL:
        if not benchmark.snapshot_id:
            raise BenchmarkError(
                "TWIN-Eval is built from a frozen snapshot's eval split: choose the snapshot."
            )
        if not benchmark.snapshot.is_frozen:
            raise BenchmarkError(
                f"Snapshot {benchmark.snapshot} is not frozen: it is {benchmark.snapshot.status}."
            )
        return
    if not benchmark.source_path.strip():
        raise BenchmarkError("Give the folder holding the dataset's local copy, as the workers see it.")
    _source_root_checked(benchmark.source_path)
    if benchmark.source == Benchmark.Source.FGVQA and not parameters.dataset_source:
        raise BenchmarkError(
            'Name the published FGVQA dataset_source to import, e.g. "fgvqa_cub" or "twin" '
            "(manage.py import_fgvqa creates one benchmark per dataset_source)."
        )


def _source_root_checked(source_path: str) -> Path:
    root = Path(source_path).expanduser().resolve()
    allowed = settings.EVALUATION_SOURCE_ROOTS
    if allowed and not any(root.is_relative_to(base) for base in allowed):
        raise BenchmarkError(
            f"{root} is outside the folders benchmark sources may come from "
            f"(TWIN_EVALUATION_SOURCE_ROOTS: {', '.join(str(base) for base in allowed)})."
        )
    return root


def benchmark_create(
    *,
    name: str,
    source: str,
    display_name: str = "",
    domain: str = "",
    snapshot=None,
    source_path: str = "",
    parameters: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Benchmark:
    """Records a benchmark (a draft: its queries are built by ``benchmark_build_launch``)."""
    benchmark = Benchmark(
        name=name,
        display_name=display_name or name,
        source=source,
        domain=domain or SOURCE_DOMAINS.get(source, Benchmark.Domain.OBJECT),
        snapshot=snapshot,
        source_path=source_path,
        parameters={**BenchmarkParameters().to_json(), **(parameters or {})},
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    benchmark_check(benchmark)
    benchmark.save()
    return benchmark


def benchmark_is_answered(benchmark: Benchmark) -> bool:
    return EvaluationResponse.objects.filter(query__benchmark=benchmark).exists()


def benchmark_build_launch(
    *, benchmark: Benchmark, launched_by: AbstractBaseUser | None = None, enqueue: bool = True
) -> Job:
    """Queues the build on the CPU queue. A benchmark that runs have answered is never rebuilt. With
    ``enqueue=False`` the job is only recorded, for a caller that builds it itself (a management command)."""
    with transaction.atomic():
        locked = Benchmark.objects.select_for_update(of=("self",)).select_related("job").get(pk=benchmark.pk)
        if locked.status == Benchmark.Status.BUILDING and locked.job_id and not locked.job.is_finished:
            raise BenchmarkError(f"Benchmark {locked} is already being built.")
        if benchmark_is_answered(locked):
            raise BenchmarkError(
                f"Runs have answered {locked}'s queries: they stay as they are, so those runs stay comparable. "
                "Create a new benchmark to build other queries."
            )
        benchmark_check(locked)
        job = job_create(
            kind=BENCHMARK_BUILD_JOB,
            parameters={"benchmark": locked.pk, "name": locked.name, "source": locked.source},
            created_by=launched_by,
        )
        Benchmark.objects.filter(pk=locked.pk).update(job=job, status=Benchmark.Status.BUILDING)
        benchmark.job, benchmark.status = job, Benchmark.Status.BUILDING
        if enqueue:
            job_send_on_commit(job)
    return job


# --- the build, on a worker -------------------------------------------------------------------------------


def benchmark_build_execute(*, job: Job) -> Benchmark:
    benchmark = Benchmark.objects.select_related("snapshot").get(pk=job.parameters["benchmark"])
    try:
        with job_running(job=job):
            _build(benchmark, job)
    finally:
        job.refresh_from_db()
        if job.status != Job.Status.SUCCEEDED:
            Benchmark.objects.filter(pk=benchmark.pk, status=Benchmark.Status.BUILDING).update(
                status=Benchmark.Status.FAILED
            )
    benchmark.refresh_from_db()
    return benchmark


def _build(benchmark: Benchmark, job: Job) -> None:
    parameters = BenchmarkParameters.from_json(benchmark.parameters)
    if benchmark_is_answered(benchmark):
        raise BenchmarkError(f"Runs have answered {benchmark}'s queries: it is not rebuilt.")
    with transaction.atomic():
        benchmark.queries.all().delete()
        benchmark.images.all().delete()
    if benchmark.source == Benchmark.Source.FGVQA:
        notes = _build_published(benchmark, parameters, job)
    else:
        notes = _build_from_labelled(benchmark, parameters, job)
    counts = {
        kind: benchmark.queries.filter(question_type=kind).count()
        for kind in BenchmarkQuery.QuestionType.values
    }
    Benchmark.objects.filter(pk=benchmark.pk).update(
        status=Benchmark.Status.READY,
        pair_count=counts["pair"],
        multi_count=counts["multi"],
        open_count=counts["open"],
        notes="\n".join(notes),
        built_at=timezone.now(),
    )
    job_finish(
        job=job, result={"queries": counts, "notes": notes}, message=f"Built {sum(counts.values())} queries."
    )


def _labelled_images(benchmark: Benchmark) -> tuple[list[LabelledImage], Any, dict[str, str]]:
    """The source's images, the look-alike function (TWIN-Eval), and the storage names of images that are
    already in the media storage (TWIN-Eval's catalog images, not copied)."""
    if benchmark.source == Benchmark.Source.TWIN_EVAL:
        from evaluation.services.twin_eval import twin_eval_images

        twin = twin_eval_images(benchmark.snapshot)
        return twin.images, twin.look_alikes, twin.storage_names
    from evaluation.sources import SourceError, source_labelled_images

    try:
        images = source_labelled_images(benchmark.source, _source_root_checked(benchmark.source_path))
    except SourceError as exc:
        raise BenchmarkError(str(exc)) from exc
    return list(images), None, {}


def _build_from_labelled(benchmark: Benchmark, parameters: BenchmarkParameters, job: Job) -> list[str]:
    job_advance(job=job, done=0, message="Reading the source's images.")
    images, look_alikes, storage_names = _labelled_images(benchmark)
    if not images:
        raise BenchmarkError(f"The source of {benchmark} has no images.")
    job_log(job=job, message=f"{len(images)} images of {len({image.label for image in images})} identities.")
    if parameters.pool_images and len(images) > parameters.pool_images and look_alikes is None:
        keep = pool_sample(images, max_images=parameters.pool_images, seed=parameters.seed)
        images = [images[index] for index in keep]
        job_log(job=job, message=f"Drew {len(images)} of them (pool_images) to build from.")
    features = _features(images, parameters, job)
    job_advance(job=job, done=0, message="Building the queries.")
    built = queries_build(
        images,
        pair_count=parameters.pair_count,
        multi_count=parameters.multi_count,
        seed=parameters.seed,
        features=features,
        look_alikes=look_alikes,
        hard_negative_pool=parameters.hard_negative_pool,
    )
    notes = list(built.notes)
    open_indices, open_notes = _open_query_images(images, parameters)
    notes += open_notes
    used = sorted({index for query in built.queries for index in query.image_indices} | set(open_indices))
    total = len(used)
    job_advance(job=job, done=0, total=total, message=f"Storing {total} images.")
    image_id_of = _images_store(benchmark, images, used, storage_names, job)
    _queries_store(benchmark, built.queries, open_indices, images, image_id_of)
    for note in notes:
        job_log(job=job, message=note)
    return notes


def _features(
    images: Sequence[LabelledImage], parameters: BenchmarkParameters, job: Job
) -> np.ndarray | None:
    """L2-normalised embeddings of the images, to find look-alikes; None when the look-alike search is off."""
    if parameters.embedder == NO_EMBEDDER or not parameters.pair_count + parameters.multi_count:
        return None
    from mining.backends.embedders import WeightsUnavailable, embedder_load, embedder_spec_parse

    spec = embedder_spec_parse(parameters.embedder or settings.MINING_EMBEDDER)
    job_advance(job=job, done=0, total=len(images), message=f"Embedding {len(images)} images ({spec.key}).")
    try:
        embedder = embedder_load(
            spec,
            device=settings.MINING_DEVICE,
            allow_random_weights=settings.MINING_ALLOW_RANDOM_WEIGHTS,
            cache_dir=settings.MINING_MODEL_CACHE_DIR,
        )
    except WeightsUnavailable as exc:
        raise BenchmarkError(
            f'{exc} Set the benchmark\'s embedder to "descriptor" (no weights) or "none" (random negatives).'
        ) from exc
    batches, done = [], 0
    for batch in embedder.embed(
        images,
        LabelledImage.read,
        batch_size=settings.MINING_EMBED_BATCH_SIZE,
        workers=settings.MINING_EMBED_WORKERS,
    ):
        batches.append(batch)
        done += len(batch)
        job_advance(job=job, done=done)
    return np.concatenate(batches).astype(np.float32, copy=False)


def _open_query_images(
    images: Sequence[LabelledImage], parameters: BenchmarkParameters
) -> tuple[list[int], list[str]]:
    """One image per named identity, seeded: an open-ended query asks what it shows."""
    if not parameters.open_count:
        return [], []
    rng = random.Random(f"open-{parameters.seed}")
    by_label: dict[str, list[int]] = {}
    for index, image in enumerate(images):
        if image.name:
            by_label.setdefault(image.label, []).append(index)
    labels = sorted(by_label)
    rng.shuffle(labels)
    chosen = [rng.choice(by_label[label]) for label in labels[: parameters.open_count]]
    notes = []
    if len(chosen) < parameters.open_count:
        notes.append(
            f"Asked for {parameters.open_count} open queries, built {len(chosen)}: only {len(labels)} "
            "identities have a name."
        )
    return chosen, notes


def _image_bytes_checked(data: bytes) -> str:
    """The image's file extension, once PIL has read its header; raises BenchmarkError otherwise."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as image:
            image_format = (image.format or "").lower()
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchmarkError(f"not an image: {exc}") from exc
    return {"jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif", "bmp": "bmp"}.get(image_format, "img")


def _stored_name(benchmark: Benchmark, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    name = f"evaluation/{benchmark.name}/{digest[:2]}/{digest}.{_image_bytes_checked(data)}"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(data))
    return name


def _images_store(
    benchmark: Benchmark,
    images: Sequence[LabelledImage],
    used: Sequence[int],
    storage_names: dict[str, str],
    job: Job,
) -> dict[int, int]:
    """Stores the used images (a copy of each, or the catalog's file for TWIN-Eval): index -> BenchmarkImage id."""
    image_id_of: dict[int, int] = {}
    for start in range(0, len(used), _STORE_BATCH):
        indices = used[start : start + _STORE_BATCH]
        rows = []
        for index in indices:
            image = images[index]
            name = storage_names.get(image.key)
            if name is None:
                try:
                    name = _stored_name(benchmark, image.read())
                except (OSError, BenchmarkError) as exc:
                    raise BenchmarkError(f"image {image.key} of the source can't be read: {exc}") from exc
            rows.append(
                BenchmarkImage(
                    benchmark=benchmark,
                    file=name,
                    label=image.label,
                    label_name=image.name,
                    source_key=image.key,
                )
            )
        created = BenchmarkImage.objects.bulk_create(rows)
        if any(row.pk is None for row in created):  # backends that don't return ids from bulk inserts
            created = list(BenchmarkImage.objects.filter(benchmark=benchmark).order_by("-id")[: len(rows)])[
                ::-1
            ]
        image_id_of.update({index: row.pk for index, row in zip(indices, created, strict=True)})
        job_advance(job=job, done=start + len(indices))
    return image_id_of


def _queries_store(
    benchmark: Benchmark,
    built: Sequence[BuiltQuery],
    open_indices: Sequence[int],
    images: Sequence[LabelledImage],
    image_id_of: dict[int, int],
) -> None:
    # Numbered in a seeded random order within each type, so that the first N of a type (a run's query_limit)
    # are a random sample of it rather than, say, all the yes pairs.
    rng = random.Random(f"order-{BenchmarkParameters.from_json(benchmark.parameters).seed}")
    by_type: dict[str, list[BuiltQuery]] = {}
    for query in built:
        by_type.setdefault(query.question_type, []).append(query)
    ordered = []
    for question_type in ("pair", "multi"):
        queries = by_type.get(question_type, [])
        rng.shuffle(queries)
        ordered += queries
    rows, number = [], 0
    for query in ordered:
        number += 1
        if query.question_type == "pair":
            question = pair_question(benchmark.domain)
        else:
            question = multi_question(benchmark.domain, candidates=len(query.image_indices) - 1)
        rows.append(
            BenchmarkQuery(
                benchmark=benchmark,
                number=number,
                question_type=query.question_type,
                question=question,
                answer=query.answer,
                image_ids=[image_id_of[index] for index in query.image_indices],
                extra={
                    "labels": list(query.labels),
                    "source_keys": [images[index].key for index in query.image_indices],
                },
            )
        )
    for index in open_indices:
        number += 1
        image = images[index]
        rows.append(
            BenchmarkQuery(
                benchmark=benchmark,
                number=number,
                question_type="open",
                question=open_question(benchmark.domain),
                answer=storable_text(image.name),
                image_ids=[image_id_of[index]],
                extra={"labels": [image.label], "source_keys": [image.key], "reference_facts": ""},
            )
        )
    BenchmarkQuery.objects.bulk_create(rows, batch_size=_STORE_BATCH)


def _build_published(benchmark: Benchmark, parameters: BenchmarkParameters, job: Job) -> list[str]:
    """The published FGVQA rows of one dataset_source, stored as they are (their own questions)."""
    from evaluation.sources import SourceError
    from evaluation.sources.fgvqa_published import published_queries

    job_advance(job=job, done=0, message=f"Reading the published {parameters.dataset_source} queries.")
    root = _source_root_checked(benchmark.source_path)
    try:
        published = list(published_queries(root, dataset_source=parameters.dataset_source))
    except SourceError as exc:
        raise BenchmarkError(str(exc)) from exc
    if not published:
        raise BenchmarkError(f"{root} has no rows with dataset_source {parameters.dataset_source!r}.")
    job_advance(job=job, done=0, total=len(published), message=f"Storing {len(published)} queries.")
    image_id_of_name: dict[str, int] = {}
    rows = []
    for number, row in enumerate(published, start=1):
        image_ids = []
        for position, data in enumerate(row.images):
            name = _stored_name(benchmark, data)
            if name not in image_id_of_name:
                image_id_of_name[name] = BenchmarkImage.objects.create(
                    benchmark=benchmark, file=name, label="", source_key=f"row {row.row} image {position}"
                ).pk
            image_ids.append(image_id_of_name[name])
        rows.append(
            BenchmarkQuery(
                benchmark=benchmark,
                number=number,
                question_type=row.question_type,
                question=storable_text(published_question(row.question)),
                answer=storable_text(row.answer),
                image_ids=image_ids,
                extra=storable_json({**row.extra, "row": row.row}),
            )
        )
        if len(rows) >= _STORE_BATCH:
            BenchmarkQuery.objects.bulk_create(rows)
            rows = []
            job_advance(job=job, done=number)
    BenchmarkQuery.objects.bulk_create(rows)
    return []
