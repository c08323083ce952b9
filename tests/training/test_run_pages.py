"""Training runs in the admin and on their pages: drafting with the paper's values, launching, watching,
cancelling; who may see them."""

import json

import pytest
from django.urls import reverse

from jobs.models import Job
from training import tasks
from training.backends import run_output
from training.models import TrainingMetric, TrainingRun
from training.services.run_options import default_hyperparameters
from training.services.runs import training_run_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr(
        tasks.training_run_task, "apply_async", lambda args, queue: messages.append((args, queue))
    )
    return messages


def add_form_data(snapshot, **changes):
    data = {
        "name": "qwen3b-twin",
        "snapshot": snapshot.pk,
        "method": "grpo",
        "backend": "verl",
        "base_model": "Qwen/Qwen2.5-VL-3B-Instruct",
        "hyperparameters": json.dumps(default_hyperparameters("grpo")),
        "gpus_per_node": 4,
        "nodes": 1,
        "options": json.dumps({}),
        "notes": "",
    }
    return {**data, **changes}


def test_the_add_form_is_prefilled_with_table_8(admin_client, frozen_snapshot):
    response = admin_client.get(reverse("admin:training_trainingrun_add"))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert json.loads(form["hyperparameters"].value()) == default_hyperparameters("grpo")
    assert form["base_model"].value() == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert b"Save and launch" in response.content


def test_save_and_launch_queues_the_run_and_opens_its_page(admin_client, frozen_snapshot, sent, researcher):
    response = admin_client.post(
        reverse("admin:training_trainingrun_add"), add_form_data(frozen_snapshot, _launch="1")
    )

    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("training:run_detail", args=[run.pk])
    assert run.created_by == researcher and run.job.status == Job.Status.QUEUED
    assert sent == [([run.job.pk], "gpu")]
    page = admin_client.get(response.url)
    assert page.status_code == 200
    assert b"python -m verl.trainer.main_ppo" in page.content or b"-m verl.trainer.main_ppo" in page.content
    assert b"actor_rollout_ref.rollout.n=5" in page.content and b"run-cancel" in page.content


def test_switching_to_sft_with_untouched_grpo_values_takes_table_9(admin_client, frozen_snapshot, sent):
    admin_client.post(
        reverse("admin:training_trainingrun_add"), add_form_data(frozen_snapshot, method="sft", backend="trl")
    )

    assert TrainingRun.objects.get().hyperparameters == default_hyperparameters("sft")


def test_the_form_shows_what_verl_would_refuse(admin_client, frozen_snapshot):
    response = admin_client.post(
        reverse("admin:training_trainingrun_add"), add_form_data(frozen_snapshot, gpus_per_node=7)
    )

    assert response.status_code == 200 and not TrainingRun.objects.exists()
    assert "divisible by the number of GPUs" in str(response.context["adminform"].form.errors)


def test_a_launched_runs_settings_are_read_only_and_it_can_be_cancelled_from_the_admin(
    admin_client, frozen_snapshot, sent
):
    admin_client.post(reverse("admin:training_trainingrun_add"), add_form_data(frozen_snapshot, _launch="1"))
    run = TrainingRun.objects.get()
    change_url = reverse("admin:training_trainingrun_change", args=[run.pk])

    form = admin_client.get(change_url).context["adminform"].form
    assert "hyperparameters" not in form.fields and "name" in form.fields
    response = admin_client.post(change_url, {"name": run.name, "notes": "", "_cancel": "1"})

    run.refresh_from_db()
    assert response.status_code == 302 and run.status == "cancelled"


def test_the_run_page_plots_the_metrics_and_tails_the_log(admin_client, frozen_snapshot, sent):
    run = training_run_create(name="watched", snapshot=frozen_snapshot)
    admin_client.post(reverse("training:run_launch", args=[run.pk]))
    run.refresh_from_db()
    for step in (1, 2, 3):
        TrainingMetric.objects.create(
            run=run,
            step=step,
            values={run_output.REWARD: step / 4, run_output.KL: 0.01, run_output.RESPONSE_LENGTH: 90},
        )
    TrainingMetric.objects.filter(step=3).update(
        values={run_output.REWARD: 0.75, run_output.HELDOUT_ACCURACY: 0.6}
    )
    run.job.log_entries.create(message="step:3 - critic/score/mean:0.75")

    live = admin_client.get(reverse("training:run_live", args=[run.pk]))

    content = live.content.decode()
    assert live.status_code == 200 and 'hx-trigger="every 2s"' in content
    assert "Reward (training responses)" in content and "0.75 at step 3" in content
    assert "Held-out accuracy" in content and "0.6 at step 3" in content
    assert "KL to the reference model" in content and "Response length (tokens)" in content
    assert "step:3 - critic/score/mean:0.75" in content


def test_a_failed_run_shows_why(admin_client, frozen_snapshot, sent):
    run = training_run_create(name="broken", snapshot=frozen_snapshot)
    admin_client.post(reverse("training:run_launch", args=[run.pk]))
    run.refresh_from_db()
    Job.objects.filter(pk=run.job_id).update(
        status=Job.Status.FAILED, error="The training command exited with code 1.\nCUDA out of memory"
    )

    content = admin_client.get(reverse("training:run_detail", args=[run.pk])).content.decode()

    assert "Why it failed" in content and "CUDA out of memory" in content
    assert "hx-trigger" not in content  # a finished run stops polling
    assert "Launch again (resumes)" in content


@pytest.mark.parametrize("name", ["training:run_list", "training:run_detail", "training:run_live"])
def test_annotators_get_403_and_anonymous_visitors_the_login(client, annotator, frozen_snapshot, name):
    run = training_run_create(name="private", snapshot=frozen_snapshot)
    url = reverse(name) if name == "training:run_list" else reverse(name, args=[run.pk])

    assert client.get(url).status_code == 302
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    assert client.post(reverse("training:run_launch", args=[run.pk])).status_code == 403


def test_the_run_list_links_each_run(admin_client, frozen_snapshot):
    run = training_run_create(name="listed", snapshot=frozen_snapshot)

    content = admin_client.get(reverse("training:run_list")).content.decode()

    assert reverse("training:run_detail", args=[run.pk]) in content and "draft" in content
