"""The researchers' forms: freezing a snapshot, and picking another snapshot to compare with."""

from typing import Any

from django import forms

from annotation.dataset.snapshots import SnapshotParameters
from annotation.models import DatasetSnapshot, Product


class SnapshotFreezeForm(forms.Form):
    name = forms.SlugField(
        max_length=100,
        initial="twin",
        help_text="Snapshots of the same name are numbered versions 1, 2, 3...",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))
    sources = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Catalog sources to take instances from; none ticked means the whole catalog.",
    )
    verified_only = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Only images accepted in review (untick to take pending ones too).",
    )
    eval_fraction = forms.FloatField(
        min_value=0, max_value=0.99, initial=0.1, help_text="Share of instances held out as the eval split."
    )
    seed = forms.IntegerField(
        initial=0, help_text="Decides the split of each instance, and random negatives."
    )
    negatives = forms.ChoiceField(
        choices=[
            ("hard", "Hard negatives (approved pairs and generated images)"),
            ("random", "Random negatives: the paper's ablation without hard negatives"),
        ],
        initial="hard",
    )
    sample_size = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Keep only this many pairs, with the proportions of labels and of generated images. Empty: all.",
    )
    sample_seed = forms.IntegerField(initial=0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sources = Product.objects.order_by("source").values_list("source", flat=True).distinct()
        self.fields["sources"].choices = [(s, s) for s in sources]

    def parameters(self) -> SnapshotParameters:
        data = self.cleaned_data
        return SnapshotParameters(
            sources=tuple(data["sources"]),
            verified_only=data["verified_only"],
            eval_fraction=data["eval_fraction"],
            seed=data["seed"],
            negatives=data["negatives"],
            sample_size=data["sample_size"],
            sample_seed=data["sample_seed"] or 0,
        )


class SnapshotCompareForm(forms.Form):
    other = forms.ModelChoiceField(queryset=DatasetSnapshot.objects.none(), label="Compare with")

    def __init__(self, *args: Any, snapshot: DatasetSnapshot, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["other"].queryset = DatasetSnapshot.objects.filter(
            status=DatasetSnapshot.Status.FROZEN
        ).exclude(pk=snapshot.pk)
