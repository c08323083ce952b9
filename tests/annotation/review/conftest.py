"""Shared fixtures of the review-queue tests: annotators, queue settings and tasks of each kind.

Tasks are made with the real create services, so every test starts from what mining would produce.
"""

from collections.abc import Callable

import pytest

from annotation.models import Image, Instance, Product, ReviewQueue, ReviewTask, TaskKind
from annotation.review.decisions import SubmitResult, review_decision_submit
from annotation.review.leases import review_task_release, review_tasks_claim
from annotation.review.task_creation import (
    DuplicateCandidate,
    HardNegativeCandidate,
    duplicate_merge_tasks_create,
    hard_negative_tasks_create,
    image_verification_tasks_create,
    synthetic_validation_tasks_create,
)
from tests.factories import AnnotatorFactory, ImageFactory, ProductFactory

IMAGES = TaskKind.IMAGE_VERIFICATION
DUPLICATES = TaskKind.DUPLICATE_MERGE
HARD_NEGATIVES = TaskKind.HARD_NEGATIVE
SYNTHETIC = TaskKind.SYNTHETIC_VALIDATION


@pytest.fixture
def alice(db):
    return AnnotatorFactory(username="alice")


@pytest.fixture
def bob(db):
    return AnnotatorFactory(username="bob")


@pytest.fixture
def carol(db):
    return AnnotatorFactory(username="carol")


@pytest.fixture
def configure_queue(db) -> Callable[..., ReviewQueue]:
    """Sets a queue's overlap and gold rate (the tests default to no gold, so serving is deterministic)."""

    def configure(kind: str, *, required_decisions: int = 1, gold_rate: float = 0.0) -> ReviewQueue:
        queue, _ = ReviewQueue.objects.update_or_create(
            kind=kind, defaults={"required_decisions": required_decisions, "gold_rate": gold_rate}
        )
        return queue

    return configure


@pytest.fixture
def image_tasks(configure_queue) -> Callable[..., list[ReviewTask]]:
    """``count`` image-verification tasks, one per new image (of ``product``, or each of its own product)."""

    def make(
        count: int = 1, *, product: Product | None = None, priority: int = 0, required_decisions: int = 1
    ) -> list[ReviewTask]:
        configure_queue(IMAGES, required_decisions=required_decisions)
        images = [
            ImageFactory(product=product) if product else ImageFactory(position=n) for n in range(count)
        ]
        ids = image_verification_tasks_create(
            images=Image.objects.filter(pk__in=[image.pk for image in images]), priority=priority
        )
        assert len(ids) == count
        return list(ReviewTask.objects.filter(pk__in=ids).order_by("pk"))

    return make


@pytest.fixture
def duplicate_task(configure_queue) -> Callable[..., ReviewTask]:
    def make(product_a: Product, product_b: Product, *, required_decisions: int = 1, **extra) -> ReviewTask:
        configure_queue(DUPLICATES, required_decisions=required_decisions)
        (pk,) = duplicate_merge_tasks_create(
            candidates=[DuplicateCandidate(product_a_id=product_a.pk, product_b_id=product_b.pk, **extra)]
        )
        return ReviewTask.objects.get(pk=pk)

    return make


@pytest.fixture
def hard_negative_task(configure_queue) -> Callable[..., ReviewTask]:
    def make(instance: Instance, candidate: Instance, *, required_decisions: int = 1, **extra) -> ReviewTask:
        configure_queue(HARD_NEGATIVES, required_decisions=required_decisions)
        (pk,) = hard_negative_tasks_create(
            candidates=[
                HardNegativeCandidate(instance_id=instance.pk, candidate_instance_id=candidate.pk, **extra)
            ]
        )
        return ReviewTask.objects.get(pk=pk)

    return make


@pytest.fixture
def synthetic_task(configure_queue) -> Callable[..., ReviewTask]:
    """A synthetic-validation task for a new generated image imitating ``instance`` (default: a new one)."""

    def make(instance: Instance | None = None, *, required_decisions: int = 1) -> ReviewTask:
        configure_queue(SYNTHETIC, required_decisions=required_decisions)
        instance = instance or ProductFactory().instance
        image = ImageFactory(product=None, generated_for=instance, origin=Image.Origin.GENERATED)
        (pk,) = synthetic_validation_tasks_create(images=Image.objects.filter(pk=image.pk))
        return ReviewTask.objects.get(pk=pk)

    return make


def _decide(annotator, task: ReviewTask, action: str, **options) -> SubmitResult:
    """``annotator`` answers ``task`` through the public services: claims it (claiming whatever is served
    until it comes), gives back the other tasks the claim took, then submits under the lease."""
    held = review_tasks_claim(annotator=annotator, kind=task.kind, hold=1000)
    mine = next((held_task for held_task in held if held_task.pk == task.pk), None)
    for other in held:
        if other.pk != task.pk:
            review_task_release(annotator=annotator, task_id=other.pk)
    assert mine is not None, f"task #{task.pk} is not served to {annotator}"
    return review_decision_submit(
        annotator=annotator, task_id=task.pk, submission_key=mine.lease_token, action=action, **options
    )


@pytest.fixture
def decide() -> Callable[..., SubmitResult]:
    return _decide
