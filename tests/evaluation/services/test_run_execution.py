"""An evaluation run on the OpenAI-compatible backend against a served model on localhost (a real HTTP server in
a thread): pair, multi and open-ended queries answered, parsed, scored, and the open answers judged (FROW)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evaluation.models import EvaluationResponse
from evaluation.reports import run_report
from evaluation.services.runs import EvaluationRunError, evaluation_run_create, evaluation_run_launch
from jobs.models import Job
from tests.evaluation.services.test_benchmarks import _folder_benchmark

pytestmark = pytest.mark.django_db(transaction=True)


class ServedModel(BaseHTTPRequestHandler):
    """Says yes to every pair, 2 to every multi query, names a mug when asked what something is, and judges."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][0]["content"]
        text = content[-1]["text"] if isinstance(content, list) else content
        images = sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
        self.server.calls.append((body["model"], images))
        if body["model"] == "judge":
            reply = "<recognition>2</recognition><content>1</content><reason>The right object.</reason>"
        elif "How many" in text:
            reply = "Two of them match. <answer>2</answer>"
        elif text.startswith("Do these two images"):
            reply = "They look alike.\x00 <answer>yes</answer>"  # NUL, as a broken model may emit
        else:
            reply = "This is a mug with a blue glaze."
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def served_model():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ServedModel)
    server.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_a_served_model_answers_every_query_type_and_a_judge_scores_the_open_answers(tmp_path, served_model):
    benchmark = _folder_benchmark(tmp_path, pair_count=8, multi_count=8, open_count=3)
    assert (benchmark.pair_count, benchmark.multi_count, benchmark.open_count) == (8, 8, 3)
    base = f"http://127.0.0.1:{served_model.server_address[1]}/v1"
    run = evaluation_run_create(
        name="served",
        benchmarks=[benchmark],
        backend="openai",
        model="served-vlm",
        options={
            "api_base": base,
            "question_types": ["pair", "multi", "open"],
            "judge_api_base": base,
            "judge_model": "judge",
            "batch_size": 4,
        },
    )

    job = evaluation_run_launch(run=run)  # eager

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert EvaluationResponse.objects.filter(run=run).count() == 19
    report = run_report(run)
    (row,) = report.rows
    assert row.pair == 50.0  # "yes" to 4 yes and 4 no pairs
    assert row.multi == 25.0  # "2" is right for the 2 of 8 queries whose answer is 2
    assert row.total == pytest.approx(100 * 6 / 16)
    assert (row.open_count, row.recognition, row.content, row.recognition_accuracy) == (3, 2.0, 1.0, 100.0)
    pair = EvaluationResponse.objects.filter(run=run, query__question_type="pair").first()
    assert pair.text == "They look alike.\ufffd <answer>yes</answer>"  # storable in PostgreSQL too
    opened = EvaluationResponse.objects.filter(run=run, query__question_type="open")
    assert all(response.judge_text == "The right object." for response in opened)
    images_sent = sorted(images for model, images in served_model.calls if model == "served-vlm")
    assert images_sent == [1] * 3 + [2] * 8 + [4] * 8  # open, pair, multi: every image went with its query
    assert sum(1 for model, _ in served_model.calls if model == "judge") == 3

    calls = len(served_model.calls)
    evaluation_run_launch(run=run)  # launched again: nothing left to ask
    assert len(served_model.calls) == calls
    assert run_report(run).rows[0].pair == 50.0


def test_the_run_checks_say_what_is_missing(tmp_path):
    benchmark = _folder_benchmark(tmp_path, pair_count=2, multi_count=0)
    with pytest.raises(EvaluationRunError, match="api_base"):
        evaluation_run_create(name="x", benchmarks=[benchmark], backend="openai", model="m")
    with pytest.raises(EvaluationRunError, match="judge"):
        evaluation_run_create(
            name="x", benchmarks=[benchmark], backend="vllm", model="m", options={"question_types": ["open"]}
        )
    with pytest.raises(EvaluationRunError, match="at least one benchmark"):
        evaluation_run_create(name="x", benchmarks=[], backend="vllm", model="m")
    with pytest.raises(EvaluationRunError, match="unknown option"):
        evaluation_run_create(name="x", benchmarks=[benchmark], model="m", options={"max_tokens": 5})


def test_the_job_keeps_its_heartbeat_while_a_slow_model_loads(tmp_path, monkeypatch):
    """A model that takes long to load must not make the job look abandoned by its worker."""
    from evaluation.runners.base import GenerationResult
    from evaluation.services import run_execution

    benchmark = _folder_benchmark(tmp_path, pair_count=2, multi_count=0)
    run = evaluation_run_create(name="slow", benchmarks=[benchmark], backend="vllm", model="big-model")
    beats = []

    class Answering:
        def generate(self, requests):
            return [GenerationResult(key=request.key, text="<answer>no</answer>") for request in requests]

        def close(self):
            pass

    def loading(settings):
        started = Job.objects.get(kind="evaluation_run").heartbeat_at
        for _ in range(40):
            time.sleep(0.05)
            beats.append(Job.objects.get(kind="evaluation_run").heartbeat_at)
        assert max(beats) > started
        return Answering()

    monkeypatch.setattr(run_execution, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(run_execution, "runner_open", loading)

    job = evaluation_run_launch(run=run)

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert len(set(beats)) > 3  # the heartbeat moved on while the model loaded


def test_a_query_limit_asks_the_first_queries_of_each_type(tmp_path, served_model):
    benchmark = _folder_benchmark(tmp_path, pair_count=8, multi_count=8)
    base = f"http://127.0.0.1:{served_model.server_address[1]}/v1"
    run = evaluation_run_create(
        name="small",
        benchmarks=[benchmark],
        backend="openai",
        model="m",
        options={"api_base": base, "query_limit": 3},
    )

    job = evaluation_run_launch(run=run)

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.progress_total == 6
    asked = EvaluationResponse.objects.filter(run=run).values_list("query__question_type", "query__number")
    first = {
        kind: sorted(benchmark.queries.filter(question_type=kind).values_list("number", flat=True))[:3]
        for kind in ("pair", "multi")
    }
    assert sorted(asked) == sorted(
        [("pair", n) for n in first["pair"]] + [("multi", n) for n in first["multi"]]
    )
