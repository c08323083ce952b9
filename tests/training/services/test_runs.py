"""Recording, checking, launching and cancelling training runs (the researcher's side)."""

import json

import pytest

from annotation.dataset.snapshots import SnapshotParameters, snapshot_create
from annotation.models import DatasetSnapshot
from jobs.models import Job
from training import tasks
from training.backends.sft_hyperparameters import SftHyperparameters
from training.backends.verl_command import GrpoHyperparameters
from training.models import TrainingRun
from training.services.run_commands import training_command
from training.services.run_options import RunOptions
from training.services.runs import (
    TrainingRunError,
    training_run_cancel,
    training_run_check,
    training_run_create,
    training_run_launch,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch):
    """The messages sent to the broker, instead of running them."""
    messages = []
    monkeypatch.setattr(
        tasks.training_run_task,
        "apply_async",
        lambda args, queue: messages.append((args, queue)) or _Result(),
    )
    return messages


class _Result:
    id = "celery-task-1"


def test_a_new_run_takes_the_papers_hyperparameters_and_default_model(frozen_snapshot, researcher):
    run = training_run_create(name="qwen3b", snapshot=frozen_snapshot, created_by=researcher)

    assert run.base_model == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert run.status == "draft" and run.job is None
    hyperparameters = GrpoHyperparameters.from_json(run.hyperparameters)
    assert (hyperparameters.train_batch_size, hyperparameters.group_size, hyperparameters.learning_rate) == (
        480,
        5,
        1e-6,
    )
    assert (hyperparameters.kl_coef, hyperparameters.clip_ratio, hyperparameters.epochs) == (0.01, 0.2, 1)
    assert RunOptions.from_json(run.options) == RunOptions()


def test_an_sft_run_takes_table_9(frozen_snapshot):
    run = training_run_create(name="sft", snapshot=frozen_snapshot, method="sft", backend="trl")

    hyperparameters = SftHyperparameters.from_json(run.hyperparameters)
    assert (hyperparameters.batch_size, hyperparameters.learning_rate, hyperparameters.epochs) == (
        256,
        1e-6,
        2,
    )
    assert hyperparameters.warmup_ratio == 0.1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "sft", "backend": "verl"}, "use TRL for SFT"),
        ({"hyperparameters": {"group_size": 1}}, "group_size"),
        ({"hyperparameters": {"learning_rat": 1e-5}}, "unknown GRPO hyperparameter"),
        ({"gpus_per_node": 7}, "divisible by the number of GPUs"),
        ({"options": {"balance": "sometimes"}}, "balance must be one of"),
        ({"options": {"eval_every": 0}}, "eval_every"),
        ({"base_model": "  "}, "base model"),
    ],
)
def test_settings_verl_or_the_trainer_would_refuse_are_refused_before_launch(
    frozen_snapshot, changes, message
):
    with pytest.raises(TrainingRunError, match=message):
        training_run_create(name="bad", snapshot=frozen_snapshot, **changes)
    assert not TrainingRun.objects.exists()


def test_a_snapshot_that_is_not_frozen_is_refused(frozen_snapshot):
    building = snapshot_create(name="later", parameters=SnapshotParameters(), enqueue=False)
    assert building.status == DatasetSnapshot.Status.BUILDING

    with pytest.raises(TrainingRunError, match="not frozen"):
        training_run_create(name="early", snapshot=building)


def test_launching_queues_the_run_on_the_gpu_queue_once(frozen_snapshot, researcher, sent, settings):
    settings.TRAINING_GPU_QUEUE = "gpu-a100"
    run = training_run_create(name="qwen3b", snapshot=frozen_snapshot)

    job = training_run_launch(run=run, launched_by=researcher)

    run.refresh_from_db()
    assert run.job == job and job.kind == "training_run" and job.status == Job.Status.QUEUED
    assert job.created_by == researcher and job.parameters["run"] == run.pk
    assert sent == [([job.pk], "gpu-a100")]
    assert run.launcher == "local" and run.status == "queued"
    with pytest.raises(TrainingRunError, match="already queued"):
        training_run_launch(run=run)
    assert len(sent) == 1


def test_the_launcher_comes_from_the_configuration(frozen_snapshot, sent, settings):
    settings.TRAINING_LAUNCHER = "ray"
    run = training_run_create(name="cluster", snapshot=frozen_snapshot)

    training_run_launch(run=run)

    run.refresh_from_db()
    assert run.launcher == TrainingRun.Launcher.RAY


def test_cancelling_a_queued_run_cancels_its_job_and_it_can_be_launched_again(frozen_snapshot, sent):
    run = training_run_create(name="qwen3b", snapshot=frozen_snapshot)
    first = training_run_launch(run=run)

    training_run_cancel(run=run)

    run.refresh_from_db()
    assert run.status == "cancelled" and run.job == first
    with pytest.raises(TrainingRunError, match="already cancelled"):
        training_run_cancel(run=run)
    second = training_run_launch(run=run)
    assert second != first and len(sent) == 2


def test_a_draft_cannot_be_cancelled(frozen_snapshot):
    run = training_run_create(name="qwen3b", snapshot=frozen_snapshot)

    with pytest.raises(TrainingRunError, match="never launched"):
        training_run_cancel(run=run)


def test_the_verl_command_of_the_papers_settings(frozen_snapshot, settings, tmp_path):
    settings.TRAINING_PYTHON = "/opt/venv/bin/python"
    run = training_run_create(name="paper", snapshot=frozen_snapshot, gpus_per_node=4)

    command = training_command(run)

    folder = settings.TRAINING_ROOT / f"run-{run.pk}"
    assert command.cwd == folder / "data"  # the export's image paths are relative to it
    assert command.argv[:3] == ["/opt/venv/bin/python", "-m", "verl.trainer.main_ppo"]
    overrides = dict(item.split("=", 1) for item in command.argv[3:])
    assert overrides["data.train_batch_size"] == "480"
    assert overrides["actor_rollout_ref.rollout.n"] == "5"
    assert overrides["actor_rollout_ref.actor.optim.lr"] == "1e-06"
    assert overrides["actor_rollout_ref.actor.kl_loss_type"] == "low_var_kl"
    assert overrides["trainer.n_gpus_per_node"] == "4" and overrides["trainer.nnodes"] == "1"
    assert overrides["trainer.default_local_dir"] == str(folder / "checkpoints")
    assert overrides["reward.custom_reward_function.name"] == "compute_score"
    assert overrides["data.train_files"] == f"[{folder / 'data' / 'train.parquet'}]"
    assert overrides["data.shuffle"] == "False" and overrides["data.custom_cls.name"]
    assert command.text.startswith(f"cd {folder / 'data'} && /opt/venv/bin/python -m verl.trainer.main_ppo ")


def test_a_trl_run_writes_its_configuration_file(frozen_snapshot):
    run = training_run_create(
        name="one-gpu", snapshot=frozen_snapshot, backend="trl", options={"eval_limit": 8, "device": "cpu"}
    )

    command = training_command(run)

    assert command.argv[1:3] == ["-m", "training.backends.trl_runner"]
    path, content = command.config_file
    assert command.argv[-1] == str(path)
    assert '"eval_limit": 8' in content and '"method": "grpo"' in content


def test_check_accepts_every_supported_pair(frozen_snapshot):
    for method, backend in (("grpo", "verl"), ("grpo", "trl"), ("sft", "trl")):
        run = TrainingRun(name="x", snapshot=frozen_snapshot, method=method, backend=backend)
        run.hyperparameters = {}
        training_run_check(run)


def test_the_command_of_a_paper_default_run_passes_verls_start_up_checks(frozen_snapshot, tmp_path):
    """The command as a launch would run it (model folder aside): composed against verl 0.9.1's own config and
    checked as verl checks it before training."""
    from tests.training.backends.test_verl_command import composed, verl_start_checks
    from training.backends.tiny_vlm import tiny_qwen_vl_processor_save

    model = tiny_qwen_vl_processor_save(tmp_path / "model")  # verl reads the model's config.json
    config_file = model / "config.json"
    config_file.write_text(
        json.dumps(
            {**json.loads(config_file.read_text()), "architectures": ["Qwen2_5_VLForConditionalGeneration"]}
        )
    )
    run = training_run_create(name="paper", snapshot=frozen_snapshot, base_model=str(model), gpus_per_node=8)

    overrides = training_command(run).argv[3:]
    config = composed(overrides)

    verl_start_checks(config)
    assert config.data.train_batch_size == 480 and config.actor_rollout_ref.rollout.n == 5
    assert config.data.custom_cls.name == "BalancedRLHFDataset" and config.data.balance == "oversample"
