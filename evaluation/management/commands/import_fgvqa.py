"""manage.py import_fgvqa ROOT [--prefix fgvqa-] [--build now|queue]

The published FGVQA benchmark suite (parquet files or a ``datasets`` folder with question, answer,
question_type, images and dataset_source) as one benchmark per dataset_source, with its own queries."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation.management.commands.create_benchmark import benchmark_build_here
from evaluation.models import Benchmark
from evaluation.services.benchmarks import BenchmarkError, benchmark_build_launch, benchmark_create

# The reference's dataset_source names, and the paper's column titles.
DISPLAY_NAMES = {
    "twin": "Twin-Eval",
    "fgvqa_ilias": "Ilias",
    "fgvqa_google_landmarks": "Landmarks",
    "fgvqa_met": "Met",
    "fgvqa_cub": "Cub",
    "fgvqa_inquire": "Inquire",
}


class Command(BaseCommand):
    help = "Imports the published FGVQA suite: one benchmark per dataset_source."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("root", help="A folder of parquet files, or a datasets.save_to_disk folder.")
        parser.add_argument("--prefix", default="fgvqa-", help="Benchmark names are PREFIX + dataset_source.")
        parser.add_argument("--build", choices=["now", "queue"], default="now")

    def handle(self, *args, **options) -> None:
        from evaluation.sources import SourceError
        from evaluation.sources.fgvqa_published import published_sources, short_source, source_domain

        try:
            sources = published_sources(options["root"])
        except SourceError as exc:
            raise CommandError(str(exc)) from exc
        if not sources:
            raise CommandError(f"{options['root']} holds no FGVQA rows.")
        for dataset_source, count in sorted(sources.items()):
            name = (options["prefix"] + short_source(dataset_source)).replace("_", "-")[:100]
            if Benchmark.objects.filter(name=name).exists():
                self.stdout.write(f"{name} exists already: kept.")
                continue
            try:
                benchmark = benchmark_create(
                    name=name,
                    source=Benchmark.Source.FGVQA,
                    display_name=DISPLAY_NAMES.get(dataset_source, dataset_source),
                    domain=source_domain(dataset_source) or Benchmark.Domain.OBJECT,
                    source_path=options["root"],
                    parameters={"dataset_source": dataset_source},
                )
            except BenchmarkError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{benchmark}: {count} published queries.")
            if options["build"] == "now":
                benchmark_build_here(self, benchmark)
            else:
                benchmark_build_launch(benchmark=benchmark)
