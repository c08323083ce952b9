"""manage.py create_demo_training_run SNAPSHOT [--name NAME] [--method grpo|sft] [--model-dir DIR] [--launch]

A draft training run that a CPU can carry out in about a minute: the TRL backend on a tiny random-weight
Qwen2.5-VL (built here, since no weights can be downloaded), a few steps of small batches and short responses.
It shows the whole loop (launch in the admin, watch the run page: log, metrics, checkpoint) without a GPU; its
scores mean nothing. SNAPSHOT is an id, or a name for the latest frozen version."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.dataset.selectors import snapshot_frozen_named
from training.models import TrainingRun
from training.services.runs import TrainingRunError, training_run_create, training_run_launch

# Small enough for a CPU: 4 prompts x 2 responses of at most 24 tokens per step, 4 steps.
TINY_HYPERPARAMETERS = {
    "grpo": {"train_batch_size": 4, "group_size": 2, "max_response_length": 24, "max_steps": 4},
    "sft": {
        "batch_size": 4,
        "per_device_batch_size": 2,
        "max_response_length": 24,
        "max_steps": 4,
        "target": "label",
    },
}
TINY_OPTIONS = {"device": "cpu", "eval_every": 2, "eval_limit": 8, "save_every": 4}


class Command(BaseCommand):
    help = "Creates a draft training run that the CPU can carry out: TRL on a tiny random-weight Qwen2.5-VL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("snapshot", help="The snapshot's id, or its name for the latest frozen version.")
        parser.add_argument(
            "--name", default=None, help="Default: demo-tiny-<method>. An existing run is kept."
        )
        parser.add_argument("--method", choices=["grpo", "sft"], default="grpo")
        parser.add_argument(
            "--model-dir",
            default=None,
            help="Where the tiny model is saved (default: DATA_DIR/models/tiny-qwen2.5-vl); reused when there.",
        )
        parser.add_argument("--launch", action="store_true", help="Launch it too (queued on the GPU queue).")

    def handle(self, *args, **options) -> None:
        from training.backends.tiny_vlm import tiny_qwen_vl_model_ensure

        snapshot = snapshot_frozen_named(options["snapshot"])
        if snapshot is None:
            raise CommandError(f"No frozen snapshot {options['snapshot']!r}.")
        method = options["method"]
        name = options["name"] or f"demo-tiny-{method}"
        existing = TrainingRun.objects.filter(name=name).first()
        if existing is not None:
            self.stdout.write(f"Run {existing} exists already ({existing.status}).")
            return
        model_dir = Path(options["model_dir"] or settings.DATA_DIR / "models" / "tiny-qwen2.5-vl")
        if tiny_qwen_vl_model_ensure(model_dir):
            self.stdout.write(f"Saved a tiny random-weight Qwen2.5-VL in {model_dir}")
        try:
            run = training_run_create(
                name=name,
                snapshot=snapshot,
                method=method,
                backend=TrainingRun.Backend.TRL,
                base_model=str(model_dir),
                hyperparameters=TINY_HYPERPARAMETERS[method],
                gpus_per_node=1,
                options=TINY_OPTIONS,
            )
        except TrainingRunError as exc:
            raise CommandError(str(exc)) from exc
        TrainingRun.objects.filter(pk=run.pk).update(
            notes="A CPU demonstration: a tiny model with random weights, so its scores mean nothing."
        )
        self.stdout.write(f"Created the draft run {run} on {snapshot}: launch it in the admin.")
        if options["launch"]:
            job = training_run_launch(run=run)
            self.stdout.write(f"Launched: job #{job.pk}.")
