"""Freezing snapshots in a job: their pairs, statistics and hash, immutability, versions, samples, comparison."""

import pytest
from django.db.models import ProtectedError

from annotation.dataset.comparison import snapshot_compare
from annotation.dataset.pairs import PairRules, pair_catalog_read, pairs_iter
from annotation.dataset.snapshots import SnapshotParameters, snapshot_create
from annotation.models import DatasetSnapshot, ReviewStatus, SnapshotPair
from jobs.models import Job
from tests.annotation.dataset.builders import generated, hard_negative, instance_with_images

pytestmark = pytest.mark.django_db(transaction=True)


def freeze(name: str = "twin", researcher=None, **parameters) -> DatasetSnapshot:
    """Freezes through the Celery task (eager in the tests), as the admin page does."""
    snapshot = snapshot_create(name=name, parameters=SnapshotParameters(**parameters), created_by=researcher)
    snapshot.refresh_from_db()
    return snapshot


def test_freezing_writes_every_pair_with_its_statistics_and_hash(reviewed_catalog, researcher):
    snapshot = freeze(researcher=researcher, eval_fraction=0)
    assert snapshot.status == DatasetSnapshot.Status.FROZEN
    assert snapshot.job.status == Job.Status.SUCCEEDED
    assert snapshot.created_by == researcher and snapshot.version == 1 and snapshot.frozen_at
    rules = PairRules(eval_fraction=0)
    expected = [
        (p.image_a_id, p.image_b_id, p.same, str(p.source))
        for p in pairs_iter(pair_catalog_read(rules), rules)
    ]
    stored = list(snapshot.pairs.values_list("image_a_id", "image_b_id", "same", "source"))
    assert stored == expected
    assert (snapshot.pair_count, snapshot.positive_count, snapshot.negative_count) == (19, 10, 9)
    assert snapshot.instance_count == 3
    assert snapshot.image_count == 3 + 2 + 4 + 1
    statistics = snapshot.statistics
    assert {row["name"]: row["pairs"] for row in statistics["by_source"]} == {
        "hard_negative": 6,
        "positive": 10,
        "synthetic": 3,
    }
    assert statistics["by_category"] == [{"name": "vase", "pairs": 19, "positive": 10, "negative": 9}]
    assert statistics["generated_images"] == 1
    assert len(snapshot.content_hash) == 64
    assert set(snapshot.pairs.values_list("category__name", flat=True)) == {"vase"}


def test_the_same_work_frozen_again_is_the_next_version_with_the_same_hash(reviewed_catalog):
    first = freeze(eval_fraction=0)
    second = freeze(eval_fraction=0)
    other = freeze(name="ablation", eval_fraction=0, negatives="random")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.content_hash == second.content_hash
    assert other.content_hash != first.content_hash
    assert first.parameters["eval_fraction"] == 0 and other.parameters["negatives"] == "random"


def test_later_annotation_never_changes_a_frozen_snapshot(reviewed_catalog):
    from annotation.services.instances import instance_merge

    snapshot = freeze(eval_fraction=0)
    before = list(
        snapshot.pairs.values_list("image_a_id", "image_b_id", "same", "instance_a_id", "instance_b_id")
    )
    image = reviewed_catalog["a_images"][0]
    image.review_status = ReviewStatus.REJECTED
    image.save()
    instance_merge(source=reviewed_catalog["b"], target=reviewed_catalog["a"])
    after = list(
        snapshot.pairs.values_list("image_a_id", "image_b_id", "same", "instance_a_id", "instance_b_id")
    )
    assert after == before
    with pytest.raises(ProtectedError):
        image.product.delete()  # the snapshot shows its images

    later = freeze(eval_fraction=0)
    assert later.content_hash != snapshot.content_hash
    comparison = snapshot_compare(old=snapshot, new=later)
    # image a0's pairs are gone; a and b are one instance now, so their other hard negatives became positives
    assert comparison.removed_by_source == {"hard_negative": 2, "positive": 2, "synthetic": 1}
    assert comparison.added_by_source == {"synthetic": 2}  # a's generated image against b's photos
    changed = list(comparison.answer_changed.values_list("source", "same"))
    assert changed == [("positive", True)] * 4
    assert comparison.kept_count == later.pair_count - 2 == snapshot.pair_count - 5


def test_a_sample_keeps_the_proportions_of_labels_and_generated_images(reviewed_catalog):
    snapshot = freeze(eval_fraction=0, sample_size=10, sample_seed=3)
    assert snapshot.pair_count == 10
    assert snapshot.parameters["sample_size"] == 10
    by_source = {row["name"]: row["pairs"] for row in snapshot.statistics["by_source"]}
    assert sum(by_source.values()) == 10
    assert by_source["positive"] == 5  # 10 of 19: largest remainders keep 10:6:3 as 5:3:2
    assert by_source["synthetic"] == 2


def test_the_eval_split_holds_whole_instances(reviewed_catalog):
    for index in range(6):  # more instances, so both splits get some
        instance, _ = instance_with_images(reviewed_catalog["a"].category, 2)
        hard_negative(reviewed_catalog["c"], instance) if index % 2 else generated(instance)
    snapshot = freeze(eval_fraction=0.5, seed=1)
    splits_of_instance: dict[int, set[str]] = {}
    for instance_a, instance_b, split in snapshot.pairs.values_list(
        "instance_a_id", "instance_b_id", "split"
    ):
        splits_of_instance.setdefault(instance_a, set()).add(split)
        splits_of_instance.setdefault(instance_b, set()).add(split)
    assert all(len(splits) == 1 for splits in splits_of_instance.values())
    assert {split for splits in splits_of_instance.values() for split in splits} == {"train", "eval"}
    by_split = {row["name"]: row["pairs"] for row in snapshot.statistics["by_split"]}
    assert by_split == {split: snapshot.pairs.filter(split=split).count() for split in ("train", "eval")}


def test_a_failed_freeze_leaves_no_pairs_and_says_why(reviewed_catalog, monkeypatch):
    from annotation.dataset import snapshots

    def broken_hash_line(pair, sha256_of_image):
        raise RuntimeError("disk full")

    monkeypatch.setattr(snapshots, "WRITE_BATCH_SIZE", 4)
    calls = {"n": 0}
    real = snapshots._hash_line

    def fails_later(pair, sha256_of_image):
        calls["n"] += 1
        if calls["n"] > 9:
            return broken_hash_line(pair, sha256_of_image)
        return real(pair, sha256_of_image)

    monkeypatch.setattr(snapshots, "_hash_line", fails_later)
    snapshot = freeze(eval_fraction=0)
    assert snapshot.status == DatasetSnapshot.Status.FAILED
    assert snapshot.job.status == Job.Status.FAILED and "disk full" in snapshot.job.error
    assert not SnapshotPair.objects.filter(snapshot=snapshot).exists()


def test_parameters_are_checked_before_anything_is_recorded():
    with pytest.raises(ValueError):
        SnapshotParameters(eval_fraction=1.5)
    with pytest.raises(ValueError):
        SnapshotParameters(sample_size=0)
    assert not DatasetSnapshot.objects.exists()


def test_a_split_without_negatives_and_dropped_hard_negatives_are_flagged(
    reviewed_catalog, client, researcher
):
    from annotation.dataset.pairs import instance_split
    from annotation.dataset.statistics import statistics_warnings

    a, b = reviewed_catalog["a"].pk, reviewed_catalog["b"].pk
    # A seed that puts a and b (the hard-negative pair) in different splits, and c alone in the other one.
    seed = next(
        s
        for s in range(10_000)
        if instance_split(instance_id=a, eval_fraction=0.5, seed=s)
        != instance_split(instance_id=b, eval_fraction=0.5, seed=s)
    )
    snapshot = freeze(eval_fraction=0.5, seed=seed)
    warnings = statistics_warnings(snapshot.statistics)
    assert any("1 approved hard-negative instance pairs were left out" in w for w in warnings)
    splits_without_negatives = [row["name"] for row in snapshot.statistics["by_split"] if not row["negative"]]
    for split in splits_without_negatives:
        assert f"The {split} split has no negative pairs." in warnings
    assert snapshot.job.log_entries.filter(level="warning").count() == len(warnings)
    client.force_login(researcher)
    page = client.get(f"/dataset/{snapshot.pk}/").content.decode()
    assert all(warning in page for warning in warnings)
    assert statistics_warnings(
        {"by_split": [{"name": "train", "pairs": 3, "positive": 3, "negative": 0}]}
    ) == ["The train split has no negative pairs."]
