"""The mining stages through their public entry points: jobs run inline and through Celery (eager), the
pipeline filling the four queues on the demo catalog, re-runs adding nothing, merges refreshing the
shortlist, cancelling, failing, the watchdog, and the queue GPU work goes to."""

import numpy as np
import pytest
from django.db.models import Count

from annotation.models import Image, Instance, Product, ReviewStatus, ReviewTask, TaskKind
from annotation.services.instances import instance_merge
from jobs.models import Job, JobChunk
from jobs.services import job_cancel
from mining.models import ImageEmbedding
from mining.services import runs
from mining.services.embeddings import (
    EmbeddingsMissing,
    RandomWeightsRefused,
    embedded_images,
    embedder_spec_for,
)
from mining.services.runs import (
    mining_job_enqueue,
    mining_job_run_inline,
    mining_job_watch,
    mining_runs_recover,
)
from mining.services.scope import usable_images
from mining.services.stages import mining_job_create
from tests.mining.conftest import SOURCE

pytestmark = pytest.mark.django_db
DESCRIPTOR = "descriptor"
TINY_DREAMBOOTH = {
    "model": "tiny-random",
    "resolution": 32,
    "train_steps": 2,
    "inference_steps": 2,
    "instances_limit": 2,
}


def run(stage: str, **parameters) -> Job:
    return mining_job_run_inline(job=mining_job_create(stage=stage, parameters=parameters))


def open_tasks(kind: str) -> int:
    return ReviewTask.objects.filter(kind=kind, is_gold=False).count()


def test_embed_writes_one_normalized_vector_per_usable_image_and_a_rerun_writes_none(demo_catalog):
    rejected = Image.objects.filter(product__source=SOURCE).first()
    Image.objects.filter(pk=rejected.pk).update(review_status=ReviewStatus.REJECTED)
    job = run("embed", embedder=DESCRIPTOR, chunk_size=7)
    assert job.status == Job.Status.SUCCEEDED, job.error
    usable = usable_images().count()
    key = embedder_spec_for(DESCRIPTOR).key
    assert ImageEmbedding.objects.filter(embedder_key=key).count() == usable
    assert not ImageEmbedding.objects.filter(image=rejected).exists()
    assert job.result["embedded"] == usable and job.result["chunks"] == -(-usable // 7)
    assert job.progress_done == job.progress_total == usable
    vectors = embedded_images(embedder_key=key, images=usable_images()).vectors
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert job.log_entries.filter(message__contains="images to embed").exists()

    again = run("embed", embedder=DESCRIPTOR)
    assert again.status == Job.Status.SUCCEEDED
    assert again.result.get("embedded", 0) == 0 and again.message
    assert ImageEmbedding.objects.count() == usable


def test_candidate_stages_need_the_vectors_first(demo_catalog):
    with pytest.raises(EmbeddingsMissing):
        embedded_images(embedder_key=embedder_spec_for(DESCRIPTOR).key, images=usable_images())
    job = run("duplicates", embedder=DESCRIPTOR)
    assert job.status == Job.Status.FAILED
    assert "EmbeddingsMissing" in job.error and "run the embed stage" in job.error


def test_random_weights_are_refused_unless_the_settings_allow_them(settings, db):
    settings.MINING_ALLOW_RANDOM_WEIGHTS = False
    with pytest.raises(RandomWeightsRefused, match="random weights"):
        mining_job_create(stage="embed", parameters={"embedder": "open_clip:ViT-B-32:random"})
    with pytest.raises(RandomWeightsRefused):
        mining_job_create(stage="synthetic", parameters={"model": "tiny-random"})
    with pytest.raises(ValueError, match="unknown parameter"):
        mining_job_create(stage="embed", parameters={"bogus": 1})


def test_the_pipeline_fills_the_four_queues_and_a_rerun_adds_nothing(demo_catalog):
    pipeline = run("pipeline", sources=[SOURCE], embedder=DESCRIPTOR, **TINY_DREAMBOOTH)
    assert pipeline.status == Job.Status.SUCCEEDED, pipeline.error
    stages = list(pipeline.children.order_by("pk"))
    assert [s.kind for s in stages] == [
        "mining_verification",
        "mining_embed",
        "mining_duplicates",
        "mining_hard_negatives",
        "mining_synthetic",
    ]
    assert all(s.status == Job.Status.SUCCEEDED for s in stages)
    assert pipeline.progress_done == pipeline.progress_total == 5
    counts = {kind: open_tasks(kind) for kind in TaskKind}
    assert all(counts.values()), counts
    assert counts[TaskKind.IMAGE_VERIFICATION] == usable_images().count()
    # Duplicate candidates: the ground truth's duplicate listings are among them.
    external = dict(Product.objects.values_list("external_id", "pk"))
    proposed = {
        frozenset(pair)
        for pair in ReviewTask.objects.filter(kind=TaskKind.DUPLICATE_MERGE).values_list(
            "product_a", "product_b"
        )
    }
    listed = [frozenset((external[a], external[b])) for a, b in demo_catalog["duplicate_listings"]]
    assert listed and sum(pair in proposed for pair in listed) >= len(listed) - 1
    # Synthetic negatives: five prompts per instance, stored as generated images of two instances.
    generated = Image.objects.filter(origin=Image.Origin.GENERATED)
    assert generated.count() == 10
    assert generated.values("generated_for").distinct().count() == 2
    task = ReviewTask.objects.filter(kind=TaskKind.SYNTHETIC_VALIDATION).first()
    assert task.payload["prompt"].startswith(
        ("an image of", "similar to", "a picture of", "show me", "here is")
    )

    before = dict(ReviewTask.objects.values_list("kind").annotate(n=Count("pk")).order_by())
    again = run("pipeline", sources=[SOURCE], embedder=DESCRIPTOR, **TINY_DREAMBOOTH)
    assert again.status == Job.Status.SUCCEEDED, again.error
    assert dict(ReviewTask.objects.values_list("kind").annotate(n=Count("pk")).order_by()) == before
    assert Image.objects.filter(origin=Image.Origin.GENERATED).count() == 10
    synthetic = again.children.get(kind="mining_synthetic")
    assert synthetic.result["stored"] == 0


def test_rerunning_the_shortlist_after_a_merge_closes_the_merged_instance_s_tasks_without_duplicates(
    demo_catalog,
):
    run("embed", embedder=DESCRIPTOR)
    first = run("hard_negatives", embedder=DESCRIPTOR, seed=3)
    assert first.status == Job.Status.SUCCEEDED and first.result["tasks_created"] > 0
    task = ReviewTask.objects.filter(kind=TaskKind.HARD_NEGATIVE).order_by("pk").first()
    survivor, merged = sorted((task.instance_id, task.candidate_instance_id))
    instance_merge(source=Instance.objects.get(pk=merged), target=Instance.objects.get(pk=survivor))

    second = run("hard_negatives", embedder=DESCRIPTOR, seed=3)
    assert second.status == Job.Status.SUCCEEDED, second.error
    assert second.result["tasks_closed_after_merges"] >= 1
    still_open = ReviewTask.objects.filter(kind=TaskKind.HARD_NEGATIVE, status=ReviewTask.Status.OPEN)
    assert not still_open.filter(instance_id=merged).exists()
    assert not still_open.filter(candidate_instance_id=merged).exists()
    keys = list(ReviewTask.objects.filter(kind=TaskKind.HARD_NEGATIVE).values_list("subject_key", flat=True))
    assert len(keys) == len(set(keys))
    assert run("hard_negatives", embedder=DESCRIPTOR, seed=3).result["tasks_created"] == 0


def test_a_failing_stage_fails_the_pipeline_with_its_reason(demo_catalog):
    pipeline = run("pipeline", stages=["verification", "duplicates"], embedder=DESCRIPTOR)
    assert pipeline.status == Job.Status.FAILED
    failed = pipeline.children.get(kind="mining_duplicates")
    assert failed.status == Job.Status.FAILED
    assert f"Stage duplicates (job #{failed.pk}) failed: EmbeddingsMissing" in pipeline.error
    assert pipeline.children.get(kind="mining_verification").status == Job.Status.SUCCEEDED


def test_cancelling_an_embedding_job_stops_it_between_batches(demo_catalog, monkeypatch):
    advance = runs.job_chunk_advance

    def cancel_then_advance(*, chunk, units_done, message=None):
        if units_done:
            job_cancel(job=chunk.job)
        advance(chunk=chunk, units_done=units_done, message=message)

    monkeypatch.setattr(runs, "job_chunk_advance", cancel_then_advance)
    job = run("embed", embedder=DESCRIPTOR, batch_size=2, chunk_size=4)
    assert job.status == Job.Status.CANCELLED
    assert 0 < ImageEmbedding.objects.count() < usable_images().count()
    assert not JobChunk.objects.filter(job=job, status=JobChunk.Status.DONE).exists()


def test_through_celery_the_pipeline_runs_stage_after_stage(demo_catalog, django_capture_on_commit_callbacks):
    job = mining_job_create(
        stage="pipeline",
        parameters={"sources": [SOURCE], "embedder": DESCRIPTOR, "stages": ["embed", "duplicates"]},
    )
    with django_capture_on_commit_callbacks(execute=True):
        mining_job_enqueue(job=job)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert set(job.result) == {"embed", "duplicates"}
    assert open_tasks(TaskKind.DUPLICATE_MERGE) == job.result["duplicates"]["tasks_created"] > 0


def test_chunks_go_to_the_gpu_queue_except_the_descriptor_s(demo_catalog, monkeypatch, settings):
    from mining import tasks

    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(
        tasks.mining_chunk_task, "apply_async", lambda args, queue: sent.append(("chunk", queue))
    )
    monkeypatch.setattr(
        tasks.mining_job_watch_task,
        "apply_async",
        lambda args, countdown, queue: sent.append(("watch", queue)),
    )
    for embedder in (DESCRIPTOR, "open_clip:ViT-B-32:random"):
        job = mining_job_create(stage="embed", parameters={"embedder": embedder, "chunk_size": 1000})
        runs.mining_job_execute(job=job)
    assert sent == [
        ("chunk", settings.MINING_CPU_QUEUE),
        ("watch", settings.MINING_CPU_QUEUE),
        ("chunk", settings.MINING_GPU_QUEUE),
        ("watch", settings.MINING_CPU_QUEUE),
    ]
    assert mining_runs_recover() == 0 or Job.objects.filter(status=Job.Status.RUNNING).exists()


def test_the_watchdog_finishes_a_job_whose_last_worker_died_after_its_chunk(demo_catalog, monkeypatch):
    from mining import tasks

    monkeypatch.setattr(tasks.mining_chunk_task, "apply_async", lambda args, queue: None)
    monkeypatch.setattr(tasks.mining_job_watch_task, "apply_async", lambda args, countdown, queue: None)
    job = mining_job_create(stage="embed", parameters={"embedder": DESCRIPTOR, "chunk_size": 10_000})
    runs.mining_job_execute(job=job)  # planned and "sent": the messages went nowhere
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert mining_runs_recover() == 1
    assert mining_job_watch(job_id=job.pk) is True  # still moving (fresh heartbeat): nothing to do

    with monkeypatch.context() as dying:  # the worker dies between its chunk's end and the job's
        dying.setattr(runs, "_job_complete", lambda job, inline, result=None: None)
        assert runs.mining_chunk_execute(chunk_id=JobChunk.objects.get(job=job).pk, worker="w") is True
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert mining_job_watch(job_id=job.pk) is False
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["embedded"] == usable_images().count()


def test_embedding_with_open_clip_stores_the_model_s_vectors_under_its_own_key(demo_catalog):
    job = run("embed", embedder="open_clip:twin-tiny-vit:random", batch_size=8, chunk_size=20)
    assert job.status == Job.Status.SUCCEEDED, job.error
    vectors = ImageEmbedding.objects.filter(embedder_key="open_clip/twin-tiny-vit/random")
    assert vectors.count() == usable_images().count()
    assert set(vectors.values_list("dim", flat=True)) == {32}
    duplicates = run("duplicates", embedder="open_clip:twin-tiny-vit:random")
    assert duplicates.status == Job.Status.SUCCEEDED and duplicates.result["images"] == vectors.count()


def test_weights_that_can_t_be_found_fail_the_job_saying_where_they_were_looked_for(
    demo_catalog, settings, tmp_path
):
    settings.MINING_MODEL_CACHE_DIR = str(tmp_path)
    job = run("embed", embedder="open_clip:ViT-B-32:laion2b_s34b_b79k")
    assert job.status == Job.Status.FAILED
    assert "WeightsUnavailable" in job.error and "ViT-B-32" in job.error and str(tmp_path) in job.error
    assert not ImageEmbedding.objects.exists()


def test_a_stable_diffusion_model_that_can_t_be_found_fails_the_synthetic_job_naming_it(
    demo_catalog, tmp_path
):
    job = run("synthetic", model=str(tmp_path / "no-such-model"), instances_limit=2, resolution=32)
    assert job.status == Job.Status.FAILED
    assert "DreamBoothWeightsUnavailable" in job.error and "no-such-model" in job.error
    assert not Image.objects.filter(origin=Image.Origin.GENERATED).exists()
    assert not ReviewTask.objects.filter(kind=TaskKind.SYNTHETIC_VALIDATION).exists()
