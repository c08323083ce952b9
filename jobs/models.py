"""One job row per long-running piece of work (an import, an embedding run, a training run...).

Every stage of the pipeline records its work here, so researchers follow progress, errors and results in one
place whatever the stage.
"""

from django.conf import settings
from django.db import models


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=64, db_index=True, help_text="What the job does, e.g. catalog_import.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    parameters = models.JSONField(default=dict, blank=True)
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(null=True, blank=True, help_text="Empty while unknown.")
    message = models.CharField(max_length=500, blank=True, help_text="What the job is doing right now.")
    result = models.JSONField(default=dict, blank=True, help_text="A summary written when the job succeeds.")
    result_file = models.FileField(
        upload_to="jobs/", blank=True, help_text="A report or artifact to download."
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    celery_task_id = models.CharField(max_length=255, blank=True)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        help_text="The job this one is a stage of (a pipeline's stages); cancelling the parent cancels it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from the worker.")
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task was last sent to the workers (empty: not yet)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "status"])]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES

    @property
    def progress_fraction(self) -> float | None:
        if not self.progress_total:
            return None
        return min(1.0, self.progress_done / self.progress_total)


class JobChunk(models.Model):
    """One piece of a job that several workers share (a batch of images to embed, an instance to fine-tune on).

    A chunk is claimed by one worker at a time; a chunk whose worker stopped sending heartbeats can be claimed
    again, so every chunk's work must be safe to repeat.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    payload = models.JSONField(default=dict, help_text="What the chunk covers, e.g. image ids.")
    units_total = models.PositiveIntegerField(default=0)
    units_done = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker claimed it.")
    worker = models.CharField(max_length=255, blank=True, help_text="The Celery task that holds it.")
    result = models.JSONField(default=dict, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="job_chunk_unique_number")]
        indexes = [models.Index(fields=["job", "status"])]

    def __str__(self) -> str:
        return f"chunk {self.number} of job #{self.job_id} ({self.status})"


class JobLogEntry(models.Model):
    """A line of a job's log: what a person following the job wants to read (stages, counts, warnings)."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_entries")
    at = models.DateTimeField(auto_now_add=True)
    level = models.CharField(max_length=16, choices=Level.choices, default=Level.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["job", "at", "id"]
        verbose_name_plural = "job log entries"

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:80]}"


class LaunchedByJobMixin:
    """For a run that is launched as a job (a training run, an evaluation run): its status is its latest job's."""

    job_id: int | None
    job: Job | None

    @property
    def status(self) -> str:
        """The latest launch's status, or "draft" before the first launch."""
        return self.job.status if self.job_id else "draft"

    @property
    def is_active(self) -> bool:
        return bool(self.job_id and not self.job.is_finished)
