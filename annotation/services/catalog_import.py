"""Importing a catalog manifest: products, their instances and their images, one manifest line at a time.

Each line is its own transaction: a bad line or a bad image is reported and skipped while the good ones
import, and nothing of a line is half-written. Importing the same manifest again changes nothing; a changed
line updates its product. Images are stored once per distinct content (SHA-256), under content-addressed
names, through whatever storage backend is configured.

Image files are read and decoded on a thread pool a batch of lines ahead of the database writes, which stay on
the calling thread. Files already imported (same source bytes) are not decoded again.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from annotation.importing.images import (
    ImageLimits,
    ImageRejected,
    NormalizedImage,
    RawImage,
    normalize_image,
    read_image_file,
)
from annotation.importing.manifest import (
    ManifestLineError,
    ManifestRow,
    ManifestUnreadable,
    manifest_line_count,
    manifest_read,
)
from annotation.importing.report import ImportDuplicate, ImportProblem, ImportReport
from annotation.iterables import batched
from annotation.models import Category, Image, Instance, Product

logger = logging.getLogger(__name__)

LINES_PER_BATCH = 64
ProgressCallback = Callable[[int, int], None]


class CatalogImportError(Exception):
    """The import can't run at all (unreadable manifest, missing images root); nothing was imported."""


@dataclass(frozen=True)
class KnownImage:
    """An image already in the catalog with the same source bytes."""

    image_id: int
    product_id: int
    product_external_id: str


ImageOutcome = ImageRejected | KnownImage | NormalizedImage


@dataclass
class RowResult:
    product_outcome: str = "unchanged"
    images: Counter = field(default_factory=Counter)
    problems: list[ImportProblem] = field(default_factory=list)
    duplicates: list[ImportDuplicate] = field(default_factory=list)
    category_created: Category | None = None


class RowRejected(Exception):
    def __init__(self, result: RowResult) -> None:
        super().__init__("row rejected")
        self.result = result


def image_limits_from_settings() -> ImageLimits:
    return ImageLimits(
        max_pixels=settings.CATALOG_MAX_IMAGE_PIXELS, max_bytes=settings.CATALOG_MAX_IMAGE_BYTES
    )


def catalog_import(
    *,
    manifest_path: Path,
    images_root: Path,
    source: str = "default",
    on_progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Imports every good line of the manifest and returns the report of what happened to each.

    ``on_progress(lines_done, lines_total)`` is called after each batch; an exception it raises (a cancelled
    job) stops the import between two lines.
    """
    started = time.monotonic()
    manifest_path = Path(manifest_path)
    root = Path(images_root).resolve()
    if not root.is_dir():
        raise CatalogImportError(f"images root {images_root} is not a folder")
    source = source.strip() or "default"
    try:
        total_lines = manifest_line_count(manifest_path)
        entries = manifest_read(manifest_path)
        report = ImportReport(manifest=str(manifest_path), images_root=str(root), source=source)
        importer = _RowImporter(source=source, report=report)
        limits = image_limits_from_settings()
        with ThreadPoolExecutor(max_workers=workers or settings.CATALOG_IMPORT_THREADS) as pool:
            for batch in batched(entries, LINES_PER_BATCH):
                rows = [entry for entry in batch if isinstance(entry, ManifestRow)]
                prepared = _prepare_images(rows, root=root, limits=limits, pool=pool)
                for entry in batch:
                    if isinstance(entry, ManifestLineError):
                        report.products["rejected"] += 1
                        report.rejections.append(
                            ImportProblem(entry.line_number, entry.product_id, entry.reason)
                        )
                    else:
                        importer.import_row(entry, prepared[entry.line_number])
                report.lines_read = batch[-1].line_number
                if on_progress:
                    on_progress(report.lines_read, total_lines)
    except ManifestUnreadable as exc:
        raise CatalogImportError(str(exc)) from None
    report.lines_read = total_lines
    report.duration_seconds = time.monotonic() - started
    if on_progress:
        on_progress(total_lines, total_lines)
    return report


def _prepare_images(
    rows: list[ManifestRow], *, root: Path, limits: ImageLimits, pool: ThreadPoolExecutor
) -> dict[int, list[tuple[str, ImageOutcome]]]:
    """Reads every image of the batch, and decodes those the catalog doesn't hold yet, on the pool."""
    wanted = [(row.line_number, path) for row in rows for path in row.images]
    raw_results = list(pool.map(lambda item: _try(read_image_file, root, item[1], limits), wanted))

    source_hashes = {raw.source_sha256 for raw in raw_results if isinstance(raw, RawImage)}
    known: dict[str, KnownImage] = {}
    for image_id, source_sha, product_id, external_id in Image.objects.filter(
        source_sha256__in=source_hashes
    ).values_list("id", "source_sha256", "product_id", "product__external_id"):
        known[source_sha] = KnownImage(
            image_id=image_id, product_id=product_id, product_external_id=external_id
        )

    def finish(raw: RawImage | ImageRejected) -> ImageOutcome:
        if isinstance(raw, ImageRejected):
            return raw
        if raw.source_sha256 in known:
            return known[raw.source_sha256]
        try:
            return normalize_image(raw, limits=limits)
        except ImageRejected as rejection:
            return rejection

    outcomes = list(pool.map(finish, raw_results))
    prepared: dict[int, list[tuple[str, ImageOutcome]]] = {row.line_number: [] for row in rows}
    for (line_number, path), outcome in zip(wanted, outcomes, strict=True):
        prepared[line_number].append((path, outcome))
    return prepared


def _try(read: Callable, root: Path, path: str, limits: ImageLimits) -> RawImage | ImageRejected:
    try:
        return read(images_root=root, manifest_path=path, limits=limits)
    except ImageRejected as rejection:
        return rejection


class _RowImporter:
    """Writes one manifest row per transaction and folds its result into the report after commit."""

    def __init__(self, *, source: str, report: ImportReport) -> None:
        self.source = source
        self.report = report
        self.categories: dict[str, Category] = {}

    def import_row(self, row: ManifestRow, images: list[tuple[str, ImageOutcome]]) -> None:
        for attempt in (1, 2):
            written_files: list[str] = []
            try:
                with transaction.atomic():
                    result = self._write_row(row, images, written_files)
            except RowRejected as rejected:
                self._forget_rolled_back(row, written_files)
                self._record(rejected.result)
                return
            except IntegrityError as exc:
                # Another import wrote the same product or image between our read and our write: try once more
                # against the state it left.
                self._forget_rolled_back(row, written_files)
                if attempt == 2:
                    logger.warning("line %s: conflicting concurrent write: %s", row.line_number, exc)
                    self.report.products["rejected"] += 1
                    self.report.rejections.append(
                        ImportProblem(
                            row.line_number,
                            row.product_id,
                            "conflicting change by another import; run it again",
                        )
                    )
                    return
                continue
            except BaseException:
                self._forget_rolled_back(row, written_files)
                raise
            if result.category_created is not None:
                self.report.categories_created += 1
            self._record(result)
            return

    def _forget_rolled_back(self, row: ManifestRow, written_files: list[str]) -> None:
        """Drops what the rolled-back transaction wrote: its new files, and a category it may have created."""
        _delete_files(written_files)
        self.categories.pop(row.category.casefold(), None)

    def _record(self, result: RowResult) -> None:
        self.report.products[result.product_outcome] += 1
        self.report.images.update(result.images)
        self.report.rejections.extend(result.problems)
        self.report.duplicates.extend(result.duplicates)

    def _write_row(
        self, row: ManifestRow, images: list[tuple[str, ImageOutcome]], written_files: list[str]
    ) -> RowResult:
        result = RowResult()
        category = self._category(row, result)
        product = (
            Product.objects.select_for_update()
            .select_related("instance")
            .filter(source=self.source, external_id=row.product_id)
            .first()
        )
        if product is None:
            instance = Instance.objects.create(category=category, name=row.title[:500])
            product = Product.objects.create(
                source=self.source,
                external_id=row.product_id,
                title=row.title,
                category=category,
                instance=instance,
            )
            result.product_outcome = "imported"
            existing_images: list[Image] = []
        else:
            if self._update_product(product, row, category):
                result.product_outcome = "updated"
            existing_images = list(product.images.all())

        kept_ids = self._write_images(row, product, images, existing_images, result, written_files)
        withdrawn = [image.pk for image in existing_images if image.is_listed and image.pk not in kept_ids]
        if withdrawn:
            Image.objects.filter(pk__in=withdrawn).update(is_listed=False)
            result.images["withdrawn"] += len(withdrawn)

        if not kept_ids:
            result.product_outcome = "rejected"
            if result.images["duplicates"] and not result.images["rejected"]:
                reason = (
                    "every image of the product is an exact duplicate of an image already imported; skipped"
                )
            else:
                reason = (
                    f"none of the product's {len(row.images)} image(s) could be imported; product skipped"
                )
            result.problems.append(ImportProblem(row.line_number, row.product_id, reason))
            # Undo the row; what we learned about each image stays in the report.
            result.images = Counter(
                {"rejected": result.images["rejected"], "duplicates": result.images["duplicates"]}
            )
            raise RowRejected(result)
        if result.product_outcome == "unchanged" and (
            result.images["imported"] or result.images["updated"] or result.images["withdrawn"]
        ):
            result.product_outcome = "updated"
        return result

    def _category(self, row: ManifestRow, result: RowResult) -> Category:
        key = row.category.casefold()
        category = self.categories.get(key)
        if category is None:
            category = Category.objects.filter(name__iexact=row.category).first()
            if category is None:
                category = Category.objects.create(name=row.category, supercategory=row.supercategory or "")
                result.category_created = category
            self.categories[key] = category
        if row.supercategory and category.supercategory != row.supercategory:
            category.supercategory = row.supercategory
            category.save(update_fields=["supercategory"])
        return category

    def _update_product(self, product: Product, row: ManifestRow, category: Category) -> bool:
        changed = []
        if product.title != row.title:
            product.title = row.title
            changed.append("title")
        if product.category_id != category.pk:
            product.category = category
            changed.append("category")
            instance = product.instance
            if instance.is_active and not instance.products.exclude(pk=product.pk).exists():
                instance.category = category
                instance.save(update_fields=["category"])
        if changed:
            product.save(update_fields=[*changed, "updated_at"])
        return bool(changed)

    def _write_images(
        self,
        row: ManifestRow,
        product: Product,
        images: list[tuple[str, ImageOutcome]],
        existing_images: list[Image],
        result: RowResult,
        written_files: list[str],
    ) -> set[int]:
        """Adds, re-positions and keeps the row's images; returns the ids of the product's images it lists."""
        mine = {image.pk: image for image in existing_images}
        new_hashes = {outcome.sha256 for _, outcome in images if isinstance(outcome, NormalizedImage)}
        stored_by_hash = {
            image.sha256: image
            for image in Image.objects.filter(sha256__in=new_hashes).select_related("product")
        }
        kept: dict[int, Image] = {}
        position = 0
        for path, outcome in images:
            if isinstance(outcome, ImageRejected):
                result.images["rejected"] += 1
                result.problems.append(
                    ImportProblem(row.line_number, row.product_id, str(outcome), image=path)
                )
                continue
            if isinstance(outcome, KnownImage):
                existing = mine.get(outcome.image_id) or Image.objects.select_related("product").get(
                    pk=outcome.image_id
                )
            else:
                existing = stored_by_hash.get(outcome.sha256)

            if existing is not None and (existing.product_id != product.pk or existing.pk in kept):
                result.images["duplicates"] += 1
                result.duplicates.append(
                    ImportDuplicate(
                        line=row.line_number,
                        product_id=row.product_id,
                        image=path,
                        duplicate_of_image_id=existing.pk,
                        duplicate_of_product_id=existing.product.external_id,
                    )
                )
                continue

            if existing is not None:
                if existing.position != position or not existing.is_listed or existing.source_path != path:
                    existing.position, existing.is_listed, existing.source_path = position, True, path
                    existing.save(update_fields=["position", "is_listed", "source_path"])
                    result.images["updated"] += 1
                else:
                    result.images["unchanged"] += 1
                kept[existing.pk] = existing
            else:
                assert isinstance(outcome, NormalizedImage)
                image = Image.objects.create(
                    product=product,
                    file=_store_file(outcome, written_files),
                    sha256=outcome.sha256,
                    source_sha256=outcome.source_sha256,
                    source_path=path,
                    position=position,
                    width=outcome.width,
                    height=outcome.height,
                    origin=Image.Origin.REAL,
                )
                stored_by_hash[outcome.sha256] = image
                kept[image.pk] = image
                result.images["imported"] += 1
            position += 1
        return set(kept)


def _store_file(image: NormalizedImage, written_files: list[str]) -> str:
    """Saves the content under a name made of its hash, once: an existing file with that name is reused."""
    name = f"images/{image.sha256[:2]}/{image.sha256}.{image.extension}"
    if default_storage.exists(name):
        return name
    saved = default_storage.save(name, ContentFile(image.content))
    written_files.append(saved)
    return saved


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not remove %s after a rolled-back import line", name)
