"""Training runs from the researcher's side: recording one, checking it, launching it on the GPU queue,
cancelling it.

The work itself (the data, the command, following it) happens on a GPU worker: ``run_execution``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from annotation.models import DatasetSnapshot
from jobs.dispatch import job_send_on_commit
from jobs.models import Job
from jobs.services import JobStateError, job_cancel, job_create
from training.models import TrainingRun
from training.services.run_options import RunOptions, default_hyperparameters, hyperparameters_parse

TRAINING_RUN_JOB = "training_run"

# Which backend trains which way: verl is the distributed GRPO engine; TRL runs GRPO and SFT on one machine.
SUPPORTED = {
    (TrainingRun.Method.GRPO, TrainingRun.Backend.VERL),
    (TrainingRun.Method.GRPO, TrainingRun.Backend.TRL),
    (TrainingRun.Method.SFT, TrainingRun.Backend.TRL),
}


class TrainingRunError(Exception):
    """The run can't be saved or launched as it is; the message says why, for the admin form."""


def training_run_check(run: TrainingRun) -> None:
    """Raises TrainingRunError naming what is wrong with the run's settings (before it is saved or launched)."""
    if (run.method, run.backend) not in SUPPORTED:
        raise TrainingRunError(
            f"The {run.get_backend_display().split(' ')[0]} backend does not run {run.method.upper()}: "
            "use TRL for SFT."
        )
    if run.snapshot_id and not run.snapshot.is_frozen:
        raise TrainingRunError(f"Snapshot {run.snapshot} is not frozen: it is {run.snapshot.status}.")
    if not run.base_model.strip():
        raise TrainingRunError("A base model is needed: a model hub id or a folder on the GPU nodes.")
    if run.gpus_per_node < 1 or run.nodes < 1:
        raise TrainingRunError("A run needs at least one GPU per node and one node.")
    try:
        hyperparameters = hyperparameters_parse(run.method, run.hyperparameters or {})
        options = RunOptions.from_json(run.options)
    except (TypeError, ValueError) as exc:
        raise TrainingRunError(str(exc)) from exc
    if run.backend == TrainingRun.Backend.VERL:
        # The batch layout over the GPUs is checked by the command builder, as verl would check it on the nodes.
        from training.services.run_commands import verl_spec

        try:
            verl_spec(
                run, hyperparameters=hyperparameters, options=options, data_dir=None, output_dir="/check"
            )
        except (TypeError, ValueError) as exc:
            raise TrainingRunError(str(exc)) from exc


def training_run_create(
    *,
    name: str,
    snapshot: DatasetSnapshot,
    method: str = TrainingRun.Method.GRPO,
    backend: str = TrainingRun.Backend.VERL,
    base_model: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    gpus_per_node: int = 4,
    nodes: int = 1,
    options: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> TrainingRun:
    """Records a run (a draft: nothing runs until it is launched). Hyperparameters not given take the paper's
    values for the method."""
    run = TrainingRun(
        name=name,
        snapshot=snapshot,
        method=method,
        backend=backend,
        base_model=base_model or TrainingRun._meta.get_field("base_model").default,
        hyperparameters={**default_hyperparameters(method), **(hyperparameters or {})},
        gpus_per_node=gpus_per_node,
        nodes=nodes,
        options={**RunOptions().to_json(), **(options or {})},
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    training_run_check(run)
    run.save()
    return run


def training_run_launch(*, run: TrainingRun, launched_by: AbstractBaseUser | None = None) -> Job:
    """Queues the run on the GPU queue (a new job each launch; a relaunch resumes from the latest checkpoint)."""
    with transaction.atomic():
        # of=self: PostgreSQL locks no row of the nullable side of an outer join (the job of a draft).
        locked = (
            TrainingRun.objects.select_for_update(of=("self",))
            .select_related("job", "snapshot")
            .get(pk=run.pk)
        )
        if locked.is_active:
            raise TrainingRunError(f"Run {locked} is already {locked.job.status}.")
        training_run_check(locked)
        job = job_create(
            kind=TRAINING_RUN_JOB,
            parameters={
                "run": locked.pk,
                "name": locked.name,
                "method": locked.method,
                "backend": locked.backend,
            },
            created_by=launched_by,
        )
        TrainingRun.objects.filter(pk=run.pk).update(job=job, launcher=settings.TRAINING_LAUNCHER)
        run.job, run.launcher = job, settings.TRAINING_LAUNCHER
        job_send_on_commit(job)
    return job


def training_run_cancel(*, run: TrainingRun) -> Job:
    """Cancels the run's job; the worker following it stops the whole process tree within seconds."""
    if run.job is None:
        raise TrainingRunError(f"Run {run} was never launched.")
    try:
        return job_cancel(job=run.job)
    except JobStateError as exc:
        raise TrainingRunError(str(exc)) from exc
