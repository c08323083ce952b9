"""The TRL runner's trainer callbacks: the metrics protocol on stdout, and the held-out accuracy.

``ProtocolPrinter`` turns what TRL logs each step into one ``TWIN_METRICS`` line (``run_output``), its own
names kept and the canonical ones added, and prints a ``TWIN_CHECKPOINT`` line for each checkpoint the trainer
writes. ``HeldoutAccuracy`` measures the share of right final answers on held-out pairs, with greedy
generation, on the evaluation steps; the printer adds it to that step's line.

The printer is added to the trainer before the evaluator, so its ``on_step_end`` (which stops the step's clock)
runs first and the step time leaves the evaluation out. Only the main process prints.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from training.backends.run_output import (
    HELDOUT_ACCURACY,
    KL,
    LEARNING_RATE,
    LOSS,
    RESPONSE_LENGTH,
    REWARD,
    STEP_SECONDS,
    TOTAL_STEPS_PREFIX,
    checkpoint_line,
    metrics_line,
)
from training.backends.trl_data import PairRow, image_open
from training.backends.trl_runner import emit
from training.reward import compute_score

if TYPE_CHECKING:
    from transformers import PreTrainedModel, ProcessorMixin

# TRL 1.16's log names (GRPOTrainer._metrics, Trainer's loss and learning rate) and the canonical name of each.
# GRPO's "reward" is the mean over the step's completions of the weighted reward sum (one function here); "kl"
# the mean per-token k3 estimate of KL(policy || reference), logged only when beta > 0; "completions/mean_length"
# the mean completion length in tokens. The learning rate is the one the step used.
GRPO_METRIC_NAMES = {
    "reward": REWARD,
    "kl": KL,
    "completions/mean_length": RESPONSE_LENGTH,
    "loss": LOSS,
    "learning_rate": LEARNING_RATE,
}
SFT_METRIC_NAMES = {"loss": LOSS, "learning_rate": LEARNING_RATE}

# A key of the log that Trainer writes once, after the last step: the run's totals, not a step's metrics.
_TRAIN_SUMMARY_KEY = "train_runtime"


def protocol_values(logs: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A step's values for the metrics line: every value TRL logged under its own name, plus the canonical
    names (``names``: TRL's name -> canonical name) for those it has."""
    values = dict(logs)
    for trl_name, canonical in names.items():
        if trl_name in logs:
            values[canonical] = logs[trl_name]
    return values


class ProtocolPrinter(TrainerCallback):
    """Prints the run's ``TWIN_METRICS`` and ``TWIN_CHECKPOINT`` lines as the trainer goes (main process only).

    It times each optimizer step (``step_seconds``: from the step's first micro-batch to the optimizer step,
    generation included for GRPO) and keeps the times for the summary.
    """

    def __init__(self, metric_names: Mapping[str, str], heldout: HeldoutAccuracy | None = None) -> None:
        self.metric_names = dict(metric_names)
        self.heldout = heldout
        self.step_seconds: dict[int, float] = {}
        self._step_started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        # Trainer has worked out the run's length (max_steps, else the epochs): the run page's progress bar.
        if state.is_world_process_zero and state.max_steps:
            emit(f"{TOTAL_STEPS_PREFIX}{state.max_steps}")

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_started is not None:
            self.step_seconds[state.global_step] = time.perf_counter() - self._step_started
            self._step_started = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if _TRAIN_SUMMARY_KEY in logs:
            return  # the run's totals, logged after the last step: the runner prints its own summary
        values = protocol_values(logs, self.metric_names)
        step = state.global_step
        if step in self.step_seconds:
            values[STEP_SECONDS] = self.step_seconds[step]
        if self.heldout is not None and self.heldout.last_step == step:
            values[HELDOUT_ACCURACY] = self.heldout.last_accuracy
        if state.is_world_process_zero:
            emit(metrics_line(step, values))

    def on_save(self, args, state, control, **kwargs):
        # Trainer has just written output_dir/checkpoint-<step> (model, processor, optimizer and trainer state).
        if state.is_world_process_zero:
            emit(checkpoint_line(str(Path(args.output_dir) / f"checkpoint-{state.global_step}")))

    def median_step_seconds(self) -> float | None:
        return statistics.median(self.step_seconds.values()) if self.step_seconds else None


class HeldoutAccuracy(TrainerCallback):
    """Measures held-out accuracy every ``every`` optimizer steps and after the last one (``every`` 0: only
    after the last one): greedy responses to ``rows``, scored with the GRPO reward (1 when the final answer
    is the label).

    Under several processes each measures its share of the rows and the counts are summed, so all agree.
    """

    def __init__(
        self,
        rows: list[PairRow],
        processor: ProcessorMixin,
        *,
        every: int,
        max_new_tokens: int,
        batch_size: int,
    ) -> None:
        self.rows = rows
        self.processor = processor
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.last_step: int | None = None
        self.last_accuracy: float | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if (self.every and step % self.every == 0) or step >= state.max_steps:
            self.measure(model, step)

    def measure(self, model: PreTrainedModel, step: int) -> float:
        """Runs the evaluation on model, remembers it as the step's, and returns the accuracy."""
        self.last_accuracy = heldout_accuracy(
            model, self.processor, self.rows, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size
        )
        self.last_step = step
        return self.last_accuracy


def heldout_accuracy(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    rows: list[PairRow],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> float:
    """The share of rows whose greedy response ends with the right answer (``compute_score`` 1.0).

    Under several processes each answers its share of the rows and the counts are summed over all of them.
    """
    import torch
    import torch.distributed as dist

    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    shard = rows[rank::world]
    responses = greedy_responses(
        model, processor, shard, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    correct = sum(
        compute_score(row.data_source, response, row.ground_truth) == 1.0
        for row, response in zip(shard, responses, strict=True)
    )
    total = len(shard)
    if world > 1:
        counts = torch.tensor([correct, total], dtype=torch.float64, device=model.device)
        dist.all_reduce(counts)
        correct, total = int(counts[0].item()), int(counts[1].item())
    return correct / total if total else 0.0


def greedy_responses(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    rows: list[PairRow],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """The model's greedy response to each row's prompt, special tokens left out.

    Generated in batches of ``batch_size`` prompts (left-padded, without gradients, with the KV cache even when
    the trainer turned it off for gradient checkpointing), at most ``max_new_tokens`` each, until the end of the
    turn. The model is put back in training mode afterwards if it was in it.
    """
    import torch
    from transformers import GenerationConfig

    tokenizer = processor.tokenizer
    eos = model.generation_config.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id not in eos_ids:
        eos_ids.append(tokenizer.eos_token_id)
    generation = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        use_cache=True,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )

    was_training = model.training
    model.eval()
    responses: list[str] = []
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                texts = processor.apply_chat_template(
                    [row.messages() for row in batch], add_generation_prompt=True, tokenize=False
                )
                images = [image_open(path) for row in batch for path in row.image_paths]
                inputs = processor(
                    text=texts, images=images, padding=True, padding_side="left", return_tensors="pt"
                ).to(model.device)
                output = model.generate(**inputs, generation_config=generation)
                responses += processor.batch_decode(
                    output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
                )
    finally:
        if was_training:
            model.train()
    return responses
