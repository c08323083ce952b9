"""The OpenAI-compatible backend: a chat-completions server over HTTP (a ``vllm serve`` node, a hosted API).

Each request is one POST to ``{api_base}/chat/completions`` with a single user message: the images first, as
base64 data URLs, then the text. ``settings.batch_size`` requests are in flight at once (a thread pool; the
server batches them). A 429, a 5xx, a timeout or a dropped connection is retried ``settings.max_retries`` times
with exponential backoff, or after the server's ``Retry-After`` when it sends one; any other 4xx stops the run
with the server's message, since sending the same request again cannot help.

The API key is read from the environment variable that ``settings.api_key_env`` names and goes only into the
Authorization header; it is never put in a message or a log. ``settings.extra`` is merged into every request's
JSON body (e.g. ``{"top_p": 0.9}``).

HTTP goes through ``requests`` (installed with the ML stack, which the evaluation workers run).
"""

from __future__ import annotations

import base64
import email.utils
import io
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from requests import ConnectionError as RequestsConnectionError
from requests import Response, Session, Timeout
from requests.adapters import HTTPAdapter

from evaluation.runners.base import GenerationRequest, GenerationResult, RunnerError, RunnerSettings

MESSAGE_LIMIT = 500  # characters of a server's error message kept in a RunnerError
BACKOFF_LIMIT_SECONDS = 60.0  # the longest wait of the exponential backoff
RETRY_AFTER_LIMIT_SECONDS = (
    300.0  # the longest Retry-After honoured as it is (a bad header can't stall a run)
)
# Formats sent as the file's own bytes: every chat-completions server decodes them, and not re-encoding keeps
# the pixels exactly as the other backends see them. Other formats (and modes a browser can't show) become PNG.
PASSTHROUGH = {"JPEG": ("image/jpeg", {"RGB", "L"}), "PNG": ("image/png", {"RGB", "RGBA", "L", "LA", "P"})}


def api_url(api_base: str) -> str:
    """The chat-completions endpoint under ``api_base``, which must be an http(s) URL with a host."""
    base = api_base.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RunnerError(
            f"api_base must be an http(s) URL such as http://gpu-node:8000/v1, not {api_base!r}"
        )
    return f"{base}/chat/completions"


def image_data_url(path: str) -> str:
    """The image file as a ``data:`` URL: JPEG and PNG as they are, anything else re-encoded as PNG."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            passthrough = PASSTHROUGH.get(picture.format or "")
            if passthrough and picture.mode in passthrough[1]:
                mime = passthrough[0]
                with open(path, "rb") as file:
                    data = file.read()
            else:
                mode = "RGBA" if "A" in picture.getbands() or "transparency" in picture.info else "RGB"
                buffer = io.BytesIO()
                picture.convert(mode).save(buffer, "PNG")
                mime, data = "image/png", buffer.getvalue()
    except (OSError, ValueError) as error:
        raise RunnerError(f"cannot read image {path}: {error}") from error
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def chat_body(request: GenerationRequest, settings: RunnerSettings) -> dict[str, Any]:
    """The JSON body of one chat-completions request."""
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_data_url(path)}} for path in request.image_paths
    ]
    content.append({"type": "text", "text": request.prompt})
    return {
        "model": settings.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "seed": settings.seed,
        **settings.extra,
    }


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header's wait: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def retryable(status: int) -> bool:
    """Whether an HTTP status says "try again later": a timeout, rate limiting or a server-side failure."""
    return status in (408, 429) or status >= 500


def server_message(response: Response) -> str:
    """The error a server gave (OpenAI's ``{"error": {"message": ...}}`` or the body), cut to a readable length."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    message = None
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail", payload.get("message")))
        message = error.get("message") if isinstance(error, dict) else error
    text = str(message) if message else response.text
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."


def completion_text(payload: dict[str, Any]) -> str:
    """The first choice's message content (a string, or a list of parts whose texts are joined)."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as error:
        raise RunnerError(
            f"the server's answer has no choices[0].message.content: {str(payload)[:200]}"
        ) from error
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


class OpenAiRunner:
    """A chat-completions client: ``batch_size`` concurrent requests, retried on overload and network errors."""

    def __init__(self, settings: RunnerSettings, *, backoff_seconds: float = 1.0) -> None:
        self.settings = settings
        self.url = api_url(settings.api_base)
        # The first retry waits this long, each later one twice as long as the one before (unless Retry-After).
        self.backoff_seconds = backoff_seconds
        self.session = Session()
        # One pooled connection per concurrent request; the default pool of 10 would drop and reopen the rest.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(10, settings.batch_size))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in the requests' order, whatever order the server answers in."""
        if not requests:
            return []
        started = time.perf_counter()
        workers = max(1, min(self.settings.batch_size, len(requests)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-runner")
        try:
            futures = [pool.submit(self._request_answer, request) for request in requests]
            # Collected in submission order; the first failure (a RunnerError) is raised here.
            answers = [future.result() for future in futures]
        finally:
            # After a failure the requests still queued are dropped rather than sent for nothing.
            pool.shutdown(wait=True, cancel_futures=True)
        seconds = (time.perf_counter() - started) / len(requests)
        return [
            GenerationResult(
                key=request.key,
                text=completion_text(payload),
                seconds=seconds,
                prompt_tokens=(payload.get("usage") or {}).get("prompt_tokens"),
                completion_tokens=(payload.get("usage") or {}).get("completion_tokens"),
            )
            for request, payload in zip(requests, answers, strict=True)
        ]

    def _request_answer(self, request: GenerationRequest) -> dict[str, Any]:
        """The server's JSON answer to one request, after as many retries as the settings allow."""
        body = chat_body(request, self.settings)
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            last_attempt = attempt == attempts - 1
            wait = min(self.backoff_seconds * 2**attempt, BACKOFF_LIMIT_SECONDS)
            try:
                response = self.session.post(self.url, json=body, timeout=self.settings.timeout_seconds)
            except (RequestsConnectionError, Timeout) as error:
                if last_attempt:
                    raise RunnerError(
                        f"request {request.key}: no answer from {self.url} after {attempts} attempts: {error}"
                    ) from error
            else:
                if response.ok:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise RunnerError(
                            f"request {request.key}: the server's answer is not JSON: {response.text[:200]}"
                        ) from error
                if not retryable(response.status_code):
                    raise RunnerError(
                        f"request {request.key}: HTTP {response.status_code} from {self.url}: "
                        f"{server_message(response)}"
                    )
                if last_attempt:
                    raise RunnerError(
                        f"request {request.key}: HTTP {response.status_code} from {self.url} after {attempts} "
                        f"attempts: {server_message(response)}"
                    )
                told = retry_after_seconds(response.headers.get("Retry-After"))
                if told is not None:
                    wait = min(told, RETRY_AFTER_LIMIT_SECONDS)
            time.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        """Closes the HTTP session and its pooled connections."""
        self.session.close()
