"""The GRPO reward (paper section 4, appendix C): R(y, y_hat) = 1 when the model's final answer equals the label.

Only the answer counts, never the explanation before it: the *last* ``<answer>...</answer>`` span of the
response is read (a model that changes its mind mid-response is judged on what it ends with), normalized
(case, surrounding whitespace and punctuation, inner runs of whitespace) and compared with the label. A response
without the tag earns 0. The label is normalized the same way, so "Yes" and "yes." both match "yes".

verl imports this file on its own through ``reward.custom_reward_function.path`` and ``.name``: it must not
import Django or anything of the project. ``compute_score`` is verl's per-sample signature;
``compute_score_batched`` its batch form (``reward_manager=batch``).
"""

import re
import string
from collections.abc import Iterable, Sequence
from typing import Any

ANSWER_SPAN = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_PUNCTUATION = string.punctuation + "“”‘’«»。，！？"
_WHITESPACE_RUN = re.compile(r"\s+")


def final_answer(response: str) -> str | None:
    """The normalized content of the last ``<answer>`` span, or None when the response has none."""
    spans = ANSWER_SPAN.findall(response or "")
    if not spans:
        return None
    return answer_normalize(spans[-1])


def answer_normalize(text: str) -> str:
    """Lower case, punctuation and surrounding whitespace removed, inner whitespace runs made one space."""
    cleaned = _WHITESPACE_RUN.sub(" ", text.lower())
    previous = None
    while cleaned != previous:  # " yes . " needs whitespace, then punctuation, then whitespace off again
        previous = cleaned
        cleaned = cleaned.strip().strip(_PUNCTUATION)
    return cleaned


def compute_score(
    data_source: str | None,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    **reward_kwargs: Any,
) -> float:
    """1.0 when the response's final answer equals the label, else 0.0 (also when it gives no answer).

    ``reward_kwargs`` takes what verl's reward managers may pass besides (``reward.reward_kwargs``, a reward
    router's address); this rule needs none of it."""
    predicted = final_answer(solution_str)
    if predicted is None or not predicted:
        return 0.0
    return 1.0 if predicted == answer_normalize(str(ground_truth)) else 0.0


def compute_score_batched(
    data_sources: Sequence[str | None],
    solution_strs: Sequence[str],
    ground_truths: Sequence[str],
    extra_infos: Iterable[dict[str, Any] | None] | None = None,
    **reward_kwargs: Any,
) -> list[float]:
    """``compute_score`` for a batch, in order (verl's batch reward manager passes numpy arrays)."""
    if len(solution_strs) != len(ground_truths) or len(data_sources) != len(solution_strs):
        raise ValueError("data_sources, solution_strs and ground_truths must have the same length")
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    return [
        compute_score(source, solution, truth, info)
        for source, solution, truth, info in zip(
            data_sources, solution_strs, ground_truths, infos, strict=True
        )
    ]
