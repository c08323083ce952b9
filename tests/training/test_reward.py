"""The reward: 1 when the last <answer> span, normalized, equals the label; 0 otherwise. Examples, then
properties checked by hypothesis over arbitrary text."""

import string

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.reward import answer_normalize, compute_score, compute_score_batched, final_answer

LABELS = st.sampled_from(["yes", "no"])
# Text that can't close or open an answer span by itself.
FREE_TEXT = st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=200)
DECORATION = st.text(alphabet=string.whitespace + ".!?,;:'\"()", max_size=4)


@pytest.mark.parametrize(
    ("response", "label", "reward"),
    [
        ("Same shape and scuff. <answer>yes</answer>", "yes", 1.0),
        ("<answer>Yes.</answer>", "yes", 1.0),
        ("<ANSWER>  no  </ANSWER>", "no", 1.0),
        ("<answer>\n No!\n</answer>", "No", 1.0),
        ("<answer>yes</answer>", "no", 0.0),
        ("I think yes, they are the same.", "yes", 0.0),  # no tag: nothing to read
        ("<answer>no</answer> wait, on reflection <answer>yes</answer>", "yes", 1.0),  # the last one counts
        ("<answer>yes</answer> ... <answer>no</answer>", "yes", 0.0),
        ("<answer></answer>", "yes", 0.0),
        ("<answer>yes", "yes", 0.0),  # never closed
        ("<answer>yes and no</answer>", "yes", 0.0),
        ("", "yes", 0.0),
    ],
)
def test_examples(response, label, reward):
    assert compute_score("twin-v1", response, label) == reward


@given(prefix=FREE_TEXT, label=LABELS, before=DECORATION, after=DECORATION)
def test_the_label_in_the_last_tag_always_earns_1_whatever_the_decoration(prefix, label, before, after):
    response = f"{prefix}<answer>{before}{label.upper() if len(prefix) % 2 else label}{after}</answer>"
    assert compute_score(None, response, label) == 1.0


@given(prefix=FREE_TEXT, label=LABELS, other=LABELS, suffix=FREE_TEXT)
def test_only_the_last_tag_counts(prefix, label, other, suffix):
    response = f"{prefix}<answer>{other}</answer>{suffix}<answer>{label}</answer>"
    assert compute_score(None, response, label) == 1.0
    wrong = "no" if label == "yes" else "yes"
    assert compute_score(None, response, wrong) == 0.0


@given(text=FREE_TEXT, label=LABELS)
def test_a_response_without_a_tag_earns_0(text, label):
    assert final_answer(text) is None
    assert compute_score(None, text, label) == 0.0


@given(text=st.text(max_size=100), label=LABELS)
def test_the_reward_is_always_0_or_1(text, label):
    assert compute_score(None, text, label) in (0.0, 1.0)


@given(text=st.text(max_size=60))
def test_normalizing_twice_changes_nothing(text):
    assert answer_normalize(answer_normalize(text)) == answer_normalize(text)


@given(st.lists(st.tuples(FREE_TEXT, LABELS, LABELS), max_size=20))
def test_the_batch_form_is_the_per_sample_form_in_order(samples):
    responses = [f"{text}<answer>{said}</answer>" for text, said, _ in samples]
    labels = [label for _, _, label in samples]
    sources = np.array(["twin-v1"] * len(samples), dtype=object)  # what verl's batch manager passes
    scores = compute_score_batched(sources, responses, labels, extra_infos=[{} for _ in samples])
    assert scores == [compute_score("twin-v1", r, label) for r, label in zip(responses, labels, strict=True)]
    assert scores == [1.0 if said == label else 0.0 for _, said, label in samples]


def test_verl_s_extra_keyword_arguments_are_accepted_and_lengths_checked():
    assert (
        compute_score("twin", "<answer>no</answer>", "no", extra_info={}, reward_router_address=None) == 1.0
    )
    with pytest.raises(ValueError):
        compute_score_batched(["a"], ["<answer>no</answer>", "x"], ["no", "yes"])


def test_verl_loads_the_reward_from_its_file_as_its_trainer_does():
    """verl 0.9's ``get_custom_reward_fn`` reads ``reward.custom_reward_function.path`` and ``.name``."""
    from pathlib import Path

    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    import training.reward

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": str(Path(training.reward.__file__)),
                    "name": "compute_score",
                }
            }
        }
    )
    reward = get_custom_reward_fn(config)
    assert (
        reward(data_source="twin-v1", solution_str="Same dent. <answer>Yes</answer>", ground_truth="yes")
        == 1.0
    )
    assert reward(data_source="twin-v1", solution_str="<answer>no</answer>", ground_truth="yes") == 0.0
