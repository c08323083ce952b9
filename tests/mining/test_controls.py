"""Researchers' controls: the ``mine`` command, the admin's start page and product action, and the web process
never loading the ML libraries."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotation.models import Product, ReviewTask, TaskKind
from jobs.models import Job
from tests.mining.conftest import SOURCE

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def researcher_client(researcher) -> Client:
    client = Client()
    client.force_login(researcher)
    return client


def test_mine_runs_a_stage_in_process_and_reports_it(demo_catalog, capsys):
    call_command("mine", "embed", "--source", SOURCE, "--embedder", "descriptor", "--set", "chunk_size=50")
    out = capsys.readouterr().out
    job = Job.objects.get(kind="mining_embed")
    assert job.status == Job.Status.SUCCEEDED
    assert f"Job #{job.pk} (mining_embed): succeeded." in out
    assert job.parameters["chunk_size"] == 50 and job.parameters["sources"] == [SOURCE]


def test_mine_pipeline_fills_the_queues_and_lists_its_stages(demo_catalog, capsys):
    call_command(
        "mine",
        "pipeline",
        "--source",
        SOURCE,
        "--embedder",
        "descriptor",
        "--stages",
        "verification,embed,hard_negatives",
    )
    out = capsys.readouterr().out
    assert "mining_pipeline): succeeded." in out
    assert out.count("  #") == 3
    assert ReviewTask.objects.filter(kind=TaskKind.HARD_NEGATIVE).exists()
    assert ReviewTask.objects.filter(kind=TaskKind.IMAGE_VERIFICATION).exists()


def test_mine_refuses_bad_parameters_and_exits_non_zero_on_a_failed_job(demo_catalog):
    with pytest.raises(CommandError, match="unknown parameter"):
        call_command("mine", "embed", "--set", "bogus=1")
    with pytest.raises(CommandError, match="expected NAME=VALUE"):
        call_command("mine", "embed", "--set", "batch_size")
    with pytest.raises(CommandError, match="unknown embedder"):
        call_command("mine", "embed", "--embedder", "word2vec")
    with pytest.raises(CommandError, match="failed: .*EmbeddingsMissing"):
        call_command("mine", "duplicates", "--embedder", "descriptor")


def test_mine_lists_a_stage_s_parameters(capsys):
    call_command("mine", "synthetic", "--list-parameters")
    shown = json.loads(capsys.readouterr().out)
    assert shown["synthetic"]["method"] == "lora" and shown["synthetic"]["train_steps"] == 400


def test_mine_enqueue_sends_the_job_to_the_workers(
    demo_catalog, capsys, monkeypatch, django_capture_on_commit_callbacks
):
    from mining import tasks

    sent = []
    monkeypatch.setattr(tasks.mining_job_task, "apply_async", lambda args, queue: sent.append((args, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("mine", "verification", "--enqueue")
    job = Job.objects.get(kind="mining_verification")
    assert sent == [([job.pk], "celery")]
    assert job.status == Job.Status.QUEUED
    assert f"/jobs/{job.pk}/" in capsys.readouterr().out


def test_the_admin_start_page_shows_every_stage_and_its_defaults(researcher_client: Client, demo_catalog):
    page = researcher_client.get(reverse("admin:mining_start")).content.decode()
    for stage in ("pipeline", "verification", "embed", "duplicates", "hard_negatives", "synthetic"):
        assert f'value="{stage}"' in page
    assert f'value="{SOURCE}"' in page
    assert "laion2b_s34b_b79k" in page  # the default embedder, shown as the placeholder and in the defaults
    embeddings = researcher_client.get(reverse("admin:mining_imageembedding_changelist")).content.decode()
    assert reverse("admin:mining_start") in embeddings


def test_starting_a_stage_from_the_admin_queues_a_job_and_opens_its_page(
    researcher_client: Client, researcher, demo_catalog, monkeypatch
):
    from mining import tasks

    monkeypatch.setattr(tasks.mining_job_task, "apply_async", lambda args, queue: None)
    response = researcher_client.post(
        reverse("admin:mining_start"),
        {
            "stage": "hard_negatives",
            "sources": [SOURCE],
            "embedder": "descriptor",
            "search": "exact",
            "seed": "4",
            "same_category_only": "on",
            "method": "lora",
            "train_steps": "400",
            "resolution": "512",
            "more": "",
        },
    )
    job = Job.objects.get(kind="mining_hard_negatives")
    assert response.status_code == 302 and response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert job.created_by == researcher
    assert job.parameters == {
        "sources": [SOURCE],
        "embedder": "descriptor",
        "search": "exact",
        "seed": 4,
        "same_category_only": True,
    }


def test_the_admin_start_page_shows_what_is_wrong_with_the_parameters(researcher_client: Client, db):
    base = {
        "stage": "embed",
        "search": "auto",
        "seed": "0",
        "method": "lora",
        "train_steps": "1",
        "resolution": "8",
    }
    response = researcher_client.post(reverse("admin:mining_start"), {**base, "more": '{"bogus": 1}'})
    assert (
        response.status_code == 200 and "unknown parameter(s) for embed: bogus" in response.content.decode()
    )
    response = researcher_client.post(reverse("admin:mining_start"), {**base, "more": "[1"})
    assert "not JSON" in response.content.decode()
    assert not Job.objects.exists()


def test_the_product_action_opens_the_start_page_for_the_selected_sources(
    researcher_client: Client, demo_catalog
):
    products = list(Product.objects.filter(source=SOURCE).values_list("pk", flat=True)[:2])
    response = researcher_client.post(
        reverse("admin:annotation_product_changelist"),
        {"action": "mine_sources", "_selected_action": [str(pk) for pk in products]},
    )
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:mining_start')}?sources={SOURCE}"
    page = researcher_client.get(response["Location"]).content.decode()
    assert re.search(rf'value="{SOURCE}"[^>]*checked', page)


def test_annotators_can_t_start_mining(annotator, db):
    client = Client()
    client.force_login(annotator)
    response = client.get(reverse("admin:mining_start"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_web_process_never_imports_the_ml_libraries():
    code = (
        "import django, sys; django.setup();"
        "import config.urls, mining.admin, mining.services.runs, mining.tasks, annotation.tasks, training.admin,"
        " training.services.exports, training.tasks;"
        "heavy = [m for m in ('torch', 'open_clip', 'faiss', 'diffusers', 'transformers', 'peft', 'pyarrow',"
        " 'verl', 'datasets') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
