"""The hard-negative shortlist (TWIN appendix B.3).

For each instance, the other instances ranked by image-to-image cosine similarity (an instance pair scores its
most similar image pair); the first k become hard-negative review tasks, k drawn uniformly from 1x to 2x the
instance's positive image count. The draw is seeded per instance, so re-running after merges keeps the k of
every instance the merges didn't touch; tasks are keyed by the unordered instance pair, so a re-run adds only
the new pairs, and open tasks of instances merged away since are closed.
"""

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from annotation.review.task_creation import (
    FlaggedPair,
    HardNegativeCandidate,
    hard_negative_tasks_create,
    hard_negative_tasks_obsolete_merged,
)
from mining.services.embeddings import EmbeddedImages, rows_grouped
from mining.services.search import neighbours_of_all

# Evidence shown on the card: the best few image pairs of the two instances.
FLAGGED_PAIRS_SHOWN = 4


@dataclass(frozen=True)
class Shortlist:
    candidates: list[HardNegativeCandidate]
    instances: int
    short: int  # instances that got fewer candidates than their k (too few neighbours found)


def shortlist_size(*, instance_id: int, positive_images: int, seed: int) -> int:
    """k for an instance: uniform in [n, 2n] for its n positive images, the same on every run with the seed."""
    rng = np.random.default_rng((seed, instance_id))
    return int(rng.integers(positive_images, 2 * positive_images + 1))


def hard_negative_shortlist(
    embedded: EmbeddedImages, *, seed: int, same_category_only: bool = False, method: str = "auto"
) -> Shortlist:
    """Each instance's k most similar other instances, as review candidates, most similar first.

    ``same_category_only`` searches each category on its own (an instance's category is its images'), so the
    shortlist is as deep within the category as it would be across the catalog.
    """
    if same_category_only:
        parts = [
            hard_negative_shortlist(embedded.subset(rows), seed=seed, method=method)
            for rows in rows_grouped(embedded.category_ids).values()
        ]
        candidates = [c for part in parts for c in part.candidates]
        candidates.sort(key=lambda c: (-(c.similarity or 0.0), c.instance_id, c.candidate_instance_id))
        return Shortlist(
            candidates=candidates,
            instances=sum(part.instances for part in parts),
            short=sum(part.short for part in parts),
        )
    rows_of_instance = rows_grouped(embedded.instance_ids)
    if len(rows_of_instance) < 2:
        return Shortlist(candidates=[], instances=len(rows_of_instance), short=0)
    k_of = {
        instance: shortlist_size(instance_id=instance, positive_images=len(rows), seed=seed)
        for instance, rows in rows_of_instance.items()
    }
    largest = max(len(rows) for rows in rows_of_instance.values())
    # The j-th best other instance's best image is at most (own images + images of the j-1 better instances)
    # deep in some list of ours; that bound, capped by the search, sets the depth.
    depth = largest + max(k_of.values()) * largest
    similarities, neighbours = neighbours_of_all(embedded.vectors, depth=depth, method=method)

    candidates: dict[tuple[int, int], HardNegativeCandidate] = {}
    short = 0
    for instance, rows in rows_of_instance.items():
        sims = similarities[rows].ravel()
        others = neighbours[rows].ravel()
        sources = np.repeat(rows, neighbours.shape[1])
        keep = others >= 0
        keep[keep] &= embedded.instance_ids[others[keep]] != instance
        sims, others, sources = sims[keep], others[keep], sources[keep]
        order = np.lexsort((embedded.image_ids[others], embedded.image_ids[sources], -sims))
        sims, others, sources = sims[order], others[order], sources[order]
        other_instances = embedded.instance_ids[others]
        # Instances in the order of their best pair: the first place each appears in the sorted pairs.
        found, first = np.unique(other_instances, return_index=True)
        ranked = found[np.argsort(first, kind="stable")][: k_of[instance]]
        if len(ranked) < k_of[instance]:
            short += 1
        pairs_of = _best_pairs(embedded, ranked, other_instances, sims, others, sources)
        for other_instance in ranked.tolist():
            pair = (min(instance, other_instance), max(instance, other_instance))
            flagged = pairs_of[other_instance]
            if pair in candidates and (candidates[pair].similarity or 0.0) >= flagged[0][2]:
                continue
            candidates[pair] = HardNegativeCandidate(
                instance_id=instance,
                candidate_instance_id=other_instance,
                flagged_pairs=flagged,
                similarity=flagged[0][2],
            )
    ordered = sorted(
        candidates.values(), key=lambda c: (-(c.similarity or 0.0), c.instance_id, c.candidate_instance_id)
    )
    return Shortlist(candidates=ordered, instances=len(rows_of_instance), short=short)


def _best_pairs(
    embedded: EmbeddedImages,
    ranked: np.ndarray,
    other_instances: np.ndarray,
    sims: np.ndarray,
    others: np.ndarray,
    sources: np.ndarray,
) -> dict[int, list[FlaggedPair]]:
    """The evidence of each shortlisted instance: its first few image pairs in the (sorted) pairs given."""
    chosen = np.flatnonzero(np.isin(other_instances, ranked))
    by_instance = chosen[np.argsort(other_instances[chosen], kind="stable")]  # stable: best pairs stay first
    pairs_of: dict[int, list[FlaggedPair]] = defaultdict(list)
    for position in by_instance.tolist():
        other_instance = int(other_instances[position])
        if len(pairs_of[other_instance]) < FLAGGED_PAIRS_SHOWN:
            pairs_of[other_instance].append(
                (
                    int(embedded.image_ids[sources[position]]),
                    int(embedded.image_ids[others[position]]),
                    round(float(sims[position]), 4),
                )
            )
    return pairs_of


def hard_negative_tasks_refresh(
    embedded: EmbeddedImages, *, seed: int, same_category_only: bool = False, method: str = "auto"
) -> dict[str, int]:
    """Closes the open tasks of instances merged away, then creates the shortlist's new tasks."""
    obsoleted = hard_negative_tasks_obsolete_merged()
    shortlist = hard_negative_shortlist(
        embedded, seed=seed, same_category_only=same_category_only, method=method
    )
    created = hard_negative_tasks_create(candidates=shortlist.candidates)
    return {
        "images": len(embedded),
        "instances": shortlist.instances,
        "shortlisted_pairs": len(shortlist.candidates),
        "instances_with_a_short_list": shortlist.short,
        "tasks_created": len(created),
        "tasks_closed_after_merges": obsoleted,
    }
