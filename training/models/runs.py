"""Training runs: post-training a base model on a frozen snapshot, launched from the admin and watched on the
run's page."""

from django.conf import settings
from django.db import models

from jobs.models import LaunchedByJobMixin

DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"


class TrainingRun(LaunchedByJobMixin, models.Model):
    """One post-training run: what to train, on which snapshot, how, and on how many GPUs.

    The run is a draft until it is launched; launching records a job (queued on the GPU queue) whose status,
    log and progress are the run's. A failed or cancelled run can be launched again: it resumes from its latest
    checkpoint in the same output folder.
    """

    class Method(models.TextChoices):
        GRPO = "grpo", "GRPO (reinforcement learning, the paper's method)"
        SFT = "sft", "SFT (supervised fine-tuning, the paper's Table 3 baseline)"

    class Backend(models.TextChoices):
        VERL = "verl", "verl (distributed: FSDP actor, vLLM rollouts)"
        TRL = "trl", "TRL (one machine: GRPOTrainer / SFTTrainer)"

    class Launcher(models.TextChoices):
        LOCAL = "local", "Local process on the GPU worker"
        RAY = "ray", "Ray cluster (ray job submit)"

    name = models.CharField(max_length=120, help_text="A name for the run, e.g. qwen3b-twin-v2.")
    snapshot = models.ForeignKey(
        "annotation.DatasetSnapshot",
        on_delete=models.PROTECT,
        related_name="training_runs",
        help_text="The frozen snapshot to train on: its train split trains, its eval split is held out.",
    )
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.GRPO)
    backend = models.CharField(max_length=8, choices=Backend.choices, default=Backend.VERL)
    base_model = models.CharField(
        max_length=500, default=DEFAULT_BASE_MODEL, help_text="A model hub id or a folder on the GPU nodes."
    )
    hyperparameters = models.JSONField(
        default=dict, blank=True, help_text="Prefilled with the paper's Table 8 (GRPO) or Table 9 (SFT)."
    )
    gpus_per_node = models.PositiveSmallIntegerField(default=4)
    nodes = models.PositiveSmallIntegerField(default=1)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="How the run is carried out rather than what it optimizes (see training.services.run_options).",
    )
    notes = models.TextField(blank=True)

    launcher = models.CharField(
        max_length=8, choices=Launcher.choices, blank=True, help_text="Set from the configuration at launch."
    )
    job = models.ForeignKey(
        "jobs.Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The latest launch: its status, log and progress are the run's.",
    )
    export = models.ForeignKey(
        "training.DatasetExport",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The verl export of the snapshot that the run read.",
    )
    output_dir = models.CharField(max_length=1000, blank=True, help_text="Checkpoints and the full log.")
    command = models.TextField(blank=True, help_text="The training command, as launched.")
    external_id = models.CharField(
        max_length=200, blank=True, help_text="The process group id, or the Ray submission id."
    )
    checkpoint = models.CharField(max_length=1000, blank=True, help_text="The latest checkpoint written.")
    summary = models.JSONField(default=dict, blank=True, help_text="Steps, time and final metrics.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    # What the run trains and how: fixed once the run is launched, so its metrics and checkpoints keep meaning
    # what they say (the name and the notes stay editable).
    SETTINGS_FIELDS = (
        "snapshot",
        "method",
        "backend",
        "base_model",
        "hyperparameters",
        "gpus_per_node",
        "nodes",
        "options",
    )

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class TrainingMetric(models.Model):
    """The metrics a run reported for one training step (canonical names and the backend's own)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    values = models.JSONField(default=dict)
    at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="training_metric_unique_step")]

    def __str__(self) -> str:
        return f"step {self.step} of run #{self.run_id}"
