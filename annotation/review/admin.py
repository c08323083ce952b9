"""Researchers' admin for the review queues: queue settings (overlap, gold rate), tasks, decisions and the
pairs reviews produced. Imported by ``annotation.admin`` so Django's autodiscovery finds it."""

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from annotation.models import (
    HardNegativePair,
    ProductDistinction,
    ReviewDecision,
    ReviewQueue,
    ReviewTask,
)
from annotation.review.leases import review_leases_expired_clear
from annotation.review.task_creation import gold_task_create


@admin.register(ReviewQueue)
class ReviewQueueAdmin(admin.ModelAdmin):
    list_display = ["kind", "required_decisions", "gold_rate", "queue_page"]
    list_editable = ["required_decisions", "gold_rate"]
    fields = ["kind", "required_decisions", "gold_rate"]
    readonly_fields = ["kind"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row per queue, made by a migration

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="page")
    def queue_page(self, queue: ReviewQueue) -> str:
        from annotation.review.queues import QUEUE_SLUGS

        return format_html('<a href="{}">open</a>', reverse("review:queue", args=[QUEUE_SLUGS[queue.kind]]))


class DecisionInline(admin.TabularInline):
    model = ReviewDecision
    fields = [
        "annotator",
        "action",
        "verdict",
        "reason",
        "duration_ms",
        "is_correct",
        "is_adjudication",
        "created_at",
        "undone_at",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ReviewTask)
class ReviewTaskAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "decision_count",
        "required_decisions",
        "is_gold",
        "outcome",
        "similarity",
        "leased_by",
        "created_at",
    ]
    list_filter = ["kind", "status", "is_gold", "outcome"]
    search_fields = ["subject_key"]
    list_select_related = ["leased_by"]
    raw_id_fields = [
        "image",
        "product_a",
        "product_b",
        "instance",
        "candidate_instance",
        "obsoleted_by",
        "leased_by",
    ]
    readonly_fields = [
        "decision_count",
        "outcome",
        "outcome_reason",
        "outcome_effects",
        "resolved_at",
        "created_at",
    ]
    inlines = [DecisionInline]
    actions = ["make_gold_from_outcome", "clear_expired_leases"]
    show_full_result_count = False  # counting millions of tasks on every page view is slow

    @admin.action(description="Use as gold tasks (expected answer = their outcome)")
    def make_gold_from_outcome(self, request: HttpRequest, queryset) -> None:
        made = 0
        for task in queryset.filter(status=ReviewTask.Status.DECIDED, is_gold=False).exclude(outcome=""):
            gold_task_create(task=task, answer=task.outcome)
            made += 1
        skipped = queryset.count() - made
        self.message_user(request, f"{made} gold task(s) made or updated.")
        if skipped:
            self.message_user(
                request, f"{skipped} skipped: only decided, non-gold tasks can be used.", messages.WARNING
            )

    @admin.action(description="Clear all lapsed leases (whole queue, not just the selection)")
    def clear_expired_leases(self, request: HttpRequest, queryset) -> None:
        self.message_user(request, f"{review_leases_expired_clear()} lapsed lease(s) cleared.")


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "task",
        "kind",
        "annotator",
        "action",
        "is_gold",
        "is_correct",
        "is_adjudication",
        "created_at",
        "undone_at",
    ]
    list_filter = ["kind", "is_gold", "is_adjudication", "verdict"]
    search_fields = ["annotator__username"]
    list_select_related = ["annotator", "task"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # decisions are an append-only record

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(HardNegativePair)
class HardNegativePairAdmin(admin.ModelAdmin):
    list_display = ["id", "instance_a", "instance_b", "task", "created_at"]
    raw_id_fields = ["instance_a", "instance_b", "task"]


@admin.register(ProductDistinction)
class ProductDistinctionAdmin(admin.ModelAdmin):
    list_display = ["id", "product_a", "product_b", "task", "created_at"]
    raw_id_fields = ["product_a", "product_b", "task"]
