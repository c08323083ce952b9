"""Filling the four review queues from an imported demo catalog, until the mining stage does it for real.

The mining issue will find duplicate and hard-negative candidates with CLIP embeddings and generate
synthetic negatives with DreamBooth, then call the task-creation services of ``annotation.review``. Until
then the demo and the tests need tasks to click through, so this module makes them from what a demo catalog
knows:

- **Image verification:** every pending image of the source's products.
- **Duplicate merge:** the ground truth's duplicate listings, plus distractors: for each product, its most
  similar products of the same category (a product alone in its category takes its most similar product
  of any category).
- **Hard negative:** for each instance, ``k`` candidate instances of its category, ``k`` drawn uniformly
  from 1x to 2x its image count as in the paper (appendix B), most similar first; the ground truth's twin
  pairs always.
- **Synthetic validation:** stand-ins for DreamBooth generations, drawn by the demo generator: a near-twin
  of the instance (one detail changed: similar yet distinguishable, a keeper), sometimes a re-render of the
  very same object (indistinguishable) and sometimes another object of the category (not similar).
- **Gold copies** of a few tasks per queue whose answer the ground truth knows.

Similarity is a stand-in, not CLIP: the Bhattacharyya coefficient (the cosine of the square roots) of
coarse colour histograms of each stored image, each pixel weighted by how far its colour is from the
background's (the median of the border), so the object counts more than the backdrop. It is cheap (about a
millisecond per image, no model) and blind to pose and mirroring. On the 60-instance demo catalog it ranks a
pair of photos of one object above a pair of photos of two objects of the same category about 4 times in 5
(0.7 without the background weighting), which is all the demo needs: a plausible order for the queues and
sensible "flagged pairs" to show. Colour can't see a recoloured logo, so near-twins score like photos of one
object: that is what makes them hard. The image-by-image matrix is quadratic: fine for a demo
catalog, not for a real one (that is what the mining stage's nearest-neighbour index is for).

Everything is deterministic for a seed, and running it again creates nothing: tasks are keyed by subject,
generated images by content hash, gold copies by their task. Each service commits its own work, so an
interrupted run leaves a consistent part done, and the next run completes it.
"""

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.core.files.storage import default_storage
from django.db.models import Q
from PIL import Image as PILImage

from annotation.demo_catalog.generator import (
    JPEG_QUALITY,
    InstanceSpec,
    catalog_plan,
    instance_draw,
    instance_spec_sample,
    twin_make,
    view_render,
    view_sample,
)
from annotation.models import Image, Instance, Product, ReviewStatus, ReviewTask, TaskKind
from annotation.review.task_creation import (
    DuplicateCandidate,
    FlaggedPair,
    HardNegativeCandidate,
    duplicate_merge_tasks_create,
    gold_task_create,
    hard_negative_tasks_create,
    image_verification_tasks_create,
    synthetic_validation_tasks_create,
)
from annotation.services.generated_images import generated_image_store
from mining.backends.descriptor import COLOUR_HISTOGRAM_DIM, colour_histogram

# The review page shows the flagged pairs side by side; more than four stop fitting.
FLAGGED_PAIRS_MAX = 4
# Distractor products per product in the duplicate queue: enough that "same" is the exception, as it is in
# mined candidates, without burying the few true duplicates.
DUPLICATE_PEERS_DEMO = 2
DUPLICATE_PEERS_WITHOUT_TRUTH = 1
# Instances that get synthetic stand-ins (the paper has ~3 generated images per instance): each gets two
# near-twins, and in turn one failure more (a re-render, another object) or none, so every verdict occurs.
SYNTHETIC_FRACTION = 0.25
SYNTHETIC_TWINS = 2
SYNTHETIC_FAILURES = ("drop_indistinguishable", "drop_dissimilar", None)
GOLD_PER_QUEUE = 4

# source_path of a stand-in: "demo-stand-in/<catalog seed>-<seed>/<instance key>/<verdict>/<n>.jpg". The
# gold copies read the verdict back on a later run; the seeds keep another catalog's stand-ins apart.
STAND_IN_PREFIX = "demo-stand-in"


# Random streams, so the hard-negative draw doesn't change when the stand-in plan does, and vice versa.
_STREAM_HARD_NEGATIVE = 1
_STREAM_SYNTHETIC = 2
_STREAM_GOLD = 3


class DemoReviewTasksError(Exception):
    """The source has nothing to make tasks from, or its ground truth doesn't match it."""


def demo_review_tasks_create(
    *,
    ground_truth_path: Path | None,
    source: str,
    seed: int = 0,
    gold_per_queue: int = GOLD_PER_QUEUE,
) -> dict[str, int]:
    """Fills the review queues from the imported catalog ``source``; returns what it created.

    ``ground_truth_path`` is the ``ground_truth.json`` of a generated demo catalog. Without it (the
    DreamBooth subset) there are no duplicate listings, twins or specs to render: no synthetic stand-ins,
    and gold copies only where the folder layout itself is the answer (two subject folders are two objects).

    The result has one count per queue (regular tasks), ``<queue>_gold`` per queue and
    ``generated_images``.
    """
    products = _source_products(source)
    truth = _truth_load(ground_truth_path, {external_id for _, external_id, _, _ in products})
    key_of_instance = _instance_keys(products, truth)
    counts: dict[str, int] = {}

    counts[TaskKind.IMAGE_VERIFICATION.value] = len(
        image_verification_tasks_create(images=Image.objects.filter(product__source=source))
    )

    index = _SimilarityIndex.build(source=source)
    product_ids_by_external = {external_id: pk for pk, external_id, _, _ in products}
    duplicate_pairs = []
    if truth:
        duplicate_pairs = [
            (product_ids_by_external[a], product_ids_by_external[b])
            for a, b in truth["duplicate_listings"]
            if a in product_ids_by_external and b in product_ids_by_external
        ]
    counts[TaskKind.DUPLICATE_MERGE.value] = len(
        duplicate_merge_tasks_create(
            candidates=_duplicate_candidates(
                index,
                listed=duplicate_pairs,
                peers=DUPLICATE_PEERS_DEMO if truth else DUPLICATE_PEERS_WITHOUT_TRUTH,
            )
        )
    )

    twin_pairs = []
    if truth:
        instances_of_key: dict[str, list[int]] = defaultdict(list)
        for instance_id, key in key_of_instance.items():
            instances_of_key[key].append(instance_id)
        twin_pairs = [
            (a, b)
            for twin in truth["twin_pairs"]
            for a in instances_of_key.get(twin["instance_a"], [])
            for b in instances_of_key.get(twin["instance_b"], [])
        ]
    counts[TaskKind.HARD_NEGATIVE.value] = len(
        hard_negative_tasks_create(
            candidates=_hard_negative_candidates(
                index, listed=twin_pairs, rng=np.random.default_rng((seed, _STREAM_HARD_NEGATIVE))
            )
        )
    )

    instance_ids = sorted({instance_id for _, _, instance_id, _ in products})
    counts["generated_images"] = _stand_ins_create(truth=truth, products=products, seed=seed) if truth else 0
    counts[TaskKind.SYNTHETIC_VALIDATION.value] = len(
        synthetic_validation_tasks_create(images=Image.objects.filter(generated_for__in=instance_ids))
    )

    counts.update(
        _gold_tasks_create(
            truth=truth,
            products=products,
            key_of_instance=key_of_instance,
            seed=seed,
            gold_per_queue=gold_per_queue,
        )
    )
    return counts


def demo_gold_tasks_create(
    *,
    ground_truth_path: Path | None,
    source: str,
    seed: int = 0,
    gold_per_queue: int = GOLD_PER_QUEUE,
    kinds: Sequence[str] | None = None,
) -> dict[str, int]:
    """Only the gold copies: for queues filled by the mining stage, the tasks whose answer the ground truth
    (or, without it, the folder layout) knows. Returns ``<queue>_gold`` counts.

    ``kinds`` tops up only those queues, e.g. more gold for the queue the demo answers with overlap, where
    the simulated annotators make mistakes and four gold tasks would rarely catch one."""
    unknown = set(kinds or ()) - set(TaskKind.values)
    if unknown:
        raise DemoReviewTasksError(f"no review queue {sorted(unknown)[0]!r}")
    products = _source_products(source)
    truth = _truth_load(ground_truth_path, {external_id for _, external_id, _, _ in products})
    return _gold_tasks_create(
        truth=truth,
        products=products,
        key_of_instance=_instance_keys(products, truth),
        seed=seed,
        gold_per_queue=gold_per_queue,
        kinds=kinds,
    )


def _source_products(source: str) -> list[tuple[int, str, int, int]]:
    products = list(
        Product.objects.filter(source=source, instance__merged_into=None).values_list(
            "pk", "external_id", "instance_id", "instance__category_id"
        )
    )
    if not products:
        raise DemoReviewTasksError(f"no products from the source {source!r}: import the catalog first")
    return products


def _gold_tasks_create(
    *,
    truth: dict | None,
    products: list[tuple[int, str, int, int]],
    key_of_instance: dict[int, str],
    seed: int,
    gold_per_queue: int,
    kinds: Sequence[str] | None = None,
) -> dict[str, int]:
    source_product_ids = [pk for pk, _, _, _ in products]
    # With the instances merged away since: their tasks and gold copies still count for the source, so a run
    # after the duplicate queue merged some neither loses sight of those gold copies nor tops them up again.
    key_of_instance = dict(key_of_instance)
    instance_ids = sorted(instances_with_merged(products, key_of_instance))
    answers = _GoldAnswers(
        truth=truth, key_of_instance=key_of_instance, external_id={pk: e for pk, e, _, _ in products}
    )
    scopes = {
        TaskKind.IMAGE_VERIFICATION: Q(image__product__in=source_product_ids),
        TaskKind.DUPLICATE_MERGE: Q(product_a__in=source_product_ids),
        TaskKind.HARD_NEGATIVE: Q(instance__in=instance_ids),
        TaskKind.SYNTHETIC_VALIDATION: Q(image__generated_for__in=instance_ids),
    }
    rng = np.random.default_rng((seed, _STREAM_GOLD))
    counts = {}
    for kind, scope in scopes.items():
        if kinds is not None and kind.value not in kinds:
            continue
        counts[f"{kind.value}_gold"] = _gold_create(
            kind=kind, scope=scope, answer=answers.for_kind(kind), total=gold_per_queue, rng=rng
        )
    return counts


# --- ground truth ----------------------------------------------------------------------------------------


def _truth_load(path: Path | None, external_ids: set[str]) -> dict | None:
    if path is None:
        return None
    try:
        truth = json.loads(Path(path).read_text(encoding="utf-8"))
        known = external_ids & set(truth["products"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DemoReviewTasksError(f"{path} is not a demo catalog's ground truth ({exc})") from exc
    if not known:
        raise DemoReviewTasksError(f"{path} describes none of the source's products: wrong ground truth?")
    return truth


def _instance_keys(products: list[tuple[int, str, int, int]], truth: dict | None) -> dict[int, str]:
    """The ground-truth object of each catalog instance (two duplicate listings: two instances, one key).

    Without ground truth, each instance is its own object: the DreamBooth subset has one folder per subject.
    """
    keys: dict[int, str] = {}
    for _, external_id, instance_id, _ in products:
        if truth is None:
            keys[instance_id] = f"instance:{instance_id}"
        elif external_id in truth["products"]:
            keys[instance_id] = truth["products"][external_id]["instance"]
    return keys


def instances_with_merged(
    products: list[tuple[int, str, int, int]], key_of_instance: dict[int, str]
) -> set[int]:
    """The source's instances and those merged into them since; adds the merged-away ones to
    ``key_of_instance`` with the key of the instance they ended up in.

    A hard-negative or synthetic task may still name an instance merged away: it stands for the instance it
    was merged into, as the dataset's pairs read it.
    """
    active = {instance_id for _, _, instance_id, _ in products}
    parent = dict(Instance.objects.exclude(merged_into=None).values_list("pk", "merged_into_id"))
    instance_ids = set(active)
    for instance_id in parent:
        root, steps = instance_id, 0
        while root in parent and steps < len(parent):  # a merge chain can't loop; the bound only guards
            root, steps = parent[root], steps + 1
        if root in active:
            instance_ids.add(instance_id)
            if root in key_of_instance:
                key_of_instance[instance_id] = key_of_instance[root]
    return instance_ids


# --- similarity ------------------------------------------------------------------------------------------


def image_features(image: PILImage.Image) -> np.ndarray:
    """A unit vector whose dot product with another is their Bhattacharyya coefficient: the colour part of the
    mining stage's weightless descriptor (a background-weighted coarse colour histogram)."""
    return colour_histogram(image)


@dataclass
class _SimilarityIndex:
    """The source's usable images, grouped by product and by instance, and their pairwise similarities."""

    image_ids: np.ndarray
    similarity: np.ndarray  # images x images
    images_of_product: dict[int, np.ndarray]  # product -> row indices
    images_of_instance: dict[int, np.ndarray]
    product_category: dict[int, int]
    product_instance: dict[int, int]
    instance_category: dict[int, int]

    @classmethod
    def build(cls, *, source: str) -> "_SimilarityIndex":
        rows = list(
            Image.objects.filter(
                product__source=source,
                product__instance__merged_into=None,
                origin=Image.Origin.REAL,
                is_listed=True,
            )
            .exclude(review_status=ReviewStatus.REJECTED)
            .order_by("product__instance_id", "product_id", "position", "pk")
            .values_list("pk", "file", "product_id", "product__instance_id", "product__category_id")
        )
        features = np.zeros((len(rows), COLOUR_HISTOGRAM_DIM))
        for row, (_, name, *_) in enumerate(rows):
            with default_storage.open(name, "rb") as handle, PILImage.open(handle) as image:
                features[row] = image_features(image)
        images_of_product: dict[int, list[int]] = defaultdict(list)
        images_of_instance: dict[int, list[int]] = defaultdict(list)
        index = cls(
            image_ids=np.array([row[0] for row in rows], dtype=np.int64),
            similarity=features @ features.T,
            images_of_product={},
            images_of_instance={},
            product_category={},
            product_instance={},
            instance_category={},
        )
        for row, (_, _, product_id, instance_id, category_id) in enumerate(rows):
            images_of_product[product_id].append(row)
            images_of_instance[instance_id].append(row)
            index.product_category[product_id] = category_id
            index.product_instance[product_id] = instance_id
            index.instance_category[instance_id] = category_id
        index.images_of_product = {pk: np.array(r) for pk, r in images_of_product.items()}
        index.images_of_instance = {pk: np.array(r) for pk, r in images_of_instance.items()}
        return index

    def group_similarity(self, groups: dict[int, np.ndarray]) -> tuple[list[int], np.ndarray]:
        """The best image pair's similarity between every two groups (products or instances)."""
        ids = sorted(groups)
        best = np.full((len(ids), len(ids)), -np.inf)
        for i, a in enumerate(ids):
            row_best = self.similarity[groups[a]].max(axis=0)
            for j, b in enumerate(ids):
                best[i, j] = row_best[groups[b]].max()
        return ids, best

    def flagged_pairs(self, rows_a: np.ndarray, rows_b: np.ndarray, k: int) -> list[FlaggedPair]:
        """The k most similar (image of a, image of b) pairs, most similar first."""
        block = self.similarity[np.ix_(rows_a, rows_b)]
        order = np.argsort(-block, axis=None, kind="stable")[:k]
        pairs = []
        for flat in order:
            i, j = divmod(int(flat), block.shape[1])
            pairs.append(
                (int(self.image_ids[rows_a[i]]), int(self.image_ids[rows_b[j]]), round(float(block[i, j]), 4))
            )
        return pairs


def _ranked_peers(
    ids: list[int], best: np.ndarray, eligible: Callable[[int, int], bool]
) -> dict[int, list[int]]:
    """For each group, the other eligible groups, most similar first (ties by id, for determinism)."""
    ranked = {}
    for i, a in enumerate(ids):
        others = [(-best[i, j], b) for j, b in enumerate(ids) if b != a and eligible(a, b)]
        ranked[a] = [b for _, b in sorted(others)]
    return ranked


def _duplicate_candidates(
    index: _SimilarityIndex, *, listed: list[tuple[int, int]], peers: int
) -> list[DuplicateCandidate]:
    """The listed pairs plus each product's ``peers`` most similar products of its category (of any
    category when it is alone in its own), most similar pair first, as mining would serve them."""
    ids, best = index.group_similarity(index.images_of_product)
    same_category = _ranked_peers(
        ids,
        best,
        lambda a, b: (
            index.product_category[a] == index.product_category[b]
            and index.product_instance[a] != index.product_instance[b]
        ),
    )
    anywhere = _ranked_peers(ids, best, lambda a, b: index.product_instance[a] != index.product_instance[b])
    # (querying product, other): the querying product's image count is the paper's k.
    pairs: dict[tuple[int, int], tuple[int, int]] = {}
    for a, b in listed:
        if a in index.images_of_product and b in index.images_of_product:
            pairs.setdefault((min(a, b), max(a, b)), (a, b))
    for a in ids:
        for b in (same_category[a] or anywhere[a])[:peers]:
            pairs.setdefault((min(a, b), max(a, b)), (a, b))
    candidates = []
    for a, b in pairs.values():
        rows_a, rows_b = index.images_of_product[a], index.images_of_product[b]
        flagged = index.flagged_pairs(rows_a, rows_b, min(FLAGGED_PAIRS_MAX, len(rows_a)))
        candidates.append(DuplicateCandidate(product_a_id=a, product_b_id=b, flagged_pairs=flagged))
    return sorted(candidates, key=lambda c: (-c.flagged_pairs[0][2], c.product_a_id, c.product_b_id))


def _hard_negative_candidates(
    index: _SimilarityIndex, *, listed: list[tuple[int, int]], rng: np.random.Generator
) -> list[HardNegativeCandidate]:
    """For each instance, k same-category instances, k uniform in [n, 2n] for its n images (the paper's
    rule), most similar first; plus the listed pairs. Small categories cap k at what's there."""
    ids, best = index.group_similarity(index.images_of_instance)
    ranked = _ranked_peers(ids, best, lambda a, b: index.instance_category[a] == index.instance_category[b])
    pairs: dict[tuple[int, int], tuple[int, int]] = {}
    for a, b in listed:
        if a in index.images_of_instance and b in index.images_of_instance:
            pairs.setdefault((min(a, b), max(a, b)), (a, b))
    for a in ids:
        n = len(index.images_of_instance[a])
        k = int(rng.integers(n, 2 * n + 1))
        for b in ranked[a][:k]:
            pairs.setdefault((min(a, b), max(a, b)), (a, b))
    candidates = []
    for a, b in pairs.values():
        rows_a, rows_b = index.images_of_instance[a], index.images_of_instance[b]
        flagged = index.flagged_pairs(rows_a, rows_b, min(FLAGGED_PAIRS_MAX, len(rows_a)))
        candidates.append(
            HardNegativeCandidate(instance_id=a, candidate_instance_id=b, flagged_pairs=flagged)
        )
    return sorted(candidates, key=lambda c: (-c.flagged_pairs[0][2], c.instance_id, c.candidate_instance_id))


# --- synthetic stand-ins ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StandIn:
    seeds: str  # "<catalog seed>-<seed>"
    key: str  # the ground-truth instance it imitates
    verdict: str  # what a reviewer should answer
    number: int

    @property
    def source_path(self) -> str:
        return f"{STAND_IN_PREFIX}/{self.seeds}/{self.key}/{self.verdict}/{self.number}.jpg"


def stand_in_verdict(source_path: str) -> str | None:
    """The verdict a stand-in was made for, read back from its ``source_path``; None for anything else."""
    parts = source_path.split("/")
    if len(parts) == 5 and parts[0] == STAND_IN_PREFIX:
        return parts[3]
    return None


def _stand_ins_create(*, truth: dict, products: list[tuple[int, str, int, int]], seed: int) -> int:
    """Renders and stores the stand-ins the plan calls for that aren't stored yet; returns how many it
    stored."""
    plan = catalog_plan(instances=truth["instances"], seed=truth["seed"])
    specs = {spec.key: spec for spec in plan.specs}
    # The generator must still draw this catalog's objects: a changed generator would render strangers.
    for product_id, known in truth["products"].items():
        spec = specs.get(known["instance"])
        if spec is None or spec.category != known["category"]:
            raise DemoReviewTasksError(
                f"the demo generator no longer makes {known['instance']} ({product_id}) as the ground truth "
                "describes it: regenerate the catalog"
            )
    # Each object imitated for its first listing's instance (a duplicate listing is the same object).
    instance_of_key: dict[str, int] = {}
    for _, external_id, instance_id, _ in sorted(products, key=lambda p: p[1]):
        if external_id in truth["products"]:
            instance_of_key.setdefault(truth["products"][external_id]["instance"], instance_id)

    rng = np.random.default_rng((truth["seed"], seed, _STREAM_SYNTHETIC))
    keys = sorted(instance_of_key)
    chosen = rng.choice(len(keys), size=math.ceil(SYNTHETIC_FRACTION * len(keys)), replace=False)
    seeds = f"{truth['seed']}-{seed}"
    wanted: list[_StandIn] = []
    for turn, i in enumerate(chosen):  # in random order
        key = keys[int(i)]
        wanted += [_StandIn(seeds, key, "keep", n) for n in range(SYNTHETIC_TWINS)]
        if failure := SYNTHETIC_FAILURES[turn % len(SYNTHETIC_FAILURES)]:
            wanted.append(_StandIn(seeds, key, failure, 0))

    stored = set(
        Image.objects.filter(
            generated_for__in=instance_of_key.values(), source_path__startswith=f"{STAND_IN_PREFIX}/"
        ).values_list("generated_for_id", "source_path")
    )
    created = 0
    for number, stand_in in enumerate(wanted):
        instance_id = instance_of_key[stand_in.key]
        if (instance_id, stand_in.source_path) in stored:
            continue  # rendered on an earlier run: rendering is the slow part, so don't even redo it
        picture = _stand_in_render(
            specs[stand_in.key],
            stand_in,
            np.random.default_rng((truth["seed"], seed, _STREAM_SYNTHETIC, number)),
            size=truth["image_size"],
        )
        image = generated_image_store(
            picture, instance_id=instance_id, source_path=stand_in.source_path, jpeg_quality=JPEG_QUALITY
        )
        created += image is not None
    return created


def _stand_in_render(
    spec: InstanceSpec, stand_in: _StandIn, rng: np.random.Generator, *, size: int
) -> PILImage.Image:
    if stand_in.verdict == "keep":
        # Like a good DreamBooth sample: the object with one detail changed, so it is a negative.
        spec, _ = twin_make(spec, rng, key=f"{spec.key}-twin")
    elif stand_in.verdict == "drop_dissimilar":
        # Like a sample that drifted back to the prior: some object of the category.
        original = spec
        for _ in range(10):  # a body of another colour, so "not similar" is plain to see
            spec = instance_spec_sample(rng, key=f"{original.key}-other", category=original.category)
            if math.dist(spec.colors["body"], original.colors["body"]) >= 100:
                break
    # "drop_indistinguishable": the object itself, from a new viewpoint, like an overfitted model's sample.
    view = view_sample(rng)
    return view_render(instance_draw(spec, size=size, flipped=view.flip), view, size=size)


# --- gold ------------------------------------------------------------------------------------------------


@dataclass
class _GoldAnswers:
    """The verdict the ground truth gives a task, or None where it has no answer."""

    truth: dict | None
    key_of_instance: dict[int, str]
    external_id: dict[int, str]  # product pk -> external id
    bad_images: set[tuple[str, str]] = field(init=False)  # (product id, manifest path)
    twins: set[frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        truth = self.truth or {"bad_images": [], "twin_pairs": []}
        self.bad_images = {(bad["product_id"], bad["image"]) for bad in truth["bad_images"]}
        self.twins = {frozenset((t["instance_a"], t["instance_b"])) for t in truth["twin_pairs"]}

    def for_kind(self, kind: str) -> Callable[[ReviewTask], str | None]:
        return {
            TaskKind.IMAGE_VERIFICATION: self.image_verification,
            TaskKind.DUPLICATE_MERGE: self.duplicate_merge,
            TaskKind.HARD_NEGATIVE: self.hard_negative,
            TaskKind.SYNTHETIC_VALIDATION: self.synthetic_validation,
        }[kind]

    def _key(self, instance_id: int | None) -> str | None:
        return self.key_of_instance.get(instance_id) if instance_id is not None else None

    def image_verification(self, task: ReviewTask) -> str | None:
        if self.truth is None:
            return None  # nothing says which DreamBooth photos a reviewer should keep
        image = task.image
        product_id = self.external_id.get(image.product_id)
        if product_id not in self.truth["products"]:
            return None
        # Every photo the generator didn't spoil shows its object clearly.
        return "reject_image" if (product_id, image.source_path) in self.bad_images else "keep"

    def duplicate_merge(self, task: ReviewTask) -> str | None:
        a, b = self._key(task.product_a.instance_id), self._key(task.product_b.instance_id)
        if a is None or b is None:
            return None
        # Without ground truth the keys are the instances: distinct subject folders are distinct objects.
        return "same" if a == b else "different"

    def hard_negative(self, task: ReviewTask) -> str | None:
        if self.truth is None:
            return None  # hard or easy is a judgement; nothing in the DreamBooth subset settles it
        a, b = self._key(task.instance_id), self._key(task.candidate_instance_id)
        if a is None or b is None:
            return None
        if a == b:
            return "same_object"  # two listings of one object
        # Twins differ in one detail by construction: hard. Other pairs may be easy or hard: no answer.
        return "hard_negative" if frozenset((a, b)) in self.twins else None

    def synthetic_validation(self, task: ReviewTask) -> str | None:
        return stand_in_verdict(task.image.source_path)


def _gold_create(
    *, kind: str, scope: Q, answer: Callable[[ReviewTask], str | None], total: int, rng: np.random.Generator
) -> int:
    """Tops the source's gold copies in the queue up to ``total``, spread over the verdicts it can answer
    (fewest first), drawn at random; returns how many it made."""
    tasks = (
        ReviewTask.objects.filter(scope, kind=kind, is_gold=False)
        .select_related("image", "product_a", "product_b")
        .order_by("pk")
    )
    gold_keys = set(
        ReviewTask.objects.filter(scope, kind=kind, is_gold=True).values_list("subject_key", flat=True)
    )
    have: dict[str, int] = defaultdict(int)
    available: dict[str, list[ReviewTask]] = defaultdict(list)
    for task in tasks:
        verdict = answer(task)
        if verdict is None:
            continue
        if f"gold:{task.subject_key}" in gold_keys:
            have[verdict] += 1
        else:
            available[verdict].append(task)
    created = 0
    while sum(have.values()) < total and any(available.values()):
        verdict = min((v for v in available if available[v]), key=lambda v: (have[v], -len(available[v]), v))
        task = available[verdict].pop(int(rng.integers(len(available[verdict]))))
        gold_task_create(task=task, answer=verdict)
        have[verdict] += 1
        created += 1
    return created
