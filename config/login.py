"""The sign-in page, with a limit on failed attempts (against password guessing).

Failures are counted in the cache per (user name, address) and per address. Past the limit the page answers
429 with a sentence saying when to try again, without checking the password. A successful sign-in clears its
user name's count. If the cache is unreachable, sign-in works unlimited rather than not at all.
"""

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)
ADDRESS_FACTOR = 5  # an address may fail this many times the per-user limit (several people behind one NAT)


def _keys(request: HttpRequest) -> tuple[str, str]:
    address = request.META.get("REMOTE_ADDR", "")
    username = request.POST.get("username", "").strip().lower()
    digest = hashlib.sha256(f"{username}|{address}".encode()).hexdigest()[:32]
    return f"login-failures:user:{digest}", f"login-failures:address:{address}"


def _failures(keys: tuple[str, str]) -> tuple[int, int]:
    values = cache.get_many(keys)
    return int(values.get(keys[0], 0)), int(values.get(keys[1], 0))


def _count_failure(keys: tuple[str, str]) -> None:
    for key in keys:
        # add() starts the window; incr() keeps it (the first failure's expiry stands).
        if not cache.add(key, 1, timeout=settings.LOGIN_WINDOW_SECONDS):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=settings.LOGIN_WINDOW_SECONDS)


class ThrottledLoginView(auth_views.LoginView):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        keys = _keys(request)
        try:
            by_user, by_address = _failures(keys)
        except Exception:
            logger.warning("sign-in attempts not counted: the cache is unreachable", exc_info=True)
            return super().post(request, *args, **kwargs)
        limit = settings.LOGIN_MAX_FAILURES
        if by_user >= limit or by_address >= limit * ADDRESS_FACTOR:
            minutes = max(1, settings.LOGIN_WINDOW_SECONDS // 60)
            # An unbound form: a bound one would check the password when asked for its errors.
            context = self.get_context_data(
                form=self.get_form_class()(request),
                locked_message=f"Too many failed sign-ins. Try again in {minutes} minutes.",
            )
            response = self.render_to_response(context)
            response.status_code = 429
            response["Retry-After"] = str(settings.LOGIN_WINDOW_SECONDS)
            return response
        response = super().post(request, *args, **kwargs)
        try:
            if request.user.is_authenticated:
                cache.delete(keys[0])
            else:
                _count_failure(keys)
        except Exception:
            logger.warning("sign-in attempt not counted: the cache is unreachable", exc_info=True)
        return response
