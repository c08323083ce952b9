"""The researchers' form that starts a mining stage (or the pipeline) with its parameters."""

import json
from typing import Any

from django import forms

from annotation.models import Product
from mining.services.stages import PIPELINE, Stage, stage_defaults

STAGE_CHOICES = [
    (PIPELINE, "The whole pipeline: verification, embed, duplicates, hard negatives, synthetic"),
    (Stage.VERIFICATION, "Verification: image-verification tasks for the pending photos"),
    (Stage.EMBED, "Embed: vectors for the images that have none yet"),
    (Stage.DUPLICATES, "Duplicates: duplicate-listing candidates (appendix B.2)"),
    (Stage.HARD_NEGATIVES, "Hard negatives: the shortlist per instance (appendix B.3)"),
    (Stage.SYNTHETIC, "Synthetic: DreamBooth negatives per instance (appendix B.4, GPU)"),
]


class MiningStartForm(forms.Form):
    stage = forms.ChoiceField(choices=STAGE_CHOICES, initial=PIPELINE)
    sources = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Catalog sources to mine; none ticked means the whole catalog.",
    )
    embedder = forms.CharField(
        required=False,
        max_length=500,
        help_text='"descriptor" (colour and layout, no weights) or "open_clip:MODEL:PRETRAINED", where PRETRAINED '
        "is a tag in the model cache or a weights file. Empty: the default.",
    )
    search = forms.ChoiceField(
        choices=[(m, m) for m in ("auto", "exact", "hnsw", "ivf")],
        initial="auto",
        help_text="Nearest neighbours: auto is exact up to TWIN_MINING_EXACT_SEARCH_MAX vectors, FAISS IVF above.",
    )
    seed = forms.IntegerField(initial=0, help_text="Draws the shortlist sizes and the DreamBooth photos.")
    same_category_only = forms.BooleanField(
        required=False, help_text="Shortlist hard negatives within the instance's category only."
    )
    model = forms.CharField(
        label="DreamBooth model",
        required=False,
        max_length=500,
        help_text='Stable Diffusion folder or cached hub id; "tiny-random" for a demo. Empty: the default.',
    )
    method = forms.ChoiceField(choices=[("lora", "LoRA"), ("full", "full fine-tuning")], initial="lora")
    train_steps = forms.IntegerField(min_value=1, initial=400)
    resolution = forms.IntegerField(min_value=8, initial=512)
    instances_limit = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="DreamBooth on this many instances, drawn with the seed. Empty: all.",
    )
    more = forms.CharField(
        label="Other parameters (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text='e.g. {"batch_size": 128, "images_per_prompt": 2}. The defaults are listed below.',
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sources = Product.objects.order_by("source").values_list("source", flat=True).distinct()
        self.fields["sources"].choices = [(s, s) for s in sources]
        defaults = stage_defaults()
        self.fields["embedder"].widget.attrs["placeholder"] = defaults[Stage.EMBED]["embedder"]
        self.fields["model"].widget.attrs["placeholder"] = defaults[Stage.SYNTHETIC]["model"]

    def clean_more(self) -> dict[str, Any]:
        text = self.cleaned_data["more"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('a JSON object is expected, e.g. {"batch_size": 128}')
        return value

    def parameters(self) -> dict[str, Any]:
        """The parameters the chosen stage takes, from the fields (the others are dropped)."""
        stage = self.cleaned_data["stage"]
        defaults = stage_defaults()
        names = set().union(*defaults.values()) if stage == PIPELINE else set(defaults[stage])
        given = {
            "sources": self.cleaned_data["sources"],
            "embedder": self.cleaned_data["embedder"] or None,
            "search": self.cleaned_data["search"],
            "seed": self.cleaned_data["seed"],
            "same_category_only": self.cleaned_data["same_category_only"],
            "model": self.cleaned_data["model"] or None,
            "method": self.cleaned_data["method"],
            "train_steps": self.cleaned_data["train_steps"],
            "resolution": self.cleaned_data["resolution"],
            "instances_limit": self.cleaned_data["instances_limit"],
        }
        parameters = {key: value for key, value in given.items() if key in names and value is not None}
        parameters.update(self.cleaned_data["more"])
        return parameters
