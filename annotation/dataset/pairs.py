"""Building the TWIN pairs from reviewed work (paper section 3, appendix B): the first step of a snapshot.

- **Positives**: every pair of real images within an instance.
- **Hard negatives**: every image pair across an approved hard-negative instance pair (``HardNegativePair``,
  followed through merges: a pair whose two sides were merged into one instance is dropped, it was one object).
- **Synthetic negatives**: every approved generated image against each real image of its instance.
- **Random negatives** (the paper's "without hard negatives" ablation, Table 2): with ``negatives="random"``,
  each hard-negative image pair is replaced by its first image against a random image of a random other
  instance of the same split, so the counts stay the same.

Splits are by instance: an instance is in the eval split when a hash of (seed, instance id) falls below
``eval_fraction``, so an instance keeps its split in every snapshot made with the same seed, however the
catalog grows. A negative pair whose two instances fall in different splits is dropped (it would show an eval
instance in training) and counted.

Pairs are yielded one at a time, in a deterministic order: 561K pairs never need to be in memory at once.
"""

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import combinations

import numpy as np
from django.db.models import Q

from annotation.models import HardNegativePair, Image, Instance, ReviewStatus


class PairSource(StrEnum):
    POSITIVE = "positive"
    HARD_NEGATIVE = "hard_negative"
    SYNTHETIC = "synthetic"
    RANDOM = "random"


class Split(StrEnum):
    TRAIN = "train"
    EVAL = "eval"


@dataclass(frozen=True)
class Pair:
    image_a_id: int
    image_b_id: int
    same: bool  # the answer to "are these the same object instance?"
    source: PairSource
    split: Split
    instance_a_id: int
    instance_b_id: int

    @property
    def stratum(self) -> tuple[bool, bool]:
        """(label, has a generated image): the proportions sampling keeps."""
        return (self.same, self.source == PairSource.SYNTHETIC)


@dataclass(frozen=True)
class PairRules:
    sources: tuple[str, ...] = ()  # catalog sources; empty: all
    verified_only: bool = True  # only images accepted in review; False also takes pending ones
    eval_fraction: float = 0.1
    seed: int = 0
    negatives: str = "hard"  # "hard", or "random" for the ablation

    def __post_init__(self) -> None:
        if not 0 <= self.eval_fraction < 1:
            raise ValueError("eval_fraction must be in [0, 1)")
        if self.negatives not in ("hard", "random"):
            raise ValueError('negatives must be "hard" or "random"')


@dataclass
class PairCatalog:
    """What the pairs are made of, read once: each instance's real and approved generated images, its split,
    and the approved hard-negative instance pairs (resolved to the instances they belong to now)."""

    real_images: dict[int, list[int]]
    generated_images: dict[int, list[int]]
    split_of: dict[int, Split]
    hard_negative_pairs: list[tuple[int, int]]
    dropped: Counter = field(default_factory=Counter)


def instance_split(*, instance_id: int, eval_fraction: float, seed: int) -> Split:
    """The instance's split: stable for a seed, whatever else is in the catalog."""
    digest = hashlib.sha256(f"{seed}:{instance_id}".encode()).digest()
    return Split.EVAL if int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction else Split.TRAIN


def pair_catalog_read(rules: PairRules) -> PairCatalog:
    accepted = (
        [ReviewStatus.ACCEPTED] if rules.verified_only else [ReviewStatus.ACCEPTED, ReviewStatus.PENDING]
    )
    real = (
        Image.objects.filter(origin=Image.Origin.REAL, is_listed=True, review_status__in=accepted)
        .exclude(product__review_status=ReviewStatus.REJECTED)
        .filter(product__instance__merged_into=None)
    )
    if rules.sources:
        real = real.filter(product__source__in=rules.sources)
    real_images: dict[int, list[int]] = defaultdict(list)
    for image_id, instance_id in real.order_by("product__instance_id", "pk").values_list(
        "pk", "product__instance_id"
    ):
        real_images[instance_id].append(image_id)

    generated_images: dict[int, list[int]] = defaultdict(list)
    generated = Image.objects.filter(
        origin=Image.Origin.GENERATED,
        review_status=ReviewStatus.ACCEPTED,
        generated_for__in=list(real_images),
    )
    for image_id, instance_id in generated.order_by("generated_for_id", "pk").values_list(
        "pk", "generated_for_id"
    ):
        generated_images[instance_id].append(image_id)

    dropped: Counter = Counter()
    root = _merge_roots()
    hard_pairs = set()
    for a, b in HardNegativePair.objects.order_by("pk").values_list("instance_a_id", "instance_b_id"):
        a, b = root(a), root(b)
        if a == b:
            dropped["hard_negative_pairs_merged_into_one_instance"] += 1
        elif a in real_images and b in real_images:
            hard_pairs.add((min(a, b), max(a, b)))
    split_of = {
        instance_id: instance_split(
            instance_id=instance_id, eval_fraction=rules.eval_fraction, seed=rules.seed
        )
        for instance_id in real_images
    }
    within_a_split = sorted((a, b) for a, b in hard_pairs if split_of[a] == split_of[b])
    if len(within_a_split) < len(hard_pairs):
        dropped["hard_negative_pairs_across_splits"] = len(hard_pairs) - len(within_a_split)
    return PairCatalog(
        real_images=dict(real_images),
        generated_images=dict(generated_images),
        split_of=split_of,
        hard_negative_pairs=within_a_split,
        dropped=dropped,
    )


def _merge_roots() -> Callable[[int], int]:
    """instance id -> the instance it was merged into (transitively), itself if it wasn't."""
    parent = dict(Instance.objects.filter(~Q(merged_into=None)).values_list("pk", "merged_into_id"))

    def root(instance_id: int) -> int:
        seen = 0
        while instance_id in parent and seen < 1000:  # a merge chain can't loop; the bound only guards
            instance_id = parent[instance_id]
            seen += 1
        return instance_id

    return root


def pairs_iter(catalog: PairCatalog, rules: PairRules) -> Iterator[Pair]:
    """Every pair the rules make of the catalog, positives first, in a deterministic order."""
    for instance_id, images in catalog.real_images.items():
        split = catalog.split_of[instance_id]
        for a, b in combinations(images, 2):
            yield Pair(a, b, True, PairSource.POSITIVE, split, instance_id, instance_id)

    random_partner = _random_partner(catalog, rules) if rules.negatives == "random" else None
    for instance_a, instance_b in catalog.hard_negative_pairs:
        split = catalog.split_of[instance_a]
        for a in catalog.real_images[instance_a]:
            for b in catalog.real_images[instance_b]:
                if random_partner is None:
                    yield Pair(a, b, False, PairSource.HARD_NEGATIVE, split, instance_a, instance_b)
                else:
                    other_instance, other_image = random_partner(instance_a, split)
                    yield Pair(a, other_image, False, PairSource.RANDOM, split, instance_a, other_instance)

    for instance_id, generated in catalog.generated_images.items():
        split = catalog.split_of[instance_id]
        for g in generated:
            for real in catalog.real_images[instance_id]:
                yield Pair(real, g, False, PairSource.SYNTHETIC, split, instance_id, instance_id)


def pairs_total(catalog: PairCatalog) -> int:
    """How many pairs ``pairs_iter`` yields, from the catalog's sizes alone (random negatives replace the hard
    ones one for one), so a job knows its total without walking every pair first."""
    sizes = {instance_id: len(images) for instance_id, images in catalog.real_images.items()}
    positives = sum(n * (n - 1) // 2 for n in sizes.values())
    negatives = sum(sizes[a] * sizes[b] for a, b in catalog.hard_negative_pairs)
    synthetic = sum(len(generated) * sizes[i] for i, generated in catalog.generated_images.items())
    return positives + negatives + synthetic


def _random_partner(catalog: PairCatalog, rules: PairRules) -> Callable[[int, Split], tuple[int, int]]:
    """A seeded draw of (another instance of the split, one of its images)."""
    rng = np.random.default_rng((rules.seed, 1))
    by_split: dict[Split, list[int]] = defaultdict(list)
    for instance_id, split in catalog.split_of.items():
        by_split[split].append(instance_id)

    def draw(instance_id: int, split: Split) -> tuple[int, int]:
        candidates = by_split[split]
        if len(candidates) < 2:
            raise ValueError(f"the {split} split has no other instance to draw a random negative from")
        while True:
            other = candidates[int(rng.integers(len(candidates)))]
            if other != instance_id:
                images = catalog.real_images[other]
                return other, images[int(rng.integers(len(images)))]

    return draw


def pairs_sample_plan(counts: dict[tuple[bool, bool], int], size: int) -> dict[tuple[bool, bool], int]:
    """How many pairs of each stratum (label, generated or not) a sample of ``size`` takes, keeping their
    proportions (largest remainders, so the parts add up to ``size`` exactly)."""
    total = sum(counts.values())
    if size >= total:
        return dict(counts)
    exact = {stratum: size * count / total for stratum, count in counts.items()}
    plan = {stratum: int(value) for stratum, value in exact.items()}
    leftover = size - sum(plan.values())
    for stratum in sorted(exact, key=lambda s: (plan[s] - exact[s], s))[:leftover]:
        plan[stratum] += 1
    return plan


def pairs_sample(pairs: Callable[[], Iterator[Pair]], *, size: int, seed: int) -> Iterator[Pair]:
    """A seeded sample of ``size`` pairs with the proportions of the whole (the paper's 5K to 561K scaling
    study), streamed in two passes over ``pairs()``: one counts the strata, the other yields the chosen."""
    counts: Counter = Counter(pair.stratum for pair in pairs())
    plan = pairs_sample_plan(dict(counts), size)
    rng = np.random.default_rng((seed, 2))
    chosen = {
        stratum: set(rng.choice(counts[stratum], size=take, replace=False).tolist())
        for stratum, take in sorted(plan.items())
    }
    position: Counter = Counter()
    for pair in pairs():
        index = position[pair.stratum]
        position[pair.stratum] += 1
        if index in chosen[pair.stratum]:
            yield pair


def pair_counts(pairs: Sequence[Pair] | Iterator[Pair]) -> dict[str, int]:
    """Counts by label, source and split, for a snapshot's statistics."""
    counts: Counter = Counter()
    for pair in pairs:
        counts["pairs"] += 1
        counts["positive" if pair.same else "negative"] += 1
        counts[f"source:{pair.source}"] += 1
        counts[f"split:{pair.split}"] += 1
    return dict(counts)
