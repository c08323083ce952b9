"""The answer parser on the responses models really give: the table the reference task's rules decide."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation.parsing import answer_is_correct, multi_answer_parse, pair_answer_parse

PAIR_CASES = [
    # (response, parsed)
    ("<answer>yes</answer>", "yes"),
    ("<answer>no</answer>", "no"),
    ("Yes.", "yes"),
    ("No", "no"),
    ("", ""),
    ("   \n", ""),
    ("I cannot tell.", ""),
    ("no, they are not the same... <answer>yes</answer>", "yes"),
    ("The logo differs, so no.", "no"),
    ("Yes, both are mugs, but the print differs: no.", "no"),
    ("<ANSWER> Yes </ANSWER>", "yes"),
    ("<answer>\nNo.\n</answer>", "no"),
    # the first block decides, and in it the last yes/no
    ("<answer>no</answer> wait <answer>yes</answer>", "no"),
    ("<answer>yes or no? I say no</answer>", "no"),
    # an empty or unreadable block: the text outside decides
    ("They are the same. Yes. <answer></answer>", "yes"),
    ("The answer is no. <answer>maybe</answer>", "no"),
    # an unclosed tag is no block: the last yes/no in the text
    ("Looks different, no. <answer>yes", "yes"),
    # words that merely contain yes/no are not answers
    ("nothing matches; noticeably another item. <answer>yes</answer>", "yes"),
    ("Notably, the eyes differ.", ""),
    # short answers in other words, as the reference accepts
    ("<answer>True</answer>", "yes"),
    ("Y", "yes"),
    ("Nope!", "no"),
]

MULTI_CASES = [
    ("<answer>2</answer>", "2"),
    ("<answer> 0 </answer>", "0"),
    ("", ""),
    ("None of them.", ""),
    # digits in the explanation don't beat the tags
    ("Images 1 and 3 differ from the reference, so <answer>1</answer>", "1"),
    ("Candidate 2 matches. <answer>3</answer> (images 1, 2, 3)", "3"),
    # no tags: the last standalone 0-3
    ("Image 1 matches and image 2 matches, so the count is 2.", "2"),
    ("Out of 3 candidates, 0 match", "0"),
    # digits that are not standalone 0-3
    ("There are 10 legs and 42 spots.", ""),
    ("<answer>4</answer>", ""),
    # a block with words: the last standalone 0-3 anywhere
    ("Two match. <answer>2 images</answer>", "2"),
    ("<answer>two</answer> because 1 and 3 match... wait, 2", "2"),
    # several blocks: the first with a lone digit
    ("<answer>1</answer><answer>3</answer>", "1"),
    ("<ANSWER>\n3\n</ANSWER>", "3"),
]


@pytest.mark.parametrize("response, parsed", PAIR_CASES)
def test_pair_answers(response, parsed):
    assert pair_answer_parse(response) == parsed


@pytest.mark.parametrize("response, parsed", MULTI_CASES)
def test_multi_answers(response, parsed):
    assert multi_answer_parse(response) == parsed


def test_scoring_is_exact_match_and_an_unreadable_answer_is_wrong():
    assert answer_is_correct("pair", "Yes. <answer>yes</answer>", "yes") == ("yes", True)
    assert answer_is_correct("pair", "<answer>no</answer>", "yes") == ("no", False)
    assert answer_is_correct("multi", "<answer>2</answer>", "2") == ("2", True)
    assert answer_is_correct("multi", "<answer>2</answer>", "3") == ("2", False)
    assert answer_is_correct("multi", "", "0") == ("", False)
    assert answer_is_correct("pair", "", "no") == ("", False)
    with pytest.raises(ValueError):
        answer_is_correct("open", "a cat", "cat")


@given(st.text())
def test_the_parsers_never_fail_and_return_only_valid_answers(text):
    assert pair_answer_parse(text) in {"", "yes", "no"}
    assert multi_answer_parse(text) in {"", "0", "1", "2", "3"}


@given(st.text(alphabet=st.characters(exclude_characters="<>")), st.sampled_from(["yes", "no"]))
def test_a_tagged_answer_wins_over_any_explanation(explanation, answer):
    assert pair_answer_parse(f"{explanation} <answer>{answer}</answer>") == answer
