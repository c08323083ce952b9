"""The whole loop on the CPU, as a researcher does it: a small FGVQA built from the demo catalogs (TWIN-Eval
from a snapshot's eval split, and the DreamBooth photo folders), a draft run of a tiny random-weight
Qwen2.5-VL on the transformers backend, launched from the admin, then the report (table and plots), the
wrong answers with their images, the CSV and the API."""

import csv
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from evaluation.models import Benchmark, EvaluationResponse, EvaluationRun
from jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_researcher_evaluates_a_tiny_model_on_a_small_fgvqa_from_the_admin(
    admin_client, eval_snapshot, tmp_path
):
    call_command(
        "create_demo_evaluation",
        eval_snapshot.name,
        "--pair-count",
        "6",
        "--multi-count",
        "4",
        "--model-dir",
        str(tmp_path / "tiny-model"),
    )
    twin_eval, objects = (
        Benchmark.objects.get(name="twin-eval-demo"),
        Benchmark.objects.get(name="objects-demo"),
    )
    for benchmark in (twin_eval, objects):
        assert benchmark.is_ready, benchmark.notes
        assert (benchmark.pair_count, benchmark.multi_count) == (6, 4)
        answers = sorted(benchmark.queries.filter(question_type="pair").values_list("answer", flat=True))
        assert answers == ["no"] * 3 + ["yes"] * 3
        assert sorted(benchmark.queries.filter(question_type="multi").values_list("answer", flat=True)) == [
            "0",
            "1",
            "2",
            "3",
        ]
    run = EvaluationRun.objects.get(name="demo-tiny-qwen")
    assert run.status == "draft" and run.backend == "transformers"

    change_url = reverse("admin:evaluation_evaluationrun_change", args=[run.pk])
    form = admin_client.get(change_url).context["adminform"].form
    posted = {name: form[name].value() for name in form.fields}  # the page's form as the browser sends it
    posted = {name: "" if value is None else value for name, value in posted.items()}
    response = admin_client.post(change_url, {**posted, "_launch": "1"})  # eager: returns when it is done

    assert response.status_code == 302 and response.url == reverse("evaluation:run_detail", args=[run.pk])
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.progress_done, job.progress_total) == (20, 20)
    responses = EvaluationResponse.objects.filter(run=run)
    assert responses.count() == 20
    assert all(response.correct is not None for response in responses)
    assert {row["benchmark"] for row in run.summary["rows"]} == {"Twin-Eval (demo)", "Objects (demo)"}
    for row in run.summary["rows"]:
        assert (row["pair_count"], row["multi_count"]) == (6, 4)
        assert row["total"] == pytest.approx(100 * row["correct"] / 10)

    page = admin_client.get(response.url).content.decode()
    assert 'id="run-status">succeeded' in page and 'id="report-table"' in page
    assert "Twin-Eval (demo)" in page and "Mean" in page and "<svg" in page
    assert "hx-trigger" not in page  # done: the page stops polling

    wrong = responses.filter(correct=False).count()
    browser = admin_client.get(reverse("evaluation:run_responses", args=[run.pk])).content.decode()
    assert f"{wrong} answer" in browser
    everything = admin_client.get(reverse("evaluation:run_responses", args=[run.pk]) + "?all=1").content
    assert everything.decode().count("<img ") == sum(
        len(r.query.image_ids) for r in responses.order_by("query_id")[:20]
    )

    report_csv = admin_client.get(reverse("evaluation:run_report_csv", args=[run.pk])).content.decode()
    rows = list(csv.DictReader(io.StringIO(report_csv)))
    assert [row["benchmark"] for row in rows] == ["Objects (demo)", "Twin-Eval (demo)", "Mean"]
    streamed = b"".join(
        admin_client.get(reverse("evaluation:run_responses_csv", args=[run.pk])).streaming_content
    )
    assert len(list(csv.DictReader(io.StringIO(streamed.decode())))) == 20

    api = admin_client.get(f"/api/v1/evaluation/runs/{run.pk}/").json()
    assert api["status"] == "succeeded" and len(api["report"]["rows"]) == 2
    assert api["report"]["mean_total"] == pytest.approx(run.summary["mean_total"])


def test_a_stopped_run_resumes_with_the_queries_it_has_not_answered(admin_client, eval_snapshot, tmp_path):
    call_command(
        "create_demo_evaluation",
        eval_snapshot.name,
        "--pair-count",
        "4",
        "--multi-count",
        "4",
        "--model-dir",
        str(tmp_path / "tiny-model"),
    )
    run = EvaluationRun.objects.get(name="demo-tiny-qwen")
    first = EvaluationResponse.objects  # answers stored before the stop are kept, and never asked again
    call_command("evaluate", str(run.pk), "--no-progress")
    answered = {response.query_id: response.pk for response in first.filter(run=run)}
    assert len(answered) == 16
    EvaluationResponse.objects.filter(pk__in=list(answered.values())[8:]).delete()  # as if it stopped halfway

    call_command("evaluate", str(run.pk), "--no-progress")

    again = {response.query_id: response.pk for response in EvaluationResponse.objects.filter(run=run)}
    assert set(again) == set(answered)
    kept = list(answered.items())[:8]
    assert all(again[query_id] == pk for query_id, pk in kept)
