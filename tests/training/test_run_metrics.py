"""A run's metric series for its plots: only the named values, thinned for long runs, the last point kept; the
plots drawn from them."""

import pytest

from training.charts import metric_line_svg
from training.models import TrainingMetric
from training.selectors import run_metric_series
from training.services.runs import training_run_create

pytestmark = pytest.mark.django_db(transaction=True)  # freezing runs on commit


def test_series_skip_steps_without_the_value_and_thin_long_runs(frozen_snapshot):
    run = training_run_create(name="long", snapshot=frozen_snapshot)
    TrainingMetric.objects.bulk_create(
        TrainingMetric(
            run=run,
            step=step,
            values={"reward": step / 1000, **({"heldout_accuracy": 0.5} if step % 50 == 0 else {})},
        )
        for step in range(1, 1170)
    )

    series = run_metric_series(run=run, names=["reward", "heldout_accuracy", "kl"], max_points=100)

    assert (
        len(series["reward"]) <= 101
        and series["reward"][0] == (1, 0.001)
        and series["reward"][-1] == (1169, 1.169)
    )
    assert [step for step, _ in series["heldout_accuracy"]] == list(
        range(50, 1169, 50)
    )  # 23 points: not thinned
    assert series["kl"] == []


def test_a_plot_without_values_says_so_and_a_flat_one_is_drawn():
    assert "No values yet." in metric_line_svg([], title="KL")
    flat = metric_line_svg([(1, 0.0), (2, 0.0)], title="Reward <b>")

    assert "<polyline" in flat and "Reward &lt;b&gt;" in flat and "0 at step 2" in flat
