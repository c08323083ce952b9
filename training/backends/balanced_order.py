"""The order of a training split in batches balanced between "yes" and "no" answers, as in the paper.

Shared by verl's balanced dataset (``verl_balanced_dataset.py``, which loads this file by path: verl's
processes can't import the project) and the TRL runner. numpy and the standard library only.
"""

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

YES, NO = "yes", "no"


def balanced_order(labels: Sequence[str], *, batch_size: int, policy: str, seed: int) -> list[int]:
    """Row indices in an order where each block of ``batch_size`` holds ``batch_size / 2`` of each answer.

    labels: each row's answer, "yes" or "no". The class that sets the number of batches (the larger one when
    oversampling, the smaller one when undersampling) is laid out in one random pass, and the last batch is
    topped up from a second pass; the other class fills its half of each batch from as many random passes as
    needed ("oversample") or from part of one ("undersample"). Each batch is then shuffled, so its answers are
    not in two runs. A row of a class smaller than half a batch, or at the seam of two passes, can come twice
    in one batch.
    """
    if policy not in ("oversample", "undersample"):
        raise ValueError(f"policy must be oversample or undersample, got {policy!r}")
    if batch_size < 2 or batch_size % 2:
        raise ValueError(
            f"balanced batches need an even data.train_batch_size (as many yes as no answers), got {batch_size}"
        )
    unknown = Counter(label for label in labels if label not in (YES, NO))
    if unknown:
        raise ValueError(
            f"reward_model.ground_truth must be yes or no to balance the batches; other answers among "
            f"{len(labels)} rows: {dict(unknown)}"
        )
    yes_rows = [index for index, label in enumerate(labels) if label == YES]
    no_rows = [index for index, label in enumerate(labels) if label == NO]
    if not yes_rows or not no_rows:
        raise ValueError(
            f"can't balance the batches: the training rows hold {len(yes_rows)} yes and {len(no_rows)} no "
            f"answers; both are needed (or set data.balance=off)"
        )

    half = batch_size // 2
    sizes = (len(yes_rows), len(no_rows))
    leading = max(sizes) if policy == "oversample" else min(sizes)
    batches = math.ceil(leading / half)
    rng = np.random.default_rng(seed)
    yes_stream = _random_passes(yes_rows, batches * half, rng)
    no_stream = _random_passes(no_rows, batches * half, rng)

    order: list[int] = []
    for batch in range(batches):
        block = yes_stream[batch * half : (batch + 1) * half] + no_stream[batch * half : (batch + 1) * half]
        order.extend(block[position] for position in rng.permutation(batch_size))
    return order


def _random_passes(rows: list[int], count: int, rng: np.random.Generator) -> list[int]:
    """count rows taken from passes over rows, each pass in a new random order; the last pass may be partial."""
    taken: list[int] = []
    while len(taken) < count:
        taken.extend(rows[position] for position in rng.permutation(len(rows)))
    return taken[:count]
