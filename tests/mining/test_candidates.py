"""Duplicate candidates (B.2) and the hard-negative shortlist (B.3) on hand-made vectors, where the right
answer is known exactly."""

import numpy as np
import pytest

from mining.services.duplicates import duplicate_candidates_find
from mining.services.embeddings import EmbeddedImages
from mining.services.hard_negatives import hard_negative_shortlist, shortlist_size


def embedded(rows: list[tuple[int, int, int, int, list[float]]]) -> EmbeddedImages:
    """rows: (image id, product id, instance id, category id, vector); vectors are normalized here."""
    vectors = np.array([row[4] for row in rows], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    columns = np.array([row[:4] for row in rows], dtype=np.int64)
    return EmbeddedImages(
        image_ids=columns[:, 0],
        product_ids=columns[:, 1],
        instance_ids=columns[:, 2],
        category_ids=columns[:, 3],
        vectors=vectors,
    )


def angle(degrees: float) -> list[float]:
    radians = np.deg2rad(degrees)
    return [float(np.cos(radians)), float(np.sin(radians)), 0.0]


def test_each_product_flags_as_many_pairs_as_it_has_images_grouped_by_the_other_product():
    images = embedded(
        [
            (1, 10, 100, 1, angle(0)),  # product 10: two images
            (2, 10, 100, 1, angle(40)),
            (3, 20, 200, 1, angle(2)),  # product 20: closest to image 1
            (4, 20, 200, 1, angle(5)),
            (5, 30, 300, 1, angle(38)),  # product 30: closest to image 2
            (6, 40, 400, 1, angle(120)),  # far from everything
        ]
    )
    search = duplicate_candidates_find(images, method="exact")
    pairs = {(c.product_a_id, c.product_b_id): c for c in search.candidates}
    # Product 10's top two of its images' pairs with other products: (1, 3) and (2, 5), both 2 degrees apart;
    # product 20's: (3, 1) and (4, 1).
    assert (10, 20) in pairs and (10, 30) in pairs
    assert [p[:2] for p in pairs[(10, 20)].flagged_pairs][0] == (1, 3)
    assert [p[:2] for p in pairs[(10, 30)].flagged_pairs] == [(2, 5)]
    # Product 40 (one image) flags its single nearest image of another product: image 2, 80 degrees away.
    assert pairs[(10, 40)].flagged_pairs == [(2, 6, pytest.approx(np.cos(np.deg2rad(80)), abs=1e-4))]
    assert (30, 40) not in pairs and (20, 40) not in pairs
    # Most similar pair first, and each candidate's similarity is its best flag.
    similarities = [c.similarity for c in search.candidates]
    assert similarities == sorted(similarities, reverse=True)
    assert all(c.similarity == c.flagged_pairs[0][2] for c in search.candidates)


def test_a_pair_found_from_both_sides_is_one_candidate_with_both_sides_evidence():
    images = embedded(
        [
            (1, 10, 100, 1, angle(0)),
            (2, 20, 200, 1, angle(1)),
            (3, 20, 200, 1, angle(90)),
        ]
    )
    search = duplicate_candidates_find(images, method="exact")
    both = [c for c in search.candidates if (c.product_a_id, c.product_b_id) == (10, 20)]
    assert len(both) == 1
    # Oriented as (image of product 10, image of product 20) whichever side flagged it.
    assert {p[:2] for p in both[0].flagged_pairs} == {(1, 2), (1, 3)}


def test_products_already_one_instance_are_not_duplicate_candidates():
    images = embedded(
        [
            (1, 10, 100, 1, angle(0)),
            (2, 20, 100, 1, angle(1)),  # another listing of instance 100, merged already
            (3, 30, 300, 1, angle(10)),
        ]
    )
    pairs = {
        (c.product_a_id, c.product_b_id) for c in duplicate_candidates_find(images, method="exact").candidates
    }
    assert (10, 20) not in pairs
    assert (10, 30) in pairs and (20, 30) in pairs


def test_shortlist_size_is_uniform_between_once_and_twice_the_positive_images_and_seeded():
    sizes = [shortlist_size(instance_id=i, positive_images=5, seed=0) for i in range(400)]
    assert min(sizes) == 5 and max(sizes) == 10
    assert set(sizes) == set(range(5, 11))
    assert sizes == [shortlist_size(instance_id=i, positive_images=5, seed=0) for i in range(400)]
    assert sizes != [shortlist_size(instance_id=i, positive_images=5, seed=1) for i in range(400)]


def test_the_shortlist_ranks_instances_by_their_best_image_pair():
    rows = [(1, 10, 100, 1, angle(0))]  # instance 100: one image, so k is 1 or 2
    rows += [(10 + i, 20 + i, 200 + i, 1 if i % 2 else 2, angle(3 * (i + 1))) for i in range(8)]
    images = embedded(rows)
    shortlist = hard_negative_shortlist(images, seed=0, method="exact")
    k = shortlist_size(instance_id=100, positive_images=1, seed=0)
    mine = [c for c in shortlist.candidates if c.instance_id == 100]
    assert [c.candidate_instance_id for c in mine] == [200, 201][:k]

    same_category = hard_negative_shortlist(images, seed=0, same_category_only=True, method="exact")
    mine = [c.candidate_instance_id for c in same_category.candidates if c.instance_id == 100]
    assert mine == [201, 203][:k]  # category 1: the odd ones


def test_a_pair_shortlisted_from_both_sides_is_one_candidate():
    images = embedded([(1, 10, 100, 1, angle(0)), (2, 20, 200, 1, angle(1)), (3, 30, 300, 1, angle(90))])
    shortlist = hard_negative_shortlist(images, seed=0, method="exact")
    pairs = [tuple(sorted((c.instance_id, c.candidate_instance_id))) for c in shortlist.candidates]
    assert len(pairs) == len(set(pairs))
    assert (100, 200) in pairs
