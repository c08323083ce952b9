"""The training command of a run, for its backend: verl's ``main_ppo`` with Hydra overrides, or the TRL runner.

Both read the run's verl export, unpacked in the run's folder (``data/train.parquet``, ``data/test.parquet``,
``data/images/``), and write checkpoints to ``checkpoints/``. The command is shown on the run's page before it
runs (with the folders it will have on the GPU worker) and stored as launched.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from training.backends.sft_hyperparameters import SftHyperparameters
from training.backends.verl_command import GrpoHyperparameters, VerlRunSpec, verl_command
from training.models import TrainingRun
from training.services.run_options import RunOptions, hyperparameters_parse

TRL_RUNNER_MODULE = "training.backends.trl_runner"


@dataclass(frozen=True)
class TrainingCommand:
    """What to run, where, and with which extra environment; ``text`` is the line shown on the run's page."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    config_file: tuple[Path, str] | None = None  # (path, content) written before the command starts

    @property
    def text(self) -> str:
        line = shlex.join(self.argv)
        return f"cd {shlex.quote(str(self.cwd))} && {line}"


def run_folder(run: TrainingRun) -> Path:
    """The run's folder on the GPU worker (or the shared filesystem of a Ray cluster)."""
    return Path(settings.TRAINING_ROOT) / f"run-{run.pk}"


def training_python() -> str:
    return settings.TRAINING_PYTHON or sys.executable


def training_command(run: TrainingRun, *, folder: Path | None = None) -> TrainingCommand:
    """The run's command; ``folder`` is where its data and checkpoints are (the run's folder by default)."""
    folder = folder or run_folder(run)
    hyperparameters = hyperparameters_parse(run.method, run.hyperparameters)
    options = RunOptions.from_json(run.options)
    data_dir = folder / "data"
    output_dir = folder / "checkpoints"
    env = {"PYTHONUNBUFFERED": "1"}
    if run.backend == TrainingRun.Backend.VERL:
        assert isinstance(hyperparameters, GrpoHyperparameters)
        spec = verl_spec(
            run,
            hyperparameters=hyperparameters,
            options=options,
            data_dir=data_dir,
            output_dir=str(output_dir),
        )
        # Image paths in the export are relative to the unpacked archive: verl runs from there.
        return TrainingCommand(argv=verl_command(spec, python=training_python()), cwd=data_dir, env=env)
    config_path = folder / "trl_config.json"
    config = trl_config(
        run, hyperparameters=hyperparameters, options=options, data_dir=data_dir, output_dir=output_dir
    )
    return TrainingCommand(
        argv=[training_python(), "-m", TRL_RUNNER_MODULE, "--config", str(config_path)],
        cwd=Path(settings.BASE_DIR),  # where the training package imports from
        env=env,
        config_file=(config_path, json.dumps(config, indent=2, sort_keys=True)),
    )


def verl_spec(
    run: TrainingRun,
    *,
    hyperparameters: GrpoHyperparameters,
    options: RunOptions,
    data_dir: Path | None,
    output_dir: str,
) -> VerlRunSpec:
    """The verl run of a GRPO run (raises ValueError when verl would refuse its batch layout)."""
    data_dir = data_dir or Path("/data")
    return VerlRunSpec(
        model=run.base_model,
        train_files=[str(data_dir / "train.parquet")],
        val_files=[str(data_dir / "test.parquet")],
        output_dir=output_dir,
        experiment_name=f"{run.name}-run{run.pk or 0}",
        project_name="twin",
        gpus_per_node=run.gpus_per_node,
        nodes=run.nodes,
        hyperparameters=hyperparameters,
        balance=options.balance,
        seed=options.seed,
        logger=[
            "console"
        ],  # the worker reads metrics from the console lines (run_output.verl_console_metrics)
        save_freq=options.save_every,
        test_freq=options.eval_every,
        val_before_train=options.validate_before_training,
        extra_overrides=tuple(options.extra_overrides),
    )


def trl_config(
    run: TrainingRun,
    *,
    hyperparameters: GrpoHyperparameters | SftHyperparameters,
    options: RunOptions,
    data_dir: Path,
    output_dir: Path,
) -> dict:
    """The TRL runner's configuration file (``training.backends.trl_runner.TrlRunConfig``)."""
    from training.backends.trl_runner import TrlRunConfig

    config = TrlRunConfig(
        method=run.method,
        model=run.base_model,
        train_file=str(data_dir / "train.parquet"),
        val_file=str(data_dir / "test.parquet"),
        output_dir=str(output_dir),
        hyperparameters=hyperparameters,
        eval_every=max(options.eval_every, 0),  # -1 (never) is 0 for the runner: only after the last step
        eval_limit=options.eval_limit,
        save_steps=max(options.save_every, 0),  # 0: only the final model
        seed=options.seed,
        device=options.device,
        balance=options.balance,
        sft_targets=options.sft_targets or None,
        resume=True,  # a run launched again continues from its latest checkpoint, as verl's does
    )
    return config.to_json()
