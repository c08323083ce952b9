"""Building the pairs from reviewed work: which pairs, which split, random negatives, proportional samples."""

from collections import Counter

import pytest

from annotation.dataset.pairs import (
    PairRules,
    PairSource,
    Split,
    instance_split,
    pair_catalog_read,
    pair_counts,
    pairs_iter,
    pairs_sample,
    pairs_sample_plan,
    pairs_total,
)
from tests.annotation.dataset.builders import hard_negative, instance_with_images

pytestmark = pytest.mark.django_db


def all_pairs(rules: PairRules) -> list:
    catalog = pair_catalog_read(rules)
    pairs = list(pairs_iter(catalog, rules))
    assert pairs_total(catalog) == len(pairs)  # the count a freezing job announces before it starts
    return pairs


def test_positives_hard_negatives_and_synthetic_negatives_from_verified_images(reviewed_catalog):
    pairs = all_pairs(PairRules(eval_fraction=0))
    by_source = Counter(pair.source for pair in pairs)
    assert by_source == {
        PairSource.POSITIVE: 3 + 1 + 6,
        PairSource.HARD_NEGATIVE: 3 * 2,
        PairSource.SYNTHETIC: 3,
    }
    assert all(pair.same == (pair.source == PairSource.POSITIVE) for pair in pairs)
    assert {p.split for p in pairs} == {Split.TRAIN}
    hard = {(p.image_a_id, p.image_b_id) for p in pairs if p.source == PairSource.HARD_NEGATIVE}
    assert hard == {(a.pk, b.pk) for a in reviewed_catalog["a_images"] for b in reviewed_catalog["b_images"]}
    synthetic = {(p.image_a_id, p.image_b_id) for p in pairs if p.source == PairSource.SYNTHETIC}
    assert synthetic == {(a.pk, reviewed_catalog["generated"].pk) for a in reviewed_catalog["a_images"]}
    assert len({(p.image_a_id, p.image_b_id) for p in pairs}) == len(pairs)
    assert pair_counts(pairs) == {
        "pairs": 19,
        "positive": 10,
        "negative": 9,
        "source:positive": 10,
        "source:hard_negative": 6,
        "source:synthetic": 3,
        "split:train": 19,
    }


def test_pending_images_count_when_verification_is_not_required(reviewed_catalog):
    pairs = all_pairs(PairRules(eval_fraction=0, verified_only=False))
    assert Counter(p.source for p in pairs)[PairSource.POSITIVE] == 6 + 1 + 6  # instance a has 4 images now


def test_hard_negative_pairs_follow_merges_and_a_pair_merged_into_one_instance_is_dropped(reviewed_catalog):
    from annotation.services.instances import instance_merge

    d, d_images = instance_with_images(reviewed_catalog["c"].category, 2)
    hard_negative(reviewed_catalog["c"], d)
    hard_negative(reviewed_catalog["b"], d)
    instance_merge(source=d, target=reviewed_catalog["c"])  # c and d were one object after all
    rules = PairRules(eval_fraction=0)
    pair_catalog = pair_catalog_read(rules)
    assert pair_catalog.dropped["hard_negative_pairs_merged_into_one_instance"] == 1
    pairs = list(pairs_iter(pair_catalog, rules))
    hard = Counter((p.instance_a_id, p.instance_b_id) for p in pairs if p.source == PairSource.HARD_NEGATIVE)
    b, c = sorted((reviewed_catalog["b"].pk, reviewed_catalog["c"].pk))
    assert hard[(b, c)] == 2 * 6  # b's 2 images against c's 4 + d's 2, now all c's
    assert Counter(p.source for p in pairs)[PairSource.POSITIVE] == 3 + 1 + 15


def test_splits_are_by_instance_stable_and_near_the_fraction():
    splits = [instance_split(instance_id=i, eval_fraction=0.1, seed=0) for i in range(20_000)]
    assert 0.09 < splits.count(Split.EVAL) / len(splits) < 0.11
    assert splits == [instance_split(instance_id=i, eval_fraction=0.1, seed=0) for i in range(20_000)]
    assert splits != [instance_split(instance_id=i, eval_fraction=0.1, seed=1) for i in range(20_000)]


def test_a_hard_negative_pair_across_splits_is_dropped_so_no_eval_instance_is_trained_on(reviewed_catalog):
    a, b = reviewed_catalog["a"].pk, reviewed_catalog["b"].pk
    seed = next(
        s
        for s in range(1000)
        if instance_split(instance_id=a, eval_fraction=0.5, seed=s)
        != instance_split(instance_id=b, eval_fraction=0.5, seed=s)
    )
    rules = PairRules(eval_fraction=0.5, seed=seed)
    pair_catalog = pair_catalog_read(rules)
    pairs = list(pairs_iter(pair_catalog, rules))
    assert not [p for p in pairs if p.source == PairSource.HARD_NEGATIVE]
    assert pair_catalog.dropped["hard_negative_pairs_across_splits"] == 1
    for pair in pairs:
        assert (
            pair_catalog.split_of[pair.instance_a_id]
            == pair_catalog.split_of[pair.instance_b_id]
            == pair.split
        )


def test_random_negatives_replace_the_hard_ones_one_for_one(reviewed_catalog):
    rules = PairRules(eval_fraction=0, negatives="random", seed=4)
    pairs = all_pairs(rules)
    random = [p for p in pairs if p.source == PairSource.RANDOM]
    assert len(random) == 6 and not [p for p in pairs if p.source == PairSource.HARD_NEGATIVE]
    assert all(not p.same and p.instance_a_id != p.instance_b_id for p in random)
    assert random == [p for p in all_pairs(rules) if p.source == PairSource.RANDOM]  # seeded
    with pytest.raises(ValueError):
        PairRules(negatives="easy")


def test_the_sample_plan_keeps_proportions_and_adds_up():
    counts = {(True, False): 123_000, (False, False): 300_000, (False, True): 138_000}
    plan = pairs_sample_plan(counts, 5_000)
    assert sum(plan.values()) == 5_000
    for stratum, count in counts.items():
        assert abs(plan[stratum] - 5_000 * count / 561_000) < 1
    assert pairs_sample_plan(counts, 10**6) == counts


def test_a_sample_is_a_seeded_proportional_subset(reviewed_catalog):
    rules = PairRules(eval_fraction=0)
    whole = all_pairs(rules)

    def pairs():
        return pairs_iter(pair_catalog_read(rules), rules)

    sample = list(pairs_sample(pairs, size=10, seed=1))
    assert len(sample) == 10 and set(sample) <= set(whole)
    strata = Counter(p.stratum for p in sample)
    assert strata == pairs_sample_plan(Counter(p.stratum for p in whole), 10)
    assert sample == list(pairs_sample(pairs, size=10, seed=1))
    assert sample != list(pairs_sample(pairs, size=10, seed=2))
