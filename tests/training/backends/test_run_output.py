"""The metrics protocol: lines the TRL runner prints and verl's own console-logger lines, read back."""

import math

import numpy as np
import pytest
from verl.utils.logger.aggregate_logger import concat_dict_to_str

from training.backends import run_output


def test_a_metrics_line_comes_back_with_its_step_and_finite_values():
    line = run_output.metrics_line(
        7, {"reward": 0.25, "kl": np.float32(0.5), "bad": float("nan"), "text": "x"}
    )

    parsed = run_output.parse_metrics_line(line)

    assert parsed == run_output.StepMetrics(step=7, values={"reward": 0.25, "kl": 0.5})


@pytest.mark.parametrize(
    "line",
    [
        "",
        "step 3",
        "TWIN_METRICS not json",
        'TWIN_METRICS {"values": {}}',
        'TWIN_METRICS {"step": "x", "values": {}}',
    ],
)
def test_other_lines_are_not_metrics(line):
    assert run_output.parse_metrics_line(line) is None


def test_checkpoint_and_summary_lines():
    assert (
        run_output.parse_checkpoint_line(run_output.checkpoint_line("/runs/a b/final")) == "/runs/a b/final"
    )
    assert run_output.parse_checkpoint_line("TWIN_CHECKPOINT ") is None
    summary = {"steps": 4, "seconds": 2.5}
    assert run_output.parse_summary_line(run_output.summary_line(summary)) == summary
    assert run_output.parse_summary_line("TWIN_SUMMARY [1]") is None


def test_verls_own_console_line_gives_the_canonical_metrics():
    """The line is made by verl's console logger itself, with the kinds of values verl logs (numpy scalars
    included, which numpy 2 prints as np.float64(...))."""
    metrics = {
        "critic/score/mean": np.float64(0.4),
        "actor/kl_loss": 0.0012,
        "response_length/mean": 153.5,
        "actor/pg_loss": -0.02,
        "actor/lr": 1e-06,
        "val-core/twin-demo/reward/mean@1": 0.625,
        "timing_s/step": 12,
        "not a number": "skipped",
    }
    line = "(TaskRunner pid=4242) " + concat_dict_to_str(metrics, step=12)

    parsed = run_output.verl_console_metrics(line)

    assert parsed is not None and parsed.step == 12
    assert parsed.values[run_output.REWARD] == pytest.approx(0.4)
    assert parsed.values[run_output.KL] == pytest.approx(0.0012)
    assert parsed.values[run_output.RESPONSE_LENGTH] == 153.5
    assert parsed.values[run_output.LOSS] == -0.02
    assert parsed.values[run_output.LEARNING_RATE] == 1e-06
    assert parsed.values[run_output.HELDOUT_ACCURACY] == 0.625
    assert parsed.values[run_output.STEP_SECONDS] == 12
    assert parsed.values["critic/score/mean"] == pytest.approx(0.4)  # verl's own names are kept too
    assert all(math.isfinite(value) for value in parsed.values.values())


def test_a_validation_only_line_reports_held_out_accuracy():
    line = concat_dict_to_str({"val-core/twin-demo/reward/mean@1": 0.5, "val-aux/num_turns/mean": 2}, step=0)

    parsed = run_output.verl_console_metrics(line)

    assert parsed.step == 0 and parsed.values[run_output.HELDOUT_ACCURACY] == 0.5
    assert run_output.REWARD not in parsed.values


def test_the_run_length_line_of_verl_and_the_trl_runner():
    assert run_output.parse_total_steps("INFO:2026-11-22 04:00:00,000:Total training steps: 1169") == 1169
    assert run_output.parse_total_steps("(TaskRunner pid=7) Total training steps: 12") == 12
    assert run_output.parse_total_steps("Total training steps: none") is None


def test_lines_that_are_not_verl_metrics():
    assert run_output.verl_console_metrics("Training Progress:  10%|#   | 1/10") is None
    assert run_output.verl_console_metrics("") is None
