"""Evaluation runs from the researcher's side: recording one, checking it, launching it, cancelling it.

The work (loading the model, asking the queries, scoring) happens on a worker: ``run_execution``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from evaluation.models import Benchmark, EvaluationRun
from evaluation.services.run_options import EvaluationOptions
from jobs.dispatch import job_send_on_commit
from jobs.models import Job
from jobs.services import JobStateError, job_cancel, job_create
from training.models import TrainingRun

EVALUATION_RUN_JOB = "evaluation_run"


class EvaluationRunError(Exception):
    """The run can't be saved or launched as it is; the message says why, for the admin form."""


def evaluation_run_check(run: EvaluationRun, benchmarks: list[Benchmark] | None = None) -> None:
    """Raises EvaluationRunError naming what is wrong with the run's settings. ``benchmarks``: the run's
    benchmarks when they are not saved yet (an admin form)."""
    try:
        options = EvaluationOptions.from_json(run.options)
    except (TypeError, ValueError) as exc:
        raise EvaluationRunError(str(exc)) from exc
    if not run.model.strip() and not run.training_run_id:
        raise EvaluationRunError(
            "Name the model to evaluate (a hub id, a folder, a served model) or a training run."
        )
    if run.backend == EvaluationRun.Backend.OPENAI:
        if not options.api_base:
            raise EvaluationRunError("The OpenAI-compatible backend needs api_base in the options.")
        if not run.model.strip():
            raise EvaluationRunError("The OpenAI-compatible backend needs the served model's name.")
    if benchmarks is None and run.pk:
        benchmarks = list(run.benchmarks.all())
    if benchmarks is not None:
        if not benchmarks:
            raise EvaluationRunError("Choose at least one benchmark.")
        not_ready = [str(benchmark) for benchmark in benchmarks if not benchmark.is_ready]
        if not_ready:
            raise EvaluationRunError(f"Build these benchmarks first: {', '.join(not_ready)}.")


def evaluation_model_resolve(run: EvaluationRun) -> str:
    """The model the run loads: its own, or its training run's latest checkpoint."""
    if run.model.strip():
        return run.model.strip()
    training_run = run.training_run
    if training_run is None or not training_run.checkpoint:
        raise EvaluationRunError(
            f"Training run {training_run} has no checkpoint yet: wait for it or name the model."
        )
    return training_run.checkpoint


def evaluation_run_training_set_size(run: EvaluationRun) -> int:
    """Training pairs behind the run's model, for the scaling plot."""
    if run.training_set_size is not None:
        return run.training_set_size
    if run.training_run_id:
        statistics = run.training_run.snapshot.statistics or {}
        for row in statistics.get("by_split", []):
            if row.get("name") == "train" and isinstance(row.get("pairs"), int):
                return row["pairs"]
        return run.training_run.snapshot.pairs.filter(split="train").count()
    return 0


def evaluation_run_create(
    *,
    name: str,
    benchmarks: list[Benchmark],
    backend: str = EvaluationRun.Backend.VLLM,
    model: str = "",
    training_run: TrainingRun | None = None,
    options: dict[str, Any] | None = None,
    training_set_size: int | None = None,
    created_by: AbstractBaseUser | None = None,
) -> EvaluationRun:
    """Records a run (a draft until launched). Options not given take the reference evaluation's values."""
    run = EvaluationRun(
        name=name,
        backend=backend,
        model=model,
        training_run=training_run,
        training_set_size=training_set_size,
        options={**EvaluationOptions().to_json(), **(options or {})},
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    evaluation_run_check(run, benchmarks)
    with transaction.atomic():
        run.save()
        run.benchmarks.set(benchmarks)
    return run


def evaluation_run_launch(
    *, run: EvaluationRun, launched_by: AbstractBaseUser | None = None, enqueue: bool = True
) -> Job:
    """Queues the run (a new job each launch; a relaunch asks only the queries not answered yet). With
    ``enqueue=False`` the job is only recorded, for a caller that runs it itself (``manage.py evaluate``)."""
    with transaction.atomic():
        locked = (
            EvaluationRun.objects.select_for_update(of=("self",))
            .select_related("job", "training_run")
            .get(pk=run.pk)
        )
        if locked.is_active:
            raise EvaluationRunError(f"Run {locked} is already {locked.job.status}.")
        evaluation_run_check(locked)
        model = evaluation_model_resolve(locked)
        job = job_create(
            kind=EVALUATION_RUN_JOB,
            parameters={"run": locked.pk, "name": locked.name, "backend": locked.backend, "model": model},
            created_by=launched_by,
        )
        EvaluationRun.objects.filter(pk=run.pk).update(job=job, model_resolved=model)
        run.job, run.model_resolved = job, model
        if enqueue:
            job_send_on_commit(job)
    return job


def evaluation_run_cancel(*, run: EvaluationRun) -> Job:
    """Cancels the run's job; the worker stops after the batch it is generating."""
    if run.job is None:
        raise EvaluationRunError(f"Run {run} was never launched.")
    try:
        return job_cancel(job=run.job)
    except JobStateError as exc:
        raise EvaluationRunError(str(exc)) from exc
