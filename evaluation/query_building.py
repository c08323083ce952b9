"""Seeded, reproducible FGVQA query building from labelled images (TWIN paper, section 4 and appendix A).

Per dataset the paper asks 1,000 *pair* queries ("same instance?", 500 yes / 500 no, the "no" partner a
similar-looking image) and 1,000 *multi* queries (a reference and 3 candidates, "how many match?", answers 0 to 3
equally often). ``queries_build`` builds both from a list of ``LabelledImage`` and says in ``notes`` where the data
could not supply the counts asked for; ``pool_sample`` first picks a seeded subset of a huge source (GLDv2's train
split) so that only those images are embedded.

"Look-alikes" of an image are images of other labels, most similar first: those of a ``look_alikes`` callable
(curated hard negatives, as TWIN-Eval has) first, then the most cosine-similar by ``features``; with neither,
partners are drawn uniformly over the other labels. Everything random comes from
``random.Random(seed)``, so a seed and an input order give the same queries on every machine.
"""

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from evaluation.sources.labelled import LabelledImage

# Labels with at most this many same-label pairs have them all listed and shuffled; bigger ones are sampled.
_ENUMERATE_PAIRS = 4096
# Feature similarities are computed for this many anchors at a time (a block x n matrix product).
_FEATURE_BLOCK = 256
# Tries per label visit before a label is considered used up for the query kind being built.
_TRIES = 8
# Below this many images an exhausted-looking label is double-checked by listing every partner.
_EXHAUSTIVE_LIMIT = 2000


@dataclass(frozen=True)
class BuiltQuery:
    question_type: str  # "pair" or "multi"
    # Into the images list given; pair: 2 images; multi: the reference, then the candidates.
    image_indices: tuple[int, ...]
    answer: str  # pair: "yes"/"no"; multi: "0".."3" (how many candidates show the reference's identity)
    labels: tuple[str, ...]  # the identity label of each image, same order


@dataclass
class BuiltQueries:
    queries: list[BuiltQuery]
    # Sentences on shortfalls and fallbacks; empty when all went well.
    notes: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> list[BuiltQuery]:
        return [query for query in self.queries if query.question_type == "pair"]

    @property
    def multis(self) -> list[BuiltQuery]:
        return [query for query in self.queries if query.question_type == "multi"]


def queries_build(
    images: Sequence[LabelledImage],
    *,
    pair_count: int = 1000,
    multi_count: int = 1000,
    seed: int = 0,
    features: np.ndarray | None = None,
    look_alikes: Callable[[int], Sequence[int]] | None = None,
    hard_negative_pool: int = 10,
    candidates: int = 3,
) -> BuiltQueries:
    """Pair queries (half yes, half no; an odd extra is yes) then multi queries (answers 0..candidates equally
    often, the remainder spread from 0 upwards), each set shuffled. See the module docstring for look-alikes."""
    if pair_count < 0 or multi_count < 0:
        raise ValueError("pair_count and multi_count must be zero or more.")
    if candidates < 1 or hard_negative_pool < 1:
        raise ValueError("candidates and hard_negative_pool must be at least 1.")
    if features is not None and len(features) != len(images):
        raise ValueError(f"features has {len(features)} rows for {len(images)} images.")

    builder = _Builder(images, seed=seed, features=features, look_alikes=look_alikes, pool=hard_negative_pool)
    pairs = builder.pairs(pair_count)
    multis = builder.multis(multi_count, candidates)
    return BuiltQueries(queries=pairs + multis, notes=builder.notes)


def pool_sample(
    images: Sequence[LabelledImage],
    *,
    max_images: int,
    seed: int,
    min_per_label: int = 2,
    max_per_label: int = 8,
) -> list[int]:
    """Indices (in input order) of a seeded subset: whole labels with at least ``min_per_label`` images, at most
    ``max_per_label`` images each, drawn in shuffled label order until ``max_images`` are taken.

    Made for sources too big to embed whole (GLDv2's train split has millions of images): the queries are then built
    from the subset, and many small labels make better "no" partners than a few huge ones.
    """
    if min_per_label < 1 or max_per_label < min_per_label:
        raise ValueError("Need 1 <= min_per_label <= max_per_label.")
    rng = random.Random(seed)
    groups = _groups(images)
    eligible = [label for label, members in groups.items() if len(members) >= min_per_label]
    rng.shuffle(eligible)
    chosen: list[int] = []
    for label in eligible:
        room = max_images - len(chosen)
        if room < min_per_label:
            break
        members = groups[label]
        chosen.extend(rng.sample(members, min(len(members), max_per_label, room)))
    return sorted(chosen)


def _groups(images: Sequence[LabelledImage]) -> dict[str, list[int]]:
    """{label: indices of its images}, labels in order of first appearance (so the result follows input order)."""
    groups: dict[str, list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(image.label, []).append(index)
    return groups


def _key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


class _LookAlikes:
    """Per image, up to ``pool`` images of other labels, most similar first; None where there is no preference."""

    def __init__(
        self,
        codes: np.ndarray,
        *,
        features: np.ndarray | None,
        look_alikes: Callable[[int], Sequence[int]] | None,
        pool: int,
    ):
        self.codes = codes
        self.look_alikes = look_alikes
        self.pool = pool
        self.cache: dict[int, list[int]] = {}
        self.by_features: dict[int, list[int]] = {}
        self.features = None
        if features is not None:
            matrix = np.asarray(features, dtype=np.float32)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            # Normalised again so that a dot product is a cosine even if the caller's vectors drifted.
            self.features = matrix / np.where(norms > 0, norms, 1.0)

    @property
    def active(self) -> bool:
        return self.look_alikes is not None or self.features is not None

    def of(self, index: int) -> list[int] | None:
        if not self.active:
            return None
        if index not in self.cache:
            chosen = self._from_callable(index) if self.look_alikes is not None else []
            # The callable's (curated) look-alikes come first; similar-looking images fill the rest of the pool.
            if len(chosen) < self.pool and self.features is not None:
                if index not in self.by_features:
                    self._from_features(index)
                chosen += [other for other in self.by_features[index] if other not in chosen]
            self.cache[index] = chosen[: self.pool]
        return self.cache[index]

    def _from_callable(self, index: int) -> list[int]:
        count = len(self.codes)
        chosen: list[int] = []
        for other in self.look_alikes(index):
            other = int(other)
            if 0 <= other < count and self.codes[other] != self.codes[index] and other not in chosen:
                chosen.append(other)
                if len(chosen) == self.pool:
                    break
        return chosen

    def _from_features(self, index: int) -> None:
        """Ranks the look-alikes of the whole block of anchors around ``index`` with one matrix product."""
        start = index - index % _FEATURE_BLOCK
        rows = np.arange(start, min(start + _FEATURE_BLOCK, len(self.codes)))
        similarity = self.features[rows] @ self.features.T
        # Same label: never a look-alike.
        similarity[self.codes[rows][:, None] == self.codes[None, :]] = -np.inf
        keep = min(self.pool, similarity.shape[1])
        top = np.argpartition(-similarity, keep - 1, axis=1)[:, :keep]
        for position, row in enumerate(rows):
            others = top[position]
            scores = similarity[position, others]
            finite = np.isfinite(scores)
            others, scores = others[finite], scores[finite]
            order = np.lexsort((others, -scores))  # most similar first; ties by index, for determinism
            self.by_features[int(row)] = [int(other) for other in others[order]]


class _PairDrawer:
    """Unused same-label pairs of one label, in random order."""

    def __init__(self, members: list[int], rng: random.Random):
        self.members = members
        self.rng = rng
        self.total = len(members) * (len(members) - 1) // 2
        self.used: set[tuple[int, int]] = set()
        self.pending: list[tuple[int, int]] | None = None
        if self.total <= _ENUMERATE_PAIRS:
            self.pending = list(itertools.combinations(members, 2))
            rng.shuffle(self.pending)

    def draw(self) -> tuple[int, int] | None:
        if self.pending is not None:
            return self.pending.pop() if self.pending else None
        if len(self.used) >= self.total:
            return None
        while True:  # a big label: sampling finds an unused pair quickly
            pair = _key(*self.rng.sample(self.members, 2))
            if pair not in self.used:
                self.used.add(pair)
                return pair


class _Builder:
    def __init__(
        self,
        images: Sequence[LabelledImage],
        *,
        seed: int,
        features: np.ndarray | None,
        look_alikes: Callable[[int], Sequence[int]] | None,
        pool: int,
    ):
        self.labels = [image.label for image in images]
        self.groups = list(_groups(images).values())  # one list of indices per label
        codes = np.empty(len(images), dtype=np.int64)
        for code, members in enumerate(self.groups):
            codes[members] = code
        self.codes = codes
        self.rng = random.Random(seed)
        self.look = _LookAlikes(codes, features=features, look_alikes=look_alikes, pool=pool)
        self.notes: list[str] = []
        self.used_pairs: set[tuple[int, int]] = set()
        self.outside_pool = (
            0  # "no" partners / non-matching candidates drawn outside an exhausted look-alike pool
        )

    # Pair queries.

    def pairs(self, count: int) -> list[BuiltQuery]:
        if count == 0:
            return []
        yes_target, no_target = math.ceil(count / 2), count // 2
        yes = self._yes_pairs(yes_target)
        no_goal = no_target if len(yes) >= yes_target else len(yes)
        self.outside_pool = 0
        no = self._no_pairs(no_goal)
        if len(yes) < yes_target or len(no) < no_target:
            kept = min(len(yes), len(no))
            self.notes.append(self._pair_shortfall(count, kept, len(yes), yes_target, len(no), no_goal))
            yes, no = yes[:kept], no[:kept]
        if self.outside_pool:
            self.notes.append(
                f"{self.outside_pool} of {len(no)} 'no' partners were drawn from other labels at large: their "
                "anchors' look-alike pools were used up."
            )
        queries = [self._pair_query(pair, "yes") for pair in yes] + [
            self._pair_query(pair, "no") for pair in no
        ]
        self.rng.shuffle(queries)
        return queries

    def _pair_query(self, pair: tuple[int, int], answer: str) -> BuiltQuery:
        first, second = pair if self.rng.random() < 0.5 else pair[::-1]
        return BuiltQuery("pair", (first, second), answer, (self.labels[first], self.labels[second]))

    def _yes_pairs(self, target: int) -> list[tuple[int, int]]:
        eligible = [members for members in self.groups if len(members) >= 2]
        self.rng.shuffle(eligible)
        drawers = [_PairDrawer(members, self.rng) for members in eligible]
        pairs: list[tuple[int, int]] = []
        # Round robin over the shuffled labels: one pair per label per turn, so big labels cannot dominate.
        while len(pairs) < target and drawers:
            for drawer in list(drawers):
                if len(pairs) >= target:
                    break
                pair = drawer.draw()
                if pair is None:
                    drawers.remove(drawer)
                    continue
                self.used_pairs.add(pair)
                pairs.append(pair)
        return pairs

    def _no_pairs(self, target: int) -> list[tuple[int, int]]:
        if len(self.groups) < 2:
            return []
        active = list(self.groups)
        self.rng.shuffle(active)
        pairs: list[tuple[int, int]] = []
        while len(pairs) < target and active:
            for members in list(active):
                if len(pairs) >= target:
                    break
                pair = self._no_pair(members)
                if pair is None:
                    active.remove(members)
                    continue
                self.used_pairs.add(pair)
                pairs.append(pair)
        return pairs

    def _no_pair(self, members: list[int]) -> tuple[int, int] | None:
        """An unused (anchor of this label, partner of another label) pair, the partner a look-alike if any is left."""
        for _ in range(_TRIES):
            anchor = self.rng.choice(members)
            pool = self.look.of(anchor)
            if pool:
                fresh = [other for other in pool if _key(anchor, other) not in self.used_pairs]
                if fresh:
                    return _key(anchor, self.rng.choice(fresh))
            partner = self._random_other(anchor)
            if _key(anchor, partner) not in self.used_pairs:
                if self.look.active:
                    self.outside_pool += 1
                return _key(anchor, partner)
        return self._any_unused_partner(members)

    def _any_unused_partner(self, members: list[int]) -> tuple[int, int] | None:
        """Small data only: list every cross-label pair of this label before calling it used up."""
        if len(self.labels) > _EXHAUSTIVE_LIMIT:
            return None
        anchors = list(members)
        self.rng.shuffle(anchors)
        for anchor in anchors:
            for other in range(len(self.labels)):
                if self.codes[other] != self.codes[anchor] and _key(anchor, other) not in self.used_pairs:
                    if self.look.active:
                        self.outside_pool += 1
                    return _key(anchor, other)
        return None

    def _random_other(self, index: int) -> int:
        """An image of another label: the label drawn uniformly over the other labels, then one of its images."""
        own = int(self.codes[index])
        code = self.rng.randrange(len(self.groups) - 1)
        code += code >= own
        return self.rng.choice(self.groups[code])

    def _pair_shortfall(self, count: int, kept: int, yes: int, yes_target: int, no: int, no_goal: int) -> str:
        built = f"asked for {count} pair queries, built {2 * kept}"
        if yes < yes_target:
            labels = sum(1 for members in self.groups if len(members) >= 2)
            return (
                f"{built}: only {yes} distinct same-label image pairs exist ({labels} labels have two or more "
                "images), and as many 'no' pairs were kept to stay balanced."
            )
        return f"{built}: only {no} distinct 'no' pairs could be drawn across {len(self.groups)} labels."

    # Multi queries.

    def multis(self, count: int, candidates: int) -> list[BuiltQuery]:
        if count == 0:
            return []
        answers = candidates + 1
        targets = [count // answers + (1 if answer < count % answers else 0) for answer in range(answers)]
        built = [self._multis_answering(answer, target, candidates) for answer, target in enumerate(targets)]
        if any(len(queries) < target for queries, target in zip(built, targets, strict=True)):
            kept = min(len(queries) for queries in built)
            short = min(range(answers), key=lambda answer: len(built[answer]))
            self.notes.append(
                self._multi_shortfall(count, kept * answers, short, len(built[short]), candidates)
            )
            built = [queries[:kept] for queries in built]
        queries = [query for per_answer in built for query in per_answer]
        self.rng.shuffle(queries)
        return queries

    def _multis_answering(self, answer: int, target: int, candidates: int) -> list[BuiltQuery]:
        non_matching = candidates - answer
        eligible = [members for members in self.groups if len(members) >= answer + 1]
        if non_matching and len(self.groups) < 2:
            eligible = []
        self.rng.shuffle(eligible)
        seen: set[tuple[int, frozenset[int]]] = set()
        queries: list[BuiltQuery] = []
        while len(queries) < target and eligible:
            for members in list(eligible):
                if len(queries) >= target:
                    break
                query = self._multi_query(members, answer, non_matching, seen)
                if query is None:
                    eligible.remove(members)
                    continue
                queries.append(query)
        return queries

    def _multi_query(
        self, members: list[int], answer: int, non_matching: int, seen: set[tuple[int, frozenset[int]]]
    ) -> BuiltQuery | None:
        for _ in range(_TRIES):
            reference = self.rng.choice(members)
            matching = self.rng.sample([m for m in members if m != reference], answer)
            others = self._look_alike_candidates(reference, non_matching)
            if others is None:
                continue
            chosen = matching + others
            signature = (reference, frozenset(chosen))
            if signature in seen:
                continue
            seen.add(signature)
            self.rng.shuffle(chosen)
            indices = (reference, *chosen)
            return BuiltQuery("multi", indices, str(answer), tuple(self.labels[i] for i in indices))
        return None

    def _look_alike_candidates(self, reference: int, count: int) -> list[int] | None:
        """``count`` distinct images of other labels: look-alikes of the reference first, then any."""
        if count == 0:
            return []
        pool = self.look.of(reference) or []
        chosen = self.rng.sample(pool, count) if len(pool) >= count else list(pool)
        for _ in range(count * _TRIES):
            if len(chosen) == count:
                return chosen
            other = self._random_other(reference)
            if other not in chosen:
                chosen.append(other)
        return chosen if len(chosen) == count else None

    def _multi_shortfall(self, count: int, built: int, answer: int, available: int, candidates: int) -> str:
        needed = answer + 1
        labels = sum(1 for members in self.groups if len(members) >= needed)
        reason = (
            f"answer {answer} needs a label with {needed} images (the reference and {answer} matching "
            f"candidates) and only {labels} labels have them"
            if answer
            else f"answer 0 needs {candidates} images of other labels and only {len(self.groups)} labels exist"
        )
        return (
            f"asked for {count} multi queries, built {built}: {reason}, giving {available} distinct queries with "
            "that answer; every answer was cut to that many to stay balanced."
        )
