"""A call to the cache that never fails a request: with the cache unreachable it logs one line and returns the
default, and the caller reads the database instead (sessions, the signed-in user, the review page's keys)."""

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


def cache_call(method: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    try:
        return method(*args)
    except Exception:
        logger.warning("cache unavailable: %s of %s skipped", method.__name__, args[0] if args else "")
        return default
