"""The evaluation pages and API by role: researchers see runs, comparisons and the scaling plot; annotators
get 403, anonymous API callers 401."""

import pytest
from django.urls import reverse

from evaluation.models import EvaluationResponse
from evaluation.services.runs import evaluation_run_create
from tests.evaluation.services.test_benchmarks import _folder_benchmark

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_runs(tmp_path):
    """A base and a "trained" run on one benchmark: the base answers every pair query wrong, the other right."""
    benchmark = _folder_benchmark(tmp_path, pair_count=4, multi_count=0)
    base = evaluation_run_create(name="base", benchmarks=[benchmark], backend="vllm", model="base-model")
    trained = evaluation_run_create(
        name="trained", benchmarks=[benchmark], backend="vllm", model="trained-model", training_set_size=1200
    )
    for query in benchmark.queries.all():
        EvaluationResponse.objects.create(run=base, query=query, text="?", parsed="", correct=False)
        EvaluationResponse.objects.create(
            run=trained, query=query, text=query.answer, parsed=query.answer, correct=True
        )
    return base, trained


def test_a_researcher_compares_runs_with_their_deltas_and_plots_the_scaling(admin_client, two_runs):
    base, trained = two_runs
    page = admin_client.get(
        reverse("evaluation:compare") + f"?runs={base.pk}&runs={trained.pk}"
    ).content.decode()
    assert 'id="comparison-table"' in page and "(+100.0)" in page and "<svg" in page

    csv_text = admin_client.get(
        reverse("evaluation:compare") + f"?runs={base.pk}&runs={trained.pk}&format=csv"
    )
    lines = csv_text.content.decode().splitlines()
    assert lines[0].startswith("run_id,run,benchmark") and len(lines) == 5  # 2 runs x (benchmark + Mean)

    scaling = admin_client.get(
        reverse("evaluation:scaling") + f"?runs={base.pk}&runs={trained.pk}"
    ).content.decode()
    assert 'id="scaling-chart"' in scaling and "1200 → 100.0%" in scaling and "0 → 0.0%" in scaling

    listing = admin_client.get(reverse("evaluation:run_list")).content.decode()
    assert "base" in listing and "trained" in listing and 'id="compare-runs"' in listing


def test_annotators_and_anonymous_callers_are_kept_out(client, annotator, two_runs):
    base, _ = two_runs
    urls = [
        reverse("evaluation:run_list"),
        reverse("evaluation:run_detail", args=[base.pk]),
        reverse("evaluation:run_responses", args=[base.pk]),
        reverse("evaluation:run_report_csv", args=[base.pk]),
        reverse("evaluation:compare"),
        reverse("evaluation:scaling"),
    ]
    api = [
        "/api/v1/evaluation/runs/",
        f"/api/v1/evaluation/runs/{base.pk}/",
        "/api/v1/evaluation/benchmarks/",
    ]
    assert all(client.get(url).status_code == 401 for url in api)
    client.force_login(annotator)
    assert all(client.get(url).status_code == 403 for url in urls + api)
    assert client.post(reverse("evaluation:run_launch", args=[base.pk])).status_code == 403


def test_the_api_lists_runs_and_filters_their_responses(admin_client, two_runs):
    base, trained = two_runs
    runs = admin_client.get("/api/v1/evaluation/runs/").json()["results"]
    assert [run["name"] for run in runs] == ["trained", "base"]
    wrong = admin_client.get(f"/api/v1/evaluation/runs/{base.pk}/responses/?correct=false").json()["results"]
    assert len(wrong) == 4 and all(item["correct"] is False for item in wrong)
    right = admin_client.get(f"/api/v1/evaluation/runs/{base.pk}/responses/?correct=true").json()["results"]
    assert right == []
    detail = admin_client.get(f"/api/v1/evaluation/runs/{trained.pk}/").json()
    assert detail["report"]["mean_total"] == 100.0 and detail["training_set_size"] == 1200
