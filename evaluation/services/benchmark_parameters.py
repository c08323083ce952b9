"""How a benchmark's queries are built: counts, seed and the look-alike search. Stored as JSON on the
benchmark (``Benchmark.parameters``); the defaults are the paper's (1,000 pair and 1,000 multi queries per
dataset)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.backends.json_fields import json_fields, json_object_checked

NO_EMBEDDER = "none"


@dataclass(frozen=True)
class BenchmarkParameters:
    """Fields:
    pair_count: pair queries, half yes and half no.
    multi_count: multi queries (a reference and 3 candidates), answers 0 to 3 equally often.
    open_count: open-ended recognition queries (one image each, sources whose labels have names).
    seed: the draw; the same seed and data give the same queries.
    embedder: what finds look-alike images for the negatives: "" (the mining embedder,
        TWIN_MINING_EMBEDDER), "descriptor", "open_clip:MODEL:PRETRAINED", or "none" (random negatives).
        TWIN-Eval prefers the snapshot's curated hard and synthetic negatives before any of these.
    pool_images: at most this many images are drawn (by label, seeded) before building, so that huge
        sources (GLDv2's train split) are embedded only where needed; 0 uses every image.
    hard_negative_pool: a negative partner is drawn among this many most similar images of other labels.
    dataset_source: published FGVQA only: which dataset_source's rows (e.g. "fgvqa_cub", "twin").
    """

    pair_count: int = 1000
    multi_count: int = 1000
    open_count: int = 0
    seed: int = 0
    embedder: str = ""
    pool_images: int = 5000
    hard_negative_pool: int = 10
    dataset_source: str = ""

    def __post_init__(self) -> None:
        for name in ("pair_count", "multi_count", "open_count", "seed", "pool_images"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number, 0 or more, got {value!r}")
        if not isinstance(self.hard_negative_pool, int) or self.hard_negative_pool < 1:
            raise ValueError("hard_negative_pool must be 1 or more")
        if self.pair_count + self.multi_count + self.open_count == 0:
            raise ValueError(
                "a benchmark needs at least one query: set pair_count, multi_count or open_count"
            )

    def to_json(self) -> dict[str, Any]:
        return json_fields(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> BenchmarkParameters:
        return cls(**json_object_checked(data or {}, cls, what="benchmark parameter"))
