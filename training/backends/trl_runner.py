"""GRPO or SFT of a vision-language model on one machine, with TRL: ``python -m training.backends.trl_runner
--config run.json``.

The single-machine counterpart of the verl command (``verl_command.py``): the same export, the same reward,
the paper's hyperparameters (``GrpoHyperparameters``, Table 8; ``SftHyperparameters``, Table 9), trained by
TRL 1.16's ``GRPOTrainer`` or ``SFTTrainer`` with transformers' ``generate`` for the rollouts (no vLLM, no Ray).
It prints the metrics protocol of ``run_output`` on stdout, one line per step, flushed:

- ``TWIN_METRICS``: TRL's own values for the step under their names, plus the canonical names (``reward``,
  ``kl``, ``response_length``, ``loss``, ``learning_rate``, ``step_seconds``; ``heldout_accuracy`` on evaluation
  steps);
- ``TWIN_CHECKPOINT``: each checkpoint (``output_dir/checkpoint-<step>``: model, processor, optimizer state), then
  the final model (``output_dir/final``: model and processor, loadable with ``from_pretrained``);
- ``TWIN_SUMMARY``: once at the end.

It exits 0 on success; on an error it prints the error, the traceback on stderr, and exits 1. SIGTERM ends it
at once (Python's default; nothing catches it): the checkpoints written so far stay, and ``resume`` continues
from the latest.

One process trains on one device. For several GPUs, launch it with ``accelerate launch`` or ``torchrun`` (DDP,
one process per GPU; the batch layout divides by ``WORLD_SIZE``); started plainly on a machine with several
GPUs, TRL refuses to run (``nn.DataParallel``), so make one visible with ``CUDA_VISIBLE_DEVICES``.

The config file is ``TrlRunConfig.to_json()``. This module imports nothing heavy at the top, so the web process
can build and check a config; torch, transformers and TRL are imported when the run starts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.backends.json_fields import json_fields, json_object_checked
from training.backends.run_output import HELDOUT_ACCURACY, checkpoint_line, metrics_line, summary_line
from training.backends.sft_hyperparameters import SftHyperparameters
from training.backends.verl_command import GrpoHyperparameters, _check_field_types

METHODS = ("grpo", "sft")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "bf16", "fp32")
BALANCE_POLICIES = ("oversample", "undersample", "off")

# The final model's folder under output_dir, next to the trainer's checkpoint-<step> folders.
FINAL_DIR = "final"


@dataclass(frozen=True)
class TrlRunConfig:
    """One TRL run, as the JSON file given to ``--config`` holds it (``to_json``/``from_json``).

    Fields:
        method: "grpo" (TRL's GRPOTrainer) or "sft" (TRL's SFTTrainer).
        model: hub id or local folder of the model to train, e.g. ``Qwen/Qwen2.5-VL-3B-Instruct``.
        train_file, val_file: the verl export's ``train.parquet`` and ``test.parquet``; image paths in them are
            relative to the file's folder unless absolute.
        output_dir: where the checkpoints (``checkpoint-<step>``) and the final model (``final``) go.
        hyperparameters: ``GrpoHyperparameters`` for grpo, ``SftHyperparameters`` for sft; in JSON, the dict of
            their ``to_json`` (keys left out take the paper's values).
        processor: folder or hub id of the processor, when it is not the model's.
        max_steps: stop after this many optimizer steps, whatever the epochs say; overrides the SFT
            hyperparameters' own ``max_steps``. None: train the epochs.
        eval_every: measure held-out accuracy every this many optimizer steps, and after the last one; 0: only
            after the last one.
        eval_limit: held-out pairs per measurement, drawn once (seeded) from ``val_file`` so every measurement
            scores the same pairs; 0: all of them.
        eval_batch_size: prompts per ``generate`` call when measuring held-out accuracy.
        seed: seeds the data order, the rollouts' sampling and the held-out draw (``transformers.set_seed``).
        device: "cuda", "cpu", or "auto" (CUDA when there is a GPU).
        dtype: "bf16" (bf16 autocast over fp32 weights, like verl's FSDP mixed precision), "fp32", or "auto":
            bf16 on a GPU that supports it (for SFT, unless its ``bf16`` hyperparameter is False), fp32 on the CPU
            (measured faster than CPU bf16 autocast there; see ``precision_resolve``).
        save_steps: write a checkpoint every this many optimizer steps; 0: only the final model.
        sft_targets: for SFT with target "teacher", a JSON Lines file of ``{"pair_id": int, "response": str}``,
            the teacher's responses; only right ones are trained on. Must be None otherwise.
        resume: continue from the latest ``checkpoint-<step>`` in ``output_dir`` (model, optimizer, scheduler,
            data position); without one, start afresh.
        generation_batch_prompts: GRPO only: prompts whose ``group_size`` responses are generated by one
            ``generate`` call. None: the whole step's ``train_batch_size`` at once, TRL's default; smaller bounds
            the KV cache (the paper's 480 x 5 responses of up to 4096 tokens don't fit one GPU at once). Must divide
            ``train_batch_size``, and is refused with ``ppo_mini_batch_size`` (several updates per batch need the
            whole batch generated first). The optimization is the same either way: every response of a step is
            generated by the policy that the step updates.
        gradient_checkpointing: recompute activations in the backward pass (TRL's default, needed for a 3B model
            with 4096-token sequences on one GPU); False is faster where memory allows.
        balance: GRPO only: "oversample" or "undersample" lays the training split out in batches of
            ``train_batch_size`` pairs with as many "yes" as "no" answers (``balanced_order``, as verl's balanced
            dataset does; the order is drawn once from ``seed`` and TRL's sampler keeps it), "off" lets TRL shuffle
            the split as it is. SFT trains on the split as it is.
    """

    method: str
    model: str
    train_file: str
    val_file: str
    output_dir: str
    hyperparameters: GrpoHyperparameters | SftHyperparameters
    processor: str | None = None
    max_steps: int | None = None
    eval_every: int = 50
    eval_limit: int = 200
    eval_batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    save_steps: int = 100
    sft_targets: str | None = None
    resume: bool = False
    generation_batch_prompts: int | None = None
    gradient_checkpointing: bool = True
    balance: str = "oversample"

    def __post_init__(self) -> None:
        _check_field_types(self)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        expected = GrpoHyperparameters if self.method == "grpo" else SftHyperparameters
        if not isinstance(self.hyperparameters, expected):
            raise ValueError(f"method {self.method!r} takes {expected.__name__}")
        for name in ("model", "train_file", "val_file", "output_dir"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.balance not in BALANCE_POLICIES:
            raise ValueError(f"balance must be one of {', '.join(BALANCE_POLICIES)}, got {self.balance!r}")
        for name in ("eval_every", "eval_limit", "save_steps", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("max_steps", "eval_batch_size", "generation_batch_prompts"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.method == "sft":
            if self.hyperparameters.target == "teacher" and not self.sft_targets:
                raise ValueError("SFT with target 'teacher' needs sft_targets, the teacher responses file")
            if self.hyperparameters.target == "label" and self.sft_targets:
                raise ValueError("SFT with target 'label' trains on the labels; sft_targets must not be set")
            if self.generation_batch_prompts is not None:
                raise ValueError("generation_batch_prompts is a GRPO setting; SFT generates nothing")
        elif self.sft_targets:
            raise ValueError("sft_targets is an SFT setting; GRPO is rewarded on the labels")

    @property
    def effective_max_steps(self) -> int | None:
        """The step limit of the run: ``max_steps``, else the hyperparameters' own, else None (epochs)."""
        if self.max_steps is not None:
            return self.max_steps
        return self.hyperparameters.max_steps

    @property
    def balances_batches(self) -> bool:
        return self.method == "grpo" and self.balance != "off"

    def to_json(self) -> dict[str, Any]:
        """The config as a JSON-ready dict, the hyperparameters as their own ``to_json``."""
        data = json_fields(self)
        data["hyperparameters"] = self.hyperparameters.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrlRunConfig:
        """A config from a dict written by ``to_json``; the hyperparameters are read as the method's.

        Unknown keys are refused (a misspelled setting must not fall back to its default), and the required ones
        (method, model, train_file, val_file, output_dir) must be there.
        """
        data = json_object_checked(data, cls, what="run config key")
        missing = [
            name for name in ("method", "model", "train_file", "val_file", "output_dir") if name not in data
        ]
        if missing:
            raise ValueError(f"the run config lacks {', '.join(missing)}")
        method = data["method"]
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        hyperparameters_class = GrpoHyperparameters if method == "grpo" else SftHyperparameters
        hyperparameters = hyperparameters_class.from_json(data.get("hyperparameters", {}))
        return cls(**{**data, "hyperparameters": hyperparameters})


@dataclass(frozen=True)
class GrpoBatchLayout:
    """How a GRPO step's responses are laid out on TRL's batches (TRL counts responses, not prompts).

    With P = ``train_batch_size`` prompts, G = ``group_size``, M = the mini-batch in prompts (P unless
    ``ppo_mini_batch_size``), m = ``micro_batch_size_per_gpu`` and D devices:

    - ``per_device_train_batch_size`` = m: responses per forward/backward pass on one device;
    - ``gradient_accumulation_steps`` = M*G / (m*D): one optimizer step sees M*G responses, M whole groups;
    - ``generation_batch_size`` = Q*G, Q = ``generation_batch_prompts`` or P: responses generated in one round
      (over all devices); TRL derives ``steps_per_generation`` = Q*G / (m*D) micro-batches from it;
    - ``updates_per_rollout`` = P / M: optimizer steps per batch of P prompts (verl's mini-batches). With more
      than one, TRL generates the batch once, computes the old log-probabilities, and the later updates are
      off-policy, clipped, as in verl.
    """

    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    generation_batch_size: int
    updates_per_rollout: int


def grpo_batch_layout(
    hp: GrpoHyperparameters, *, devices: int = 1, generation_batch_prompts: int | None = None
) -> GrpoBatchLayout:
    """The TRL batch sizes that train ``hp``'s batches on devices; ValueError when they can't be laid out."""
    micro = hp.micro_batch_size_per_gpu
    per_pass = micro * devices
    step_responses = hp.mini_batch_size * hp.group_size
    if step_responses % per_pass:
        raise ValueError(
            f"an optimizer step's {step_responses} responses ({hp.mini_batch_size} prompts x group_size "
            f"{hp.group_size}) can't be split into micro-batches of micro_batch_size_per_gpu {micro} on {devices} "
            f"device(s): make the prompts x group_size a multiple of {per_pass}"
        )
    prompts = hp.train_batch_size if generation_batch_prompts is None else generation_batch_prompts
    if prompts != hp.train_batch_size:
        if hp.mini_batch_size != hp.train_batch_size:
            raise ValueError(
                "generation_batch_prompts can't be used with ppo_mini_batch_size: the mini-batch updates reuse "
                "one batch of responses, which must be generated at once"
            )
        if hp.train_batch_size % prompts:
            raise ValueError(
                f"generation_batch_prompts ({prompts}) must divide train_batch_size ({hp.train_batch_size})"
            )
    generation_responses = prompts * hp.group_size
    if generation_responses % per_pass:
        raise ValueError(
            f"a generation round's {generation_responses} responses ({prompts} prompts x group_size "
            f"{hp.group_size}) must be a multiple of micro_batch_size_per_gpu x devices ({per_pass})"
        )
    return GrpoBatchLayout(
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=step_responses // per_pass,
        generation_batch_size=generation_responses,
        updates_per_rollout=hp.train_batch_size // hp.mini_batch_size,
    )


def sft_gradient_accumulation_steps(hp: SftHyperparameters, *, devices: int = 1) -> int:
    """The accumulation steps that make ``hp.batch_size`` sequences per optimizer step on devices."""
    per_pass = hp.per_device_batch_size * devices
    if hp.batch_size % per_pass:
        raise ValueError(
            f"batch_size ({hp.batch_size}) must be a multiple of per_device_batch_size x devices "
            f"({hp.per_device_batch_size} x {devices})"
        )
    return hp.batch_size // per_pass


def _common_training_arguments(config: TrlRunConfig, *, use_cpu: bool, bf16: bool) -> dict[str, Any]:
    """The TrainingArguments both methods share: output, steps, logging, checkpoints, precision."""
    max_steps = config.effective_max_steps
    return {
        "output_dir": config.output_dir,
        "seed": config.seed,
        "max_steps": -1 if max_steps is None else max_steps,
        "num_train_epochs": config.hyperparameters.epochs,
        "learning_rate": config.hyperparameters.learning_rate,
        "max_grad_norm": config.hyperparameters.grad_clip,
        "optim": "adamw_torch",
        "logging_strategy": "steps",
        "logging_steps": 1,
        "save_strategy": "steps" if config.save_steps else "no",
        "save_steps": config.save_steps or 500,
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": use_cpu,
        "bf16": bf16,
        "fp16": False,
        "gradient_checkpointing": config.gradient_checkpointing,
    }


def grpo_config_kwargs(
    config: TrlRunConfig, *, devices: int = 1, use_cpu: bool = False, bf16: bool = True
) -> dict[str, Any]:
    """The ``GRPOConfig`` arguments of a GRPO run: the paper's hyperparameters in TRL 1.16's names.

    - batches: ``grpo_batch_layout``;
    - the policy loss of the paper's Eq. 2: ``loss_type="grpo"`` (each response's token mean, averaged over the
      responses), clipped ratio with ``epsilon`` = ``epsilon_high`` = ``clip_ratio``, one optimization pass per
      batch (``num_iterations=1``, verl's single PPO epoch); the KL term ``beta * KL(policy || reference)`` with
      TRL's k3 estimator (verl's ``low_var_kl``, which verl also clamps to [-10, 10]), not reweighted by the
      importance ratio (``use_bias_correction_kl=False``, TRL's default is True), as in Eq. 2;
    - the advantage: reward minus the group mean, divided by the group's standard deviation only with
      ``normalize_advantage_by_std`` (``scale_rewards`` "group", else "none");
    - sampling: ``temperature``, ``top_p``, no top-k; up to ``max_response_length`` new tokens; truncated
      responses stay in the loss (verl's default);
    - optimizer: AdamW at a constant ``learning_rate`` without warmup, ``weight_decay``, clipping at
      ``grad_clip``.

    Not mapped: ``max_prompt_length`` (TRL 1.16 has none; the runner drops longer prompts when it loads the
    data, as verl does), ``log_prob_micro_batch_size_per_gpu`` (TRL computes log-probabilities in micro-batches
    of ``per_device_train_batch_size``), and the vLLM settings (``rollout_gpu_memory_utilization``,
    ``tensor_model_parallel_size``): TRL generates with transformers here.
    """
    hp = config.hyperparameters
    assert isinstance(hp, GrpoHyperparameters)
    layout = grpo_batch_layout(hp, devices=devices, generation_batch_prompts=config.generation_batch_prompts)
    return {
        **_common_training_arguments(config, use_cpu=use_cpu, bf16=bf16),
        "per_device_train_batch_size": layout.per_device_train_batch_size,
        "gradient_accumulation_steps": layout.gradient_accumulation_steps,
        "generation_batch_size": layout.generation_batch_size,
        "num_generations": hp.group_size,
        "max_completion_length": hp.max_response_length,
        "temperature": hp.temperature,
        "top_p": hp.top_p,
        "top_k": 0,
        "beta": hp.kl_coef,
        "epsilon": hp.clip_ratio,
        "epsilon_high": hp.clip_ratio,
        "num_iterations": 1,
        "loss_type": "grpo",
        "importance_sampling_level": "token",
        "scale_rewards": "group" if hp.normalize_advantage_by_std else "none",
        "use_bias_correction_kl": False,
        "mask_truncated_completions": False,
        "weight_decay": hp.weight_decay,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        # Balanced batches come in their order (TRL's sampler then takes them in turn), else TRL shuffles.
        "shuffle_dataset": not config.balances_batches,
        # No completion tables: they would also gather every step's images from all processes.
        "log_completions": False,
        "log_multimodal": False,
    }


def sft_config_kwargs(
    config: TrlRunConfig, *, devices: int = 1, use_cpu: bool = False, bf16: bool = True
) -> dict[str, Any]:
    """The ``SFTConfig`` arguments of an SFT run: Table 9 in TRL 1.16's names.

    ``per_device_batch_size`` sequences per pass, accumulated to ``batch_size`` per optimizer step
    (``sft_gradient_accumulation_steps``); sequences cut at ``max_prompt_length + max_response_length`` tokens;
    the loss on the completion (the assistant turn) only; AdamW at ``learning_rate`` with a linear warmup over
    ``warmup_ratio`` of the steps then a cosine decay; no weight decay (Table 9 gives none; TRL's default);
    clipping at ``grad_clip``; the training split shuffled each epoch (Trainer's sampler).
    """
    hp = config.hyperparameters
    assert isinstance(hp, SftHyperparameters)
    return {
        **_common_training_arguments(config, use_cpu=use_cpu, bf16=bf16),
        "per_device_train_batch_size": hp.per_device_batch_size,
        "gradient_accumulation_steps": sft_gradient_accumulation_steps(hp, devices=devices),
        "max_length": hp.max_length,
        "completion_only_loss": True,
        "assistant_only_loss": False,
        "packing": False,
        "lr_scheduler_type": "cosine",
        # A float below 1 is a share of the training steps (transformers 5 folded warmup_ratio into it).
        "warmup_steps": hp.warmup_ratio,
        "weight_decay": 0.0,
    }


def precision_resolve(config: TrlRunConfig, *, cuda: bool, cuda_bf16: bool) -> bool:
    """Whether the run trains in bf16 (autocast over fp32 weights) rather than fp32.

    "auto" means bf16 on a GPU that supports it (unless SFT's ``bf16`` hyperparameter says no) and fp32 on the
    CPU: on the CPU the tiny test model trained slower under bf16 autocast than in fp32 (the casts cost more
    than the arithmetic saves without AMX), so the CPU gets fp32.
    """
    if config.dtype == "bf16":
        if cuda and not cuda_bf16:
            raise ValueError("dtype bf16 was asked for, but this GPU does not support bf16")
        return True
    if config.dtype == "fp32":
        return False
    wanted = not isinstance(config.hyperparameters, SftHyperparameters) or config.hyperparameters.bf16
    return cuda and cuda_bf16 and wanted


def _world_size() -> int:
    """Processes training together: 1, or what torchrun/accelerate launch set (DDP, one GPU each)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _check_files(config: TrlRunConfig) -> None:
    for name in ("train_file", "val_file", "sft_targets"):
        path = getattr(config, name)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name} not found: {path}")


def run(config: TrlRunConfig) -> dict[str, Any]:
    """Trains as config says, printing the protocol lines; returns the summary (also printed)."""
    _check_files(config)

    import datasets
    import torch
    import transformers
    from transformers import AutoModelForImageTextToText, AutoProcessor, PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    from training.backends.trl_callbacks import (
        GRPO_METRIC_NAMES,
        SFT_METRIC_NAMES,
        HeldoutAccuracy,
        ProtocolPrinter,
    )

    # The log is read line by line: no progress bars (loading weights, casting the dataset, saving shards).
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()

    hp = config.hyperparameters
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but torch sees no GPU")
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    bf16 = precision_resolve(config, cuda=cuda, cuda_bf16=cuda and torch.cuda.is_bf16_supported())
    devices = _world_size()
    main_process = int(os.environ.get("RANK", "0")) == 0
    _say(
        main_process,
        f"{config.method} of {config.model} on {'cuda' if cuda else 'cpu'} x{devices}, {'bf16' if bf16 else 'fp32'}",
    )

    transformers.set_seed(config.seed)
    processor = AutoProcessor.from_pretrained(config.processor or config.model)
    dataset, val_rows = _training_data(config, processor, main_process)
    # fp32 weights: bf16 runs autocast over them, as verl's FSDP mixed precision keeps fp32 master weights (updates
    # of a 1e-6 learning rate would be lost to bf16 rounding in the weights themselves).
    model = AutoModelForImageTextToText.from_pretrained(config.model, dtype=torch.float32)
    if isinstance(hp, SftHyperparameters) and hp.freeze_vision_tower:
        _vision_tower_freeze(model)

    heldout = HeldoutAccuracy(
        val_rows,
        processor,
        every=config.eval_every,
        max_new_tokens=hp.max_response_length,
        batch_size=config.eval_batch_size,
    )
    common = {"model": model, "train_dataset": dataset, "processing_class": processor}
    if config.method == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        printer = ProtocolPrinter(GRPO_METRIC_NAMES, heldout)
        args = GRPOConfig(**grpo_config_kwargs(config, devices=devices, use_cpu=not cuda, bf16=bf16))
        trainer = _resumable(GRPOTrainer)(
            reward_funcs=answer_reward, args=args, callbacks=[printer, heldout], **common
        )
    else:
        from trl import SFTConfig, SFTTrainer

        printer = ProtocolPrinter(SFT_METRIC_NAMES, heldout)
        args = SFTConfig(**sft_config_kwargs(config, devices=devices, use_cpu=not cuda, bf16=bf16))
        trainer = _resumable(SFTTrainer)(args=args, callbacks=[printer, heldout], **common)
    # With tqdm off, Trainer prints every log dict to stdout; the protocol lines say it already.
    trainer.remove_callback(PrinterCallback)

    checkpoint = None
    if config.resume:
        checkpoint = get_last_checkpoint(config.output_dir) if Path(config.output_dir).is_dir() else None
        _say(
            main_process,
            f"resuming from {checkpoint}" if checkpoint else "no checkpoint to resume, starting afresh",
        )
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    steps = trainer.state.global_step
    if heldout.last_step != steps:
        # A resumed run that had no step left to train was not evaluated: measure the model it ends with.
        heldout.measure(trainer.model, steps)
        if main_process:
            emit(metrics_line(steps, {HELDOUT_ACCURACY: heldout.last_accuracy}))

    final = str(Path(config.output_dir) / FINAL_DIR)
    trainer.save_model(final)  # model and processor, written by the main process
    steps_trained = len(printer.step_seconds)  # in this process: a resumed run started past the first ones
    summary = {
        "method": config.method,
        "steps": steps,
        "steps_trained": steps_trained,
        "seconds": round(seconds, 3),
        "steps_per_second": steps_trained / seconds if seconds > 0 else None,
        "median_step_seconds": printer.median_step_seconds(),
        "heldout_accuracy": heldout.last_accuracy,
        "heldout_pairs": len(val_rows),
        "training_examples": len(dataset),
        "final_checkpoint": final,
    }
    if main_process:
        emit(checkpoint_line(final))
        emit(summary_line(summary))
    return summary


def _training_data(config: TrlRunConfig, processor: Any, main_process: bool) -> tuple[Any, list[Any]]:
    """The training set of the run's method, and the held-out rows to measure accuracy on.

    Prompts longer than ``max_prompt_length`` are dropped from both splits, as verl drops them. The held-out
    rows are ``eval_limit`` of the test split, drawn once with the run's seed.
    """
    from training.backends import trl_data

    hp = config.hyperparameters
    train_rows, dropped = trl_data.drop_overlong_prompts(
        processor, trl_data.export_rows(config.train_file), hp.max_prompt_length
    )
    val_rows, val_dropped = trl_data.drop_overlong_prompts(
        processor, trl_data.export_rows(config.val_file), hp.max_prompt_length
    )
    _say(
        main_process,
        f"{len(train_rows)} training pairs, {len(val_rows)} held-out pairs; dropped as longer than "
        f"{hp.max_prompt_length} prompt tokens: {dropped} training, {val_dropped} held-out",
    )
    if config.eval_limit and len(val_rows) > config.eval_limit:
        val_rows = random.Random(config.seed).sample(val_rows, config.eval_limit)

    if isinstance(hp, GrpoHyperparameters):
        if len(train_rows) < hp.train_batch_size:
            raise ValueError(
                f"the training split has {len(train_rows)} pairs, fewer than one batch (train_batch_size "
                f"{hp.train_batch_size})"
            )
        if config.balances_batches:
            from training.backends.balanced_order import balanced_order
            from training.reward import answer_normalize

            labels = [answer_normalize(row.ground_truth) for row in train_rows]
            order = balanced_order(
                labels, batch_size=hp.train_batch_size, policy=config.balance, seed=config.seed
            )
            _say(
                main_process,
                f"balanced batches ({config.balance}): {len(train_rows)} training pairs "
                f"({labels.count('yes')} yes, {labels.count('no')} no) laid out as {len(order)} in "
                f"{len(order) // hp.train_batch_size} batches of {hp.train_batch_size // 2} yes and "
                f"{hp.train_batch_size // 2} no",
            )
            train_rows = [train_rows[index] for index in order]
        return trl_data.grpo_dataset(train_rows), val_rows

    if hp.target == "teacher":
        assert config.sft_targets is not None
        with open(config.sft_targets, encoding="utf-8") as lines:
            teacher = trl_data.teacher_targets(lines, train_rows)
        _say(
            main_process,
            f"teacher targets: kept {teacher.kept} pairs, dropped {teacher.wrong} with a wrong answer and "
            f"{teacher.missing} without a response",
        )
        targets = teacher.responses
    else:
        targets = {row.pair_id: trl_data.label_target(row.ground_truth) for row in train_rows}
    return trl_data.sft_dataset(train_rows, targets), val_rows


def _vision_tower_freeze(model: Any) -> None:
    """Keeps the vision encoder (Qwen-VL's ``model.visual``, the patch embedding, blocks and merger) fixed."""
    tower = getattr(getattr(model, "model", None), "visual", None)
    if tower is None:
        raise ValueError(f"freeze_vision_tower: {type(model).__name__} has no vision tower at model.visual")
    tower.requires_grad_(False)


def _say(main_process: bool, message: str) -> None:
    """A plain progress line on stdout, from the main process only (the protocol lines are the prefixed ones)."""
    if main_process:
        emit(f"trl_runner: {message}")


def emit(line: str) -> None:
    """Prints a line at once: the worker reading the pipe sees each step as it ends."""
    print(line, flush=True)


def _resumable(trainer_class: type) -> type:
    """trainer_class, with a resume that restores the model's weights.

    transformers 5.10's ``Trainer._load_from_checkpoint`` reads the checkpoint's safetensors straight into the
    model with ``load_state_dict(strict=False)``, but ``save_pretrained`` wrote them under the original
    checkpoint's key names (Qwen2.5-VL's ``visual.*``, ``model.layers.*``, reverted from the module's
    ``model.visual.*``, ``model.language_model.*``): nothing matches, every key is "missing", and training would
    go on from the initial weights (huggingface/transformers#43701). ``from_pretrained`` maps the names, so the
    checkpoint is loaded with it and copied in, strictly. The reference model of GRPO is not touched: it stays
    the initial model, as in verl.
    """

    class ResumableTrainer(trainer_class):
        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            from transformers import AutoModelForImageTextToText

            target = self.model if model is None else model
            restored = AutoModelForImageTextToText.from_pretrained(resume_from_checkpoint, dtype=target.dtype)
            target.load_state_dict(restored.state_dict())

    ResumableTrainer.__name__ = ResumableTrainer.__qualname__ = f"Resumable{trainer_class.__name__}"
    return ResumableTrainer


def answer_reward(
    completions: list[Any], ground_truth: list[str], data_source: list[str] | None = None, **kwargs: Any
) -> list[float]:
    """The GRPO reward function for TRL: ``training.reward.compute_score`` of each completion's text against
    its pair's label (TRL passes the dataset's ``ground_truth`` and ``data_source`` columns, repeated for each
    of a prompt's responses). A conversational completion is a list with one assistant message."""
    from training.reward import compute_score

    sources = data_source or [None] * len(completions)
    return [
        compute_score(source, _completion_text(completion), truth)
        for completion, truth, source in zip(completions, ground_truth, sources, strict=True)
    ]


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]  # the assistant message
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content if part.get("type") == "text")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.backends.trl_runner", description="GRPO or SFT with TRL on one machine."
    )
    parser.add_argument("--config", required=True, help="the run's JSON config (TrlRunConfig.to_json)")
    arguments = parser.parse_args(argv)
    try:
        with open(arguments.config, encoding="utf-8") as file:
            config = TrlRunConfig.from_json(json.load(file))
        run(config)
    except Exception as error:  # every failure ends the process with its message and exit code 1
        message = f"trl_runner: error: {type(error).__name__}: {error}"
        print(message, flush=True)
        traceback.print_exc(file=sys.stderr)
        print(message, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
