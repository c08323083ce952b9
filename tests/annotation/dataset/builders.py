"""A small reviewed catalog for the dataset tests: instances with verified images, hard negatives, generated images."""

from annotation.models import HardNegativePair, Image, Instance, ReviewStatus
from tests.factories import ImageFactory, InstanceFactory, ProductFactory

ACCEPTED = ReviewStatus.ACCEPTED


def instance_with_images(category, count: int, *, status=ACCEPTED) -> tuple[Instance, list[Image]]:
    instance = InstanceFactory(category=category)
    product = ProductFactory(category=category, instance=instance)
    return instance, [ImageFactory(product=product, review_status=status) for _ in range(count)]


def generated(instance: Instance, *, status=ACCEPTED) -> Image:
    return ImageFactory(
        product=None, generated_for=instance, origin=Image.Origin.GENERATED, review_status=status
    )


def hard_negative(a: Instance, b: Instance) -> HardNegativePair:
    low, high = sorted((a.pk, b.pk))
    return HardNegativePair.objects.create(instance_a_id=low, instance_b_id=high)
