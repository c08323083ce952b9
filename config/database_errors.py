"""Requests that meet a database that went away (a restart, a failover, a cut connection) get a clean 503.

Without this an annotator mid-queue sees a bare "Server Error (500)" page, and the review page's script can't
tell a passing outage from a bug. With it: the review endpoints and the API answer JSON with
``code: "database_unavailable"`` and ``Retry-After``, pages answer a small page that says to retry, and the
log gets one line instead of a traceback. Nothing is half-written: each write runs in a transaction that the
database rolls back when its connection dies, and Django drops the broken connection at the end of the
request (``CONN_HEALTH_CHECKS`` reconnects on the next one).

The middleware catches what views raise; ``server_error`` (the project's ``handler500``) catches the same
errors raised outside a view, e.g. while a middleware saves the session.
"""

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

logger = logging.getLogger(__name__)

# Connection refused or lost, a terminated backend, a statement timeout, SQLite's lock timeout: all passing.
DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5
MESSAGE = "The database can't be reached right now (it may be restarting); nothing was saved."


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def database_unavailable_response(request: HttpRequest, exception: BaseException) -> HttpResponse:
    first_line = (str(exception).strip().splitlines() or [""])[0]
    logger.warning(
        "database unavailable during %s %s: %s: %s",
        request.method,
        request.path,
        type(exception).__name__,
        first_line,
    )
    if _wants_json(request):
        response: HttpResponse = JsonResponse(
            {"ok": False, "code": "database_unavailable", "message": MESSAGE}, status=503
        )
    else:
        # Rendered without the request: the usual page header reads the signed-in user, which needs the database.
        response = HttpResponse(render_to_string("503.html", {"message": MESSAGE}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_ERRORS):
            return database_unavailable_response(request, exception)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: Django calls it while handling the exception, so ``sys.exc_info`` holds it."""
    exception = sys.exc_info()[1]
    if isinstance(exception, DATABASE_ERRORS):
        return database_unavailable_response(request, exception)
    return defaults.server_error(request)
