"""manage.py create_benchmark NAME SOURCE [--path DIR | --snapshot SNAPSHOT] [--pair-count N] ... [--build now|queue]

Records an FGVQA benchmark and builds its queries: here with a progress line (``--build now``, the default), or
on a worker (``--build queue``). SOURCE: twin_eval (with --snapshot), ilias, gldv2, met, cub, inquire,
image_folder (with --path: the dataset's local copy in its published layout), or fgvqa (--path and
--dataset-source; ``import_fgvqa`` does every dataset_source at once)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.dataset.selectors import snapshot_frozen_named
from evaluation.models import Benchmark
from evaluation.services.benchmarks import (
    BenchmarkError,
    benchmark_build_execute,
    benchmark_build_launch,
    benchmark_create,
)


def benchmark_build_here(command: BaseCommand, benchmark: Benchmark) -> Benchmark:
    """Builds the benchmark in this process, and says what came of it."""
    job = benchmark_build_launch(benchmark=benchmark, enqueue=False)
    command.stdout.write(f"Building {benchmark} (job #{job.pk})...")
    try:
        benchmark = benchmark_build_execute(job=job)
    except Exception as exc:
        raise CommandError(f"{benchmark} was not built: {exc}") from exc
    command.stdout.write(
        f"{benchmark}: {benchmark.pair_count} pair, {benchmark.multi_count} multi and {benchmark.open_count} "
        "open queries."
    )
    if benchmark.notes:
        command.stdout.write(benchmark.notes)
    return benchmark


class Command(BaseCommand):
    help = "Creates an FGVQA benchmark from a source and builds its queries."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help='A short id, e.g. "cub" or "twin-eval".')
        parser.add_argument("source", choices=Benchmark.Source.values)
        parser.add_argument("--display-name", default="", help='The report\'s column title, e.g. "CUB".')
        parser.add_argument(
            "--domain", choices=Benchmark.Domain.values, default="", help="Default: the source's."
        )
        parser.add_argument("--path", default="", help="The dataset's local copy (not for twin_eval).")
        parser.add_argument("--snapshot", default="", help="twin_eval: the frozen snapshot's id or name.")
        parser.add_argument("--pair-count", type=int, default=1000)
        parser.add_argument("--multi-count", type=int, default=1000)
        parser.add_argument("--open-count", type=int, default=0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--embedder", default="", help='Look-alike search: "" (mining\'s), descriptor, none...'
        )
        parser.add_argument("--dataset-source", default="", help='fgvqa: e.g. "fgvqa_cub".')
        parser.add_argument("--build", choices=["now", "queue", "no"], default="now")

    def handle(self, *args, **options) -> None:
        if Benchmark.objects.filter(name=options["name"]).exists():
            raise CommandError(f"A benchmark {options['name']!r} exists already.")
        snapshot = None
        if options["snapshot"]:
            snapshot = snapshot_frozen_named(options["snapshot"])
            if snapshot is None:
                raise CommandError(f"No frozen snapshot {options['snapshot']!r}.")
        try:
            benchmark = benchmark_create(
                name=options["name"],
                source=options["source"],
                display_name=options["display_name"],
                domain=options["domain"],
                snapshot=snapshot,
                source_path=options["path"],
                parameters={
                    "pair_count": options["pair_count"],
                    "multi_count": options["multi_count"],
                    "open_count": options["open_count"],
                    "seed": options["seed"],
                    "embedder": options["embedder"],
                    "dataset_source": options["dataset_source"],
                },
            )
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created the benchmark {benchmark}.")
        if options["build"] == "now":
            benchmark_build_here(self, benchmark)
        elif options["build"] == "queue":
            job = benchmark_build_launch(benchmark=benchmark)
            self.stdout.write(f"Queued its build: job #{job.pk}.")
