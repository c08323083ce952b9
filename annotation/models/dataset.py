"""Frozen dataset snapshots: the pairs as they were when a researcher froze them.

A snapshot copies its pairs into its own rows (the images, instances and category each pair had at freezing),
so later review, merges or rejections never change it. Its content hash covers what a consumer sees: the two
images' bytes (their SHA-256), the label, the source and the split of every pair, in order.
"""

from django.conf import settings
from django.db import models

from annotation.dataset.questions import pair_answer
from annotation.models.catalog import Category, Image, Instance


class DatasetSnapshot(models.Model):
    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        FROZEN = "frozen", "Frozen"
        FAILED = "failed", "Failed"

    name = models.SlugField(
        max_length=100, help_text='What the dataset is, e.g. "twin"; versions count per name.'
    )
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING, db_index=True)
    parameters = models.JSONField(default=dict, help_text="The pair rules and the sample it was frozen with.")
    content_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the pairs, in order.")
    pair_count = models.PositiveIntegerField(default=0)
    positive_count = models.PositiveIntegerField(default=0)
    negative_count = models.PositiveIntegerField(default=0)
    image_count = models.PositiveIntegerField(default=0)
    instance_count = models.PositiveIntegerField(default=0)
    statistics = models.JSONField(
        default=dict, blank=True, help_text="Counts by label, source, split, category."
    )
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    frozen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="snapshot_name_version_unique")
        ]
        permissions = [("read_dataset", "Can read dataset snapshots over the API and download their exports")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_frozen(self) -> bool:
        return self.status == self.Status.FROZEN


class SnapshotPair(models.Model):
    """One question of the dataset: are ``image_a`` and ``image_b`` the same object instance?"""

    id = models.BigAutoField(primary_key=True)
    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="pairs")
    # PROTECT: an image or instance a frozen snapshot shows can't be deleted from under it.
    image_a = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    image_b = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    same = models.BooleanField(help_text="The answer: yes when both images show the same object instance.")
    source = models.CharField(max_length=16, help_text="positive, hard_negative, synthetic or random.")
    split = models.CharField(max_length=8, help_text="train or eval; by instance.")
    instance_a = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="+")
    instance_b = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="+")
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="+", help_text="Instance a's category at freezing."
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["snapshot", "image_a", "image_b"], name="snapshot_pair_images"),
            models.Index(fields=["snapshot", "split", "id"], name="snapshot_pair_split"),
            models.Index(fields=["snapshot", "source", "id"], name="snapshot_pair_source"),
            models.Index(fields=["snapshot", "category", "id"], name="snapshot_pair_category"),
        ]

    def __str__(self) -> str:
        return f"pair #{self.pk}: images #{self.image_a_id} and #{self.image_b_id} ({'yes' if self.same else 'no'})"

    @property
    def answer(self) -> str:
        return pair_answer(self.same)
