"""The researchers' form that builds an export of a snapshot."""

from django import forms

from training.models import DatasetExport


class ExportCreateForm(forms.Form):
    format = forms.ChoiceField(choices=DatasetExport.Format.choices)
    max_side = forms.IntegerField(
        min_value=8,
        required=False,
        label="Longest image side",
        help_text="Images are resized to fit. Empty: the format's default (512 for verl and Hugging Face).",
    )
    keep_original_size = forms.BooleanField(required=False, help_text="Keep the stored images as they are.")
    image_root = forms.CharField(
        required=False,
        max_length=500,
        help_text="verl: the folder the archive will be unpacked to on the training nodes, so the parquet holds "
        "absolute image paths. Empty: paths relative to that folder.",
    )
