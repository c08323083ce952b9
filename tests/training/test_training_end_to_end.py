"""The whole loop on the CPU, as a researcher does it: a demo run drafted by ``create_demo_training_run`` (the
TRL backend on a tiny random-weight Qwen2.5-VL), launched from its admin page, watched on the run page until it
is done: real GRPO and SFT steps, metrics, held-out accuracy, the checkpoint."""

import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from jobs.models import Job
from training.backends import run_output
from training.models import TrainingMetric, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("method", ["grpo", "sft"])
def test_a_researcher_launches_a_tiny_run_from_the_admin_and_watches_it_finish(
    admin_client, frozen_snapshot, tmp_path, method
):
    model_dir = tmp_path / "tiny-model"
    call_command(
        "create_demo_training_run", frozen_snapshot.name, "--method", method, "--model-dir", str(model_dir)
    )
    run = TrainingRun.objects.get(name=f"demo-tiny-{method}")
    assert run.backend == "trl" and run.status == "draft"

    change_url = reverse("admin:training_trainingrun_change", args=[run.pk])
    form = admin_client.get(change_url).context["adminform"].form
    posted = {name: form[name].value() for name in form.fields}  # the page's form as the browser sends it

    response = admin_client.post(
        change_url, {**posted, "_launch": "1"}
    )  # eager: returns when training is over

    assert response.status_code == 302 and response.url == reverse("training:run_detail", args=[run.pk])
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.progress_done, job.progress_total) == (4, 4)  # the runner tells the length before step 1

    metrics = {metric.step: metric.values for metric in TrainingMetric.objects.filter(run=run)}
    assert sorted(metrics) == [1, 2, 3, 4]
    if method == "grpo":
        assert all(
            run_output.REWARD in values and run_output.RESPONSE_LENGTH in values
            for values in metrics.values()
        )
        assert run_output.KL in metrics[2]
    else:
        assert all(run_output.LOSS in values for values in metrics.values())
    assert run_output.HELDOUT_ACCURACY in metrics[2] and run_output.HELDOUT_ACCURACY in metrics[4]
    assert 0 <= metrics[4][run_output.HELDOUT_ACCURACY] <= 1

    checkpoint = Path(run.checkpoint)
    assert checkpoint.is_relative_to(Path(run.output_dir)) and checkpoint.name == "final"
    Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint)
    AutoProcessor.from_pretrained(checkpoint)
    assert run.summary["steps"] == 4 and run.summary["steps_per_second"] > 0

    page = admin_client.get(response.url).content.decode()
    assert 'id="run-status">succeeded' in page and str(checkpoint) in page
    assert "Held-out accuracy" in page and re.search(r"at step 4", page)
    assert "TWIN_METRICS" in page  # the log tail
    assert "-m training.backends.trl_runner --config" in page
    assert "hx-trigger" not in page  # done: the page stops polling
