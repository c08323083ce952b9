"""The researchers' forms for benchmarks and evaluation runs (admin)."""

from typing import Any

from django import forms

from annotation.dataset.selectors import snapshots_frozen
from evaluation.models import Benchmark, EvaluationRun
from evaluation.services.benchmark_parameters import BenchmarkParameters
from evaluation.services.benchmarks import SOURCE_DOMAINS, BenchmarkError, benchmark_check
from evaluation.services.run_options import EvaluationOptions
from evaluation.services.runs import EvaluationRunError, evaluation_run_check


def _json_widget(field: forms.Field, doc: str | None) -> None:
    field.widget.attrs.update({"rows": 12, "cols": 70, "class": "vLargeTextField"})
    field.help_text = (doc or "").replace("\n    ", "\n").strip()


class BenchmarkAdminForm(forms.ModelForm):
    class Meta:
        model = Benchmark
        fields = ["name", "display_name", "source", "domain", "snapshot", "source_path", "parameters"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "snapshot" in self.fields:
            self.fields["snapshot"].queryset = snapshots_frozen()
        if not self.instance.pk:
            self.initial.setdefault("parameters", BenchmarkParameters().to_json())
        if "parameters" in self.fields:
            _json_widget(self.fields["parameters"], BenchmarkParameters.__doc__)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        for name, value in data.items():
            setattr(self.instance, name, value)
        if not self.instance.display_name:
            self.instance.display_name = data["display_name"] = self.instance.name
        if (
            "domain" not in self.changed_data
            and self.instance.source in SOURCE_DOMAINS
            and not self.instance.pk
        ):
            self.instance.domain = data["domain"] = SOURCE_DOMAINS[self.instance.source]
        self.instance.parameters = data["parameters"] = {
            **BenchmarkParameters().to_json(),
            **(data.get("parameters") or {}),
        }
        try:
            benchmark_check(self.instance)
        except BenchmarkError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


class EvaluationRunAdminForm(forms.ModelForm):
    """The run's settings; the options are JSON, prefilled with the reference evaluation's values."""

    class Meta:
        model = EvaluationRun
        fields = ["name", "benchmarks", *EvaluationRun.SETTINGS_FIELDS, "training_set_size", "notes"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "benchmarks" in self.fields:
            self.fields["benchmarks"].queryset = Benchmark.objects.filter(status=Benchmark.Status.READY)
        if not self.instance.pk:
            self.initial.setdefault("options", EvaluationOptions().to_json())
        if "options" in self.fields:
            _json_widget(self.fields["options"], EvaluationOptions.__doc__)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        for name in ("name", *EvaluationRun.SETTINGS_FIELDS, "training_set_size"):
            if name in data:
                setattr(self.instance, name, data[name])
        if "options" in data:
            self.instance.options = data["options"] = {
                **EvaluationOptions().to_json(),
                **(data["options"] or {}),
            }
        benchmarks = list(data["benchmarks"]) if "benchmarks" in data else None
        try:
            evaluation_run_check(self.instance, benchmarks)
        except EvaluationRunError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data
