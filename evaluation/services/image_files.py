"""Benchmark images as local files: what the model backends read.

With the filesystem storage an image's file is used in place. With S3 (``TWIN_MEDIA_STORAGE=s3``) it is
downloaded once into ``TWIN_EVALUATION_CACHE_DIR`` on the worker and reused by every later run there.
"""

from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage


def local_image_path(storage_name: str) -> str:
    try:
        return default_storage.path(storage_name)
    except NotImplementedError:
        pass
    cache_root = Path(settings.EVALUATION_CACHE_DIR).resolve()
    target = (cache_root / storage_name).resolve()
    if not target.is_relative_to(cache_root):
        raise ValueError(f"image name {storage_name!r} points outside the cache")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with default_storage.open(storage_name, "rb") as source, open(partial, "wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)
        partial.replace(target)  # whole files only: a download that stops leaves no truncated image behind
    return str(target)
