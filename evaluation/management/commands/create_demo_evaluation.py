"""manage.py create_demo_evaluation SNAPSHOT [--pair-count 24] [--multi-count 24] [--model-dir DIR]

A small FGVQA from the demo catalogs, and a draft evaluation run that a CPU carries out in about a minute:
TWIN-Eval from the snapshot's eval split, and an object benchmark from the DreamBooth photo subset (one folder
per object), answered by a tiny random-weight Qwen2.5-VL with the transformers backend. It shows the whole loop
(launch in the admin, watch the run page, read the report, browse the wrong answers); the scores mean nothing.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.dataset.selectors import snapshot_frozen_named
from evaluation.management.commands.create_benchmark import benchmark_build_here
from evaluation.models import Benchmark, EvaluationRun
from evaluation.services.benchmarks import BenchmarkError, benchmark_create
from evaluation.services.runs import EvaluationRunError, evaluation_run_create

DREAMBOOTH_SUBSET = Path(settings.BASE_DIR) / "annotation" / "demo_data" / "dreambooth_subset"
# Short answers on one CPU: 24 new tokens, 4 prompts per generate call.
TINY_OPTIONS = {"device": "cpu", "max_new_tokens": 24, "batch_size": 4}


class Command(BaseCommand):
    help = "Builds a small FGVQA from the demo catalogs and drafts a CPU evaluation run on a tiny model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "snapshot", help="The frozen snapshot's id or name (its eval split is TWIN-Eval)."
        )
        parser.add_argument("--pair-count", type=int, default=24)
        parser.add_argument("--multi-count", type=int, default=24)
        parser.add_argument("--name", default="demo-tiny-qwen")
        parser.add_argument("--model-dir", default=None, help="Default: DATA_DIR/models/tiny-qwen2.5-vl.")

    def handle(self, *args, **options) -> None:
        from training.backends.tiny_vlm import tiny_qwen_vl_model_ensure

        snapshot = snapshot_frozen_named(options["snapshot"])
        if snapshot is None:
            raise CommandError(f"No frozen snapshot {options['snapshot']!r}.")
        # No CLIP weights in the demo: look-alike negatives come from the weightless colour and layout descriptor.
        counts = {
            "pair_count": options["pair_count"],
            "multi_count": options["multi_count"],
            "embedder": "descriptor",
        }
        wanted = [
            ("twin-eval-demo", "Twin-Eval (demo)", Benchmark.Source.TWIN_EVAL, {"snapshot": snapshot}),
            (
                "objects-demo",
                "Objects (demo)",
                Benchmark.Source.IMAGE_FOLDER,
                {"source_path": str(DREAMBOOTH_SUBSET)},
            ),
        ]
        benchmarks = []
        for name, display_name, source, where in wanted:
            benchmark = Benchmark.objects.filter(name=name).first()
            if benchmark is None:
                try:
                    benchmark = benchmark_create(
                        name=name, display_name=display_name, source=source, parameters=counts, **where
                    )
                except BenchmarkError as exc:
                    raise CommandError(str(exc)) from exc
            if not benchmark.is_ready:
                benchmark = benchmark_build_here(self, benchmark)
            benchmarks.append(benchmark)
        if EvaluationRun.objects.filter(name=options["name"]).exists():
            self.stdout.write(f"Run {options['name']} exists already.")
            return
        model_dir = Path(options["model_dir"] or settings.DATA_DIR / "models" / "tiny-qwen2.5-vl")
        if tiny_qwen_vl_model_ensure(model_dir):
            self.stdout.write(f"Saved a tiny random-weight Qwen2.5-VL in {model_dir}")
        try:
            run = evaluation_run_create(
                name=options["name"],
                benchmarks=benchmarks,
                backend=EvaluationRun.Backend.TRANSFORMERS,
                model=str(model_dir),
                options=TINY_OPTIONS,
            )
        except EvaluationRunError as exc:
            raise CommandError(str(exc)) from exc
        EvaluationRun.objects.filter(pk=run.pk).update(
            notes="A CPU demonstration: a tiny model with random weights, so its scores mean nothing."
        )
        self.stdout.write(f"Created the draft evaluation run {run}: launch it in the admin.")
