"""What the review page reads on every answer but rarely changes, kept out of the database's way.

The review flow answers dozens of requests a second; the queue's settings and each annotator's key map change a
few times a day. The key map lives in the shared cache (every web process sees a change at once, because the
change itself clears it); the queue settings live a few seconds in each process. A cache that is down costs a
database read, never a failed answer.
"""

import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)

KEYMAP_TTL_SECONDS = 600


def keymap_cache_key(user_id: int, kind: str) -> str:
    return f"review:keymap:{user_id}:{kind}"


def cache_get(key: str):
    try:
        return cache.get(key)
    except Exception:  # the cache being down must not fail an answer: read the database instead
        logger.warning("cache unavailable, reading %s from the database", key)
        return None


def cache_set(key: str, value, ttl: int) -> None:
    try:
        cache.set(key, value, ttl)
    except Exception:
        logger.warning("cache unavailable, %s not cached", key)


def cache_delete(key: str) -> bool:
    """False when the cache could not be reached (then the caller can't rely on the entry being gone)."""
    try:
        cache.delete(key)
        return True
    except Exception:
        logger.warning("cache unavailable, %s not cleared", key)
        return False


def queue_settings_changed(**kwargs) -> None:
    """Signal receiver: a ReviewQueue row was saved or deleted."""
    from annotation.review.leases import review_queue_settings_forget

    review_queue_settings_forget()
