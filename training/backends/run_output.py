"""What a training process prints for the run page: metric lines and the checkpoint, one protocol for every
backend.

A training command runs as a child process (or a Ray job); the worker that launched it reads its output line by
line, keeps the log, and picks out these lines:

- ``TWIN_METRICS {"step": 3, "values": {"reward": 0.4, ...}}``: the metrics of one training step;
- ``TWIN_CHECKPOINT /path/to/folder``: a checkpoint was written there (the last one printed is the run's);
- ``TWIN_SUMMARY {"steps": 4, "seconds": 12.5, ...}``: written once at the end;
- ``Total training steps: 1169``: the run's length, before the first step (verl prints this line itself).

Canonical metric names, the ones the run page plots; a backend maps its own names onto them and may add any
other numeric values (they are stored with the step):

- ``reward``: mean reward of the step's training responses (GRPO) or mean token loss (SFT, under ``loss``);
- ``heldout_accuracy``: share of correct final answers on the held-out (eval) split, on steps that validated;
- ``kl``: KL divergence between the policy and the reference model;
- ``response_length``: mean length of the step's responses, in tokens;
- ``loss``, ``learning_rate``, ``step_seconds``.

verl prints its metrics through its console logger instead (``step:3 - critic/score/mean:0.4 - ...``), and
``verl_console_metrics`` reads those lines, so verl runs unchanged, locally or on a Ray cluster whose logs are
followed with ``ray job logs --follow``.

No Django, nothing heavy: the TRL runner prints with it and the web worker parses with it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

METRICS_PREFIX = "TWIN_METRICS "
CHECKPOINT_PREFIX = "TWIN_CHECKPOINT "
SUMMARY_PREFIX = "TWIN_SUMMARY "
TOTAL_STEPS_PREFIX = "Total training steps: "
_TOTAL_STEPS = re.compile(re.escape(TOTAL_STEPS_PREFIX) + r"(\d+)")

REWARD = "reward"
HELDOUT_ACCURACY = "heldout_accuracy"
KL = "kl"
RESPONSE_LENGTH = "response_length"
LOSS = "loss"
LEARNING_RATE = "learning_rate"
STEP_SECONDS = "step_seconds"

PLOTTED_METRICS = (REWARD, HELDOUT_ACCURACY, KL, RESPONSE_LENGTH)

# verl 0.9.1's metric names (verl/trainer/ppo/metric_utils.py, the actor's losses, the validation's
# "val-core/<data_source>/<metric>/mean@<n>") and the canonical name each stands for.
VERL_METRIC_NAMES = {
    "critic/score/mean": REWARD,
    "actor/kl_loss": KL,
    "response_length/mean": RESPONSE_LENGTH,
    "actor/pg_loss": LOSS,
    "actor/lr": LEARNING_RATE,
    "timing_s/step": STEP_SECONDS,
}
_VERL_VALIDATION_REWARD = re.compile(r"val-core/[^/]+/(?:reward|acc)/mean@\d+")
_VERL_CONSOLE_LINE = re.compile(r"(?:^|\s)step:(\d+) - (.*)$")
# verl's console logger separates "key:value" pairs with " - "; a key holds no spaces or colons, a value is
# pprint's form of a number: 0.25, 1e-06, nan, or, for a numpy scalar under numpy 2, np.float64(0.25).
_VERL_PAIR = re.compile(r"([^\s:]+):(?:[A-Za-z_][\w.]*\()?([-+]?[\w.]+(?:[eE][-+]?\d+)?)\)?")


@dataclass(frozen=True)
class StepMetrics:
    """The metrics of one training step: canonical names (see the module) and any other numeric values."""

    step: int
    values: dict[str, float]


def metrics_line(step: int, values: dict[str, Any]) -> str:
    """The line a backend prints for one step; values that are not finite numbers are left out."""
    clean = {name: float(value) for name, value in values.items() if _is_finite_number(value)}
    return METRICS_PREFIX + json.dumps({"step": int(step), "values": clean}, sort_keys=True)


def checkpoint_line(path: str) -> str:
    return CHECKPOINT_PREFIX + path


def summary_line(summary: dict[str, Any]) -> str:
    return SUMMARY_PREFIX + json.dumps(summary, sort_keys=True)


def parse_metrics_line(line: str) -> StepMetrics | None:
    """The step a ``TWIN_METRICS`` line reports, or None for any other line (or a malformed one)."""
    if not line.startswith(METRICS_PREFIX):
        return None
    try:
        data = json.loads(line[len(METRICS_PREFIX) :])
        step = int(data["step"])
        values = {str(name): float(value) for name, value in dict(data["values"]).items()}
    except (ValueError, TypeError, KeyError):
        return None
    return StepMetrics(
        step=step, values={name: value for name, value in values.items() if math.isfinite(value)}
    )


def parse_checkpoint_line(line: str) -> str | None:
    if not line.startswith(CHECKPOINT_PREFIX):
        return None
    return line[len(CHECKPOINT_PREFIX) :].strip() or None


def parse_summary_line(line: str) -> dict[str, Any] | None:
    if not line.startswith(SUMMARY_PREFIX):
        return None
    try:
        summary = json.loads(line[len(SUMMARY_PREFIX) :])
    except ValueError:
        return None
    return summary if isinstance(summary, dict) else None


def parse_total_steps(line: str) -> int | None:
    """The run's length from a ``Total training steps: N`` line (anywhere in it: Ray prefixes worker lines)."""
    match = _TOTAL_STEPS.search(line)
    return int(match.group(1)) if match else None


def verl_console_metrics(line: str) -> StepMetrics | None:
    """The step a verl console-logger line reports (``step:N - key:value - ...``), with canonical names added.

    Ray prefixes a worker's lines (``(TaskRunner pid=12) step:3 - ...``), so the step may start mid-line. Every
    numeric pair is kept under verl's name; the canonical names are added beside them.
    """
    match = _VERL_CONSOLE_LINE.search(line.rstrip())
    if match is None:
        return None
    values: dict[str, float] = {}
    for pair in match.group(2).split(" - "):
        pair_match = _VERL_PAIR.fullmatch(pair.strip())
        if pair_match is None:
            continue
        try:
            value = float(pair_match.group(2))
        except ValueError:
            continue
        if math.isfinite(value):
            values[pair_match.group(1)] = value
    for verl_name, canonical in VERL_METRIC_NAMES.items():
        if verl_name in values:
            values[canonical] = values[verl_name]
    validation = [value for name, value in values.items() if _VERL_VALIDATION_REWARD.fullmatch(name)]
    if validation:
        # One data source per export ("twin-<name>"); with several, the run page plots their mean.
        values[HELDOUT_ACCURACY] = sum(validation) / len(validation)
    return StepMetrics(step=int(match.group(1)), values=values)


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # numpy and torch scalars
        except (TypeError, ValueError):
            return False
    return math.isfinite(float(value))
