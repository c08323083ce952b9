"""Review queues: tasks handed to annotators under short leases, and their append-only decisions.

A ``ReviewTask`` is one question about one subject (an image, two products, two instances, a generated
image). It is open until it has ``required_decisions`` decisions from different annotators; then it is
decided (all agree: the outcome is applied) or waits for a researcher's adjudication (they disagree).
Gold tasks carry a known answer; they stay open so every annotator meets them, and never change the catalog.

The lease fields live on the task row itself: a claim is one conditional UPDATE of that row, so a task can
never be held by two annotators at once, on any database.
"""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from annotation.models.catalog import Image, Instance, Product


class TaskKind(models.TextChoices):
    IMAGE_VERIFICATION = "image_verification", "Image verification"
    DUPLICATE_MERGE = "duplicate_merge", "Duplicate merge"
    HARD_NEGATIVE = "hard_negative", "Hard-negative selection"
    SYNTHETIC_VALIDATION = "synthetic_validation", "Synthetic validation"


class ReviewQueue(models.Model):
    """The settings of one queue; researchers change them in the admin. New tasks copy the overlap."""

    kind = models.CharField(max_length=32, choices=TaskKind.choices, unique=True)
    required_decisions = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(9)],
        help_text="Independent decisions each new task needs (overlap). Disagreements go to adjudication.",
    )
    gold_rate = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of served tasks that are gold tasks (known answers), while any are left to serve.",
    )

    class Meta:
        ordering = ["kind"]
        permissions = [
            ("work_review_queues", "Can work in the review queues"),
            ("view_review_statistics", "Can see every annotator's statistics and agreement"),
            ("adjudicate_reviewtask", "Can adjudicate disagreements"),
        ]

    def __str__(self) -> str:
        return self.get_kind_display()


class ReviewTask(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        NEEDS_ADJUDICATION = "needs_adjudication", "Needs adjudication"
        DECIDED = "decided", "Decided"
        OBSOLETE = "obsolete", "Obsolete"

    kind = models.CharField(max_length=32, choices=TaskKind.choices)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.OPEN)
    subject_key = models.CharField(
        max_length=200,
        help_text="What the task is about, unique per kind: the same question is never asked twice.",
    )
    # The subject. Which fields are set depends on the kind (see annotation.review.queues).
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    product_a = models.ForeignKey(Product, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    product_b = models.ForeignKey(Product, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(Instance, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    candidate_instance = models.ForeignKey(
        Instance, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    similarity = models.FloatField(null=True, blank=True, help_text="Highest image similarity, if mined.")
    payload = models.JSONField(
        default=dict,
        blank=True,
        help_text='Extra context, e.g. {"flagged_pairs": [[image_a, image_b, sim]]}.',
    )
    priority = models.IntegerField(default=0, help_text="Lower is served first; ties in creation order.")

    required_decisions = models.PositiveSmallIntegerField(default=1)
    decision_count = models.PositiveSmallIntegerField(default=0)
    is_gold = models.BooleanField(default=False)
    gold_answer = models.CharField(max_length=32, blank=True, help_text="The verdict a gold task expects.")

    outcome = models.CharField(max_length=32, blank=True, help_text="The verdict that was applied.")
    outcome_reason = models.CharField(max_length=64, blank=True)
    outcome_effects = models.JSONField(
        default=dict, blank=True, help_text="What applying the outcome changed, so an undo can put it back."
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    obsoleted_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="obsoleted_tasks"
    )

    leased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_token = models.UUIDField(null=True, blank=True)
    leased_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject_key"], name="review_task_unique_subject"),
        ]
        indexes = [
            # The claim query walks this index in serving order, over open tasks only.
            models.Index(
                fields=["kind", "is_gold", "priority", "id"],
                name="review_task_claimable_idx",
                condition=Q(status="open"),
            ),
            models.Index(
                fields=["leased_by", "kind"],
                name="review_task_held_idx",
                condition=Q(leased_by__isnull=False),
            ),
            models.Index(fields=["kind", "status"], name="review_task_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} task #{self.pk}"


class ReviewDecision(models.Model):
    """One annotator's answer to one task. Never deleted, never edited: an undo only stamps ``undone_at``."""

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="decisions")
    kind = models.CharField(max_length=32, choices=TaskKind.choices)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=48, help_text="The button or key chosen, e.g. reject_unclear.")
    verdict = models.CharField(max_length=32, help_text="What agreement is measured on, e.g. reject_image.")
    reason = models.CharField(max_length=64, blank=True)
    submission_key = models.UUIDField(
        unique=True,
        default=uuid.uuid4,
        help_text="The lease token it answered: a resubmission finds this row.",
    )
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time the card was on screen.")
    is_gold = models.BooleanField(default=False)
    is_correct = models.BooleanField(null=True, blank=True, help_text="For gold tasks: matched the answer.")
    is_adjudication = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    replaces = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="replaced_by",
        help_text="The annotator's earlier answer to the task that this one changed (after a conflict).",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["annotator", "kind", "created_at"], name="review_decision_mine_idx"),
            models.Index(fields=["task", "annotator"], name="review_decision_task_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} on task #{self.task_id} by {self.annotator_id}"


class ReviewSkip(models.Model):
    """An annotator passed on a task; it isn't served to them again unless they ask to revisit skips."""

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="skips")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="review_skip_once")]

    def __str__(self) -> str:
        return f"skip of task #{self.task_id} by {self.annotator_id}"


class ReviewerPreferences(models.Model):
    """Per-user settings of the review page: the keyboard map, {kind: {action: key}}."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_preferences"
    )
    keymap = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "reviewer preferences"

    def __str__(self) -> str:
        return f"review preferences of {self.user_id}"


class ProductDistinction(models.Model):
    """Two products a reviewer judged to be different objects: never proposed as duplicates again."""

    product_a = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    product_b = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(ReviewTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product_a", "product_b"], name="product_distinction_unique"),
            models.CheckConstraint(
                name="product_distinction_ordered", condition=Q(product_a__lt=models.F("product_b"))
            ),
        ]

    def __str__(self) -> str:
        return f"products #{self.product_a_id} and #{self.product_b_id} are different"


class HardNegativePair(models.Model):
    """Two distinct instances that look alike, approved by review: their image pairs are hard negatives."""

    instance_a = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="+")
    instance_b = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(ReviewTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instance_a", "instance_b"], name="hard_negative_pair_unique"),
            models.CheckConstraint(
                name="hard_negative_pair_ordered", condition=Q(instance_a__lt=models.F("instance_b"))
            ),
        ]

    def __str__(self) -> str:
        return f"hard negative: instances #{self.instance_a_id} and #{self.instance_b_id}"
