"""A launched run on the worker: data, command, following its output, failure and cancel.

The verl runs use ``verl_stand_in.py`` in place of verl's GPU trainer (see its docstring); the TRL backend really
trains, in tests/training/test_training_end_to_end.py.
"""

import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from jobs.models import Job
from training import tasks
from training.backends import run_output
from training.models import DatasetExport, TrainingMetric, TrainingRun
from training.services.run_execution import training_run_execute
from training.services.runs import training_run_cancel, training_run_create, training_run_launch

pytestmark = pytest.mark.django_db(transaction=True)

STAND_IN = Path(__file__).with_name("verl_stand_in.py")


@pytest.fixture
def verl_stand_in(settings, tmp_path):
    """TRAINING_PYTHON pointed at the stand-in; the variable STAND_IN_MODE picks train, fail or hang."""
    wrapper = tmp_path / "python-with-verl"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" "$@"\n')
    wrapper.chmod(0o755)
    settings.TRAINING_PYTHON = str(wrapper)
    settings.TRAINING_STOP_GRACE_SECONDS = 5
    return wrapper


def small_run(snapshot, **changes):
    values = {
        "name": "small",
        "snapshot": snapshot,
        "hyperparameters": {"train_batch_size": 4, "group_size": 2, "max_steps": 3},
        "gpus_per_node": 1,
        "options": {"eval_every": 3, "save_every": 3},
    }
    return training_run_create(**{**values, **changes})


def test_a_verl_run_builds_its_data_runs_and_records_metrics_and_checkpoint(
    frozen_snapshot, verl_stand_in, researcher
):
    run = small_run(frozen_snapshot)

    job = training_run_launch(run=run, launched_by=researcher)  # eager: the task runs here

    run.refresh_from_db()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.progress_done, job.progress_total) == (3, 3)
    export = run.export
    assert export.format == DatasetExport.Format.VERL and export.status == DatasetExport.Status.READY
    folder = Path(run.output_dir)
    assert (folder / "data" / "train.parquet").is_file() and (folder / "data" / "images").is_dir()
    assert run.command.startswith(f"cd {folder / 'data'} && {verl_stand_in} -m verl.trainer.main_ppo ")
    assert run.checkpoint == str(folder / "checkpoints" / "global_step_3")
    steps = {metric.step: metric.values for metric in TrainingMetric.objects.filter(run=run)}
    assert sorted(steps) == [0, 1, 2, 3]
    assert steps[0] == {"val-core/twin/reward/mean@1": 0.5, run_output.HELDOUT_ACCURACY: 0.5}
    assert steps[3][run_output.REWARD] == 0.75 and steps[3][run_output.HELDOUT_ACCURACY] == 0.75
    assert steps[2][run_output.KL] == pytest.approx(0.002) and steps[2][run_output.RESPONSE_LENGTH] == 102
    assert run.summary["steps"] == 3 and run.summary["final_metrics"][run_output.REWARD] == 0.75
    log = (folder / "train.log").read_text()
    assert f"dataset len: {export_rows(export, 'train')}" in log and "Total training steps: 3" in log
    assert job.log_entries.filter(message__startswith="Total training steps").exists()


def export_rows(export: DatasetExport, split: str) -> int:
    return export.snapshot.pairs.filter(split=split).count()


def test_a_failed_run_shows_the_exit_code_and_the_last_lines(frozen_snapshot, verl_stand_in, monkeypatch):
    monkeypatch.setenv("STAND_IN_MODE", "fail")
    run = small_run(frozen_snapshot)

    job = training_run_launch(run=run)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("The training command exited with code 1.")
    assert "torch.OutOfMemoryError: CUDA out of memory" in job.error


def test_launching_again_reuses_the_unpacked_data(frozen_snapshot, verl_stand_in):
    run = small_run(frozen_snapshot)
    training_run_launch(run=run)
    first_export = TrainingRun.objects.get(pk=run.pk).export

    second = training_run_launch(run=run)

    second.refresh_from_db()
    assert second.status == Job.Status.SUCCEEDED
    assert not second.log_entries.filter(message__startswith="Unpacked").exists()
    assert TrainingRun.objects.get(pk=run.pk).export == first_export
    assert DatasetExport.objects.count() == 1


def test_cancelling_a_running_run_stops_its_process_tree(
    frozen_snapshot, verl_stand_in, monkeypatch, settings
):
    monkeypatch.setenv("STAND_IN_MODE", "hang")
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(tasks.training_run_task, "apply_async", lambda args, queue: None)
    run = small_run(frozen_snapshot)
    job = training_run_launch(run=run)
    worker = threading.Thread(target=lambda: training_run_execute(job=Job.objects.get(pk=job.pk)))
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while not TrainingMetric.objects.filter(run=run, step=1).exists():
            assert time.monotonic() < deadline and worker.is_alive(), "the run never reported step 1"
            time.sleep(0.2)
        run.refresh_from_db()
        pid = int(run.external_id.split(":")[1].split("@")[0])
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]

        training_run_cancel(run=run)
        worker.join(timeout=60)
    finally:
        worker.join(timeout=60)

    assert not worker.is_alive()
    assert all(not process.is_running() or process.status() == psutil.STATUS_ZOMBIE for process in tree)
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.log_entries.filter(message="The training processes are stopped.").exists()
