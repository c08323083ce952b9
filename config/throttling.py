"""The API's rate limits, which let requests through when the cache that counts them is unreachable.

DRF's throttles keep their counters in the cache (Redis in production). Without this, a Redis outage would turn
every API request into a server error; with it, the API keeps serving, unthrottled, until Redis is back.
"""

import logging

from rest_framework import throttling

logger = logging.getLogger(__name__)


class _FailOpen:
    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache's client raises its own errors (redis.ConnectionError, OSError...)
            logger.warning("API rate limit not checked: the cache is unreachable", exc_info=True)
            return True


class AnonymousRateThrottle(_FailOpen, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_FailOpen, throttling.UserRateThrottle):
    pass
