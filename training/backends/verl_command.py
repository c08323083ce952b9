"""The verl 0.9.1 GRPO training command of a run: ``python -m verl.trainer.main_ppo`` and its Hydra overrides.

The defaults are the TWIN paper's GRPO hyperparameters (Table 8 and Appendix C.1): batch size 480, group size
5, prompt and response lengths 2048, AdamW with learning rate 1e-6 and weight decay 0.01, KL coefficient 0.01,
clip ratio 0.2, one epoch, vLLM rollouts at temperature 1.0 and top-p 1.0, gradient clipping at norm 1.0, the
vision tower trained, bf16.

Every key below is one of verl 0.9.1's own (``verl/trainer/config/ppo_trainer.yaml`` and the files it composes,
flattened in ``_generated_ppo_trainer.yaml``); the tests compose the overrides against that configuration and
run verl's start-up checks on the result, so a key verl renamed or a value it rejects fails there, not on the
GPU nodes. Where verl 0.9.1 has two keys for one setting, the one its code reads is used (see the comments).
The keys verl's yaml lacks are added with ``++``: ``fsdp_config.mixed_precision``, which verl's code reads, and
``data.balance``, which the project's balanced dataset (``verl_balanced_dataset.py``) reads.

The module imports no Django and nothing heavy: it only builds strings, so the web process can show the
command on the run page.
"""

from __future__ import annotations

import math
import re
import shlex
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from training.backends.json_fields import json_fields, json_object_checked

# The module that verl's own examples run: Hydra's entry point over ``trainer/config/ppo_trainer.yaml``.
VERL_MAIN_MODULE = "verl.trainer.main_ppo"

# The project's reward function file, next to this package: ``training/reward.py``. verl loads it by file path
# (``verl.utils.import_utils.load_module``) in its reward workers, so the path has to be valid on the machine
# that runs the command; it is computed from this file, so build the command where it will run.
DEFAULT_REWARD_PATH = str(Path(__file__).resolve().parent.parent / "reward.py")

# The dataset class that balances each training batch between yes and no answers, next to this file. verl loads
# it by file path (``data.custom_cls``) in its trainer and agent-loop processes, so, as the reward's, the path
# is computed from this file and has to be valid where the command runs. The module imports verl, so its class
# name is repeated here rather than imported (the tests check that the two agree).
BALANCED_DATASET_PATH = str(Path(__file__).resolve().parent / "verl_balanced_dataset.py")
BALANCED_DATASET_CLASS = "BalancedRLHFDataset"
# data.balance: the balanced dataset's policies; "off" uses verl's own RLHFDataset.
BALANCE_POLICIES = ("oversample", "undersample", "off")

# The mixed precision of the FSDP actor and reference model: bf16 compute, fp32 gradient reduction and
# buffers, over fp32 master weights (``fsdp_config.model_dtype`` stays verl's fp32). These are the values verl
# 0.9.1 falls back to when ``fsdp_config.mixed_precision`` is unset (``FSDPEngine._build_fsdp_module``); they
# are written out so that the paper's "bf16" is in the command rather than in a default that can change.
FSDP_MIXED_PRECISION = {"param_dtype": "bf16", "reduce_dtype": "fp32", "buffer_dtype": "fp32"}


@dataclass(frozen=True)
class GrpoHyperparameters:
    """The GRPO hyperparameters of a run, stored with it (``to_json``/``from_json``) and turned into verl keys.

    The defaults are the paper's; the fields after ``normalize_advantage_by_std`` are not in the paper but
    decide whether a run fits the GPUs (batch slicing, rollout memory, tensor parallelism).

    Fields:
        train_batch_size: prompts (image pairs) per training step (``data.train_batch_size``). Paper: 480.
        group_size: responses sampled per prompt, the G of GRPO (``actor_rollout_ref.rollout.n``). Paper: 5.
            At least 2: a group of one has no relative advantage.
        max_prompt_length: prompt tokens, image tokens included (``data.max_prompt_length``); longer prompts are
            dropped when the dataset loads. Paper: 2048.
        max_response_length: generated tokens per response (``data.max_response_length``). Paper: 2048.
        learning_rate: AdamW learning rate, constant, no warmup (``actor.optim.lr``). Paper: 1e-6.
        weight_decay: AdamW weight decay (``actor.optim.weight_decay``). Paper: 0.01.
        kl_coef: the beta of the paper's Eq. 2, the weight of KL(policy || reference) in the loss
            (``actor.kl_loss_coef`` with ``use_kl_loss=True``, ``kl_loss_type=low_var_kl``); the reward carries
            no KL penalty (``algorithm.use_kl_in_reward=False``). Paper: 0.01.
        clip_ratio: the epsilon of the clipped importance ratio, both sides (``actor.clip_ratio_low/high``).
            Paper: 0.2.
        epochs: passes over the training split (``trainer.total_epochs``). Paper: 1.
        max_steps: the most training steps (batches) to run (``trainer.total_training_steps``); None runs the
            epochs. verl 0.9.1 reads it in ``PPOTrainer._init_dataloader`` in place of steps per epoch times
            epochs, and its training loop ends at whichever of the two comes first, so a cap above the epochs'
            steps adds none; the run then ends with the epochs, without verl's last-step checkpoint and
            validation (they run on the step numbered ``max_steps``), only those of ``save_freq``/``test_freq``.
            It is also the horizon of verl's learning-rate schedule, which the constant schedule ignores.
        temperature: rollout sampling temperature (``rollout.temperature``). Paper: 1.0.
        top_p: rollout nucleus sampling (``rollout.top_p``); 1.0 samples the whole distribution. Paper: 1.0.
        grad_clip: gradient clipping max norm (``actor.optim.clip_grad``). Paper: 1.0.
        freeze_vision_tower: the paper trains the whole model (False). verl 0.9.1 declares
            ``actor.freeze_vision_tower`` but no code reads it (the FSDP engine trains every parameter), so True
            is refused rather than silently ignored.
        normalize_advantage_by_std: whether GRPO divides the group-centred rewards by the group's standard
            deviation (``algorithm.norm_adv_by_std_in_grpo``). The paper's Eq. 1 defines the advantage as the
            reward minus the group mean ("centralized advantages"), without the division, hence False; verl's
            own default (and DeepSeekMath's GRPO) is True.
        ppo_mini_batch_size: prompts per optimizer step (``actor.ppo_mini_batch_size``, which verl multiplies by
            the group size). None means ``train_batch_size``: one update per batch of rollouts, fully on-policy,
            as GRPO papers describe it; the paper does not give a mini-batch size. With one update the
            importance ratio is 1 when the gradient is taken, so the clip only acts with smaller mini-batches.
            Must divide ``train_batch_size``.
        micro_batch_size_per_gpu: sequences per forward/backward pass on one GPU in the actor update
            (``actor.ppo_micro_batch_size_per_gpu``); gradients accumulate over the mini-batch, so this trades
            memory for speed and does not change the optimization. 4 fits a 3B VLM with 4096-token sequences
            and gradient checkpointing on 80 GB GPUs with room to spare.
        log_prob_micro_batch_size_per_gpu: sequences per forward pass when the actor and the reference model
            compute log-probabilities (``rollout.log_prob_micro_batch_size_per_gpu``,
            ``ref.log_prob_micro_batch_size_per_gpu``); no gradients, so it can be larger than the above.
        rollout_gpu_memory_utilization: the share of each GPU's memory vLLM takes for weights and KV cache
            (``rollout.gpu_memory_utilization``). The actor shares the GPUs (verl's hybrid engine, the actor
            offloaded while vLLM generates); 0.6 is what verl's Qwen2.5-VL GRPO example uses.
        tensor_model_parallel_size: GPUs per vLLM replica (``rollout.tensor_model_parallel_size``). A 3B or 1B
            model fits on one GPU, and one replica per GPU generates fastest; must divide the GPUs per node.
    """

    train_batch_size: int = 480
    group_size: int = 5
    max_prompt_length: int = 2048
    max_response_length: int = 2048
    learning_rate: float = 1e-6
    weight_decay: float = 0.01
    kl_coef: float = 0.01
    clip_ratio: float = 0.2
    epochs: int = 1
    max_steps: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    grad_clip: float = 1.0
    freeze_vision_tower: bool = False
    normalize_advantage_by_std: bool = False
    ppo_mini_batch_size: int | None = None
    micro_batch_size_per_gpu: int = 4
    log_prob_micro_batch_size_per_gpu: int = 8
    rollout_gpu_memory_utilization: float = 0.6
    tensor_model_parallel_size: int = 1

    def __post_init__(self) -> None:
        _check_field_types(self)
        for name in (
            "train_batch_size",
            "max_prompt_length",
            "max_response_length",
            "epochs",
            "micro_batch_size_per_gpu",
            "log_prob_micro_batch_size_per_gpu",
            "tensor_model_parallel_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be at least 2 (GRPO compares responses), got {self.group_size}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, or None to run the epochs, got {self.max_steps}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        for name in ("weight_decay", "kl_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0 < self.clip_ratio < 1:
            raise ValueError(f"clip_ratio must be between 0 and 1, got {self.clip_ratio}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive (rollouts sample), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive, got {self.grad_clip}")
        if not 0 < self.rollout_gpu_memory_utilization < 1:
            raise ValueError(
                f"rollout_gpu_memory_utilization must be between 0 and 1 (the actor shares the GPUs), "
                f"got {self.rollout_gpu_memory_utilization}"
            )
        if self.freeze_vision_tower:
            raise ValueError(
                "freeze_vision_tower=True is not supported: verl 0.9.1 declares actor.freeze_vision_tower but "
                "its FSDP engine never reads it, so the vision tower would be trained anyway"
            )
        if self.ppo_mini_batch_size is not None and not (
            1 <= self.ppo_mini_batch_size <= self.train_batch_size
            and self.train_batch_size % self.ppo_mini_batch_size == 0
        ):
            raise ValueError(
                f"ppo_mini_batch_size ({self.ppo_mini_batch_size}) must divide train_batch_size "
                f"({self.train_batch_size}), so that every batch makes the same number of updates"
            )

    @property
    def mini_batch_size(self) -> int:
        """The prompts per optimizer step that verl gets: ``ppo_mini_batch_size`` or, when None, the batch."""
        return self.train_batch_size if self.ppo_mini_batch_size is None else self.ppo_mini_batch_size

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict, for a model's JSONField."""
        return json_fields(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GrpoHyperparameters:
        """Hyperparameters from a dict stored by ``to_json``; keys it lacks take the defaults (the paper's).

        Unknown keys are refused, so a misspelled hyperparameter can't silently fall back to its default; the
        types are checked as on construction (an int is accepted for a float, a bool is not a number).
        """
        return cls(**json_object_checked(data, cls, what="GRPO hyperparameter"))


@dataclass(frozen=True)
class VerlRunSpec:
    """One GRPO run: the model, the data, where checkpoints go, the GPUs, and the hyperparameters.

    Fields:
        model: hub id or local folder of the model to train, e.g. ``Qwen/Qwen2.5-VL-3B-Instruct``.
        train_files: the verl export's ``train.parquet`` file(s).
        val_files: the verl export's ``test.parquet`` file(s), scored every ``test_freq`` steps.
        output_dir: checkpoint folder (``trainer.default_local_dir``); verl resumes from the latest
            checkpoint in it when the command is run again (``trainer.resume_mode=auto``).
        experiment_name, project_name: the run's names in the loggers (``trainer.experiment_name`` and
            ``trainer.project_name``).
        gpus_per_node, nodes: the GPUs verl spreads the actor, the reference model and vLLM over.
        hyperparameters: the GRPO hyperparameters.
        reward_path: absolute path of the file holding the reward function, ``training/reward.py`` by default.
        reward_name: the reward function in that file, called by verl's naive reward manager as
            ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=)``.
        shuffle: whether the training split is shuffled (``data.shuffle``). With ``balance`` on, the balanced
            dataset shuffles it (once, seeded, the same order every epoch) and verl's own sampler must keep
            that order, so ``data.shuffle`` is written False and ``shuffle=False``, which asks for the file
            order, is refused; with ``balance="off"`` verl's random sampler reshuffles it every epoch.
        balance: how each training batch is balanced between "yes" and "no" answers, as in the paper:
            "oversample" (every pair of the commoner answer once per epoch, pairs of the rarer one repeated),
            "undersample" (every pair of the rarer answer once, a random subset of the commoner one), or "off"
            (verl's RLHFDataset, the split as it is). Anything but "off" loads ``verl_balanced_dataset.py``
            (``data.custom_cls``), writes ``data.balance`` and needs an even ``train_batch_size``. The
            validation split is never resampled or reordered.
        seed: the seed of the training order (``data.seed``): the balanced dataset's order, or verl's random
            sampler's when ``balance="off"`` and ``shuffle`` is on.
        logger: verl's tracking backends (``trainer.logger``): "console", "wandb", "tensorboard", ...
        save_freq: checkpoint every this many steps, and after the last one (``trainer.save_freq``); -1: never.
        test_freq: validate every this many steps, and after the last one (``trainer.test_freq``); -1: never.
        val_before_train: validate once before the first step, the base model's score
            (``trainer.val_before_train``).
        extra_overrides: Hydra overrides appended after all of the above, so they win: a researcher's own
            settings, e.g. ``trainer.max_actor_ckpt_to_keep=2``.
    """

    model: str
    train_files: list[str]
    val_files: list[str]
    output_dir: str
    experiment_name: str
    project_name: str = "twin"
    gpus_per_node: int = 8
    nodes: int = 1
    hyperparameters: GrpoHyperparameters = field(default_factory=GrpoHyperparameters)
    reward_path: str = DEFAULT_REWARD_PATH
    reward_name: str = "compute_score"
    shuffle: bool = True
    balance: str = "oversample"
    seed: int = 1
    logger: list[str] = field(default_factory=lambda: ["console"])
    save_freq: int = 100
    test_freq: int = 50
    val_before_train: bool = True
    extra_overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_field_types(self)
        for name in ("model", "output_dir", "experiment_name", "project_name", "reward_name"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        for name in ("train_files", "val_files"):
            if not getattr(self, name) or not all(getattr(self, name)):
                raise ValueError(f"{name} must list at least one file, and no empty path")
        if not Path(self.reward_path).is_absolute():
            raise ValueError(
                f"reward_path must be absolute (verl's reward workers don't share the launcher's working "
                f"directory), got {self.reward_path!r}"
            )
        for name in ("gpus_per_node", "nodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("save_freq", "test_freq"):
            if getattr(self, name) == 0 or getattr(self, name) < -1:
                raise ValueError(
                    f"{name} must be a positive number of steps or -1 (never), got {getattr(self, name)}"
                )
        if self.seed < 0:
            raise ValueError(f"seed must not be negative (numpy's generators refuse it), got {self.seed}")
        self._check_balance()
        self._check_gpu_layout()

    @property
    def gpus(self) -> int:
        """All the GPUs of the run; FSDP shards the actor over all of them (its data-parallel size)."""
        return self.gpus_per_node * self.nodes

    def _check_balance(self) -> None:
        """Refuses what the balanced dataset would refuse once verl loads it, and settings it overrides."""
        if self.balance not in BALANCE_POLICIES:
            raise ValueError(f"balance must be one of {', '.join(BALANCE_POLICIES)}, got {self.balance!r}")
        if self.balance == "off":
            return
        if not self.shuffle:
            raise ValueError(
                f"shuffle=False keeps the training split in file order, but balance={self.balance!r} "
                f"reorders it into balanced batches; use balance='off' for the file order"
            )
        if self.hyperparameters.train_batch_size % 2:
            raise ValueError(
                f"balance={self.balance!r} needs an even train_batch_size (as many yes as no answers per "
                f"batch), got {self.hyperparameters.train_batch_size}"
            )

    def _check_gpu_layout(self) -> None:
        """Refuses batch sizes and parallelism that verl would refuse only once the GPUs are allocated.

        verl 0.9.1 checks these at start-up or when the workers build their engines:
        - ``validate_config`` (``verl/utils/config.py``): the rollouts of a batch, ``train_batch_size * n``,
          split evenly over the GPUs;
        - ``TrainingWorker.train_batch`` (``verl/workers/engine_workers.py``): the rollouts of a mini-batch,
          ``ppo_mini_batch_size * n``, split evenly over the data-parallel ranks (all GPUs under FSDP);
        - ``ActorRolloutRefWorker.init_model``: the GPUs split into vLLM replicas of
          ``tensor_model_parallel_size`` GPUs; a replica stays on one node, so the GPUs per node are checked.
        """
        hp = self.hyperparameters
        if (hp.train_batch_size * hp.group_size) % self.gpus:
            raise ValueError(
                f"train_batch_size * group_size ({hp.train_batch_size} * {hp.group_size}) must be divisible "
                f"by the number of GPUs ({self.gpus})"
            )
        if (hp.mini_batch_size * hp.group_size) % self.gpus:
            raise ValueError(
                f"ppo_mini_batch_size * group_size ({hp.mini_batch_size} * {hp.group_size}) must be divisible "
                f"by the number of GPUs ({self.gpus})"
            )
        if self.gpus_per_node % hp.tensor_model_parallel_size:
            raise ValueError(
                f"tensor_model_parallel_size ({hp.tensor_model_parallel_size}) must divide gpus_per_node "
                f"({self.gpus_per_node})"
            )


def verl_overrides(spec: VerlRunSpec) -> list[str]:
    """The Hydra overrides ("key=value") that turn verl 0.9.1's ``ppo_trainer`` config into the run's GRPO.

    Values are written in Hydra's override grammar (``hydra_value``), so a path with spaces, commas, quotes or
    ``=`` comes back from Hydra as the same string. ``spec.extra_overrides`` come last and win.
    """
    hp = spec.hyperparameters
    settings: list[tuple[str, Any]] = [
        # GRPO: group-relative advantages, no critic (verl would infer that from the estimator, with a warning).
        ("algorithm.adv_estimator", "grpo"),
        ("algorithm.norm_adv_by_std_in_grpo", hp.normalize_advantage_by_std),
        ("critic.enable", False),
        # The KL term is in the loss (the paper's Eq. 2), not subtracted from the reward.
        ("algorithm.use_kl_in_reward", False),
        # Data: the verl export's columns (training/exports/verl.py): the chat in "prompt", image paths in
        # "images"; prompts over the limit are dropped when the dataset loads, and a longer one is an error.
        ("data.train_files", list(spec.train_files)),
        ("data.val_files", list(spec.val_files)),
        ("data.prompt_key", "prompt"),
        ("data.image_key", "images"),
        ("data.max_prompt_length", hp.max_prompt_length),
        ("data.max_response_length", hp.max_response_length),
        ("data.train_batch_size", hp.train_batch_size),
        ("data.filter_overlong_prompts", True),
        ("data.truncation", "error"),
        *_data_order_settings(spec),
        # The rollout's agent loop applies the chat template itself, so it needs the messages. verl 0.9.1's
        # RLHFDataset hands them over (raw_prompt) whatever this says and reads the key into an unused
        # attribute; it is set anyway, for the versions whose dataset still obeys it.
        ("data.return_raw_chat", True),
        # Model: gradient checkpointing for 4096-token sequences; padding removed (verl patches Qwen2.5-VL's
        # attention for packed sequences), which saves the compute of the padding.
        ("actor_rollout_ref.model.path", spec.model),
        ("actor_rollout_ref.model.enable_gradient_checkpointing", True),
        ("actor_rollout_ref.model.use_remove_padding", True),
        # Optimizer: AdamW, constant learning rate without warmup (the paper names no scheduler for GRPO).
        # verl 0.9.1's engines clip gradients at optim.clip_grad; actor.grad_clip is an older key no code reads,
        # set to the same value so the printed config doesn't contradict itself.
        ("actor_rollout_ref.actor.optim.optimizer", "AdamW"),
        ("actor_rollout_ref.actor.optim.lr", hp.learning_rate),
        ("actor_rollout_ref.actor.optim.weight_decay", hp.weight_decay),
        ("actor_rollout_ref.actor.optim.lr_scheduler_type", "constant"),
        ("actor_rollout_ref.actor.optim.lr_warmup_steps_ratio", 0.0),
        ("actor_rollout_ref.actor.optim.clip_grad", hp.grad_clip),
        ("actor_rollout_ref.actor.grad_clip", hp.grad_clip),
        # Batches: fixed micro-batches (not verl's token-budget dynamic batching), one pass per mini-batch.
        ("actor_rollout_ref.actor.ppo_mini_batch_size", hp.mini_batch_size),
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", hp.micro_batch_size_per_gpu),
        ("actor_rollout_ref.actor.use_dynamic_bsz", False),
        ("actor_rollout_ref.actor.ppo_epochs", 1),
        # Loss: clipped ratio (the vanilla policy loss reads clip_ratio_low/high; clip_ratio is their fallback),
        # KL to the reference model in the loss, no entropy bonus.
        ("actor_rollout_ref.actor.clip_ratio", hp.clip_ratio),
        ("actor_rollout_ref.actor.clip_ratio_low", hp.clip_ratio),
        ("actor_rollout_ref.actor.clip_ratio_high", hp.clip_ratio),
        ("actor_rollout_ref.actor.use_kl_loss", True),
        ("actor_rollout_ref.actor.kl_loss_coef", hp.kl_coef),
        ("actor_rollout_ref.actor.kl_loss_type", "low_var_kl"),
        ("actor_rollout_ref.actor.entropy_coeff", 0.0),
        ("actor_rollout_ref.actor.freeze_vision_tower", hp.freeze_vision_tower),
        # Reference model (needed for the KL loss): log-probabilities only.
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", hp.log_prob_micro_batch_size_per_gpu),
        # Rollout: vLLM, in async mode (0.9.1 removed the sync one), G samples per prompt.
        ("actor_rollout_ref.rollout.name", "vllm"),
        ("actor_rollout_ref.rollout.mode", "async"),
        ("actor_rollout_ref.rollout.n", hp.group_size),
        ("actor_rollout_ref.rollout.temperature", hp.temperature),
        ("actor_rollout_ref.rollout.top_p", hp.top_p),
        ("actor_rollout_ref.rollout.top_k", -1),
        ("actor_rollout_ref.rollout.dtype", "bfloat16"),
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", hp.tensor_model_parallel_size),
        ("actor_rollout_ref.rollout.gpu_memory_utilization", hp.rollout_gpu_memory_utilization),
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", hp.log_prob_micro_batch_size_per_gpu),
        # Reward: the keys verl 0.9's trainer reads (verl/trainer/ppo/reward.py: config.reward.custom_reward_
        # function). The top-level custom_reward_function.* keys are only migrated by the fully-async entry
        # point, so main_ppo would ignore them and score with verl's default (GSM8K-style) rules.
        ("reward.custom_reward_function.path", spec.reward_path),
        ("reward.custom_reward_function.name", spec.reward_name),
        # Trainer: verl's V1 trainer in its synchronous (on-policy) mode.
        ("trainer.v1.trainer_mode", "sync"),
        ("trainer.n_gpus_per_node", spec.gpus_per_node),
        ("trainer.nnodes", spec.nodes),
        ("trainer.total_epochs", hp.epochs),
        ("trainer.total_training_steps", hp.max_steps),
        ("trainer.project_name", spec.project_name),
        ("trainer.experiment_name", spec.experiment_name),
        ("trainer.default_local_dir", spec.output_dir),
        ("trainer.logger", list(spec.logger)),
        ("trainer.save_freq", spec.save_freq),
        ("trainer.test_freq", spec.test_freq),
        ("trainer.val_before_train", spec.val_before_train),
    ]
    overrides = [f"{key}={hydra_value(value)}" for key, value in settings]
    # bf16: fsdp_config.mixed_precision is read by verl's FSDP engine but is absent from the yaml (it defaults
    # to None there), so it is added ("++": add, or override should a later verl declare it).
    for role in ("actor", "ref"):
        overrides.append(
            f"++actor_rollout_ref.{role}.fsdp_config.mixed_precision={hydra_value(FSDP_MIXED_PRECISION)}"
        )
    return [*overrides, *spec.extra_overrides]


def _data_order_settings(spec: VerlRunSpec) -> list[tuple[str, Any]]:
    """The keys of the training order: verl's shuffle, or the balanced dataset with verl's sequential sampler.

    verl's dataloader takes the rows in the order its sampler gives (``create_rl_sampler``): random when
    ``data.shuffle``, else the dataset's own order, which is then the balanced dataset's.
    """
    if spec.balance == "off":
        return [("data.shuffle", spec.shuffle), ("data.seed", spec.seed)]
    return [
        ("data.custom_cls.path", BALANCED_DATASET_PATH),
        ("data.custom_cls.name", BALANCED_DATASET_CLASS),
        ("data.shuffle", False),
        ("data.seed", spec.seed),
        # Not one of verl's keys: added ("++"), as verl's config is in struct mode.
        ("++data.balance", spec.balance),
    ]


def verl_command(spec: VerlRunSpec, *, python: str = "python") -> list[str]:
    """The command as an argument list, for ``subprocess`` (no shell): python -m verl.trainer.main_ppo ..."""
    return [python, "-m", VERL_MAIN_MODULE, *verl_overrides(spec)]


def verl_command_text(spec: VerlRunSpec, *, python: str = "python") -> str:
    """The command as one shell-quoted line, for the run page; ``shlex.split`` gives ``verl_command`` back."""
    return shlex.join(verl_command(spec, python=python))


# A string Hydra's override grammar reads back unchanged without quotes: letters, digits and ``_./-``, not
# starting with a digit or "-" (numbers), and not one of the words Hydra reads as a bool, null or float.
_BARE_STRING = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_HYDRA_WORDS = {"true", "false", "null", "nan", "inf"}


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar, read back by Hydra (and OmegaConf) as the same value.

    Strings are single-quoted unless plain (``_BARE_STRING``). Inside quotes Hydra unescapes ``\\'`` and the
    backslashes right before a quote, and OmegaConf then resolves ``${...}`` interpolations, so both are
    escaped: ``hydra_quote``. Lists and dicts are written element by element; dict keys must be plain.
    """
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        return repr(value)
    if isinstance(value, str):
        if _BARE_STRING.fullmatch(value) and value.lower() not in _HYDRA_WORDS:
            return value
        return hydra_quote(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        for key in value:
            if not (isinstance(key, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)):
                raise ValueError(f"dict keys must be identifiers, got {key!r}")
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"no Hydra form for a {type(value).__name__}: {value!r}")


def hydra_quote(text: str) -> str:
    """text as a single-quoted Hydra string.

    Three escapes, in this order:
    - ``${`` becomes ``\\${``, which OmegaConf reads as a literal ``${`` rather than an interpolation; the
      backslashes before it are doubled, as OmegaConf reads ``\\\\`` before ``${`` as one backslash;
    - a quote becomes ``\\'`` and the backslashes before it are doubled: Hydra reads 2n backslashes before a
      quote as n, and an odd one as escaping the quote;
    - backslashes at the end are doubled, as they stand before the closing quote.
    Elsewhere Hydra keeps backslashes as they are.
    """
    text = re.sub(r"(\\*)\$\{", lambda match: match.group(1) * 2 + "\\${", text)
    text = re.sub(r"(\\*)'", lambda match: match.group(1) * 2 + "\\'", text)
    # \Z, not $: Python's $ also matches before a final newline, whose backslashes Hydra keeps as they are.
    text = re.sub(r"(\\+)\Z", lambda match: match.group(1) * 2, text)
    return f"'{text}'"


def _check_field_types(instance: Any) -> None:
    """Checks each field of a dataclass against its annotation: int, float, bool, str, ``X | None``,
    ``list[str]``, ``tuple[str, ...]`` or a dataclass.

    An int is accepted for a float (a JSON number written without a decimal point, like a weight decay of 0)
    and stored as a float; a bool is refused for both, though Python counts it as an int; a float must be
    finite (Python's json reads NaN and Infinity, which no hyperparameter can be).
    """
    hints = typing.get_type_hints(type(instance))
    for f in fields(instance):
        value = getattr(instance, f.name)
        hint = hints[f.name]
        if typing.get_origin(hint) is types.UnionType and type(None) in typing.get_args(hint):
            if value is None:
                continue
            (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(instance, f.name, float(value))
            continue
        if hint is float and isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{type(instance).__name__}.{f.name} must be a finite number, got {value!r}")
        if _type_matches(value, hint):
            continue
        raise ValueError(
            f"{type(instance).__name__}.{f.name} must be {_type_name(hint)}, "
            f"got {type(value).__name__} {value!r}"
        )


def _type_matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_matches(v, item) for v in value)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_type_matches(v, item) for v in value)
    if hint in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    """int, list[str], tuple[str, ...]: the annotation as written."""
    return hint.__name__ if typing.get_origin(hint) is None else str(hint)
