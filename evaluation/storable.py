"""Text from outside (a model's output, a parquet cell) made storable in every database we run on.

PostgreSQL's text and jsonb can't hold the NUL character, which a model's raw output (a random or broken model
emits any token) or a published file may contain; SQLite can. NUL becomes U+FFFD, the replacement character, so
the row is stored the same on both and the spot stays visible.
"""

from typing import Any

REPLACEMENT = "\ufffd"


def storable_text(text: str) -> str:
    return text.replace("\x00", REPLACEMENT)


def storable_json(value: Any) -> Any:
    """A JSON value with NUL replaced in every string, keys included."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_json(key): storable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(item) for item in value]
    return value
