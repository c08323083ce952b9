"""The SFT hyperparameters of a run: the TWIN paper's Table 9, stored with the run and read by the TRL runner.

The paper fine-tunes the base model on teacher (Gemini) responses before, or instead of, GRPO. Table 9 gives:
batch size 256, max prompt and response lengths 2048 (so sequences of up to 4096 tokens), learning rate 1e-6,
AdamW, a cosine schedule with 10% warmup, 2 epochs, gradient clipping "auto" (DeepSpeed's default, 1.0, which
is also TRL's), the vision tower trained, bf16.

The optimizer (AdamW) and the schedule's shape (cosine after a linear warmup) are not fields: the runner always
uses them, so a stored run can't claim another. ``training/backends/trl_runner.py`` turns these values into an
``SFTConfig``. No Django, nothing heavy: the web process stores and shows these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training.backends.json_fields import json_fields, json_object_checked
from training.backends.verl_command import _check_field_types

# Where the SFT targets come from: "teacher", the teacher model's responses (kept only where their final answer is
# right), as in the paper; "label", the bare answer tag built from the pair's label, a baseline that needs no teacher.
SFT_TARGETS = ("teacher", "label")


@dataclass(frozen=True)
class SftHyperparameters:
    """The SFT hyperparameters of a run (``to_json``/``from_json``); the defaults are the paper's Table 9.

    Fields:
        batch_size: sequences per optimizer step, over all devices: ``per_device_batch_size`` x gradient
            accumulation steps x devices. Paper: 256. The runner derives the accumulation steps from it and refuses
            a batch that the devices can't split evenly.
        per_device_batch_size: sequences per forward/backward pass on one device (the micro-batch). Gradients
            accumulate up to ``batch_size``, so it trades memory for speed without changing the optimization.
            Not in the paper; 4 fits a 3B VLM with 4096-token sequences on an 80 GB GPU.
        max_prompt_length: prompt tokens, image tokens included; longer prompts are dropped when the data loads
            (as the GRPO run drops them). Paper: 2048.
        max_response_length: target tokens; the sequence is cut at ``max_prompt_length + max_response_length``.
            Paper: 2048.
        learning_rate: AdamW peak learning rate. Paper: 1e-6.
        warmup_ratio: share of the steps over which the learning rate rises linearly from 0 to its peak, before
            the cosine decay. Paper: 0.1.
        epochs: passes over the training split. Paper: 2.
        grad_clip: gradient clipping max norm. Paper: "auto", DeepSpeed's default of 1.0.
        freeze_vision_tower: whether the vision encoder stays fixed. Paper: False (the whole model is trained).
        bf16: train in bf16 mixed precision (fp32 master weights, bf16 compute) where the device supports it.
            Paper: True. The run's ``dtype`` setting, when not "auto", overrides it.
        max_steps: stop after this many optimizer steps, before the epochs are done; None trains all ``epochs``.
        target: where the targets come from, one of ``SFT_TARGETS``: "teacher" (the paper) needs the run's
            teacher responses file; "label" trains on ``<answer>yes</answer>`` / ``<answer>no</answer>``.
    """

    batch_size: int = 256
    per_device_batch_size: int = 4
    max_prompt_length: int = 2048
    max_response_length: int = 2048
    learning_rate: float = 1e-6
    warmup_ratio: float = 0.1
    epochs: int = 2
    grad_clip: float = 1.0
    freeze_vision_tower: bool = False
    bf16: bool = True
    max_steps: int | None = None
    target: str = "teacher"

    def __post_init__(self) -> None:
        _check_field_types(self)
        for name in (
            "batch_size",
            "per_device_batch_size",
            "max_prompt_length",
            "max_response_length",
            "epochs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(
                f"max_steps must be at least 1 (or None: train all epochs), got {self.max_steps}"
            )
        if self.batch_size % self.per_device_batch_size != 0:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of per_device_batch_size "
                f"({self.per_device_batch_size}): gradients accumulate over whole micro-batches"
            )
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive, got {self.grad_clip}")
        if self.target not in SFT_TARGETS:
            raise ValueError(f"target must be one of {', '.join(SFT_TARGETS)}, got {self.target!r}")

    @property
    def max_length(self) -> int:
        """The longest training sequence: the prompt and the response."""
        return self.max_prompt_length + self.max_response_length

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict, for a model's JSONField."""
        return json_fields(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SftHyperparameters:
        """Hyperparameters from a dict stored by ``to_json``; keys it lacks take the defaults (the paper's).

        Unknown keys are refused, so a misspelled hyperparameter can't silently fall back to its default; the
        types are checked as on construction (an int is accepted for a float, a bool is not a number).
        """
        return cls(**json_object_checked(data, cls, what="SFT hyperparameter"))
