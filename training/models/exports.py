"""Dataset exports: archives of a frozen snapshot in the formats trainers read."""

from django.conf import settings
from django.db import models


class DatasetExport(models.Model):
    """One archive of a frozen snapshot in one format, built by a job, downloaded with its checksum."""

    class Format(models.TextChoices):
        VERL = "verl", "verl (parquet for RLHFDataset, multimodal GRPO)"
        HUGGINGFACE = "huggingface", "Hugging Face datasets (parquet with image columns)"
        PLAIN = "plain", "Plain (JSONL and an images folder)"

    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    snapshot = models.ForeignKey(
        "annotation.DatasetSnapshot", on_delete=models.CASCADE, related_name="exports"
    )
    format = models.CharField(max_length=16, choices=Format.choices)
    parameters = models.JSONField(default=dict, blank=True, help_text="max_side, image_root.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING, db_index=True)
    file = models.FileField(upload_to="exports/", max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the archive.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    row_count = models.PositiveIntegerField(default=0)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.snapshot} as {self.format} (#{self.pk})"

    @property
    def file_name(self) -> str:
        return f"{self.snapshot.name}-v{self.snapshot.version}-{self.format}.zip"
