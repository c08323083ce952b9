"""Duplicate-listing candidates (TWIN appendix B.2).

For each product, the k images of *other* products most similar to its images, k = the product's image count,
are flagged; the flagged pairs are grouped by the other product into one duplicate-merge task per product
pair, carrying the image pairs and their similarities as evidence. A pair found from both sides is one task
with the evidence of both. Pairs already one instance or already judged different are left out by the task
service, and a pair asked about once is never asked again.
"""

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from annotation.review.task_creation import DuplicateCandidate, duplicate_merge_tasks_create
from mining.services.embeddings import EmbeddedImages, rows_grouped
from mining.services.search import neighbours_of_all


@dataclass(frozen=True)
class DuplicateSearch:
    candidates: list[DuplicateCandidate]
    products: int
    flagged_pairs: int


def duplicate_candidates_find(embedded: EmbeddedImages, *, method: str = "auto") -> DuplicateSearch:
    """The duplicate candidates among the embedded images, most similar pair first."""
    n = len(embedded)
    if n < 2:
        return DuplicateSearch(
            candidates=[], products=len(set(embedded.product_ids.tolist())), flagged_pairs=0
        )
    rows_of_product = rows_grouped(embedded.product_ids)
    largest_product = max(len(rows) for rows in rows_of_product.values())
    largest_instance = max(len(rows) for rows in rows_grouped(embedded.instance_ids).values())
    # Before an image's k flags come, at worst, the other images of its own instance (its product's and those of
    # listings merged with it): k + instance size - 1 neighbours cover every product.
    depth = largest_product + largest_instance - 1
    similarities, neighbours = neighbours_of_all(embedded.vectors, depth=depth, method=method)

    evidence: dict[tuple[int, int], dict[tuple[int, int], float]] = defaultdict(dict)
    flagged_total = 0
    for product_id, rows in rows_of_product.items():
        k = len(rows)
        sims = similarities[rows].ravel()
        others = neighbours[rows].ravel()
        sources = np.repeat(rows, neighbours.shape[1])
        valid = others >= 0
        valid[valid] &= embedded.instance_ids[others[valid]] != embedded.instance_ids[sources[valid]]
        sims, others, sources = sims[valid], others[valid], sources[valid]
        # Most similar first; ties by image ids, so the flags don't depend on the search's order.
        order = np.lexsort((embedded.image_ids[others], embedded.image_ids[sources], -sims))[:k]
        for position in order:
            mine, theirs = int(sources[position]), int(others[position])
            other_product = int(embedded.product_ids[theirs])
            a, b = (product_id, other_product) if product_id < other_product else (other_product, product_id)
            pair = (int(embedded.image_ids[mine]), int(embedded.image_ids[theirs]))
            if a != product_id:
                pair = (pair[1], pair[0])
            evidence[(a, b)][pair] = round(float(sims[position]), 4)
            flagged_total += 1

    candidates = []
    for (a, b), pairs in evidence.items():
        flagged = sorted(((x, y, s) for (x, y), s in pairs.items()), key=lambda p: (-p[2], p[0], p[1]))
        candidates.append(
            DuplicateCandidate(
                product_a_id=a, product_b_id=b, flagged_pairs=flagged, similarity=flagged[0][2]
            )
        )
    candidates.sort(key=lambda c: (-(c.similarity or 0.0), c.product_a_id, c.product_b_id))
    return DuplicateSearch(candidates=candidates, products=len(rows_of_product), flagged_pairs=flagged_total)


def duplicate_tasks_create(embedded: EmbeddedImages, *, method: str = "auto") -> dict[str, int]:
    """Finds the candidates and creates their review tasks; returns the counts for the job's result."""
    search = duplicate_candidates_find(embedded, method=method)
    created = duplicate_merge_tasks_create(candidates=search.candidates)
    return {
        "images": len(embedded),
        "products": search.products,
        "flagged_image_pairs": search.flagged_pairs,
        "candidate_product_pairs": len(search.candidates),
        "tasks_created": len(created),
    }
