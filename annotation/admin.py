"""Researchers' admin for the catalog, with the catalog-import page and merge/undo actions."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from annotation.dataset.snapshots import snapshot_delete
from annotation.models import Category, DatasetSnapshot, Image, Instance, InstanceMerge, Product
from annotation.services.catalog_upload import UploadRejected, catalog_upload_import_start
from annotation.services.instances import MergeError, instance_merge, instance_merge_undo


def thumbnail(image: Image, size: int = 72) -> str:
    return format_html(
        '<img src="{}" loading="lazy" width="{}" height="{}" style="object-fit:cover;border-radius:4px">',
        image.file.url,
        size,
        size,
    )


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "supercategory", "product_count"]
    list_filter = ["supercategory"]
    search_fields = ["name", "supercategory"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(product_count=Count("products"))

    @admin.display(ordering="product_count", description="products")
    def product_count(self, category: Category) -> int:
        return category.product_count


class ImageInline(admin.TabularInline):
    model = Image
    fields = ["preview", "position", "width", "height", "origin", "review_status", "is_listed", "sha256"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="image")
    def preview(self, image: Image) -> str:
        return thumbnail(image)


class CatalogImportForm(forms.Form):
    source = forms.CharField(
        initial="default",
        max_length=100,
        help_text="Name of the listing source; product ids are unique per source.",
    )
    manifest = forms.FileField(help_text="JSON lines, one product per line (see the README for the format).")
    images_zip = forms.FileField(
        required=False, help_text="A zip of the images, with paths as the manifest gives them."
    )
    server_images_root = forms.CharField(
        required=False,
        max_length=1000,
        label="Or: images folder on the server",
        help_text="An absolute path inside one of the configured import roots (TWIN_IMPORT_ROOTS).",
    )


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["external_id", "title", "category", "source", "instance", "review_status", "image_count"]
    list_filter = ["source", "review_status", "category__supercategory", "category"]
    search_fields = ["external_id", "title"]
    list_select_related = ["category", "instance"]
    raw_id_fields = ["instance"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [ImageInline]
    change_list_template = "admin/annotation/product/change_list.html"
    actions = ["mine_sources"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(image_count=Count("images"))

    @admin.display(ordering="image_count", description="images")
    def image_count(self, product: Product) -> int:
        return product.image_count

    @admin.action(description="Mine the catalog sources of the selected products…")
    def mine_sources(self, request: HttpRequest, queryset) -> HttpResponse:
        sources = sorted(set(queryset.values_list("source", flat=True)))
        return redirect(f"{reverse('admin:mining_start')}?{urlencode({'sources': ','.join(sources)})}")

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="annotation_product_import"),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("annotation.add_product"):
            messages.error(request, "You don't have permission to import catalogs.")
            return redirect("admin:index")
        form = CatalogImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = catalog_upload_import_start(
                    manifest=form.cleaned_data["manifest"],
                    source=form.cleaned_data["source"],
                    images_zip=form.cleaned_data["images_zip"],
                    server_images_root=form.cleaned_data["server_images_root"],
                    created_by=request.user,
                )
            except UploadRejected as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Import job #{job.pk} queued.")
                return redirect("jobs:detail", job_id=job.pk)
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Import a catalog",
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/annotation/product/import.html", context)


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "category", "merged_into", "product_count", "previews"]
    list_filter = ["category__supercategory", "category"]
    search_fields = ["name", "products__external_id"]
    list_select_related = ["category", "merged_into"]
    raw_id_fields = ["merged_into"]
    readonly_fields = ["merged_into", "created_at", "product_links"]
    fields = ["name", "category", "merged_into", "created_at", "product_links"]
    actions = ["merge_into_first"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(product_count=Count("products"))

    @admin.display(ordering="product_count", description="products")
    def product_count(self, instance: Instance) -> int:
        return instance.product_count

    @admin.display(description="images")
    def previews(self, instance: Instance) -> str:
        images = Image.objects.filter(product__instance=instance, is_listed=True).order_by(
            "product_id", "position"
        )[:4]
        return format_html_join("", "{}", ((thumbnail(image, 48),) for image in images))

    @admin.display(description="products")
    def product_links(self, instance: Instance) -> str:
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:annotation_product_change", args=[product.pk]), product.external_id)
                for product in instance.products.all()
            ),
        )

    @admin.action(description="Merge the selected instances into the one with the lowest id")
    def merge_into_first(self, request: HttpRequest, queryset) -> None:
        instances = list(queryset.order_by("pk"))
        if len(instances) < 2:
            self.message_user(request, "Select at least two instances to merge.", messages.WARNING)
            return
        target = instances[0]
        for source in instances[1:]:
            try:
                instance_merge(
                    source=source, target=target, merged_by=request.user, reason="merged in the admin"
                )
            except MergeError as exc:
                self.message_user(request, f"Instance #{source.pk}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Merged instance #{source.pk} into #{target.pk}.")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "preview",
        "product",
        "position",
        "width",
        "height",
        "origin",
        "review_status",
        "is_listed",
    ]
    list_filter = ["origin", "review_status", "is_listed", "product__category"]
    search_fields = ["sha256", "product__external_id", "source_path"]
    list_select_related = ["product"]
    raw_id_fields = ["product"]
    readonly_fields = [
        "preview",
        "sha256",
        "source_sha256",
        "source_path",
        "width",
        "height",
        "file",
        "created_at",
    ]

    @admin.display(description="image")
    def preview(self, image: Image) -> str:
        return thumbnail(image)


@admin.register(InstanceMerge)
class InstanceMergeAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "target", "merged_by", "merged_at", "undone_at", "undone_by"]
    list_filter = ["undone_at"]
    readonly_fields = [
        "source",
        "target",
        "moved_products",
        "reason",
        "merged_by",
        "merged_at",
        "undone_by",
        "undone_at",
    ]
    actions = ["undo"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the audit trail is append-only

    @admin.action(description="Undo the selected merges (newest first)")
    def undo(self, request: HttpRequest, queryset) -> None:
        for merge in queryset.order_by("-merged_at", "-pk"):
            try:
                instance_merge_undo(merge=merge, undone_by=request.user)
            except MergeError as exc:
                self.message_user(request, f"Merge #{merge.pk}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Undid merge #{merge.pk}.")


# The review queues keep their admin next to their code.
import annotation.review.admin  # noqa: E402, F401


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(admin.ModelAdmin):
    """Snapshots are frozen: the admin lists them and links to their pages; "add" freezes a new one."""

    list_display = [
        "__str__",
        "status",
        "pair_count",
        "positive_count",
        "negative_count",
        "created_by",
        "frozen_at",
        "page",
    ]
    list_filter = ["status", "name"]
    search_fields = ["name", "description", "content_hash"]
    fields = [
        "name",
        "version",
        "description",
        "status",
        "parameters",
        "content_hash",
        "pair_count",
        "positive_count",
        "negative_count",
        "image_count",
        "instance_count",
        "job",
        "created_by",
        "created_at",
        "frozen_at",
    ]
    readonly_fields = fields

    @admin.display(description="Page")
    def page(self, snapshot: DatasetSnapshot) -> str:
        return format_html(
            '<a href="{}">statistics and exports</a>', reverse("dataset:snapshot", args=[snapshot.pk])
        )

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return redirect("dataset:freeze")

    def get_deleted_objects(self, objs, request: HttpRequest):
        """A summary, not the admin's list of every related row: a snapshot has hundreds of thousands of pairs."""
        deleted = [
            f"{snapshot}: {snapshot.pair_count:,} pairs and {snapshot.exports.count()} exports (their archives too)"
            for snapshot in objs
        ]
        perms_needed = (
            set() if request.user.has_perm("annotation.delete_datasetsnapshot") else {"dataset snapshot"}
        )
        return deleted, {"dataset snapshots": len(deleted)}, perms_needed, []

    def delete_model(self, request: HttpRequest, obj: DatasetSnapshot) -> None:
        snapshot_delete(snapshot=obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for snapshot in queryset:
            snapshot_delete(snapshot=snapshot)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # frozen
