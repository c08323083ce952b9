"""The SFT hyperparameters: the paper's Table 9 as defaults, stored as JSON and read back, checked on the way in."""

import json

import pytest

from training.backends.sft_hyperparameters import SFT_TARGETS, SftHyperparameters


def test_the_defaults_are_table_9():
    hp = SftHyperparameters()

    assert hp.batch_size == 256
    assert (hp.max_prompt_length, hp.max_response_length, hp.max_length) == (2048, 2048, 4096)
    assert hp.learning_rate == 1e-6
    assert hp.warmup_ratio == 0.1
    assert hp.epochs == 2
    assert hp.grad_clip == 1.0
    assert hp.freeze_vision_tower is False
    assert hp.bf16 is True
    assert hp.max_steps is None
    assert hp.target == "teacher"
    assert hp.per_device_batch_size == 4 and hp.batch_size % hp.per_device_batch_size == 0


def test_json_round_trip_keeps_every_field():
    hp = SftHyperparameters(
        batch_size=8, per_device_batch_size=2, learning_rate=2e-5, max_steps=3, target="label"
    )

    stored = json.loads(json.dumps(hp.to_json()))

    assert SftHyperparameters.from_json(stored) == hp
    assert set(stored) == set(SftHyperparameters().to_json())


def test_missing_keys_take_the_paper_values_and_an_int_passes_for_a_float():
    hp = SftHyperparameters.from_json({"learning_rate": 1, "warmup_ratio": 0})

    assert hp.learning_rate == 1.0 and isinstance(hp.learning_rate, float)
    assert hp.warmup_ratio == 0.0 and hp.batch_size == 256


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"learning_rat": 1e-5}, "unknown SFT hyperparameter"),
        ({"batch_size": "256"}, "batch_size must be int"),
        ({"bf16": 1}, "bf16 must be bool"),
        ({"epochs": True}, "epochs must be int"),
        ({"learning_rate": float("nan")}, "finite"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"batch_size": 10, "per_device_batch_size": 4}, "multiple of per_device_batch_size"),
        ({"learning_rate": 0}, "learning_rate must be positive"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"grad_clip": 0}, "grad_clip must be positive"),
        ({"max_steps": 0}, "max_steps must be at least 1"),
        ({"target": "gemini"}, "target must be one of"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(data, message):
    with pytest.raises(ValueError, match=message):
        SftHyperparameters.from_json(data)


def test_from_json_wants_an_object():
    with pytest.raises(ValueError, match="JSON object"):
        SftHyperparameters.from_json([1, 2])


def test_targets_are_teacher_and_label():
    assert SFT_TARGETS == ("teacher", "label")
