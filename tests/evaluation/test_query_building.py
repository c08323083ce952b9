"""Seeded FGVQA query building: counts and balances, correct answers, no repeats, look-alike negatives, shortfalls."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.query_building import BuiltQueries, pool_sample, queries_build
from evaluation.sources.labelled import LabelledImage


def dataset(sizes: list[int]) -> list[LabelledImage]:
    """Label i has sizes[i] images; images are listed label by label."""
    return [
        LabelledImage(key=f"l{label}/{n}", label=f"l{label}")
        for label, size in enumerate(sizes)
        for n in range(size)
    ]


def random_sizes(labels: int, seed: int, low: int = 1, high: int = 9) -> list[int]:
    return [int(size) for size in np.random.default_rng(seed).integers(low, high, size=labels)]


def assert_consistent(built: BuiltQueries, images: list[LabelledImage], candidates: int = 3) -> None:
    """Every query's labels, answer and shape agree with the images; no pair and no multi query repeats."""
    pair_keys = set()
    multi_keys = set()
    for query in built.queries:
        assert query.labels == tuple(images[i].label for i in query.image_indices)
        assert len(set(query.image_indices)) == len(query.image_indices)
        if query.question_type == "pair":
            first, second = query.labels
            assert query.answer == ("yes" if first == second else "no")
            key = frozenset(query.image_indices)
            assert key not in pair_keys
            pair_keys.add(key)
        else:
            assert query.question_type == "multi"
            assert len(query.image_indices) == candidates + 1
            reference, *others = query.labels
            assert query.answer == str(sum(label == reference for label in others))
            key = (query.image_indices[0], frozenset(query.image_indices[1:]))
            assert key not in multi_keys
            multi_keys.add(key)


def test_the_papers_counts_and_balances():
    images = dataset(random_sizes(300, seed=1))
    built = queries_build(images, seed=0)
    counts = Counter((query.question_type, query.answer) for query in built.queries)
    assert counts == {
        ("pair", "yes"): 500,
        ("pair", "no"): 500,
        ("multi", "0"): 250,
        ("multi", "1"): 250,
        ("multi", "2"): 250,
        ("multi", "3"): 250,
    }
    assert built.notes == []
    assert len(built.pairs) == 1000 and len(built.multis) == 1000
    assert_consistent(built, images)


def test_odd_counts_give_the_extra_pair_to_yes_and_spread_the_multi_remainder_from_zero():
    images = dataset(random_sizes(40, seed=2, low=4))
    built = queries_build(images, pair_count=7, multi_count=6, seed=3)
    assert Counter(query.answer for query in built.pairs) == {"yes": 4, "no": 3}
    assert Counter(query.answer for query in built.multis) == {"0": 2, "1": 2, "2": 1, "3": 1}


def test_the_same_seed_builds_the_same_set_and_another_seed_another():
    images = dataset(random_sizes(120, seed=4))
    features = np.random.default_rng(0).normal(size=(len(images), 16)).astype(np.float32)
    first = queries_build(images, pair_count=200, multi_count=200, seed=7, features=features)
    again = queries_build(images, pair_count=200, multi_count=200, seed=7, features=features)
    other = queries_build(images, pair_count=200, multi_count=200, seed=8, features=features)
    assert first.queries == again.queries
    assert first.queries != other.queries
    assert {q.image_indices for q in first.pairs} != {q.image_indices for q in other.pairs}


def test_big_labels_do_not_dominate_the_yes_pairs():
    images = dataset([200] + [2] * 60)
    built = queries_build(images, pair_count=100, multi_count=0, seed=0)
    yes_labels = Counter(query.labels[0] for query in built.pairs if query.answer == "yes")
    assert sum(yes_labels.values()) == 50
    assert max(yes_labels.values()) == 1  # one pair per label per turn: 61 labels cover 50 pairs


def twin_clusters(twins: int, per_label: int, dim: int = 32, seed: int = 0):
    """Labels a_k and b_k share a cluster centre: each image's nearest other-label images are its twin's."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(twins, dim))
    images, rows = [], []
    for k in range(twins):
        for side in ("a", "b"):
            for n in range(per_label):
                images.append(LabelledImage(key=f"{side}{k}/{n}", label=f"{side}{k}"))
                rows.append(centres[k] + 0.05 * rng.normal(size=dim))
    features = np.asarray(rows, dtype=np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return images, features


def is_twin(first: str, second: str) -> bool:
    return first != second and first[1:] == second[1:]


def test_no_partners_and_wrong_candidates_come_from_the_look_alikes_of_the_features():
    images, features = twin_clusters(twins=60, per_label=4)
    built = queries_build(
        images, pair_count=200, multi_count=200, seed=0, features=features, hard_negative_pool=4
    )
    assert_consistent(built, images)
    no_pairs = [query for query in built.pairs if query.answer == "no"]
    assert len(no_pairs) == 100
    assert sum(is_twin(*query.labels) for query in no_pairs) >= 95
    wrong = [
        (query.labels[0], label)
        for query in built.multis
        for label in query.labels[1:]
        if label != query.labels[0]
    ]
    assert sum(is_twin(*pair) for pair in wrong) >= 0.95 * len(wrong)

    # Without features the partners are drawn over all labels: twins are then rare.
    plain = queries_build(images, pair_count=200, multi_count=0, seed=0)
    assert sum(is_twin(*query.labels) for query in plain.pairs if query.answer == "no") < 20


def test_a_look_alikes_callable_is_honoured_and_filtered_to_other_labels():
    images = dataset([3] * 30)
    labels = [image.label for image in images]

    def look_alikes(index: int) -> list[int]:
        # Its own label first (must be skipped), then the images of the next label along, then anything.
        own = [i for i, label in enumerate(labels) if label == labels[index] and i != index]
        following = (index // 3 + 1) % 30
        return own + [following * 3, following * 3 + 1, following * 3 + 2] + list(range(len(images)))

    built = queries_build(
        images, pair_count=60, multi_count=40, seed=1, look_alikes=look_alikes, hard_negative_pool=3
    )
    assert_consistent(built, images)

    def next_label(first: str, second: str) -> bool:
        a, b = int(first[1:]), int(second[1:])
        return b == (a + 1) % 30 or a == (b + 1) % 30

    assert all(next_label(*query.labels) for query in built.pairs if query.answer == "no")
    for query in built.multis:
        reference = query.labels[0]
        assert all(label == reference or next_label(reference, label) for label in query.labels[1:])


def test_curated_look_alikes_come_first_and_features_fill_the_rest_of_the_pool():
    # TWIN-Eval's case: a few images have a curated negative (a0/n -> a1/n, not what the features would pick),
    # the others only features (their twin label b_k).
    images, features = twin_clusters(twins=30, per_label=4)
    labels = [image.label for image in images]
    a1 = [i for i, label in enumerate(labels) if label == "a1"]
    curated_partner = {i: a1[n] for n, i in enumerate(i for i, label in enumerate(labels) if label == "a0")}

    def look_alikes(index: int) -> list[int]:
        return [curated_partner[index]] if index in curated_partner else []

    built = queries_build(
        images,
        pair_count=120,
        multi_count=0,
        seed=2,
        features=features,
        look_alikes=look_alikes,
        hard_negative_pool=1,
    )
    no_pairs = [query for query in built.pairs if query.answer == "no"]
    curated = [query for query in no_pairs if set(query.labels) == {"a0", "a1"}]
    assert curated, "the curated negatives are used"
    for query in curated:  # and exactly as curated: a pool of one
        first, second = query.image_indices
        assert curated_partner.get(first) == second or curated_partner.get(second) == first
    others = [query for query in no_pairs if query not in curated]
    assert sum(is_twin(*query.labels) for query in others) >= 0.9 * len(others)  # the rest: by features


def test_too_few_same_label_pairs_keeps_the_balance_and_says_so():
    images = dataset([2] * 10 + [1] * 30)
    built = queries_build(images, pair_count=100, multi_count=0, seed=0)
    assert Counter(query.answer for query in built.pairs) == {"yes": 10, "no": 10}
    assert built.notes == [
        "asked for 100 pair queries, built 20: only 10 distinct same-label image pairs exist (10 labels have two "
        "or more images), and as many 'no' pairs were kept to stay balanced."
    ]


def test_too_few_big_labels_cuts_every_multi_answer_to_the_same_count_and_says_so():
    images = dataset([4] * 5 + [2] * 20)  # answer 3 needs four images of one label: 5 labels x 4 references
    built = queries_build(images, pair_count=0, multi_count=400, seed=0)
    assert Counter(query.answer for query in built.multis) == {"0": 20, "1": 20, "2": 20, "3": 20}
    assert_consistent(built, images)
    [note] = built.notes
    assert note.startswith("asked for 400 multi queries, built 80: answer 3 needs a label with 4 images")
    assert "only 5 labels have them" in note


def test_data_that_cannot_answer_at_all():
    built = queries_build(dataset([1] * 5), pair_count=10, multi_count=8, seed=0)
    assert built.queries == []
    assert len(built.notes) == 2


def test_invalid_arguments():
    images = dataset([2, 2])
    with pytest.raises(ValueError, match="features has 3 rows for 4 images"):
        queries_build(images, features=np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        queries_build(images, pair_count=-1)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=12),
    pair_count=st.integers(min_value=0, max_value=40),
    multi_count=st.integers(min_value=0, max_value=40),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_any_data_gives_consistent_balanced_queries(sizes, pair_count, multi_count, seed):
    images = dataset(sizes)
    built = queries_build(images, pair_count=pair_count, multi_count=multi_count, seed=seed)
    assert_consistent(built, images)
    answers = Counter(query.answer for query in built.pairs)
    assert answers["yes"] - answers["no"] in (0, 1)
    assert len(built.pairs) <= pair_count
    multi = Counter(query.answer for query in built.multis)
    per_answer = [multi[str(answer)] for answer in range(4)]
    assert per_answer == sorted(per_answer, reverse=True) and per_answer[0] - per_answer[3] <= 1
    assert len(built.multis) <= multi_count
    short = len(built.pairs) < pair_count or len(built.multis) < multi_count
    assert bool(built.notes) == short


def test_pool_sample_picks_whole_small_labels_up_to_the_budget():
    images = dataset([1] * 50 + random_sizes(400, seed=5, low=2, high=30))
    chosen = pool_sample(images, max_images=500, seed=3)
    assert chosen == sorted(set(chosen))
    assert 490 <= len(chosen) <= 500
    per_label = Counter(images[i].label for i in chosen)
    assert min(per_label.values()) >= 2 and max(per_label.values()) <= 8
    assert pool_sample(images, max_images=500, seed=3) == chosen
    assert pool_sample(images, max_images=500, seed=4) != chosen
    # With room for everything, every label with at least three images gives exactly three.
    everything = pool_sample(images, max_images=10_000, seed=0, min_per_label=3, max_per_label=3)
    big_labels = {label for label, size in Counter(image.label for image in images).items() if size >= 3}
    assert Counter(images[i].label for i in everything) == dict.fromkeys(big_labels, 3)


def test_pool_sample_then_build():
    images = dataset(random_sizes(2000, seed=6, low=1, high=12))
    chosen = pool_sample(images, max_images=1000, seed=0)
    subset = [images[i] for i in chosen]
    built = queries_build(subset, seed=0)
    assert built.notes == []
    assert_consistent(built, subset)
