"""The OpenAI-compatible runner against a real chat-completions server on localhost (a ThreadingHTTPServer in a
thread): the request's JSON, the images it carries, the key, concurrency, retries, errors and the order of results."""

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation.runners.base import GenerationRequest, RunnerError, RunnerSettings, runner_open
from evaluation.runners.openai_runner import OpenAiRunner, api_url, image_data_url, retry_after_seconds

KEY_ENV = "TWIN_TEST_OPENAI_KEY"


class ChatServer(ThreadingHTTPServer):
    """A chat-completions endpoint that answers "echo: <the text>", after the scripted failures it is given."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.lock = threading.Lock()
        self.received = []  # (time, path, headers, body) per request, in arrival order
        self.script = []  # (status, headers, body) served, in order, before the normal answers
        self.delays = {}  # the text of a prompt -> seconds to wait before answering it
        self.usage = True
        self.in_flight = 0
        self.most_in_flight = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        with server.lock:
            server.received.append((time.monotonic(), self.path, dict(self.headers), body))
            scripted = server.script.pop(0) if server.script else None
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        if scripted:
            self.finish_and_reply(*scripted)
            return
        text = body["messages"][0]["content"][-1]["text"]
        time.sleep(server.delays.get(text, 0.0))
        answer = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo: {text}"}}],
        }
        if server.usage:
            answer["usage"] = {"prompt_tokens": 10 + len(text), "completion_tokens": 3, "total_tokens": 0}
        self.finish_and_reply(200, {}, answer)

    def finish_and_reply(self, status, headers, body):
        # No longer in flight once the answer is ready: a client that gets it may send its next request at once,
        # before this thread would get round to counting it out after writing.
        with self.server.lock:
            self.server.in_flight -= 1
        self.reply(status, headers, body)

    def reply(self, status, headers, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # the test output stays quiet
        pass


@pytest.fixture
def server():
    chat_server = ChatServer()
    # A short poll interval: shutdown() waits up to one interval for the serving loop to notice.
    thread = threading.Thread(target=chat_server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield chat_server
    chat_server.shutdown()
    chat_server.server_close()


@pytest.fixture
def image_paths(tmp_path) -> dict[str, str]:
    """The same kind of picture in the formats and modes a catalog holds."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8))
    paths = {}
    for name, picture, file_name in (
        ("jpeg", rgb, "a.jpg"),
        ("png", rgb, "b.png"),
        ("grey-png", rgb.convert("L"), "c.png"),
        ("webp", rgb, "d.webp"),
        ("bmp", rgb, "e.bmp"),
        ("cmyk-jpeg", rgb.convert("CMYK"), "f.jpg"),
    ):
        path = tmp_path / file_name
        picture.save(path, **({"lossless": True} if name == "webp" else {}))
        paths[name] = str(path)
    return paths


def settings_for(server: ChatServer, **overrides) -> RunnerSettings:
    values = {
        "backend": "openai",
        "model": "twin-qwen2.5-vl-3b",
        "api_base": server.api_base,
        "api_key_env": KEY_ENV,
        "max_new_tokens": 16,
        "batch_size": 4,
        "max_retries": 3,
    }
    values.update(overrides)
    return RunnerSettings(**values)


def open_runner(server: ChatServer, **overrides) -> OpenAiRunner:
    runner = runner_open(settings_for(server, **overrides))
    runner.backoff_seconds = 0.001  # retries in milliseconds, unless a Retry-After says otherwise
    return runner


def decoded(data_url: str) -> tuple[str, Image.Image]:
    header, payload = data_url.split(",", 1)
    assert header.startswith("data:") and header.endswith(";base64")
    return header[len("data:") : -len(";base64")], Image.open(io.BytesIO(base64.b64decode(payload)))


def test_the_request_is_one_user_message_with_the_images_first(server, image_paths):
    runner = open_runner(server, api_base=server.api_base + "/", temperature=0.0, seed=5)

    (result,) = runner.generate(
        [
            GenerationRequest(
                key="q1", prompt="Same object?", image_paths=(image_paths["jpeg"], image_paths["png"])
            )
        ]
    )

    ((_, path, _, body),) = server.received
    assert path == "/v1/chat/completions"  # the trailing slash of api_base is not doubled
    assert body["model"] == "twin-qwen2.5-vl-3b"
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (16, 0.0, 5)
    (message,) = body["messages"]
    assert message["role"] == "user"
    assert [part["type"] for part in message["content"]] == ["image_url", "image_url", "text"]
    assert message["content"][2] == {"type": "text", "text": "Same object?"}
    assert (result.key, result.text) == ("q1", "echo: Same object?")
    assert (result.prompt_tokens, result.completion_tokens) == (10 + len("Same object?"), 3)
    runner.close()


def test_extra_settings_go_into_the_body(server):
    runner = open_runner(server, extra={"top_p": 0.5})

    runner.generate([GenerationRequest(key="q", prompt="Hi")])

    assert server.received[0][3]["top_p"] == 0.5


def test_the_data_urls_decode_to_the_images_sent(server, image_paths):
    runner = open_runner(server)
    names = list(image_paths)

    runner.generate([GenerationRequest(key="q", prompt="Which?", image_paths=tuple(image_paths.values()))])

    parts = server.received[0][3]["messages"][0]["content"][:-1]
    assert len(parts) == len(names)
    for name, part in zip(names, parts, strict=True):
        mime, sent = decoded(part["image_url"]["url"])
        original = Image.open(image_paths[name])
        if name in ("jpeg", "png", "grey-png"):
            # JPEG and PNG travel as the file's own bytes: the server decodes exactly what is on disk.
            assert mime == ("image/jpeg" if name == "jpeg" else "image/png")
            sent_bytes = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            assert sent_bytes == Path(image_paths[name]).read_bytes()
        else:
            # Other formats and modes are re-encoded, losslessly, as PNG.
            assert mime == "image/png"
        assert sent.size == original.size
        assert np.array_equal(np.asarray(sent.convert("RGB")), np.asarray(original.convert("RGB")))


def test_the_bearer_key_comes_from_the_named_environment_variable(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-secret-test-key")
    runner = open_runner(server)

    runner.generate([GenerationRequest(key="q", prompt="Hi")])

    assert server.received[0][2]["Authorization"] == "Bearer sk-secret-test-key"


def test_without_the_key_there_is_no_authorization_header(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    runner = open_runner(server)

    runner.generate([GenerationRequest(key="q", prompt="Hi")])

    assert "Authorization" not in server.received[0][2]


def test_batch_size_requests_are_in_flight_at_once_and_results_keep_their_order(server):
    runner = open_runner(server, batch_size=4)
    requests = [GenerationRequest(key=f"q{number}", prompt=f"prompt {number}") for number in range(8)]
    # The first prompts are the slowest, so the server finishes them last.
    server.delays = {request.prompt: 0.4 - 0.04 * number for number, request in enumerate(requests)}

    results = runner.generate(requests)

    assert server.most_in_flight == 4
    assert [result.key for result in results] == [request.key for request in requests]
    assert [result.text for result in results] == [f"echo: {request.prompt}" for request in requests]
    assert all(result.seconds > 0 for result in results)


def test_a_503_is_retried_and_then_answered(server):
    server.script = [(503, {}, {"error": {"message": "loading the model"}})]
    runner = open_runner(server)

    (result,) = runner.generate([GenerationRequest(key="q", prompt="Hi")])

    assert result.text == "echo: Hi"
    assert len(server.received) == 2
    assert server.received[0][3] == server.received[1][3]  # the same request, sent again


def test_retry_after_is_waited_for(server):
    server.script = [(429, {"Retry-After": "0.3"}, {"error": {"message": "rate limited"}})]
    runner = open_runner(server)

    (result,) = runner.generate([GenerationRequest(key="q", prompt="Hi")])

    assert result.text == "echo: Hi"
    (first, *_), (second, *_) = server.received
    assert second - first >= 0.3  # not the millisecond backoff of this runner


def test_a_400_is_a_runner_error_with_the_servers_message_and_is_not_retried(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-secret-test-key")
    server.script = [(400, {}, {"error": {"message": "too many images: at most 2 per prompt " + "x" * 2000}})]
    runner = open_runner(server)

    with pytest.raises(RunnerError, match="HTTP 400.*too many images: at most 2 per prompt") as raised:
        runner.generate([GenerationRequest(key="q7", prompt="Hi")])

    assert "q7" in str(raised.value)
    assert len(str(raised.value)) < 800  # the server's message is cut short
    assert "sk-secret" not in str(raised.value)
    assert len(server.received) == 1


def test_retries_run_out_into_a_runner_error(server):
    server.script = [(503, {}, "overloaded")] * 3
    runner = open_runner(server, max_retries=2)

    with pytest.raises(RunnerError, match="HTTP 503 .* after 3 attempts: overloaded"):
        runner.generate([GenerationRequest(key="q", prompt="Hi")])

    assert len(server.received) == 3


def test_a_server_that_is_not_there_is_a_runner_error_after_the_retries(server):
    api_base = server.api_base
    server.shutdown()
    server.server_close()  # the port now refuses connections
    runner = runner_open(
        RunnerSettings(backend="openai", model="m", api_base=api_base, max_retries=1, timeout_seconds=2)
    )
    runner.backoff_seconds = 0.001

    with pytest.raises(RunnerError, match="no answer from .* after 2 attempts"):
        runner.generate([GenerationRequest(key="q", prompt="Hi")])


def test_an_answer_without_usage_has_no_token_counts(server):
    server.usage = False
    runner = open_runner(server)

    (result,) = runner.generate([GenerationRequest(key="q", prompt="Hi")])

    assert (result.prompt_tokens, result.completion_tokens) == (None, None)


def test_no_requests_send_nothing(server):
    assert open_runner(server).generate([]) == []
    assert server.received == []


@pytest.mark.parametrize("api_base", ["", "ftp://host/v1", "localhost:8000/v1", "http://"])
def test_api_base_must_be_an_http_url(api_base):
    with pytest.raises(RunnerError, match="api_base must be an http"):
        api_url(api_base)


def test_api_url_strips_the_trailing_slash():
    assert api_url("https://api.example.com/v1/") == "https://api.example.com/v1/chat/completions"


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait


def test_an_unreadable_image_is_a_runner_error(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")

    with pytest.raises(RunnerError, match="cannot read image"):
        image_data_url(str(broken))
