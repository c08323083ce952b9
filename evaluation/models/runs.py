"""Evaluation runs: one model answering one or more benchmarks' queries, launched from the admin."""

from django.conf import settings
from django.db import models

from jobs.models import LaunchedByJobMixin


class EvaluationRun(LaunchedByJobMixin, models.Model):
    """A model (a hub id, a folder, a training run's checkpoint, or a served model) answering benchmarks.

    Responses are stored one per query as they come back, so a run that stops resumes with the queries it
    has not answered; its accuracies are computed from those rows.
    """

    class Backend(models.TextChoices):
        TRANSFORMERS = "transformers", "transformers (CPU or GPU)"
        VLLM = "vllm", "vLLM (GPU, batched)"
        OPENAI = "openai", "OpenAI-compatible HTTP endpoint (a served or an API model)"

    name = models.CharField(
        max_length=120, help_text='A name for the run, e.g. "qwen3b-base" or "qwen3b-twin".'
    )
    benchmarks = models.ManyToManyField(
        "evaluation.Benchmark", related_name="runs", help_text="The benchmarks to answer (built ones)."
    )
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.VLLM)
    model = models.CharField(
        max_length=500,
        blank=True,
        help_text="A hub id or folder on the workers (transformers, vLLM), or the served model's name (OpenAI). "
        "Empty: the training run's checkpoint.",
    )
    training_run = models.ForeignKey(
        "training.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="evaluation_runs",
        help_text="The training run whose model this is (its checkpoint when the model is empty).",
    )
    training_set_size = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Training pairs behind the model, for the scaling plot: empty means the training run's "
        "snapshot's train split, or 0 for a base model.",
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Generation, backend and judge settings (evaluation.services.run_options).",
    )
    notes = models.TextField(blank=True)

    job = models.ForeignKey(
        "jobs.Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The latest launch: its status, log and progress are the run's.",
    )
    model_resolved = models.CharField(max_length=1000, blank=True, help_text="The model as it was loaded.")
    summary = models.JSONField(default=dict, blank=True, help_text="Accuracies when the run finished.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    # What the run asks and of which model: fixed once launched, so its responses keep meaning what they say.
    SETTINGS_FIELDS = ("backend", "model", "training_run", "options")

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class EvaluationResponse(models.Model):
    """What the model said to one query, what the parser read, and whether it was right."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="responses")
    query = models.ForeignKey("evaluation.BenchmarkQuery", on_delete=models.CASCADE, related_name="responses")
    text = models.TextField(blank=True, help_text="The raw response.")
    parsed = models.CharField(
        max_length=16, blank=True, help_text="The final answer read from it; empty if none."
    )
    correct = models.BooleanField(
        null=True, help_text="Exact match (pair and multi); empty for open queries."
    )
    recognition_score = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Judge: 0 to 2.")
    content_score = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Judge: 0 to 3.")
    judge_text = models.TextField(blank=True)
    seconds = models.FloatField(default=0.0)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "query"]
        constraints = [
            models.UniqueConstraint(fields=["run", "query"], name="evaluation_response_unique_query")
        ]
        indexes = [models.Index(fields=["run", "correct"], name="evaluation_response_correct")]

    def __str__(self) -> str:
        return f"run #{self.run_id}, query #{self.query_id}"
