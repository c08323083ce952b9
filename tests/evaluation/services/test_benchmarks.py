"""Benchmarks through their services and commands: the published FGVQA imported as it is, checks that say what
is wrong, and queries that never change once a run has answered them."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from evaluation.models import Benchmark, BenchmarkImage, EvaluationResponse
from evaluation.services.benchmarks import BenchmarkError, benchmark_build_launch, benchmark_create
from evaluation.services.runs import evaluation_run_create
from tests.conftest import image_bytes
from tests.evaluation.sources.test_fgvqa_published import ROWS, write

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_published_fgvqa_becomes_one_benchmark_per_dataset_source_with_its_own_queries(tmp_path):
    write(tmp_path / "fgvqa" / "test-00000.parquet")

    call_command("import_fgvqa", str(tmp_path / "fgvqa"))

    by_name = {benchmark.name: benchmark for benchmark in Benchmark.objects.all()}
    assert sorted(by_name) == ["fgvqa-cub", "fgvqa-met", "fgvqa-twin"]
    cub = by_name["fgvqa-cub"]
    assert (cub.display_name, cub.domain, cub.status) == ("Cub", "bird", "ready")
    queries = list(cub.queries.order_by("number"))
    # As the reference evaluation asks them: the published question, then its instruction.
    instruction = "You MUST include an explanation AND use the answer tags <answer></answer>."
    assert [(q.question_type, q.question, q.answer) for q in queries] == [
        ("pair", f"Same bird? {instruction}", "yes"),
        ("pair", f"Same bird? {instruction}", "no"),
        ("multi", f"How many? {instruction}", "2"),
    ]
    assert [len(q.image_ids) for q in queries] == [2, 2, 4]
    assert queries[0].extra["instance_ids"] == [1, 1]
    assert by_name["fgvqa-twin"].domain == "object" and by_name["fgvqa-met"].multi_count == 1
    stored = BenchmarkImage.objects.get(pk=queries[0].image_ids[0])
    assert stored.file.read() == ROWS[0][3][0]["bytes"]  # the published image, byte for byte

    call_command("import_fgvqa", str(tmp_path / "fgvqa"))  # again: nothing doubles
    assert Benchmark.objects.count() == 3


def test_checks_name_what_is_missing(settings, tmp_path):
    with pytest.raises(BenchmarkError, match="frozen snapshot"):
        benchmark_create(name="twin-eval", source=Benchmark.Source.TWIN_EVAL)
    with pytest.raises(BenchmarkError, match="local copy"):
        benchmark_create(name="cub", source=Benchmark.Source.CUB)
    with pytest.raises(BenchmarkError, match="dataset_source"):
        benchmark_create(name="fgvqa", source=Benchmark.Source.FGVQA, source_path=str(tmp_path))
    with pytest.raises(BenchmarkError, match="at least one query"):
        benchmark_create(
            name="none",
            source=Benchmark.Source.CUB,
            source_path=str(tmp_path),
            parameters={"pair_count": 0, "multi_count": 0},
        )
    settings.EVALUATION_SOURCE_ROOTS = [tmp_path / "datasets"]
    with pytest.raises(BenchmarkError, match="outside the folders"):
        benchmark_create(name="cub", source=Benchmark.Source.CUB, source_path="/etc")


def test_a_source_without_its_files_fails_the_build_with_the_reason(tmp_path):
    with pytest.raises(CommandError, match="was not built"):
        call_command("create_benchmark", "cub", "cub", "--path", str(tmp_path))
    benchmark = Benchmark.objects.get(name="cub")
    assert benchmark.status == Benchmark.Status.FAILED
    assert "CUB" in benchmark.job.error or "images.txt" in benchmark.job.error


def _folder_benchmark(tmp_path, name="objects", **parameters):
    for label in ("mug", "vase", "lamp", "clock"):
        for index in range(4):
            path = tmp_path / "objects" / label / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image_bytes(seed=hash((label, index)) % 10_000, format="PNG"))
    call_command(
        "create_benchmark",
        name,
        "image_folder",
        "--path",
        str(tmp_path / "objects"),
        "--embedder",
        "descriptor",
        *[f"--{key.replace('_', '-')}={value}" for key, value in parameters.items()],
    )
    return Benchmark.objects.get(name=name)


def test_the_same_seed_builds_the_same_queries(tmp_path):
    first = _folder_benchmark(tmp_path, "first", pair_count=8, multi_count=8, seed=3)
    second = _folder_benchmark(tmp_path, "second", pair_count=8, multi_count=8, seed=3)

    def described(benchmark):
        images = {image.pk: image.source_key for image in benchmark.images.all()}
        return [
            (q.question_type, q.answer, [images[i] for i in q.image_ids]) for q in benchmark.queries.all()
        ]

    assert described(first) == described(second)
    assert (
        first.queries.filter(question_type="multi")
        .first()
        .question.startswith("The first image is a reference")
    )


def test_a_benchmark_that_runs_answered_is_never_rebuilt(tmp_path):
    benchmark = _folder_benchmark(tmp_path, pair_count=4, multi_count=0)
    run = evaluation_run_create(name="r", benchmarks=[benchmark], backend="transformers", model="m")
    EvaluationResponse.objects.create(run=run, query=benchmark.queries.first(), text="yes")
    Benchmark.objects.filter(pk=benchmark.pk).update(status=Benchmark.Status.FAILED)
    with pytest.raises(BenchmarkError, match="stay as they are"):
        benchmark_build_launch(benchmark=benchmark)


def test_a_researcher_builds_a_benchmark_from_the_admin(admin_client, tmp_path):
    for label in ("mug", "vase"):
        for index in range(3):
            path = tmp_path / "objects" / label / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image_bytes(seed=index + (10 if label == "vase" else 0), format="PNG"))
    response = admin_client.post(
        "/admin/evaluation/benchmark/add/",
        {
            "name": "lab-objects",
            "display_name": "Lab objects",
            "source": "image_folder",
            "domain": "object",
            "snapshot": "",
            "source_path": str(tmp_path / "objects"),
            "parameters": '{"pair_count": 4, "multi_count": 4, "embedder": "descriptor"}',
            "_build": "1",
        },
    )  # eager: the build runs before the redirect

    assert response.status_code == 302, response.content.decode()[:2000]
    benchmark = Benchmark.objects.get(name="lab-objects")
    assert benchmark.status == Benchmark.Status.READY, benchmark.job.error
    assert benchmark.pair_count == 4
    assert benchmark.parameters["seed"] == 0  # the defaults filled in
    assert "only" in benchmark.notes  # two labels can't give 4 multi queries of every answer: said so
