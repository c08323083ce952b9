"""A job's page, its htmx progress partial, its result file, cancelling it, and who may see any of it."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import Job
from jobs.services import job_advance, job_create, job_fail, job_finish, job_start

pytestmark = pytest.mark.django_db

POLLING = re.compile(r'hx-get="(?P<url>[^"]+)"\s+hx-trigger="every 1s"')


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def url(name: str, job: Job | int) -> str:
    return reverse(f"jobs:{name}", args=[job if isinstance(job, int) else job.pk])


@pytest.fixture
def finished_job(running_job: Job) -> Job:
    job_advance(job=running_job, done=3)
    return job_finish(
        job=running_job,
        result={"products": 5},
        result_file=("catalog-import-report.json", b'{"products": {"imported": 5}}'),
        message="5 products imported.",
    )


# --- The job page and its progress partial ---------------------------------------------------------------


def test_job_page_shows_the_job_its_parameters_and_live_progress(researcher_client: Client, running_job: Job):
    job_advance(job=running_job, done=2, message="Line 2 of 5")

    response = researcher_client.get(url("detail", running_job))

    assert response.status_code == 200
    assert response.templates[0].name == "jobs/detail.html"
    page = response.content.decode()
    assert f"test_job #{running_job.pk}" in page
    assert "Line 2 of 5" in page
    assert "manifest_path" in page and "/data/catalog.jsonl" in page
    assert '<progress max="5" value="2">' in page
    polling = POLLING.search(page)
    assert polling and polling["url"] == url("progress", running_job)
    # The page reloads its own section when the partial announces the end.
    assert 'hx-trigger="job-finished from:body"' in page
    assert f'action="{url("cancel", running_job)}"' in page


def test_job_page_of_a_finished_job_stops_polling_and_offers_the_result(
    researcher_client: Client, finished_job: Job
):
    page = researcher_client.get(url("detail", finished_job)).content.decode()

    assert POLLING.search(page) is None
    assert "every 1s" not in page
    assert url("cancel", finished_job) not in page
    assert f'href="{url("result_file", finished_job)}"' in page
    assert "5 products imported." in page
    assert "Result" in page and "products" in page


def test_job_page_shows_nested_results_as_readable_text(researcher_client: Client, running_job: Job):
    job_finish(
        job=running_job, result={"images": {"imported": 20187, "rejected": 1}, "duration_seconds": 2.5}
    )
    page = researcher_client.get(url("detail", running_job)).content.decode()
    assert "imported 20,187 · rejected 1" in page
    assert "2.5" in page and "{'imported'" not in page


def test_progress_partial_polls_while_the_job_runs(researcher_client: Client, running_job: Job):
    job_advance(job=running_job, done=3, message="Line 3 of 5")

    response = researcher_client.get(url("progress", running_job), headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert [t.name for t in response.templates] == ["jobs/_progress.html"]
    fragment = response.content.decode()
    assert "<html" not in fragment
    polling = POLLING.search(fragment)
    assert polling and polling["url"] == url("progress", running_job)
    assert 'hx-swap="outerHTML"' in fragment
    assert "Line 3 of 5" in fragment
    assert '<progress max="5" value="3">' in fragment
    assert "HX-Trigger" not in response.headers


def test_progress_partial_of_a_queued_job_without_a_total_still_polls(
    researcher_client: Client, queued_job: Job
):
    response = researcher_client.get(url("progress", queued_job), headers={"HX-Request": "true"})

    fragment = response.content.decode()
    assert POLLING.search(fragment)
    assert "<progress></progress>" in fragment
    assert "HX-Trigger" not in response.headers


def test_progress_partial_of_a_finished_job_stops_polling_and_announces_it(
    researcher_client: Client, finished_job: Job
):
    response = researcher_client.get(url("progress", finished_job), headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "job-finished"
    fragment = response.content.decode()
    assert "hx-get" not in fragment and "hx-trigger" not in fragment
    assert '<progress max="5" value="5">' in fragment
    assert f'href="{url("result_file", finished_job)}"' in fragment


def test_progress_partial_shows_the_error_of_a_failed_job(researcher_client: Client, running_job: Job):
    job_fail(job=running_job, error="ValueError: <bad> manifest")

    response = researcher_client.get(url("progress", running_job), headers={"HX-Request": "true"})

    assert response.headers["HX-Trigger"] == "job-finished"
    fragment = response.content.decode()
    assert "hx-get" not in fragment
    assert "ValueError: &lt;bad&gt; manifest" in fragment  # escaped, not raw HTML


def test_progress_partial_without_htmx_sends_no_trigger(researcher_client: Client, finished_job: Job):
    response = researcher_client.get(url("progress", finished_job))

    assert response.status_code == 200
    assert "HX-Trigger" not in response.headers


def test_unknown_job_is_404(researcher_client: Client):
    for name in ("detail", "progress", "result_file"):
        assert researcher_client.get(url(name, 999_999)).status_code == 404
    assert researcher_client.post(url("cancel", 999_999)).status_code == 404


# --- The result file --------------------------------------------------------------------------------------


def test_result_file_downloads_as_an_attachment(researcher_client: Client, finished_job: Job):
    response = researcher_client.get(url("result_file", finished_job))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b'{"products": {"imported": 5}}'
    assert response.headers["Content-Type"] == "application/json"
    stored_name = fresh(finished_job).result_file.name.rsplit("/", 1)[-1]
    assert stored_name.startswith("catalog-import-report") and stored_name.endswith(".json")
    assert response.headers["Content-Disposition"] == f'attachment; filename="{stored_name}"'


def test_result_file_of_a_job_without_one_is_404(researcher_client: Client, running_job: Job):
    assert researcher_client.get(url("result_file", running_job)).status_code == 404


# --- Cancelling -------------------------------------------------------------------------------------------


def test_cancel_by_post_cancels_and_returns_to_the_job_page(researcher_client: Client, running_job: Job):
    response = researcher_client.post(url("cancel", running_job), follow=True)

    assert response.redirect_chain == [(url("detail", running_job), 302)]
    assert fresh(running_job).status == Job.Status.CANCELLED
    page = response.content.decode()
    assert f"Job #{running_job.pk} cancelled." in page
    assert POLLING.search(page) is None


def test_cancel_of_a_finished_job_warns_and_changes_nothing(researcher_client: Client, finished_job: Job):
    response = researcher_client.post(url("cancel", finished_job), follow=True)

    assert response.redirect_chain == [(url("detail", finished_job), 302)]
    assert fresh(finished_job).status == Job.Status.SUCCEEDED
    assert f"Job {finished_job.pk} is already succeeded." in response.content.decode()


def test_cancel_refuses_get(researcher_client: Client, running_job: Job):
    assert researcher_client.get(url("cancel", running_job)).status_code == 405
    assert fresh(running_job).status == Job.Status.RUNNING


def test_cancel_needs_the_csrf_token_that_the_page_gives(researcher, running_job: Job):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)

    assert client.post(url("cancel", running_job)).status_code == 403
    assert fresh(running_job).status == Job.Status.RUNNING

    page = client.get(url("detail", running_job)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    response = client.post(url("cancel", running_job), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert fresh(running_job).status == Job.Status.CANCELLED


def test_cancel_through_htmx_with_the_csrf_header_of_the_page(researcher, running_job: Job):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    page = client.get(url("detail", running_job)).content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page)[1]

    response = client.post(url("cancel", running_job), headers={"X-CSRFToken": token, "HX-Request": "true"})

    assert response.status_code == 302
    assert fresh(running_job).status == Job.Status.CANCELLED


# --- Who may see what -------------------------------------------------------------------------------------

PAGES = [("get", "detail"), ("get", "progress"), ("get", "result_file"), ("post", "cancel")]


@pytest.mark.parametrize(("method", "name"), PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client: Client, finished_job: Job, method, name):
    target = url(name, finished_job)

    response = getattr(client, method)(target)

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={target}"
    assert fresh(finished_job).status == Job.Status.SUCCEEDED


@pytest.mark.parametrize(("method", "name"), PAGES)
def test_annotators_are_forbidden(annotator_client: Client, running_job: Job, method, name):
    response = getattr(annotator_client, method)(url(name, running_job))

    assert response.status_code == 403
    assert fresh(running_job).status == Job.Status.RUNNING


@pytest.mark.parametrize(("method", "name"), PAGES)
def test_users_without_a_role_are_forbidden(plain_user, running_job: Job, method, name):
    client = Client()
    client.force_login(plain_user)

    assert getattr(client, method)(url(name, running_job)).status_code == 403
    assert fresh(running_job).status == Job.Status.RUNNING


@pytest.mark.parametrize(
    ("method", "name", "status"),
    [("get", "detail", 200), ("get", "progress", 200), ("get", "result_file", 200), ("post", "cancel", 302)],
)
def test_researchers_are_allowed(researcher_client: Client, finished_job: Job, method, name, status):
    job = finished_job
    if name == "cancel":
        job = job_start(job=job_create(kind="test_job"))

    assert getattr(researcher_client, method)(url(name, job)).status_code == status


# --- The admin's view of jobs -----------------------------------------------------------------------------


def test_admin_lists_jobs_and_cancels_the_selected_ones(researcher_client: Client, finished_job: Job):
    other = job_start(job=job_create(kind="other_job"), total=4)
    changelist = reverse("admin:jobs_job_changelist")

    listing = researcher_client.get(changelist)
    assert listing.status_code == 200
    assert "other_job" in listing.content.decode()

    response = researcher_client.post(
        changelist,
        {"action": "cancel", "_selected_action": [other.pk, finished_job.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert fresh(other).status == Job.Status.CANCELLED
    assert fresh(finished_job).status == Job.Status.SUCCEEDED
    page = response.content.decode()
    assert f"Cancelled job #{other.pk}." in page
    assert f"Job {finished_job.pk} is already succeeded." in page


def test_admin_job_page_links_the_live_page_and_the_file(researcher_client: Client, finished_job: Job):
    page = researcher_client.get(reverse("admin:jobs_job_change", args=[finished_job.pk])).content.decode()

    assert url("detail", finished_job) in page
    assert url("result_file", finished_job) in page
    assert "3 / 5" not in page and "5 / 5 (100%)" in page
