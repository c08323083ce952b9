"""Reads of the catalog."""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from annotation.models import Category, Image, Instance, Product


@dataclass(frozen=True)
class CatalogCounts:
    categories: int
    products: int
    instances: int
    images: int
    generated_images: int
    images_pending_review: int


def catalog_counts() -> CatalogCounts:
    image_counts = Image.objects.filter(is_listed=True).aggregate(
        total=Count("id"),
        generated=Count("id", filter=Q(origin=Image.Origin.GENERATED)),
        pending=Count("id", filter=Q(review_status="pending")),
    )
    return CatalogCounts(
        categories=Category.objects.count(),
        products=Product.objects.count(),
        instances=Instance.objects.filter(merged_into=None).count(),
        images=image_counts["total"],
        generated_images=image_counts["generated"],
        images_pending_review=image_counts["pending"],
    )


def category_list_with_counts() -> QuerySet[Category]:
    return Category.objects.annotate(
        product_count=Count("products", distinct=True),
        image_count=Count("products__images", filter=Q(products__images__is_listed=True), distinct=True),
    ).order_by("supercategory", "name")


def product_list(*, category: Category | None = None) -> QuerySet[Product]:
    products = Product.objects.select_related("category", "instance").prefetch_related("images")
    if category is not None:
        products = products.filter(category=category)
    return products.order_by("source", "external_id")


def instance_images(*, instance: Instance) -> QuerySet[Image]:
    return Image.objects.filter(product__instance=instance, is_listed=True).select_related("product")
