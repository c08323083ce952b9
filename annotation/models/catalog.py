"""The catalog: categories, products (source listings), instances (physical objects) and their images.

A product is what a shop lists; an instance is one physical object. De-duplication merges the products of
duplicate listings into one instance; each merge is an ``InstanceMerge`` row that can be undone.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class Category(models.Model):
    name = models.CharField(max_length=200, unique=True, help_text='Object category, e.g. "vase".')
    supercategory = models.CharField(
        max_length=200, blank=True, db_index=True, help_text='Store department, e.g. "Home & Kitchen".'
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Instance(models.Model):
    """One physical object: the images of all products that belong to it.

    A merged instance keeps its row (``merged_into`` set) so the merge can be undone and pairs built before
    it can still be explained.
    """

    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="instances")
    name = models.CharField(max_length=500, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_instances"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["merged_into"], name="instance_active_idx", condition=Q(merged_into=None))
        ]

    def __str__(self) -> str:
        return f"{self.name or 'instance'} #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.merged_into_id is None


class Product(models.Model):
    """A source listing as imported from a manifest line."""

    source = models.CharField(max_length=100, default="default", help_text="Where the listing comes from.")
    external_id = models.CharField(max_length=255, help_text="The product id in the source.")
    title = models.CharField(max_length=1000)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="products")
    review_status = models.CharField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.PENDING, db_index=True
    )
    rejection_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source", "external_id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="product_unique_per_source")
        ]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.title[:60]}"


class Image(models.Model):
    """A photo of a product listing, or a generated image (a synthetic negative of ``generated_for``).

    Generated images belong to no listing: they show an object that doesn't exist, made to look like
    ``generated_for``, so they must never count as photos of it.
    """

    class Origin(models.TextChoices):
        REAL = "real", "Real photo"
        GENERATED = "generated", "Generated"

    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.CASCADE, related_name="images"
    )
    generated_for = models.ForeignKey(
        Instance,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="generated_images",
        help_text="For a generated image: the instance it imitates (it is a negative for that instance).",
    )
    file = models.FileField(upload_to="images/", max_length=500)
    sha256 = models.CharField(
        max_length=64,
        unique=True,
        help_text="SHA-256 of the stored (normalized) file: one row per distinct image.",
    )
    source_sha256 = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="SHA-256 of the file as it was imported."
    )
    source_path = models.CharField(
        max_length=1000, blank=True, help_text="Path in the manifest it came from."
    )
    position = models.PositiveIntegerField(default=0, help_text="Order within the product's listing.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.REAL, db_index=True)
    review_status = models.CharField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.PENDING, db_index=True
    )
    rejection_reason = models.CharField(max_length=200, blank=True)
    is_listed = models.BooleanField(
        default=True, help_text="False once the product's manifest line no longer lists this image."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product_id", "position", "id"]
        indexes = [models.Index(fields=["product", "position"])]
        constraints = [
            models.CheckConstraint(
                name="image_real_xor_generated",
                condition=(
                    Q(origin="real", product__isnull=False, generated_for__isnull=True)
                    | Q(origin="generated", product__isnull=True, generated_for__isnull=False)
                ),
            )
        ]

    def __str__(self) -> str:
        if self.product_id is None:
            return f"generated image #{self.pk} for instance #{self.generated_for_id}"
        return f"image #{self.pk} of {self.product.external_id}"


class InstanceMerge(models.Model):
    """Audit record of one merge: which products moved from ``source`` into ``target``, by whom and why."""

    source = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="merges_as_source")
    target = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="merges_as_target")
    moved_products = models.ManyToManyField(Product, related_name="merges")
    reason = models.CharField(max_length=500, blank=True)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    merged_at = models.DateTimeField(auto_now_add=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-merged_at", "-id"]

    def __str__(self) -> str:
        return f"merge of instance #{self.source_id} into #{self.target_id}"
