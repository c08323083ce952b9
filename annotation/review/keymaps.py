"""Each annotator's keyboard map: the default keys of a queue, overridden by their own choices."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError

from annotation.models import ReviewerPreferences
from annotation.review.caching import KEYMAP_TTL_SECONDS, keymap_cache_key
from annotation.review.queues import COMMAND_KEYS, COMMAND_LABELS, RESERVED_KEYS, queue_definition
from config.cache_calls import cache_call

# Named keys (KeyboardEvent.key values) a user may pick besides single characters.
NAMED_KEYS = {"ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Backspace", "Delete", "Home", "End"}


def keymap_defaults(*, kind: str) -> dict[str, str]:
    keys = {action.code: action.default_key for action in queue_definition(kind).actions}
    return {**keys, **COMMAND_KEYS}


def keymap_labels(*, kind: str) -> dict[str, str]:
    labels = {action.code: action.label for action in queue_definition(kind).actions}
    return {**labels, **COMMAND_LABELS}


def keymap_get(*, user: AbstractBaseUser, kind: str) -> dict[str, str]:
    """{action or command: key} for this user in this queue. Read from the cache: every card needs it."""
    cache_key = keymap_cache_key(user.pk, kind)
    saved = cache_call(cache.get, cache_key)
    if saved is None:
        preferences = ReviewerPreferences.objects.filter(user=user).first()
        saved = preferences.keymap.get(kind, {}) if preferences is not None else {}
        cache_call(cache.set, cache_key, saved, KEYMAP_TTL_SECONDS)
    keys = keymap_defaults(kind=kind)
    keys.update({name: key for name, key in saved.items() if name in keys})
    return keys


def key_normalize(key: str) -> str:
    """Letters are matched case-insensitively; a space stays a space (and is refused as reserved)."""
    if len(key) == 1:
        return key.lower()
    return key.strip()


def keymap_update(*, user: AbstractBaseUser, kind: str, keys: dict[str, str]) -> dict[str, str]:
    """Saves the user's keys for the queue. Raises ValidationError naming every problem; saves nothing then."""
    defaults = keymap_defaults(kind=kind)
    labels = keymap_labels(kind=kind)
    chosen = {name: key_normalize(keys.get(name, defaults[name]) or defaults[name]) for name in defaults}
    errors: list[str] = []
    for name, key in chosen.items():
        if key in RESERVED_KEYS:
            errors.append(f"{labels[name]}: {key!r} is reserved by the page.")
        elif len(key) != 1 and key not in NAMED_KEYS:
            errors.append(f"{labels[name]}: use one character or one of {', '.join(sorted(NAMED_KEYS))}.")
    by_key: dict[str, list[str]] = {}
    for name, key in chosen.items():
        by_key.setdefault(key, []).append(labels[name])
    for key, names in by_key.items():
        if len(names) > 1:
            errors.append(f"{key!r} is given to {' and '.join(names)}; each key can do one thing.")
    if errors:
        raise ValidationError(errors)
    preferences, _ = ReviewerPreferences.objects.get_or_create(user=user)
    overrides = {name: key for name, key in chosen.items() if key != defaults[name]}
    keymap = dict(preferences.keymap)
    if overrides:
        keymap[kind] = overrides
    else:
        keymap.pop(kind, None)
    preferences.keymap = keymap
    preferences.save(update_fields=["keymap"])
    cache_call(cache.delete, keymap_cache_key(user.pk, kind))
    return chosen
