"""Embedding the catalog's images: planning the chunks, embedding one chunk, and reading vectors back.

A chunk is a list of image ids. Embedding it writes only the vectors still missing (a unique constraint on
(embedder, image) and ``ignore_conflicts`` make the write an idempotent upsert), so a chunk run twice, by a
redelivered message or after a worker died halfway, leaves exactly one row per image.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import QuerySet

from annotation.models import Image
from mining.backends.embedders import Embedder, EmbedderSpec, embedder_load, embedder_spec_parse
from mining.models import ImageEmbedding
from mining.services.scope import usable_images


class RandomWeightsRefused(Exception):
    """Random weights were asked for where the settings don't allow them (anywhere but tests and the demo)."""


def embedder_spec_for(text: str | None) -> EmbedderSpec:
    """The embedder a job names (the settings' default when empty), refusing random weights unless allowed."""
    spec = embedder_spec_parse(text or settings.MINING_EMBEDDER)
    if spec.family == "open_clip" and spec.pretrained is None and not settings.MINING_ALLOW_RANDOM_WEIGHTS:
        raise RandomWeightsRefused(
            f"{spec.key}: random weights give meaningless similarities; name real weights (a pretrained tag "
            "or a weights file), or set TWIN_MINING_ALLOW_RANDOM_WEIGHTS=1 for a test or a demo"
        )
    return spec


_loaded: dict[tuple, Embedder] = {}


def embedder_get(*, spec: EmbedderSpec, device: str | None = None, precision: str = "auto") -> Embedder:
    """The embedder, loaded once per worker process (one at a time: a model is hundreds of MB)."""
    device = device or settings.MINING_DEVICE
    cache_key = (spec, device, precision)
    if cache_key not in _loaded:
        _loaded.clear()
        _loaded[cache_key] = embedder_load(
            spec,
            device=device,
            precision=precision,
            allow_random_weights=settings.MINING_ALLOW_RANDOM_WEIGHTS,
            cache_dir=settings.MINING_MODEL_CACHE_DIR,
        )
    return _loaded[cache_key]


def embedding_chunks_plan(
    *, embedder_key: str, sources: Sequence[str], chunk_size: int
) -> tuple[list[tuple[dict, int]], int]:
    """Chunks of the usable images that have no vector for the embedder yet, and how many already have one."""
    images = usable_images(sources=sources)
    missing = list(
        images.exclude(embeddings__embedder_key=embedder_key)
        .order_by("pk")
        .values_list("pk", flat=True)
        .distinct()
    )
    already = images.filter(embeddings__embedder_key=embedder_key).count()
    chunks = [
        ({"image_ids": missing[start : start + chunk_size]}, len(missing[start : start + chunk_size]))
        for start in range(0, len(missing), chunk_size)
    ]
    return chunks, already


@dataclass(frozen=True)
class ChunkEmbedded:
    embedded: int  # vectors written by this run
    already: int  # the chunk's images that had a vector before it ran
    vanished: int  # images deleted since the chunk was planned


def embedding_chunk_run(
    *,
    image_ids: Sequence[int],
    spec: EmbedderSpec,
    batch_size: int,
    workers: int,
    device: str | None = None,
    precision: str = "auto",
    on_progress: Callable[[int], None] | None = None,
) -> ChunkEmbedded:
    """Embeds the chunk's images that have no vector yet; ``on_progress(done)`` counts the chunk's images with
    a vector (it may raise to stop, e.g. when the job is cancelled)."""
    wanted = set(image_ids)
    already = set(
        ImageEmbedding.objects.filter(embedder_key=spec.key, image_id__in=wanted).values_list(
            "image_id", flat=True
        )
    )
    todo = list(Image.objects.filter(pk__in=wanted - already).order_by("pk").values_list("pk", "file"))
    vanished = len(wanted) - len(already) - len(todo)
    done = len(already)
    if on_progress:
        on_progress(done)
    if not todo:
        return ChunkEmbedded(embedded=0, already=len(already), vanished=vanished)

    embedder = embedder_get(spec=spec, device=device, precision=precision)
    offset = 0
    for vectors in embedder.embed(todo, _read_stored_image, batch_size=batch_size, workers=workers):
        batch = todo[offset : offset + len(vectors)]
        ImageEmbedding.objects.bulk_create(
            [
                ImageEmbedding(
                    image_id=image_id,
                    embedder_key=spec.key,
                    dim=vectors.shape[1],
                    vector=np.ascontiguousarray(vector, dtype="<f4").tobytes(),
                )
                for (image_id, _), vector in zip(batch, vectors, strict=True)
            ],
            ignore_conflicts=True,
        )
        offset += len(vectors)
        done += len(vectors)
        if on_progress:
            on_progress(done)
    return ChunkEmbedded(embedded=offset, already=len(already), vanished=vanished)


def _read_stored_image(item: tuple[int, str]) -> bytes:
    """The stored file of an (image id, file name) item; runs in the decoding worker processes."""
    with default_storage.open(item[1], "rb") as handle:
        return handle.read()


@dataclass
class EmbeddedImages:
    """The vectors of a set of images, one row per image, with who each image belongs to."""

    image_ids: np.ndarray  # int64 [n]
    product_ids: np.ndarray  # int64 [n]
    instance_ids: np.ndarray  # int64 [n]
    category_ids: np.ndarray  # int64 [n]
    vectors: np.ndarray  # float32 [n, dim]

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, rows: np.ndarray) -> "EmbeddedImages":
        return EmbeddedImages(
            image_ids=self.image_ids[rows],
            product_ids=self.product_ids[rows],
            instance_ids=self.instance_ids[rows],
            category_ids=self.category_ids[rows],
            vectors=self.vectors[rows],
        )


def rows_grouped(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices grouped by key (e.g. the rows of each product); keys need not be sorted."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = (
        np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if len(keys) else np.array([], int)
    )
    ends = np.r_[starts[1:], len(keys)].astype(int)
    return {int(sorted_keys[s]): order[s:e] for s, e in zip(starts, ends, strict=True)}


class EmbeddingsMissing(Exception):
    """Some images in scope have no vector for the embedder: the embed stage must run first."""


def embedded_images(*, embedder_key: str, images: QuerySet[Image]) -> EmbeddedImages:
    """The vectors of the images, ordered by instance, product and image; raises EmbeddingsMissing naming how
    many have none. One joined query streamed in batches, so a million rows never build a giant IN list."""
    rows = (
        ImageEmbedding.objects.filter(embedder_key=embedder_key, image__in=images)
        .order_by("image__product__instance_id", "image__product_id", "image_id")
        .values_list(
            "image_id",
            "image__product_id",
            "image__product__instance_id",
            "image__product__category_id",
            "vector",
        )
        .iterator(chunk_size=5000)
    )
    ids: list[tuple[int, int, int, int]] = []
    blobs: list[bytes] = []
    for image_id, product_id, instance_id, category_id, blob in rows:
        ids.append((image_id, product_id, instance_id, category_id))
        blobs.append(bytes(blob))
    expected = images.count()
    if len(ids) < expected:
        raise EmbeddingsMissing(
            f"{expected - len(ids):,} of {expected:,} images have no {embedder_key} embedding: run the embed "
            "stage with this embedder first"
        )
    columns = np.array(ids, dtype=np.int64).reshape(-1, 4)
    vectors = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), -1) if ids else np.zeros((0, 1))
    return EmbeddedImages(
        image_ids=columns[:, 0],
        product_ids=columns[:, 1],
        instance_ids=columns[:, 2],
        category_ids=columns[:, 3],
        vectors=np.ascontiguousarray(vectors, dtype=np.float32),
    )
