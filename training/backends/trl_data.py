"""The verl export read for TRL: pair rows, their chat prompts and images, and the SFT targets.

The TRL runner trains on the same files verl does (``training/exports/verl.py``): ``train.parquet`` and
``test.parquet``, one row per image pair, with the user prompt ``"<image>\\n<image>\\n" + question``, the two
image paths (relative to the parquet's folder unless absolute), and the label under
``reward_model.ground_truth``. This module turns a row into what TRL's trainers take:

- a conversational prompt, the user turn split at its ``<image>`` placeholders into content parts
  (``{"type": "image"}`` where a placeholder was, text parts between), as verl's ``RLHFDataset`` does, so both
  backends show the model the same prompt;
- the images, opened with PIL and converted to RGB when a row is read (``datasets.Image(mode="RGB")`` decodes
  lazily, so a large export is never all in memory);
- for SFT, the assistant turn: the teacher's response where it answers right, or the bare answer tag.

transformers, datasets and PIL are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.reward import compute_score

if TYPE_CHECKING:
    from datasets import Dataset
    from PIL import Image
    from transformers import ProcessorMixin

IMAGE_PLACEHOLDER = "<image>"
_PLACEHOLDER_SPLIT = re.compile(f"({re.escape(IMAGE_PLACEHOLDER)})")


@dataclass(frozen=True)
class PairRow:
    """One row of a verl export: the pair's prompt text, its images (absolute paths) and its label."""

    pair_id: int
    data_source: str
    prompt_text: str
    image_paths: tuple[str, ...]
    ground_truth: str

    def messages(self) -> list[dict[str, Any]]:
        """The conversational prompt: one user turn, its text split at the ``<image>`` placeholders into
        ``{"type": "image"}`` and ``{"type": "text", "text": ...}`` parts, in order.

        (Stored in a dataset, the image parts gain ``"text": None``: Arrow gives a list of parts one struct type.
        Chat templates and TRL look at ``type`` first, so it makes no difference.)
        """
        parts: list[dict[str, Any]] = []
        for segment in _PLACEHOLDER_SPLIT.split(self.prompt_text):
            if segment == IMAGE_PLACEHOLDER:
                parts.append({"type": "image"})
            elif segment:
                parts.append({"type": "text", "text": segment})
        return [{"role": "user", "content": parts}]


def export_rows(parquet: str | Path) -> list[PairRow]:
    """The rows of a verl export's parquet file, image paths made absolute (relative to the file's folder).

    Raises ValueError for a row that is not a single user turn, or whose placeholders don't match its images.
    """
    import pyarrow.parquet as pq

    parquet = Path(parquet)
    root = parquet.resolve().parent
    rows = []
    for index, record in enumerate(pq.read_table(parquet).to_pylist()):
        prompt = record["prompt"]
        if len(prompt) != 1 or prompt[0]["role"] != "user":
            raise ValueError(f"{parquet} row {index}: the prompt must be one user message, got {prompt!r}")
        text = prompt[0]["content"]
        paths = tuple(str(path if Path(path).is_absolute() else root / path) for path in record["images"])
        if text.count(IMAGE_PLACEHOLDER) != len(paths):
            raise ValueError(
                f"{parquet} row {index}: {text.count(IMAGE_PLACEHOLDER)} {IMAGE_PLACEHOLDER} placeholders for "
                f"{len(paths)} images"
            )
        rows.append(
            PairRow(
                pair_id=int(record["extra_info"]["pair_id"]),
                data_source=str(record["data_source"]),
                prompt_text=text,
                image_paths=paths,
                ground_truth=str(record["reward_model"]["ground_truth"]),
            )
        )
    return rows


def image_open(path: str | Path) -> Image.Image:
    """The image at path, decoded and in RGB (the processors expect three channels)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def prompt_token_count(processor: ProcessorMixin, row: PairRow) -> int:
    """How many tokens the row's prompt takes, image tokens included, as the model will see it.

    The image tokens are computed from the image sizes (only the file headers are read), with the processor's
    own rule (``_get_num_multimodal_tokens``, which vLLM uses too), so checking a large export is quick.
    Processors without that rule process the images.
    """
    from PIL import Image

    text = processor.apply_chat_template(row.messages(), add_generation_prompt=True, tokenize=False)
    if not hasattr(processor, "_get_num_multimodal_tokens"):
        images = [image_open(path) for path in row.image_paths]
        return len(processor(text=[text], images=images, return_tensors="pt")["input_ids"][0])
    text_tokens = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    sizes = []
    for path in row.image_paths:
        with Image.open(path) as image:
            sizes.append((image.height, image.width))
    image_tokens = processor._get_num_multimodal_tokens(image_sizes=sizes).num_image_tokens
    # The template wrote one placeholder token per image; the processor expands each to the image's tokens.
    return text_tokens + sum(count - 1 for count in image_tokens)


def drop_overlong_prompts(
    processor: ProcessorMixin, rows: list[PairRow], max_prompt_length: int
) -> tuple[list[PairRow], int]:
    """The rows whose prompt fits ``max_prompt_length`` tokens, and how many were dropped.

    verl drops such prompts when it loads the data (``data.filter_overlong_prompts``); TRL 1.16 has no prompt
    length setting, so the runner drops them here, and both backends train on the same pairs.
    """
    kept = [row for row in rows if prompt_token_count(processor, row) <= max_prompt_length]
    return kept, len(rows) - len(kept)


def label_target(ground_truth: str) -> str:
    """The "label" SFT target: the answer tag alone, as the reward reads it."""
    return f"<answer>{ground_truth}</answer>"


@dataclass(frozen=True)
class TeacherTargets:
    """The teacher responses kept for SFT, by pair id, and what was left out.

    Fields:
        responses: pair id -> the first teacher response for that pair whose final answer is right.
        kept: pairs of the split with a kept response.
        wrong: pairs whose teacher responses were all wrong (or gave no answer), dropped.
        missing: pairs without any teacher response, dropped.
    """

    responses: dict[int, str]
    kept: int
    wrong: int
    missing: int


def teacher_targets(lines: Iterable[str], rows: list[PairRow]) -> TeacherTargets:
    """The teacher responses to train on: for each pair of rows, the first one that ``compute_score`` marks right.

    lines are JSON Lines of ``{"pair_id": int, "response": str}``; blank lines are skipped. The paper keeps only
    the teacher answers that were correct, so a pair whose responses are all wrong gets no target, as does a
    pair the teacher never answered; the caller drops both.
    """
    by_pair: dict[int, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            pair_id, response = record["pair_id"], record["response"]
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(
                f"teacher responses line {number}: expected {{pair_id, response}}: {error}"
            ) from None
        if isinstance(pair_id, bool) or not isinstance(pair_id, int) or not isinstance(response, str):
            raise ValueError(f"teacher responses line {number}: pair_id must be an int and response a string")
        by_pair.setdefault(pair_id, []).append(response)

    responses: dict[int, str] = {}
    wrong = missing = 0
    for row in rows:
        candidates = by_pair.get(row.pair_id)
        if not candidates:
            missing += 1
            continue
        right = [text for text in candidates if compute_score(row.data_source, text, row.ground_truth) == 1.0]
        if right:
            responses[row.pair_id] = right[0]
        else:
            wrong += 1
    return TeacherTargets(responses=responses, kept=len(responses), wrong=wrong, missing=missing)


def grpo_dataset(rows: list[PairRow]) -> Dataset:
    """The GRPO training set: ``prompt`` (conversational, image parts), ``images`` (decoded on access, RGB), and
    ``ground_truth`` and ``data_source``, which TRL hands to the reward function as keyword arguments."""
    return _with_images(
        [
            {
                "prompt": row.messages(),
                "images": list(row.image_paths),
                "ground_truth": row.ground_truth,
                "data_source": row.data_source,
                "pair_id": row.pair_id,
            }
            for row in rows
        ]
    )


def sft_dataset(rows: list[PairRow], targets: Mapping[int, str]) -> Dataset:
    """The SFT training set in TRL's conversational prompt-completion form: ``prompt`` (the user turn),
    ``completion`` (the assistant turn: the pair's target) and ``images``. Rows without a target are left out.

    Prompt-completion rather than a single ``messages`` list: for vision data TRL 1.16 can restrict the loss to
    the completion (``completion_only_loss``), while its assistant-only loss needs transformers >= 5.18 there.
    The completion is what the chat template adds after the prompt's ``<|im_start|>assistant\n``: the target
    text, ``<|im_end|>`` (so the model learns to stop) and the newline after it.
    """
    return _with_images(
        [
            {
                "prompt": row.messages(),
                "completion": [{"role": "assistant", "content": targets[row.pair_id]}],
                "images": list(row.image_paths),
            }
            for row in rows
            if row.pair_id in targets
        ]
    )


def _with_images(records: list[dict[str, Any]]) -> Dataset:
    from datasets import Dataset, Image, List

    if not records:
        raise ValueError("no training examples left: every pair of the training split was dropped")
    dataset = Dataset.from_list(records)
    return dataset.cast_column("images", List(Image(mode="RGB")))
