"""Settings dataclasses stored as JSON (hyperparameters, run options, the TRL runner's config): the one check
their ``from_json`` shares, so a misspelled key is an error rather than a silent fall back to its default."""

from collections.abc import Mapping
from dataclasses import fields
from typing import Any


def json_fields(instance: Any) -> dict[str, Any]:
    """A dataclass's fields as a JSON-ready dict (one level: nested dataclasses write themselves)."""
    return {f.name: getattr(instance, f.name) for f in fields(instance)}


def json_object_checked(data: Any, cls: type, *, what: str) -> dict[str, Any]:
    """``data`` as a dict, once it is known to be a JSON object whose keys are all fields of ``cls``; raises a
    ValueError naming ``what`` (e.g. "GRPO hyperparameter") and the unknown keys otherwise."""
    if not isinstance(data, Mapping):
        raise ValueError(f"the {what}s must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dict(data)
