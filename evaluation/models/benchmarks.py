"""FGVQA benchmarks: a dataset's images and the fixed, seeded queries asked about them (paper section 4, A.1)."""

from django.conf import settings
from django.db import models


class Benchmark(models.Model):
    """One FGVQA dataset, e.g. TWIN-Eval or CUB: its queries are built once and never change afterwards, so
    every run that answers them is comparable."""

    class Source(models.TextChoices):
        TWIN_EVAL = "twin_eval", "TWIN-Eval (a frozen snapshot's eval split)"
        ILIAS = "ilias", "ILIAS (core_db, identity from __key__)"
        GLDV2 = "gldv2", "Google Landmarks v2 (train, identity from landmark_id)"
        MET = "met", "MET (mini_MET)"
        CUB = "cub", "CUB-200-2011 (test split, species)"
        INQUIRE = "inquire", "INQUIRE (validation, inat24_species_name)"
        IMAGE_FOLDER = "image_folder", "Image folder (one subfolder per identity)"
        FGVQA = "fgvqa", "Published FGVQA (parquet or a datasets folder)"

    class Domain(models.TextChoices):
        OBJECT = "object", "Objects"
        BIRD = "bird", "Birds"
        ARTWORK = "artwork", "Artworks"
        LANDMARK = "landmark", "Landmarks"
        SPECIES = "species", "Species"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    name = models.SlugField(max_length=100, unique=True, help_text='A short id, e.g. "twin-eval" or "cub".')
    display_name = models.CharField(
        max_length=100, help_text='The column title in reports, e.g. "Twin-Eval".'
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    domain = models.CharField(
        max_length=16,
        choices=Domain.choices,
        default=Domain.OBJECT,
        help_text="Chooses the prompts' wording.",
    )
    snapshot = models.ForeignKey(
        "annotation.DatasetSnapshot",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="benchmarks",
        help_text="TWIN-Eval only: the frozen snapshot whose eval split the queries come from.",
    )
    source_path = models.CharField(
        max_length=1000,
        blank=True,
        help_text="The local copy of the dataset on the workers, in its published layout (not for TWIN-Eval).",
    )
    parameters = models.JSONField(
        default=dict, blank=True, help_text="Query counts, seed and look-alike search (evaluation.services)."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    pair_count = models.PositiveIntegerField(default=0)
    multi_count = models.PositiveIntegerField(default=0)
    open_count = models.PositiveIntegerField(default=0)
    notes = models.TextField(blank=True, help_text="What the build could not supply, in sentences.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.display_name or self.name

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY

    @property
    def query_count(self) -> int:
        return self.pair_count + self.multi_count + self.open_count


class BenchmarkImage(models.Model):
    """An image a benchmark's queries show. TWIN-Eval's point at the catalog's files; other sources' are
    copied into the media storage when the benchmark is built (only the images the queries use)."""

    id = models.BigAutoField(primary_key=True)
    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to="evaluation/", max_length=500)
    label = models.CharField(max_length=500, help_text="The identity: instance, species, landmark, artwork.")
    label_name = models.CharField(max_length=500, blank=True, help_text="A readable name for the label.")
    source_key = models.CharField(max_length=1000, blank=True, help_text="Where the image came from.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.benchmark.name} image #{self.pk} ({self.label})"


class BenchmarkQuery(models.Model):
    class QuestionType(models.TextChoices):
        PAIR = "pair", "Pair (same or not?)"
        MULTI = "multi", "Multi (how many match the reference?)"
        OPEN = "open", "Open (what exactly is this?)"

    id = models.BigAutoField(primary_key=True)
    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="queries")
    number = models.PositiveIntegerField(help_text="The query's place in the benchmark, from 1.")
    question_type = models.CharField(max_length=8, choices=QuestionType.choices)
    question = models.TextField()
    answer = models.CharField(
        max_length=500, help_text="yes/no for pair, 0 to 3 for multi, the reference name for open queries."
    )
    image_ids = models.JSONField(
        help_text="The BenchmarkImage ids shown, in order (multi: the reference first)."
    )
    extra = models.JSONField(default=dict, blank=True, help_text="Labels, source keys, reference facts.")

    class Meta:
        ordering = ["benchmark", "number"]
        constraints = [
            models.UniqueConstraint(fields=["benchmark", "number"], name="benchmark_query_unique_number")
        ]
        indexes = [models.Index(fields=["benchmark", "question_type", "number"], name="benchmark_query_type")]

    def __str__(self) -> str:
        return f"{self.benchmark.name} {self.question_type} query {self.number}"
