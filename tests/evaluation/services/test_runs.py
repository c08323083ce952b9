"""Evaluation runs from the researcher's side: the model a run loads (its own, or its training run's
checkpoint), the training-set size the scaling plot uses, and relaunching."""

import pytest

from evaluation.services.runs import (
    EvaluationRunError,
    evaluation_run_create,
    evaluation_run_launch,
    evaluation_run_training_set_size,
)
from tests.evaluation.services.test_benchmarks import _folder_benchmark
from training.models import TrainingRun
from training.services.runs import training_run_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_without_a_model_evaluates_its_training_runs_checkpoint(tmp_path, frozen_snapshot, monkeypatch):
    from evaluation import tasks

    monkeypatch.setattr(
        tasks.evaluation_run_task, "apply_async", lambda args, queue: None
    )  # not run: no model
    benchmark = _folder_benchmark(tmp_path, pair_count=2, multi_count=0)
    training = training_run_create(name="t", snapshot=frozen_snapshot, backend=TrainingRun.Backend.TRL)
    run = evaluation_run_create(name="after", benchmarks=[benchmark], backend="vllm", training_run=training)

    with pytest.raises(EvaluationRunError, match="no checkpoint yet"):
        evaluation_run_launch(run=run)

    TrainingRun.objects.filter(pk=training.pk).update(checkpoint="/checkpoints/run-1/global_step_30")
    job = evaluation_run_launch(run=run)
    run.refresh_from_db()
    assert run.model_resolved == job.parameters["model"] == "/checkpoints/run-1/global_step_30"
    with pytest.raises(EvaluationRunError, match="already queued"):
        evaluation_run_launch(run=run)

    train_pairs = frozen_snapshot.pairs.filter(split="train").count()
    assert train_pairs and evaluation_run_training_set_size(run) == train_pairs
    base = evaluation_run_create(
        name="base", benchmarks=[benchmark], backend="vllm", model="Qwen/Qwen2.5-VL-3B"
    )
    assert evaluation_run_training_set_size(base) == 0
