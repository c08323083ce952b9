"""The TRL runner: real GRPO and SFT steps of a tiny random Qwen2.5-VL on a small verl export, run as the worker
runs it (a child process printing the metrics protocol), and the pure pieces (config, the hyperparameters in
TRL's names, the data and the SFT target filter) in process.

The runs chain as the paper's recipe does: SFT on the labels teaches the random model to answer in the
``<answer>`` tag, so that the GRPO run that starts from it gets rewards that differ within a group, and a real
gradient.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from safetensors.torch import load_file

from training.backends.run_output import (
    HELDOUT_ACCURACY,
    KL,
    LEARNING_RATE,
    LOSS,
    RESPONSE_LENGTH,
    REWARD,
    STEP_SECONDS,
    StepMetrics,
    parse_checkpoint_line,
    parse_metrics_line,
    parse_summary_line,
)
from training.backends.sft_hyperparameters import SftHyperparameters
from training.backends.trl_data import (
    PairRow,
    drop_overlong_prompts,
    export_rows,
    image_open,
    label_target,
    prompt_token_count,
    teacher_targets,
)
from training.backends.trl_runner import (
    TrlRunConfig,
    answer_reward,
    grpo_batch_layout,
    grpo_config_kwargs,
    precision_resolve,
    sft_config_kwargs,
    sft_gradient_accumulation_steps,
)
from training.backends.verl_command import GrpoHyperparameters
from training.exports.verl import PROMPT_TEXT, SCHEMA

REPO = Path(__file__).resolve().parents[3]
TRAIN_PAIRS = range(1, 9)  # pair ids of the training split
TEST_PAIRS = range(9, 13)

# transformers' processors turn PIL images into arrays the way numpy 2 warns about (not our code).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def answer(pair_id: int) -> str:
    return "yes" if pair_id % 2 else "no"


def export_write(folder: Path) -> Path:
    """A verl export as ``training/exports/verl.py`` writes it: 8 training and 4 held-out pairs of 56x56 noise
    images, labels alternating yes/no. Image paths are relative to the folder, but one held-out row's are
    absolute (the export writes them so when given an image root)."""
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, pair_ids in (("train", TRAIN_PAIRS), ("test", TEST_PAIRS)):
        records = []
        for index, pair_id in enumerate(pair_ids):
            paths = []
            for side in ("a", "b"):
                name = f"images/{pair_id}{side}.png"
                pixels = rng.integers(0, 256, size=(56, 56, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / name)
                paths.append(str(folder / name) if pair_id == TEST_PAIRS[-1] else name)
            records.append(
                {
                    "data_source": "twin-test",
                    "prompt": [{"role": "user", "content": PROMPT_TEXT}],
                    "images": paths,
                    "ability": "vision",
                    "reward_model": {"style": "rule", "ground_truth": answer(pair_id)},
                    "extra_info": {
                        "pair_id": pair_id,
                        "image_a_id": 2 * pair_id,
                        "image_b_id": 2 * pair_id + 1,
                        "source": "generated",
                        "split": split,
                        "category": "mug",
                        "index": index,
                    },
                }
            )
        pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), folder / f"{split}.parquet")
    return folder


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return export_write(tmp_path_factory.mktemp("verl-export"))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from training.backends.tiny_vlm import tiny_qwen_vl_model_save

    return tiny_qwen_vl_model_save(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir, local_files_only=True)


# ---- The runner as a child process ----


@dataclass
class RunResult:
    """What a runner process printed, parsed with the protocol's own parsers."""

    returncode: int
    stdout: str
    stderr: str
    metrics: list[StepMetrics] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def by_step(self) -> dict[int, dict[str, float]]:
        return {metrics.step: metrics.values for metrics in self.metrics}


def runner_command(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "training.backends.trl_runner", "--config", str(config_path)]


def runner_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_runner(config: dict[str, Any], folder: Path) -> RunResult:
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "run.json"
    config_path.write_text(json.dumps(config))
    process = subprocess.run(
        runner_command(config_path), cwd=REPO, env=runner_env(), capture_output=True, text=True, timeout=300
    )
    result = RunResult(process.returncode, process.stdout, process.stderr)
    for line in process.stdout.splitlines():
        if (metrics := parse_metrics_line(line)) is not None:
            result.metrics.append(metrics)
        elif (checkpoint := parse_checkpoint_line(line)) is not None:
            result.checkpoints.append(checkpoint)
        elif (summary := parse_summary_line(line)) is not None:
            result.summaries.append(summary)
    return result


def succeeded(result: RunResult) -> RunResult:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-5000:]}"
    return result


def base_config(export_dir: Path, model: Path, output_dir: Path, **settings: Any) -> dict[str, Any]:
    return {
        "model": str(model),
        "train_file": str(export_dir / "train.parquet"),
        "val_file": str(export_dir / "test.parquet"),
        "output_dir": str(output_dir),
        "device": "cpu",
        "eval_limit": 4,
        "eval_batch_size": 4,
        **settings,
    }


# Short enough for the CPU: the prompt is ~150 tokens (two images of 4 tokens each), responses at most 16.
SHORT = {"max_prompt_length": 512, "max_response_length": 16}


@pytest.fixture(scope="module")
def sft_label_run(export_dir, tiny_model_dir, tmp_path_factory) -> RunResult:
    """SFT on the labels, 60 steps at a high learning rate: enough for the random model to answer in the tag."""
    folder = tmp_path_factory.mktemp("sft-label")
    hyperparameters = {
        **SHORT,
        "batch_size": 4,
        "per_device_batch_size": 2,
        "learning_rate": 0.01,
        "warmup_ratio": 0.0,
        "epochs": 30,
        "target": "label",
    }
    config = base_config(
        export_dir,
        tiny_model_dir,
        folder / "out",
        method="sft",
        hyperparameters=hyperparameters,
        max_steps=60,
        eval_every=30,
        save_steps=30,
    )
    return succeeded(run_runner(config, folder))


@pytest.fixture(scope="module")
def grpo_config(export_dir, sft_label_run, tmp_path_factory) -> dict[str, Any]:
    """GRPO from the SFT model: 4 prompts x 2 responses a step (two micro-batches of 4), 2 steps, evaluated on
    each. The learning rate is high so that one step moves the policy measurably away from the reference."""
    sft_final = Path(sft_label_run.summaries[-1]["final_checkpoint"])
    hyperparameters = {**SHORT, "train_batch_size": 4, "group_size": 2, "learning_rate": 1e-3}
    output_dir = tmp_path_factory.mktemp("grpo") / "out"
    return base_config(
        export_dir,
        sft_final,
        output_dir,
        method="grpo",
        hyperparameters=hyperparameters,
        max_steps=2,
        eval_every=1,
        save_steps=1,
    )


@pytest.fixture(scope="module")
def grpo_run(grpo_config, tmp_path_factory) -> RunResult:
    return succeeded(run_runner(grpo_config, tmp_path_factory.mktemp("grpo-run")))


def assert_loads(folder: str) -> None:
    """The folder holds a model and a processor that ``from_pretrained`` loads offline."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True)
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert model.config.text_config.vocab_size == len(processor.tokenizer)


def test_grpo_steps_print_the_protocol_and_train_the_policy(grpo_run, grpo_config):
    steps = grpo_run.by_step

    assert sorted(steps) == [1, 2]
    for values in steps.values():
        for name in (REWARD, KL, RESPONSE_LENGTH, HELDOUT_ACCURACY, LOSS, LEARNING_RATE, STEP_SECONDS):
            assert name in values, f"{name} missing from {sorted(values)}"
        # TRL's own names are kept beside the canonical ones.
        assert values[RESPONSE_LENGTH] == values["completions/mean_length"]
        assert values[REWARD] == values["rewards/answer_reward/mean"]
        assert 0 <= values[REWARD] <= 1 and 0 <= values[HELDOUT_ACCURACY] <= 1
        assert 0 < values[RESPONSE_LENGTH] <= 16
        assert values[LEARNING_RATE] == pytest.approx(1e-3)  # constant, no warmup
    # The SFT model answers in the tag, so some responses earn the reward and a group's two can differ: a real
    # gradient, after which the policy is no longer the reference (KL is 0 on the first step, before any update).
    assert max(values[REWARD] for values in steps.values()) > 0
    assert steps[1]["grad_norm"] > 0
    assert steps[1][KL] == 0 and steps[2][KL] > 0

    output_dir = Path(grpo_config["output_dir"])
    assert grpo_run.checkpoints == [
        str(output_dir / "checkpoint-1"),
        str(output_dir / "checkpoint-2"),
        str(output_dir / "final"),
    ]
    assert_loads(grpo_run.checkpoints[0])  # a checkpoint holds the processor too
    assert_loads(grpo_run.checkpoints[-1])
    (summary,) = grpo_run.summaries
    assert summary["steps"] == summary["steps_trained"] == 2
    assert summary["steps_per_second"] > 0 and summary["median_step_seconds"] > 0
    assert summary["heldout_accuracy"] == steps[2][HELDOUT_ACCURACY]
    assert summary["heldout_pairs"] == 4 and summary["training_examples"] == 8


def test_resuming_continues_from_the_checkpoints_weights(grpo_run, grpo_config, tmp_path):
    """transformers 5.10's Trainer can't map Qwen2.5-VL's saved key names on resume (it would go on from the
    initial weights); the runner restores them itself."""
    output_dir = tmp_path / "out"
    shutil.copytree(grpo_config["output_dir"], output_dir)
    shutil.rmtree(output_dir / "final")

    result = succeeded(run_runner({**grpo_config, "output_dir": str(output_dir), "resume": True}, tmp_path))

    assert f"trl_runner: resuming from {output_dir / 'checkpoint-2'}" in result.stdout
    # Both steps were done: no training, one held-out measurement of the restored model, the final model.
    assert [metrics.step for metrics in result.metrics] == [2]
    assert set(result.metrics[0].values) == {HELDOUT_ACCURACY}
    assert result.summaries[0]["steps"] == 2 and result.summaries[0]["steps_trained"] == 0
    restored = load_file(output_dir / "final" / "model.safetensors")
    checkpoint = load_file(output_dir / "checkpoint-2" / "model.safetensors")
    initial = load_file(Path(grpo_config["model"]) / "model.safetensors")
    assert restored.keys() == checkpoint.keys()
    assert all((restored[name] == checkpoint[name]).all() for name in checkpoint)
    assert not all((restored[name] == initial[name]).all() for name in initial)


def test_sft_on_labels_logs_the_loss_and_saves_checkpoints(sft_label_run):
    steps = sft_label_run.by_step

    assert sorted(steps) == list(range(1, 61))
    assert all({LOSS, LEARNING_RATE, STEP_SECONDS} <= set(values) for values in steps.values())
    assert steps[60][LOSS] < steps[1][LOSS] / 3  # it learns the answer tag
    assert steps[1][LEARNING_RATE] == pytest.approx(0.01)  # no warmup asked for, then the cosine decay
    assert steps[60][LEARNING_RATE] < steps[30][LEARNING_RATE] < steps[2][LEARNING_RATE]
    assert [step for step, values in steps.items() if HELDOUT_ACCURACY in values] == [30, 60]
    assert [Path(path).name for path in sft_label_run.checkpoints] == [
        "checkpoint-30",
        "checkpoint-60",
        "final",
    ]
    assert_loads(sft_label_run.checkpoints[-1])
    (summary,) = sft_label_run.summaries
    assert summary["method"] == "sft" and summary["steps"] == 60 and summary["steps_per_second"] > 0
    assert summary["training_examples"] == 8


def test_sft_on_teacher_responses_keeps_the_right_ones(export_dir, tiny_model_dir, tmp_path):
    right = {pair_id: f"Same shape and print. <answer>{answer(pair_id)}</answer>" for pair_id in TRAIN_PAIRS}
    wrong = {
        pair_id: f"They differ. <answer>{'no' if answer(pair_id) == 'yes' else 'yes'}</answer>"
        for pair_id in TRAIN_PAIRS
    }
    responses = [
        {"pair_id": 1, "response": right[1]},
        {"pair_id": 2, "response": wrong[2]},
        {"pair_id": 2, "response": right[2]},  # a second try that is right: kept
        {"pair_id": 3, "response": wrong[3]},
        {"pair_id": 4, "response": "I can't tell."},  # no answer tag: wrong
        {"pair_id": 5, "response": right[5]},
        {"pair_id": 6, "response": right[6]},
        {"pair_id": 8, "response": right[8]},  # pair 7 has no response
        {"pair_id": 99, "response": right[1]},  # not a training pair
    ]
    targets = tmp_path / "teacher.jsonl"
    targets.write_text("".join(json.dumps(record) + "\n" for record in responses))
    hyperparameters = {
        **SHORT,
        "batch_size": 2,
        "per_device_batch_size": 1,
        "learning_rate": 1e-3,
        "freeze_vision_tower": True,
        "target": "teacher",
    }
    config = base_config(
        export_dir,
        tiny_model_dir,
        tmp_path / "out",
        method="sft",
        hyperparameters=hyperparameters,
        sft_targets=str(targets),
        max_steps=2,
        eval_every=0,
        save_steps=0,
    )

    result = succeeded(run_runner(config, tmp_path))

    assert (
        "trl_runner: teacher targets: kept 5 pairs, dropped 2 with a wrong answer and 1 without a response"
        in (result.stdout)
    )
    assert sorted(result.by_step) == [1, 2]
    assert all(LOSS in values for values in result.by_step.values())
    assert HELDOUT_ACCURACY in result.by_step[2] and HELDOUT_ACCURACY not in result.by_step[1]
    assert [Path(path).name for path in result.checkpoints] == ["final"]
    assert result.summaries[0]["training_examples"] == 5
    # The vision tower was frozen, the language model trained (saved under Qwen's names: visual.*, model.*).
    trained = load_file(Path(result.checkpoints[-1]) / "model.safetensors")
    initial = load_file(tiny_model_dir / "model.safetensors")
    assert all((trained[name] == initial[name]).all() for name in initial if name.startswith("visual."))
    assert not all(
        (trained[name] == initial[name]).all() for name in initial if name.startswith("model.layers.")
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"train_file": "/nowhere/train.parquet"},
            "FileNotFoundError: train_file not found: /nowhere/train.parquet",
        ),
        ({"eval_limt": 4}, "unknown run config key(s): eval_limt"),
        ({"hyperparameters": {"group_size": 1}}, "group_size must be at least 2"),
    ],
)
def test_a_bad_config_exits_non_zero_with_a_readable_message(
    export_dir, tiny_model_dir, tmp_path, change, message
):
    config = {**base_config(export_dir, tiny_model_dir, tmp_path / "out", method="grpo"), **change}

    result = run_runner(config, tmp_path)

    assert result.returncode == 1
    assert "trl_runner: error: " in result.stdout and message in result.stdout
    assert "Traceback" in result.stderr
    assert not result.metrics and not result.summaries


def test_sigterm_stops_a_run_at_once(export_dir, tiny_model_dir, tmp_path):
    hyperparameters = {**SHORT, "train_batch_size": 4, "group_size": 2}
    config = base_config(
        export_dir,
        tiny_model_dir,
        tmp_path / "out",
        method="grpo",
        hyperparameters=hyperparameters,
        max_steps=1000,
    )
    config_path = tmp_path / "run.json"
    config_path.write_text(json.dumps({**config, "eval_every": 0, "save_steps": 0}))
    process = subprocess.Popen(
        runner_command(config_path),
        cwd=REPO,
        env=runner_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in process.stdout:
            if parse_metrics_line(line) is not None:
                break
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert process.wait(timeout=30) == -signal.SIGTERM
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---- The config ----


def grpo_run_config(**settings: Any) -> TrlRunConfig:
    hyperparameters = settings.pop("hyperparameters", GrpoHyperparameters())
    return TrlRunConfig(
        method="grpo",
        model="Qwen/Qwen2.5-VL-3B-Instruct",
        train_file="export/train.parquet",
        val_file="export/test.parquet",
        output_dir="runs/1",
        hyperparameters=hyperparameters,
        **settings,
    )


def sft_run_config(**settings: Any) -> TrlRunConfig:
    hyperparameters = settings.pop("hyperparameters", SftHyperparameters(target="label"))
    return TrlRunConfig(
        method="sft",
        model="Qwen/Qwen2.5-VL-3B-Instruct",
        train_file="export/train.parquet",
        val_file="export/test.parquet",
        output_dir="runs/2",
        hyperparameters=hyperparameters,
        **settings,
    )


@pytest.mark.parametrize(
    "config",
    [
        grpo_run_config(max_steps=10, generation_batch_prompts=16, dtype="bf16", resume=True, seed=3),
        sft_run_config(
            hyperparameters=SftHyperparameters(target="teacher", max_steps=4),
            sft_targets="teacher.jsonl",
            processor="processor/",
            eval_every=0,
            eval_limit=0,
        ),
    ],
)
def test_the_config_round_trips_through_json(config):
    stored = json.loads(json.dumps(config.to_json()))

    assert TrlRunConfig.from_json(stored) == config
    assert stored["hyperparameters"] == config.hyperparameters.to_json()


def test_hyperparameters_left_out_are_the_papers():
    config = TrlRunConfig.from_json(
        {"method": "grpo", "model": "m", "train_file": "t", "val_file": "v", "output_dir": "o"}
    )

    assert config.hyperparameters == GrpoHyperparameters()
    assert (config.eval_every, config.eval_limit, config.device, config.dtype) == (50, 200, "auto", "auto")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 2}, "unknown run config key"),
        ({"model": None}, "model must be str"),
        ({"method": "dpo"}, "method must be one of"),
        ({"hyperparameters": {"kl_coeff": 0.1}}, "unknown GRPO hyperparameter"),
        ({"device": "tpu"}, "device must be one of"),
        ({"dtype": "fp16"}, "dtype must be one of"),
        ({"eval_every": -1}, "eval_every must not be negative"),
        ({"max_steps": 0}, "max_steps must be at least 1"),
        ({"sft_targets": "teacher.jsonl"}, "sft_targets is an SFT setting"),
        ({"method": "sft"}, "target 'teacher' needs sft_targets"),
        (
            {"method": "sft", "hyperparameters": {"target": "label"}, "sft_targets": "t.jsonl"},
            "must not be set",
        ),
        (
            {"method": "sft", "hyperparameters": {"target": "label"}, "generation_batch_prompts": 4},
            "generation_batch_prompts is a GRPO setting",
        ),
    ],
)
def test_bad_configs_are_refused(change, message):
    data = {"method": "grpo", "model": "m", "train_file": "t", "val_file": "v", "output_dir": "o", **change}

    with pytest.raises(ValueError, match=message):
        TrlRunConfig.from_json(data)


def test_missing_required_keys_are_named():
    with pytest.raises(ValueError, match="lacks val_file, output_dir"):
        TrlRunConfig.from_json({"method": "grpo", "model": "m", "train_file": "t"})


def test_the_run_max_steps_overrides_the_sft_hyperparameters():
    with_own = SftHyperparameters(target="label", max_steps=7)

    assert sft_run_config(hyperparameters=with_own).effective_max_steps == 7
    assert sft_run_config(hyperparameters=with_own, max_steps=3).effective_max_steps == 3
    assert sft_run_config().effective_max_steps is None
    assert grpo_run_config().effective_max_steps is None


# ---- The hyperparameters in TRL's names ----


@pytest.mark.parametrize(
    ("hyperparameters", "devices", "generation_prompts", "expected"),
    [
        # The test runs: 4 prompts x 2 responses, micro-batches of 4: two accumulated passes, one generation.
        (GrpoHyperparameters(train_batch_size=4, group_size=2), 1, None, (4, 2, 8, 1)),
        # The paper on 8 GPUs: 480 x 5 = 2400 responses a step, 75 micro-batches of 4 on each GPU.
        (GrpoHyperparameters(), 8, None, (4, 75, 2400, 1)),
        # ... on one GPU, generating 16 prompts' 80 responses at a time.
        (GrpoHyperparameters(), 1, 16, (4, 600, 80, 1)),
        # verl's mini-batches: 5 updates of 96 prompts per batch of 480, all generated first.
        (GrpoHyperparameters(ppo_mini_batch_size=96), 8, None, (4, 15, 2400, 5)),
    ],
)
def test_grpo_batches_are_laid_out_on_trl_batches(hyperparameters, devices, generation_prompts, expected):
    layout = grpo_batch_layout(hyperparameters, devices=devices, generation_batch_prompts=generation_prompts)

    assert (
        layout.per_device_train_batch_size,
        layout.gradient_accumulation_steps,
        layout.generation_batch_size,
        layout.updates_per_rollout,
    ) == expected


@pytest.mark.parametrize(
    ("hyperparameters", "devices", "generation_prompts", "message"),
    [
        (GrpoHyperparameters(train_batch_size=3, group_size=2), 1, None, "can't be split into micro-batches"),
        (GrpoHyperparameters(train_batch_size=8, group_size=2), 3, None, "can't be split into micro-batches"),
        (GrpoHyperparameters(ppo_mini_batch_size=96), 1, 16, "can't be used with ppo_mini_batch_size"),
        (GrpoHyperparameters(), 1, 7, "must divide train_batch_size"),
        (GrpoHyperparameters(train_batch_size=8, group_size=2), 1, 1, "must be a multiple of"),
    ],
)
def test_grpo_batches_that_cannot_be_laid_out_are_refused(
    hyperparameters, devices, generation_prompts, message
):
    with pytest.raises(ValueError, match=message):
        grpo_batch_layout(hyperparameters, devices=devices, generation_batch_prompts=generation_prompts)


def test_grpo_config_holds_table_8():
    from trl import GRPOConfig

    args = GRPOConfig(**grpo_config_kwargs(grpo_run_config(), devices=1, use_cpu=True, bf16=False))

    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (4, 600)
    assert (args.generation_batch_size, args.steps_per_generation) == (2400, 600)  # one generation per step
    assert args.num_generations == 5 and args.num_iterations == 1
    assert args.max_completion_length == 2048
    assert args.learning_rate == 1e-6 and args.weight_decay == 0.01
    assert args.optim == "adamw_torch" and args.lr_scheduler_type == "constant" and args.warmup_steps == 0
    assert args.beta == 0.01 and args.use_bias_correction_kl is False
    assert args.epsilon == args.epsilon_high == 0.2
    assert args.loss_type == "grpo" and args.importance_sampling_level == "token"
    assert args.scale_rewards == "none"  # the paper's advantage: the reward minus the group mean
    assert (args.temperature, args.top_p, args.top_k) == (1.0, 1.0, 0)
    assert args.max_grad_norm == 1.0 and args.num_train_epochs == 1 and args.max_steps == -1
    assert args.bf16 is False and args.use_cpu is True
    assert args.logging_steps == 1 and args.report_to == []


def test_grpo_config_follows_the_run_settings():
    from trl import GRPOConfig

    hyperparameters = GrpoHyperparameters(
        train_batch_size=8, group_size=4, normalize_advantage_by_std=True, ppo_mini_batch_size=4
    )
    config = grpo_run_config(
        hyperparameters=hyperparameters, max_steps=5, save_steps=0, gradient_checkpointing=False
    )

    args = GRPOConfig(**grpo_config_kwargs(config, devices=1, use_cpu=True, bf16=True))

    assert args.scale_rewards == "group"
    # Two updates per batch of 8 prompts: 32 responses generated, 16 per optimizer step.
    assert (args.gradient_accumulation_steps, args.generation_batch_size, args.steps_per_generation) == (
        4,
        32,
        8,
    )
    assert args.max_steps == 5 and args.save_strategy == "no" and args.gradient_checkpointing is False
    assert args.bf16 is True


def test_sft_config_holds_table_9():
    from trl import SFTConfig

    config = sft_run_config(save_steps=10)

    args = SFTConfig(**sft_config_kwargs(config, devices=1, use_cpu=True, bf16=False))

    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (4, 64)
    assert args.max_length == 4096 and args.completion_only_loss is True and args.packing is False
    assert args.learning_rate == 1e-6 and args.optim == "adamw_torch" and args.weight_decay == 0.0
    assert args.lr_scheduler_type == "cosine" and args.warmup_steps == 0.1
    assert args.num_train_epochs == 2 and args.max_steps == -1 and args.max_grad_norm == 1.0
    assert args.save_strategy == "steps" and args.save_steps == 10
    assert sft_gradient_accumulation_steps(config.hyperparameters, devices=8) == 8
    with pytest.raises(ValueError, match="multiple of per_device_batch_size x devices"):
        sft_gradient_accumulation_steps(config.hyperparameters, devices=3)


@pytest.mark.parametrize(
    ("dtype", "sft_bf16", "cuda", "cuda_bf16", "expected"),
    [
        ("auto", True, False, False, False),  # the CPU trains in fp32
        ("auto", True, True, True, True),
        ("auto", True, True, False, False),  # an old GPU
        ("auto", False, True, True, False),  # SFT asked for fp32
        ("bf16", True, False, False, True),
        ("fp32", True, True, True, False),
    ],
)
def test_precision(dtype, sft_bf16, cuda, cuda_bf16, expected):
    config = sft_run_config(hyperparameters=SftHyperparameters(target="label", bf16=sft_bf16), dtype=dtype)

    assert precision_resolve(config, cuda=cuda, cuda_bf16=cuda_bf16) is expected


def test_bf16_is_refused_on_a_gpu_without_it():
    with pytest.raises(ValueError, match="does not support bf16"):
        precision_resolve(grpo_run_config(dtype="bf16"), cuda=True, cuda_bf16=False)


# ---- The data ----


def test_export_rows_resolve_image_paths_and_split_the_prompt_at_the_placeholders(export_dir):
    rows = export_rows(export_dir / "test.parquet")

    assert [row.pair_id for row in rows] == list(TEST_PAIRS)
    assert [row.ground_truth for row in rows] == [answer(pair_id) for pair_id in TEST_PAIRS]
    for row in rows:  # relative paths are read from the export's folder; the last row's were absolute
        assert all(Path(path).is_absolute() and Path(path).is_file() for path in row.image_paths)
    (message,) = rows[0].messages()
    question = PROMPT_TEXT.split("<image>\n<image>\n")[1]
    assert message == {
        "role": "user",
        "content": [
            {"type": "image"},
            {"type": "text", "text": "\n"},
            {"type": "image"},
            {"type": "text", "text": "\n" + question},
        ],
    }
    assert image_open(rows[0].image_paths[0]).mode == "RGB"


def test_the_prompt_token_count_is_what_the_processor_makes(export_dir, processor):
    row = export_rows(export_dir / "train.parquet")[0]
    text = processor.apply_chat_template(row.messages(), add_generation_prompt=True, tokenize=False)
    images = [image_open(path) for path in row.image_paths]

    expected = len(processor(text=[text], images=images, return_tensors="pt")["input_ids"][0])

    assert prompt_token_count(processor, row) == expected
    kept, dropped = drop_overlong_prompts(processor, [row, row], expected - 1)
    assert (kept, dropped) == ([], 2)
    assert drop_overlong_prompts(processor, [row], expected) == ([row], 0)


def pair(pair_id: int) -> PairRow:
    return PairRow(
        pair_id=pair_id,
        data_source="twin-test",
        prompt_text=PROMPT_TEXT,
        image_paths=("a.png", "b.png"),
        ground_truth=answer(pair_id),
    )


def test_teacher_targets_keep_the_first_right_response_of_each_pair():
    lines = [
        json.dumps({"pair_id": 1, "response": "So: <answer>no</answer>"}),  # wrong (1 is a yes)
        json.dumps(
            {"pair_id": 1, "response": "<answer>no</answer> no wait <answer>Yes</answer>"}
        ),  # last tag counts
        json.dumps({"pair_id": 1, "response": "<answer>yes</answer> again"}),
        "",
        json.dumps({"pair_id": 2, "response": "<answer>yes</answer>"}),  # wrong
        json.dumps({"pair_id": 4, "response": "<answer> no. </answer>"}),
    ]

    targets = teacher_targets(lines, [pair(1), pair(2), pair(3), pair(4)])

    assert targets.responses == {
        1: "<answer>no</answer> no wait <answer>Yes</answer>",
        4: "<answer> no. </answer>",
    }
    assert (targets.kept, targets.wrong, targets.missing) == (2, 1, 1)


@pytest.mark.parametrize(
    "line", ["not json", json.dumps({"pair": 1}), json.dumps({"pair_id": "1", "response": "x"})]
)
def test_malformed_teacher_lines_are_refused_with_their_number(line):
    with pytest.raises(ValueError, match="line 2"):
        teacher_targets([json.dumps({"pair_id": 1, "response": "x"}), line], [pair(1)])


def test_the_reward_scores_each_completion_against_its_label():
    completions = [
        [{"role": "assistant", "content": "Same mug. <answer>yes</answer>"}],
        [{"role": "assistant", "content": "<answer>yes</answer>"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "<answer>no</answer>"}]}],
        "plain text <answer>no</answer>",
    ]

    rewards = answer_reward(
        completions=completions, ground_truth=["yes", "no", "no", "yes"], prompts=[None] * 4
    )

    assert rewards == [1.0, 0.0, 1.0, 0.0]
    assert label_target("yes") == "<answer>yes</answer>"


def test_protocol_values_keep_trl_names_and_add_the_canonical_ones():
    from training.backends.trl_callbacks import GRPO_METRIC_NAMES, SFT_METRIC_NAMES, protocol_values

    logs = {"reward": 0.5, "kl": 0.01, "completions/mean_length": 12.0, "loss": 0.1, "learning_rate": 1e-6}

    values = protocol_values(logs, GRPO_METRIC_NAMES)

    assert values[RESPONSE_LENGTH] == 12.0 and values["completions/mean_length"] == 12.0
    assert (values[REWARD], values[KL], values[LOSS], values[LEARNING_RATE]) == (0.5, 0.01, 0.1, 1e-6)
    assert protocol_values({"loss": 2.0, "mean_token_accuracy": 0.5}, SFT_METRIC_NAMES) == {
        "loss": 2.0,
        "mean_token_accuracy": 0.5,
    }


def test_sft_examples_put_the_loss_on_the_assistant_turn_only(export_dir, processor):
    """The dataset as SFTTrainer gets it, collated as SFTTrainer collates vision data: only the target and the
    turn's end marker are labelled."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from training.backends.trl_data import sft_dataset

    rows = export_rows(export_dir / "train.parquet")[:2]
    dataset = sft_dataset(
        rows, {rows[0].pair_id: "Same print. <answer>yes</answer>", rows[1].pair_id: "<answer>no</answer>"}
    )
    collator = DataCollatorForVisionLanguageModeling(processor, max_length=4096, completion_only_loss=True)

    batch = collator([dataset[0], dataset[1]])

    labelled = [processor.tokenizer.decode(ids[ids != -100]) for ids in batch["labels"]]
    assert labelled == ["Same print. <answer>yes</answer><|im_end|>\n", "<answer>no</answer><|im_end|>\n"]
    assert batch["image_grid_thw"].shape == (4, 3)  # both images of both pairs
    assert (
        len(sft_dataset(rows, {rows[1].pair_id: "<answer>no</answer>"})) == 1
    )  # a pair without a target is left out


def test_held_out_answers_are_the_same_batched_and_one_by_one(tiny_model_dir, processor, tmp_path):
    """Pairs of different image sizes make prompts of different lengths: left padding must not change the
    greedy answers, and the accuracy counts the right ones."""
    from transformers import AutoModelForImageTextToText

    from training.backends.trl_callbacks import greedy_responses, heldout_accuracy

    rng = np.random.default_rng(1)
    rows = []
    for pair_id, (height, width) in enumerate([(56, 56), (112, 84), (56, 140), (28, 28)], start=1):
        paths = []
        for side in ("a", "b"):
            path = tmp_path / f"{pair_id}{side}.png"
            Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)).save(path)
            paths.append(str(path))
        rows.append(PairRow(pair_id, "twin-test", PROMPT_TEXT, tuple(paths), answer(pair_id)))
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, local_files_only=True).train()

    batched = greedy_responses(model, processor, rows, max_new_tokens=8, batch_size=4)
    one_by_one = greedy_responses(model, processor, rows, max_new_tokens=8, batch_size=1)

    assert batched == one_by_one and len(batched) == 4 and any(batched)
    assert model.training  # put back as it was
    assert heldout_accuracy(model, processor, rows, max_new_tokens=8, batch_size=3) == 0.0  # no answer tags


def test_balanced_batches_reach_trls_sampler_in_their_order():
    """The runner lays the split out with ``balanced_order`` and turns TRL's shuffling off; TRL's sampler, built
    as ``GRPOTrainer._get_train_sampler`` builds it, then hands the prompts out in that order, so every step's
    ``train_batch_size`` prompts are one balanced block."""
    from trl import GRPOConfig
    from trl.trainer.utils import RepeatSampler

    from training.backends.balanced_order import balanced_order

    labels = ["yes"] * 3 + ["no"] * 13
    order = balanced_order(labels, batch_size=8, policy="oversample", seed=1)
    hyperparameters = GrpoHyperparameters(train_batch_size=8, group_size=2, micro_batch_size_per_gpu=4)
    config = grpo_run_config(hyperparameters=hyperparameters, generation_batch_prompts=4)
    args = GRPOConfig(**grpo_config_kwargs(config, devices=1, use_cpu=True, bf16=False))
    sampler = RepeatSampler(
        data_source=order,
        mini_repeat_count=hyperparameters.group_size,
        batch_size=args.generation_batch_size // hyperparameters.group_size,
        repeat_count=args.num_iterations * args.steps_per_generation,
        shuffle=args.shuffle_dataset,
        seed=args.seed,
    )

    assert args.shuffle_dataset is False
    assert list(dict.fromkeys(iter(sampler))) == list(range(len(order)))
    for start in range(0, len(order), 8):
        block = [labels[index] for index in order[start : start + 8]]
        assert block.count("yes") == block.count("no") == 4
    # The 13 "no" set the length: 4 batches of 4 "no" (the last one topped up), the 3 "yes" repeated to match.
    assert len(order) == 32 and set(order) == set(range(16))


def test_without_balance_trl_shuffles_the_split():
    from trl import GRPOConfig

    args = GRPOConfig(
        **grpo_config_kwargs(grpo_run_config(balance="off"), devices=1, use_cpu=True, bf16=False)
    )

    assert args.shuffle_dataset is True
    with pytest.raises(ValueError, match="balance must be one of"):
        grpo_run_config(balance="always")


def test_the_grpo_run_reports_its_length_and_balanced_batches(grpo_run):
    assert "Total training steps: 2" in grpo_run.stdout.splitlines()
    assert (
        "balanced batches (oversample): 8 training pairs (4 yes, 4 no) laid out as 8 in 2 batches"
        in grpo_run.stdout
    )
