"""The researchers' forms: building an export of a snapshot, and a training run's settings."""

import json
from typing import Any

from django import forms

from annotation.dataset.selectors import snapshots_frozen
from training.models import DatasetExport, TrainingRun
from training.services.run_options import RunOptions, default_hyperparameters
from training.services.runs import TrainingRunError, training_run_check


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


class TrainingRunAdminForm(forms.ModelForm):
    """The run's settings in the admin; the hyperparameters and options are JSON, prefilled with the paper's
    values (a run switched to SFT with GRPO's untouched values gets SFT's)."""

    class Meta:
        model = TrainingRun
        fields = ["name", *TrainingRun.SETTINGS_FIELDS, "notes"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "snapshot" in self.fields:
            self.fields["snapshot"].queryset = snapshots_frozen()
        if not self.instance.pk:
            self.initial.setdefault("hyperparameters", default_hyperparameters(TrainingRun.Method.GRPO))
            self.initial.setdefault("options", RunOptions().to_json())
        for name in ("hyperparameters", "options"):
            if name in self.fields:
                self.fields[name].widget.attrs.update({"rows": 14, "cols": 70, "class": "vLargeTextField"})
        if "hyperparameters" in self.fields:
            self.fields["hyperparameters"].help_text = (
                "GRPO defaults (Table 8): "
                + json.dumps(default_hyperparameters(TrainingRun.Method.GRPO))
                + ". SFT defaults (Table 9): "
                + json.dumps(default_hyperparameters(TrainingRun.Method.SFT))
                + ". Names left out take these values."
            )
        if "options" in self.fields:
            self.fields["options"].help_text = RunOptions.__doc__.replace("\n    ", "\n").strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        method = data.get("method")
        hyperparameters = data.get("hyperparameters") or {}
        if method == TrainingRun.Method.SFT and hyperparameters == default_hyperparameters(
            TrainingRun.Method.GRPO
        ):
            data["hyperparameters"] = default_hyperparameters(TrainingRun.Method.SFT)
        elif method == TrainingRun.Method.GRPO and hyperparameters == default_hyperparameters(
            TrainingRun.Method.SFT
        ):
            data["hyperparameters"] = default_hyperparameters(TrainingRun.Method.GRPO)
        if self.errors:
            return data
        for name, value in data.items():
            setattr(self.instance, name, value)
        self.instance.options = {**RunOptions().to_json(), **(data.get("options") or {})}
        data["options"] = self.instance.options
        try:
            training_run_check(self.instance)
        except TrainingRunError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data
