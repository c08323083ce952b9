"""Storing generated images (synthetic negatives) in the catalog, like the import stores photos."""

import hashlib
import io

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image as PILImage

from annotation.models import Image


def generated_image_store(
    picture: PILImage.Image, *, instance_id: int, source_path: str, jpeg_quality: int = 95
) -> Image | None:
    """Stores the picture as a generated image of the instance (content-addressed, like imported photos);
    the new row, or None when these exact bytes are already in the catalog."""
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "JPEG", quality=jpeg_quality)
    content = buffer.getvalue()
    sha = hashlib.sha256(content).hexdigest()
    if Image.objects.filter(sha256=sha).exists():
        return None
    name = f"images/{sha[:2]}/{sha}.jpg"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(content))
    try:
        with transaction.atomic():
            return Image.objects.create(
                generated_for_id=instance_id,
                product=None,
                origin=Image.Origin.GENERATED,
                file=name,
                sha256=sha,
                source_sha256=sha,
                source_path=source_path,
                width=picture.width,
                height=picture.height,
            )
    except IntegrityError:  # another worker stored the same bytes meanwhile
        return None
