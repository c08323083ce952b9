"""What a review card shows, read for several tasks at once in a fixed number of queries.

Every card has two panels side by side (the thing under review and what it is compared with). The number of
queries depends neither on how many tasks the queue has nor on how many cards are built together.
"""

import functools
import operator
from dataclasses import dataclass, field

from django.db.models import Q

from annotation.models import Image, Instance, Product, ReviewStatus, ReviewTask, TaskKind
from annotation.review.queues import QueueDefinition, queue_definition

# Photos per panel; a large merged instance shows the first ones and says how many more it has.
PANEL_IMAGES = 12


@dataclass
class Panel:
    heading: str
    subheading: str = ""
    featured: Image | None = None  # shown large
    images: list[Image] = field(default_factory=list)
    more: int = 0  # images not shown
    highlighted: dict[int, float] = field(default_factory=dict)  # image id -> similarity of a flagged pair
    generated: bool = False
    # Every image of the panel's side, the hidden ones too: the compare view's grid shows them all.
    every: list[Image] = field(default_factory=list)

    @property
    def side_images(self) -> list[Image]:
        """The featured image first, then the others, each once."""
        images = ([self.featured] if self.featured else []) + (self.every or self.images)
        return list({image.pk: image for image in images}.values())


@dataclass
class FlaggedPair:
    left: Image
    right: Image
    similarity: float


@dataclass
class ComparePair:
    """Two images the compare view puts side by side; the similarity is known for mined pairs only."""

    left: Image
    right: Image
    similarity: float | None = None


@dataclass
class Card:
    task: ReviewTask
    queue: QueueDefinition
    left: Panel
    right: Panel
    flagged: list[FlaggedPair] = field(default_factory=list)

    @property
    def template(self) -> str:
        return "review/_card.html"

    @property
    def compare_pairs(self) -> list[ComparePair]:
        """The pairs the compare view steps through, the one it opens on first.

        Mined cards: their flagged pairs, most similar first. An image under review or a generated image:
        against each image of the other side. Otherwise the first image of each side.
        """
        if self.flagged:
            return [ComparePair(pair.left, pair.right, pair.similarity) for pair in self.flagged]
        left, right = self.left.side_images, self.right.side_images
        if self.left.featured and right:
            return [ComparePair(self.left.featured, image) for image in right]
        if self.right.featured and left:
            return [ComparePair(image, self.right.featured) for image in left]
        return [ComparePair(left[0], right[0])] if left and right else []


# What a card shows of its task's subject, joined into the query that reads the tasks.
CARD_RELATED = (
    "image__product__category",
    "image__generated_for__category",
    "product_a__category",
    "product_b__category",
    "instance__category",
    "candidate_instance__category",
)


# The same, for the cards of one queue: fewer joins to plan and fewer objects to build on every answer.
CARD_RELATED_BY_KIND = {
    TaskKind.IMAGE_VERIFICATION: ("image__product__category",),
    TaskKind.DUPLICATE_MERGE: ("product_a__category", "product_b__category"),
    TaskKind.HARD_NEGATIVE: ("instance__category", "candidate_instance__category"),
    TaskKind.SYNTHETIC_VALIDATION: ("image__generated_for__category", "instance__category"),
}


def cards_build(tasks: list[ReviewTask], *, loaded: bool = False) -> list[Card]:
    """Cards for the tasks, in the same order: two queries whatever the number of tasks, one when the tasks
    were read with ``select_related(*CARD_RELATED)``, or of one queue with its ``CARD_RELATED_BY_KIND``
    (``loaded``)."""
    if not tasks:
        return []
    order = {task.pk: index for index, task in enumerate(tasks)}
    if not loaded:
        tasks = list(
            ReviewTask.objects.filter(pk__in=[task.pk for task in tasks])
            .select_related(*CARD_RELATED)
            .order_by()
        )
    product_ids, instance_ids = set(), set()
    for task in tasks:
        if task.kind == TaskKind.IMAGE_VERIFICATION:
            product_ids.add(task.image.product_id)
        elif task.kind == TaskKind.DUPLICATE_MERGE:
            product_ids |= {task.product_a_id, task.product_b_id}
        else:
            instance_ids |= {task.instance_id, task.candidate_instance_id} - {None}

    by_product: dict[int, list[Image]] = {}
    by_instance: dict[int, list[Image]] = {}
    titles_by_instance: dict[int, list[str]] = {}
    # Only the conditions a queue needs: one queue's cards name products, or instances, seldom both.
    subjects = [Q(product_id__in=product_ids)] if product_ids else []
    if instance_ids:
        subjects.append(Q(product__instance_id__in=instance_ids))
    images = (
        Image.objects.filter(functools.reduce(operator.or_, subjects))
        .filter(is_listed=True, origin=Image.Origin.REAL)
        .select_related("product")
        .order_by("product_id", "position", "id")
        if subjects
        else []
    )
    for image in images:
        by_product.setdefault(image.product_id, []).append(image)
        usable = (
            image.review_status != ReviewStatus.REJECTED
            and image.product.review_status != ReviewStatus.REJECTED
        )
        if image.product.instance_id in instance_ids and usable:
            by_instance.setdefault(image.product.instance_id, []).append(image)
            titles = titles_by_instance.setdefault(image.product.instance_id, [])
            if image.product.title not in titles:
                titles.append(image.product.title)

    builders = {
        TaskKind.IMAGE_VERIFICATION: _verification_card,
        TaskKind.DUPLICATE_MERGE: _duplicate_card,
        TaskKind.HARD_NEGATIVE: _hard_negative_card,
        TaskKind.SYNTHETIC_VALIDATION: _synthetic_card,
    }
    context = {"by_product": by_product, "by_instance": by_instance, "titles": titles_by_instance}
    cards = [builders[task.kind](task, context) for task in tasks]
    cards.sort(key=lambda card: order[card.task.pk])
    return cards


def _panel(heading: str, subheading: str, images: list[Image], *, featured: Image | None = None) -> Panel:
    shown = images[:PANEL_IMAGES]
    return Panel(heading, subheading, featured, shown, max(0, len(images) - len(shown)), every=list(images))


def _verification_card(task: ReviewTask, context: dict) -> Card:
    image = task.image
    product = image.product
    others = [other for other in context["by_product"].get(product.pk, []) if other.pk != image.pk]
    left = Panel(
        heading=product.title,
        subheading=f"{product.category.name} · {product.category.supercategory}".strip(" ·"),
        featured=image,
    )
    right = _panel(
        "The product's other images", f"{len(others)} more image{'s' if len(others) != 1 else ''}", others
    )
    return Card(task, queue_definition(task.kind), left, right)


def _product_panel(product: Product, images: list[Image], label: str) -> Panel:
    return _panel(
        f"{label}: {product.title}",
        f"{product.category.name} · {product.source} {product.external_id} · {len(images)} images",
        images,
    )


def _duplicate_card(task: ReviewTask, context: dict) -> Card:
    left_images = context["by_product"].get(task.product_a_id, [])
    right_images = context["by_product"].get(task.product_b_id, [])
    left = _product_panel(task.product_a, left_images, "A")
    right = _product_panel(task.product_b, right_images, "B")
    card = Card(task, queue_definition(task.kind), left, right)
    _flag(card, left_images, right_images)
    return card


def _instance_panel(instance: Instance, images: list[Image], titles: list[str], label: str) -> Panel:
    heading = titles[0] if titles else instance.name or f"Instance #{instance.pk}"
    extra = f" (+{len(titles) - 1} listing{'s' if len(titles) > 2 else ''})" if len(titles) > 1 else ""
    return _panel(f"{label}: {heading}{extra}", f"{instance.category.name} · {len(images)} images", images)


def _hard_negative_card(task: ReviewTask, context: dict) -> Card:
    left_images = context["by_instance"].get(task.instance_id, [])
    right_images = context["by_instance"].get(task.candidate_instance_id, [])
    left = _instance_panel(task.instance, left_images, context["titles"].get(task.instance_id, []), "Object")
    right = _instance_panel(
        task.candidate_instance,
        right_images,
        context["titles"].get(task.candidate_instance_id, []),
        "Candidate",
    )
    card = Card(task, queue_definition(task.kind), left, right)
    _flag(card, left_images, right_images)
    return card


def _synthetic_card(task: ReviewTask, context: dict) -> Card:
    instance = task.instance or task.image.generated_for
    real = context["by_instance"].get(instance.pk, [])
    left = _instance_panel(instance, real, context["titles"].get(instance.pk, []), "Real object")
    prompt = task.payload.get("prompt", "")
    right = Panel(heading="Generated image", subheading=prompt, featured=task.image, generated=True)
    return Card(task, queue_definition(task.kind), left, right)


def _flag(card: Card, left_images: list[Image], right_images: list[Image]) -> None:
    """Marks the flagged most-similar pairs on both panels and lists them in order of similarity."""
    left_by_id = {image.pk: image for image in left_images}
    right_by_id = {image.pk: image for image in right_images}
    pairs = []
    for first, second, similarity in card.task.payload.get("flagged_pairs", []):
        if first in left_by_id and second in right_by_id:
            pairs.append(FlaggedPair(left_by_id[first], right_by_id[second], float(similarity)))
    pairs.sort(key=lambda pair: -pair.similarity)
    card.flagged = pairs
    for pair in pairs:
        card.left.highlighted[pair.left.pk] = max(
            card.left.highlighted.get(pair.left.pk, 0.0), pair.similarity
        )
        card.right.highlighted[pair.right.pk] = max(
            card.right.highlighted.get(pair.right.pk, 0.0), pair.similarity
        )
    # Flagged images first, so the panel's visible part shows them even when it has many photos.
    for panel, images in ((card.left, left_images), (card.right, right_images)):
        ordered = sorted(
            images, key=lambda image: (image.pk not in panel.highlighted, -panel.highlighted.get(image.pk, 0))
        )
        shown = ordered[:PANEL_IMAGES]
        panel.images, panel.more, panel.every = shown, max(0, len(ordered) - len(shown)), ordered
