"""Which part of the catalog a mining run covers: the usable real images of some sources (or all)."""

from collections.abc import Sequence

from django.db.models import QuerySet

from annotation.models import Image, Instance, ReviewStatus


def usable_images(*, sources: Sequence[str] = ()) -> QuerySet[Image]:
    """Real photos still listed and not rejected, of products not rejected, in the given sources (all if
    empty). Pending images count: mining runs while annotators verify."""
    images = (
        Image.objects.filter(origin=Image.Origin.REAL, is_listed=True)
        .exclude(review_status=ReviewStatus.REJECTED)
        .exclude(product__review_status=ReviewStatus.REJECTED)
    )
    if sources:
        images = images.filter(product__source__in=list(sources))
    return images


def active_instances(*, sources: Sequence[str] = ()) -> QuerySet[Instance]:
    """Instances not merged into another, with a product in the given sources (all if empty)."""
    instances = Instance.objects.filter(merged_into=None)
    if sources:
        instances = instances.filter(products__source__in=list(sources)).distinct()
    return instances
