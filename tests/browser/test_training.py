"""A researcher launches the demo's tiny training run from its admin page and watches the run page follow it
to the end, without reloading: status, plots, log and checkpoint (the TRL backend really trains, on the CPU)."""

import re

from django.core.management import call_command

from tests.browser.conftest import BROWSER_TEST
from tests.factories import ResearcherFactory
from training import tasks
from training.models import TrainingRun

pytestmark = BROWSER_TEST


def test_a_researcher_launches_a_run_and_watches_it_finish(
    new_page, frozen_snapshot, gpu_worker, tmp_path, screenshots
):
    from playwright.sync_api import expect

    gpu_worker(tasks.training_run_task)

    call_command(
        "create_demo_training_run", frozen_snapshot.name, "--model-dir", str(tmp_path / "tiny-model")
    )
    run = TrainingRun.objects.get(name="demo-tiny-grpo")
    page = new_page(ResearcherFactory())
    page.goto("/")
    page.get_by_role("link", name="Training").click()
    page.get_by_role("link", name="demo-tiny-grpo").click()
    expect(page.locator("#run-status")).to_have_text("draft")
    expect(page.locator("#run-command")).to_contain_text("-m training.backends.trl_runner --config")
    page.get_by_role("link", name="Settings").click()

    page.get_by_role("button", name="Save and launch").click()

    expect(page).to_have_url(re.compile(rf"/training/runs/{run.pk}/$"))
    expect(page.locator("#run-status")).to_have_text(re.compile("queued|running|succeeded"))
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=240_000)  # htmx polling, no reload
    expect(page.locator("#run-charts svg")).to_have_count(5)
    expect(page.locator("#run-charts")).to_contain_text("at step 4")
    expect(page.locator("#run-checkpoint")).to_contain_text("final")
    expect(page.locator("#run-log")).to_contain_text("TWIN_SUMMARY")
    expect(page.get_by_role("button", name="Launch again (resumes)")).to_be_visible()
    page.screenshot(path=screenshots / "training_run.png", full_page=True)
