"""A training run on the GPU worker: the data, the command, and following it to the end.

1. The run's data: the snapshot's verl export (built here if the snapshot has none yet), unpacked in the run's
   folder once (a relaunch finds it there, checked by the archive's SHA-256).
2. The command (``run_commands``), started as a local process or submitted to a Ray cluster
   (``settings.TRAINING_LAUNCHER``).
3. Following it: every output line goes to the run's log file; the newest lines, the metrics
   (``training.backends.run_output``) and the latest checkpoint go to the database for the run's page; the
   job's heartbeat and progress (steps) are updated, and a cancel from the page stops the whole process tree.
4. The end: exit code 0 finishes the job with the summary; anything else fails it with the exit code and the
   last lines of output, which is what a researcher needs to see why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import time
from collections import deque
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from annotation.importing.archive import zip_extract_safely
from jobs.models import Job, JobLogEntry
from jobs.services import JobCancelled, job_advance, job_fail, job_finish, job_log, job_running
from training.backends import run_output
from training.backends.launchers import (
    LocalProcess,
    RayJob,
    TrainingProcess,
    process_is_training,
    process_tree_stop,
    ray_job_exists,
)
from training.models import DatasetExport, TrainingMetric, TrainingRun
from training.services.exports import export_create, export_run_inline
from training.services.run_commands import TrainingCommand, run_folder, training_command

logger = logging.getLogger(__name__)

# How often the loop writes what it read to the database and looks for a cancel, at the most.
FLUSH_SECONDS = 2.0
# Lines kept in the failure message of a failed run.
FAILURE_TAIL_LINES = 40
LOG_LINE_MAX_CHARS = 2000


def training_run_execute(*, job: Job) -> None:
    """Carries out the run of a ``training_run`` job, from the data to the last checkpoint."""
    run = TrainingRun.objects.select_related("snapshot").get(pk=job.parameters["run"])
    with job_running(job=job):
        folder = run_folder(run)
        folder.mkdir(parents=True, exist_ok=True)
        export = _verl_export(run, job)
        _unpack(export, folder / "data", job)
        command = training_command(run, folder=folder)
        if command.config_file is not None:
            path, content = command.config_file
            path.write_text(content)
        TrainingRun.objects.filter(pk=run.pk).update(
            export=export, output_dir=str(folder), command=command.text, checkpoint="", summary={}
        )
        job_log(job=job, message=f"Starting ({run.launcher or settings.TRAINING_LAUNCHER}): {command.text}")
        _stop_leftover(run)
        process = _start(run, command)
        try:
            outcome = _follow(run, job, process, folder)
        except BaseException:
            # The worker can't follow the run any more (database gone, worker shutting down): the run must not
            # go on unwatched, writing checkpoints that a relaunch would race with.
            process.stop(grace_seconds=settings.TRAINING_STOP_GRACE_SECONDS)
            raise
        _finish(run, job, process, outcome)


def _verl_export(run: TrainingRun, job: Job) -> DatasetExport:
    """The snapshot's newest ready verl export with the default image size and relative paths, else a new one."""
    export = (
        DatasetExport.objects.filter(
            snapshot=run.snapshot,
            format=DatasetExport.Format.VERL,
            status=DatasetExport.Status.READY,
            parameters__image_root="",
        )
        .order_by("-finished_at", "-id")
        .first()
    )
    if export is not None:
        return export
    job_log(job=job, message=f"Snapshot {run.snapshot} has no verl export yet: building one.")
    export = export_create(
        snapshot=run.snapshot, format=DatasetExport.Format.VERL, created_by=job.created_by, enqueue=False
    )
    export_run_inline(export=export)
    export.refresh_from_db()
    if export.status != DatasetExport.Status.READY:
        raise RuntimeError(f"The verl export of snapshot {run.snapshot} failed: see job #{export.job_id}.")
    return export


def _unpack(export: DatasetExport, data_dir: Path, job: Job) -> None:
    """Unpacks the export into data_dir, unless that archive (same SHA-256) is already there."""
    marker = data_dir / ".export-sha256"
    if marker.exists() and marker.read_text().strip() == export.sha256:
        return
    if data_dir.exists():
        shutil.rmtree(data_dir)
    partial = data_dir.with_name(data_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    digest = hashlib.sha256()
    archive_path = partial / "export.zip"
    with export.file.open("rb") as source, archive_path.open("wb") as target:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            target.write(block)
    if digest.hexdigest() != export.sha256:
        raise RuntimeError(
            f"Export #{export.pk}'s archive does not match its SHA-256: it was changed or damaged."
        )
    zip_extract_safely(
        archive=archive_path,
        destination=partial,
        max_total_bytes=settings.CATALOG_MAX_ZIP_UNCOMPRESSED_BYTES,
        max_entries=settings.CATALOG_MAX_ZIP_ENTRIES,
    )
    archive_path.unlink()
    (partial / ".export-sha256").write_text(export.sha256)
    partial.rename(data_dir)
    job_log(job=job, message=f"Unpacked export #{export.pk} ({export.row_count:,} pairs) into {data_dir}.")


def _start(run: TrainingRun, command: TrainingCommand) -> TrainingProcess:
    if (run.launcher or settings.TRAINING_LAUNCHER) == TrainingRun.Launcher.RAY:
        # One submission id per launch: a worker that restarts after dying follows the job it had submitted.
        submission_id = f"twin-run-{run.pk}-job-{run.job_id}"
        if ray_job_exists(address=settings.TRAINING_RAY_ADDRESS, submission_id=submission_id):
            ray_job = RayJob.attach(address=settings.TRAINING_RAY_ADDRESS, submission_id=submission_id)
        else:
            ray_job = RayJob.submit(
                command.argv,
                cwd=command.cwd,
                env=command.env,
                address=settings.TRAINING_RAY_ADDRESS,
                submission_id=submission_id,
            )
        TrainingRun.objects.filter(pk=run.pk).update(external_id=ray_job.external_id)
        return ray_job
    process = LocalProcess.start(command.argv, cwd=command.cwd, env={**os.environ, **command.env})
    TrainingRun.objects.filter(pk=run.pk).update(external_id=f"{process.external_id}@{socket.gethostname()}")
    return process


def _stop_leftover(run: TrainingRun) -> None:
    """Stops a local training process that an earlier worker of this machine left running when it died."""
    match = re.fullmatch(r"pid:(\d+)@(.+)", run.external_id)
    if match is None or match.group(2) != socket.gethostname():
        return
    pid = int(match.group(1))
    if process_is_training(pid, run_folder(run)):
        logger.warning("Stopping process %s, left running by an earlier worker for run %s", pid, run.pk)
        process_tree_stop(pid, grace_seconds=settings.TRAINING_STOP_GRACE_SECONDS)


class _Outcome:
    def __init__(self) -> None:
        self.tail: deque[str] = deque(maxlen=FAILURE_TAIL_LINES)
        self.cancelled = False
        self.summary: dict[str, Any] = {}
        self.last_step = 0
        self.exit_code: int | None = None


def _follow(run: TrainingRun, job: Job, process: TrainingProcess, folder: Path) -> _Outcome:
    """Reads the command's output until it ends or the job is cancelled; stops the process tree on a cancel."""
    outcome = _Outcome()
    pending_log: list[str] = []
    pending_metrics: dict[int, dict[str, float]] = {}
    checkpoint = ""
    total_steps: int | None = None
    last_flush = time.monotonic()
    with (folder / "train.log").open("a", encoding="utf-8") as log_file:
        while True:
            lines = process.read_lines(timeout=1.0)
            for line in lines:
                log_file.write(line + "\n")
                outcome.tail.append(line)
                pending_log.append(line[:LOG_LINE_MAX_CHARS])
                step = run_output.parse_metrics_line(line) or run_output.verl_console_metrics(line)
                if step is not None:
                    pending_metrics.setdefault(step.step, {}).update(step.values)
                    outcome.last_step = max(outcome.last_step, step.step)
                    continue
                checkpoint = run_output.parse_checkpoint_line(line) or checkpoint
                outcome.summary = run_output.parse_summary_line(line) or outcome.summary
                total_steps = run_output.parse_total_steps(line) or total_steps
            log_file.flush()
            code = process.exit_code() if not lines else None
            if code is None and time.monotonic() - last_flush < FLUSH_SECONDS:
                continue
            try:
                _flush(run, job, pending_log, pending_metrics, checkpoint, outcome.last_step, total_steps)
            except JobCancelled:
                outcome.cancelled = True
                job_log(
                    job=job,
                    message="Cancelled: stopping the training processes.",
                    level=JobLogEntry.Level.WARNING,
                )
                process.stop(grace_seconds=settings.TRAINING_STOP_GRACE_SECONDS)
                # Log what the processes printed while they stopped, then record that they are gone.
                for line in process.read_lines(timeout=0.5):
                    log_file.write(line + "\n")
                job_log(
                    job=job, message="The training processes are stopped.", level=JobLogEntry.Level.WARNING
                )
                return outcome
            pending_log, pending_metrics = [], {}
            last_flush = time.monotonic()
            if code is not None:
                outcome.exit_code = code
                return outcome


def _flush(
    run: TrainingRun,
    job: Job,
    lines: list[str],
    metrics: dict[int, dict[str, float]],
    checkpoint: str,
    step: int,
    total_steps: int | None,
) -> None:
    """Writes what was read since the last flush; raises JobCancelled if the run was cancelled meanwhile."""
    with transaction.atomic():
        if lines:
            JobLogEntry.objects.bulk_create([JobLogEntry(job=job, message=line) for line in lines])
            _prune_log(job)
        for number, values in metrics.items():
            metric, created = TrainingMetric.objects.get_or_create(
                run=run, step=number, defaults={"values": values}
            )
            if not created:  # validation and training of one step may come on separate lines
                metric.values = {**metric.values, **values}
                metric.save(update_fields=["values", "at"])
        if checkpoint:
            TrainingRun.objects.filter(pk=run.pk).update(checkpoint=checkpoint)
    message = f"Step {step:,}" + (f" of {total_steps:,}" if total_steps else "") if step else "Starting"
    job_advance(job=job, done=step, total=total_steps, message=message)


def _prune_log(job: Job) -> None:
    """Keeps the newest TRAINING_LOG_LINES_KEPT lines in the database (the file keeps them all)."""
    keep = settings.TRAINING_LOG_LINES_KEPT
    boundary = (
        JobLogEntry.objects.filter(job=job)
        .order_by("-id")
        .values_list("id", flat=True)[keep : keep + 1]
        .first()
    )
    if boundary is not None:
        JobLogEntry.objects.filter(job=job, id__lte=boundary).delete()


def _finish(run: TrainingRun, job: Job, process: TrainingProcess, outcome: _Outcome) -> None:
    if outcome.cancelled:
        return
    code = outcome.exit_code
    checkpoint = _final_checkpoint(run) or TrainingRun.objects.values_list("checkpoint", flat=True).get(
        pk=run.pk
    )
    if code == 0:
        summary = {**outcome.summary, "steps": outcome.summary.get("steps", outcome.last_step)}
        last = TrainingMetric.objects.filter(run=run).order_by("-step").first()
        if last is not None:
            summary["final_metrics"] = {
                name: last.values[name] for name in run_output.PLOTTED_METRICS if name in last.values
            }
        TrainingRun.objects.filter(pk=run.pk).update(summary=summary, checkpoint=checkpoint)
        job_finish(
            job=job, result={"run": run.pk, "checkpoint": checkpoint, **summary}, message="Training done."
        )
        return
    detail = process.status_message() + "\n" if isinstance(process, RayJob) else ""
    tail = "\n".join(outcome.tail)
    TrainingRun.objects.filter(pk=run.pk).update(checkpoint=checkpoint)
    job_fail(
        job=job,
        error=f"The training command exited with code {code}.\n{detail}\nLast lines of its output:\n{tail}",
    )


def _final_checkpoint(run: TrainingRun) -> str:
    """verl's latest checkpoint folder (it records the step in ``latest_checkpointed_iteration.txt``)."""
    if run.backend != TrainingRun.Backend.VERL:
        return ""
    tracker = run_folder(run) / "checkpoints" / "latest_checkpointed_iteration.txt"
    try:
        step = int(tracker.read_text().strip())
    except (OSError, ValueError):
        return ""
    return str(tracker.parent / f"global_step_{step}")
