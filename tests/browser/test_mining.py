"""A researcher starts mining from the admin and follows the job's page: its progress, pace and log update
live (htmx polling), a pipeline lists its stages, and the page settles when the job ends."""

import re

from annotation.models import ReviewTask, TaskKind
from annotation.services.catalog_import import catalog_import
from jobs.models import Job
from jobs.services import job_advance, job_create, job_finish, job_log, job_start
from tests.browser.conftest import BROWSER_TEST
from tests.factories import ResearcherFactory

pytestmark = BROWSER_TEST


def test_a_researcher_starts_a_pipeline_from_the_admin_and_reads_its_stages(
    new_page, demo_files, screenshots
):
    from playwright.sync_api import expect

    catalog_import(manifest_path=demo_files.manifest_path, images_root=demo_files.images_root, source="shop")
    page = new_page(ResearcherFactory())
    page.goto("/")
    page.get_by_role("link", name="Start mining").click()
    expect(page).to_have_url(re.compile(r"/admin/mining/imageembedding/start/"))
    page.get_by_label("shop").check()
    page.get_by_label("Embedder").fill("descriptor")
    page.get_by_label("Other parameters (JSON)").fill('{"stages": ["verification", "embed", "duplicates"]}')
    page.screenshot(path=screenshots / "mining-start.png", full_page=True)
    page.get_by_role("button", name="Start").click()  # the tests run tasks eagerly: it ends in the request

    expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
    expect(page.locator("#job-status")).to_have_text("Succeeded")
    stages = page.locator("#job-progress table tr")
    expect(stages).to_have_count(3)
    for number, kind in enumerate(["mining_verification", "mining_embed", "mining_duplicates"]):
        expect(stages.nth(number)).to_contain_text(kind)
        expect(stages.nth(number)).to_contain_text("Succeeded")
    expect(page.locator(".job-log")).to_contain_text("Stage duplicates started")
    page.screenshot(path=screenshots / "mining-pipeline-job.png", full_page=True)

    stages.nth(1).get_by_role("link").click()
    expect(page.locator("#job-page")).to_contain_text("a stage of mining_pipeline")
    expect(page.locator(".job-log")).to_contain_text("images to embed with descriptor/")
    assert ReviewTask.objects.filter(kind=TaskKind.DUPLICATE_MERGE).exists()


def test_the_job_page_follows_a_running_job_until_it_ends(new_page):
    from playwright.sync_api import expect

    researcher = ResearcherFactory()
    job = job_start(job=job_create(kind="mining_embed", created_by=researcher), total=200)
    page = new_page(researcher)
    page.goto(f"/jobs/{job.pk}/")
    expect(page.locator("#job-status")).to_have_text("Running")

    job_advance(job=job, done=50, message="Embedding: chunk 1")
    job_log(job=job, message="200 images to embed in 2 chunks.")
    expect(page.locator("#job-progress")).to_contain_text("50 / 200")
    expect(page.locator("#job-progress")).to_contain_text("Embedding: chunk 1")
    expect(page.locator("#job-progress .pace")).to_contain_text(re.compile(r"per second · about .+ left"))
    expect(page.locator(".job-log")).to_contain_text("200 images to embed in 2 chunks.")

    job_advance(job=job, done=200)
    job_finish(job=job, result={"embedded": 200}, message="embedded 200")
    expect(page.locator("#job-status")).to_have_text("Succeeded")
    expect(page.locator("#job-page")).to_contain_text("embedded 200")  # the result table, after the refresh
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
