"""A snapshot's statistics, counted in one pass while its pairs are written.

The result is plain JSON (kept on the snapshot, shown on its page, served by the API): totals, and counts by
label within each source, split, category and supercategory, plus the distinct images and instances shown.
"""

from collections import Counter, defaultdict
from typing import Any

from annotation.dataset.pairs import Pair, PairSource

LABELS = ("positive", "negative")


class SnapshotStatistics:
    def __init__(self, *, category_of: dict[int, tuple[str, str]]) -> None:
        self._category_of = category_of  # category id -> (name, supercategory)
        self._by: dict[str, Counter] = defaultdict(Counter)  # "source:hard_negative" -> {"positive": n, ...}
        self._real_images: set[int] = set()
        self._generated_images: set[int] = set()
        self._instances: set[int] = set()
        self._instances_by_split: dict[str, set[int]] = defaultdict(set)

    def add(self, pair: Pair, *, category_id: int) -> None:
        label = "positive" if pair.same else "negative"
        name, supercategory = self._category_of[category_id]
        for key in (
            "all",
            f"source:{pair.source}",
            f"split:{pair.split}",
            f"category:{name}",
            f"supercategory:{supercategory}",
        ):
            self._by[key][label] += 1
        self._real_images.add(pair.image_a_id)
        if pair.source == PairSource.SYNTHETIC:
            self._generated_images.add(pair.image_b_id)
        else:
            self._real_images.add(pair.image_b_id)
        for instance_id in (pair.instance_a_id, pair.instance_b_id):
            self._instances.add(instance_id)
            self._instances_by_split[pair.split].add(instance_id)

    def result(self, *, dropped: dict[str, int] | None = None) -> dict[str, Any]:
        def rows(prefix: str) -> list[dict[str, Any]]:
            found = sorted(key for key in self._by if key.startswith(prefix))
            return [self._row(key.removeprefix(prefix), self._by[key]) for key in found]

        totals = self._by["all"]
        return {
            "pairs": sum(totals.values()),
            "positive": totals["positive"],
            "negative": totals["negative"],
            "real_images": len(self._real_images),
            "generated_images": len(self._generated_images),
            "instances": len(self._instances),
            "instances_by_split": {
                split: len(ids) for split, ids in sorted(self._instances_by_split.items())
            },
            "by_source": rows("source:"),
            "by_split": rows("split:"),
            "by_supercategory": rows("supercategory:"),
            "by_category": rows("category:"),
            "dropped": dict(dropped or {}),
        }

    @staticmethod
    def _row(name: str, counts: Counter) -> dict[str, Any]:
        return {"name": name, "pairs": sum(counts.values()), **{label: counts[label] for label in LABELS}}


def statistics_warnings(statistics: dict[str, Any]) -> list[str]:
    """What a researcher should know before training or evaluating on the snapshot: a split without one of the
    answers, and hard negatives lost because their two instances fell in different splits."""
    warnings = []
    for row in statistics.get("by_split", []):
        for label in LABELS:
            if row["pairs"] and not row[label]:
                warnings.append(f"The {row['name']} split has no {label} pairs.")
    across = statistics.get("dropped", {}).get("hard_negative_pairs_across_splits", 0)
    if across:
        warnings.append(
            f"{across:,} approved hard-negative instance pairs were left out because their two instances are in "
            "different splits (an eval instance must never be seen in training). A different split seed or "
            "eval fraction changes which."
        )
    return warnings
