"""A training run's settings beyond the hyperparameters: how the run is carried out and watched.

They are stored as JSON on the run (``TrainingRun.options``), checked here when the run is saved, and read by
the command builders (``training.services.run_commands``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.backends.json_fields import json_fields, json_object_checked
from training.backends.sft_hyperparameters import SftHyperparameters
from training.backends.verl_command import GrpoHyperparameters

BALANCE_POLICIES = ("oversample", "undersample", "off")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunOptions:
    """Fields:
    eval_every: score the held-out split every this many steps (and after the last one); -1: never for verl,
        only after the last step for TRL.
    save_every: write a checkpoint every this many steps (and after the last one).
    eval_limit: held-out pairs scored per validation by the TRL backend (0: all); verl scores all of them.
    validate_before_training: verl: score the base model on the held-out split first (step 0 on the plots).
    balance: how each GRPO batch is balanced between yes and no answers (the paper balances them):
        "oversample" repeats pairs of the rarer answer, "undersample" leaves out pairs of the commoner one,
        "off" trains on the split as it is (SFT always does). Batches need an even size.
    seed: the seed of the balancing and of the TRL trainer.
    device: the TRL backend's device ("auto": a GPU when there is one).
    sft_targets: for SFT, a JSONL file of teacher responses ({"pair_id": ..., "response": ...}) on the GPU
        nodes; only responses whose final answer is right are kept, as in the paper. Empty: the target is the
        bare answer, <answer>yes</answer> or <answer>no</answer>.
    extra_overrides: Hydra overrides appended to the verl command (they win), e.g.
        "trainer.max_actor_ckpt_to_keep=2".
    """

    eval_every: int = 50
    save_every: int = 100
    eval_limit: int = 500
    validate_before_training: bool = True
    balance: str = "oversample"
    seed: int = 1
    device: str = "auto"
    sft_targets: str = ""
    extra_overrides: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("eval_every", "save_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value == 0 or value < -1:
                raise ValueError(f"{name} must be a positive number of steps or -1, got {value!r}")
        if not isinstance(self.eval_limit, int) or self.eval_limit < 0:
            raise ValueError(f"eval_limit must be 0 (all) or a positive number, got {self.eval_limit!r}")
        if self.balance not in BALANCE_POLICIES:
            raise ValueError(f"balance must be one of {', '.join(BALANCE_POLICIES)}, got {self.balance!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not isinstance(self.extra_overrides, list) or not all(
            isinstance(item, str) and "=" in item for item in self.extra_overrides
        ):
            raise ValueError('extra_overrides must be a list of "key=value" strings')

    def to_json(self) -> dict[str, Any]:
        return json_fields(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunOptions:
        return cls(**json_object_checked(data or {}, cls, what="option"))


def default_hyperparameters(method: str) -> dict[str, Any]:
    """The paper's hyperparameters for the method: Table 8 for GRPO, Table 9 for SFT."""
    if method == "sft":
        return SftHyperparameters().to_json()
    return GrpoHyperparameters().to_json()


def hyperparameters_parse(method: str, data: dict[str, Any]) -> GrpoHyperparameters | SftHyperparameters:
    """The run's hyperparameters, checked; missing ones take the paper's values. Raises ValueError."""
    if method == "sft":
        return SftHyperparameters.from_json({**SftHyperparameters().to_json(), **data})
    return GrpoHyperparameters.from_json({**GrpoHyperparameters().to_json(), **data})
