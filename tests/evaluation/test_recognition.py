"""Open-ended recognition scored by a judge (FROW, seed 003): the open questions, the judge's prompt, the reading
of its replies (tables, then hypothesis properties), the judging loop with its retries, and the summary."""

import json
import re
import string
from collections.abc import Sequence

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from evaluation.recognition import (
    DOMAINS,
    RETRY_REMINDER,
    JudgeItem,
    JudgeScores,
    judge_prompt,
    judge_scores_parse,
    open_question,
    recognition_summary,
    responses_judge,
)
from evaluation.runners.base import GenerationRequest, GenerationResult, RunnerError, RunnerSettings

# --- the open questions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "wanted"),
    [
        ("object", ["make and model", "brand"]),
        ("bird", ["species", "plumage"]),
        ("artwork", ["title", "artist"]),
        ("landmark", ["landmark", "city and country"]),
        ("species", ["species", "scientific name"]),
    ],
)
def test_each_domain_asks_for_its_own_most_specific_name(domain, wanted):
    question = open_question(domain)
    assert "What exactly is it?" in question
    for phrase in wanted:
        assert phrase in question


def test_the_domains_questions_all_differ():
    assert len({open_question(domain) for domain in DOMAINS}) == len(DOMAINS)


def test_an_unknown_domain_is_refused():
    with pytest.raises(ValueError, match="unknown domain 'car'"):
        open_question("car")


# --- the judge's prompt ---------------------------------------------------------------------------------------


def test_the_judge_prompt_carries_question_reference_answer_and_the_whole_rubric():
    prompt = judge_prompt(
        question=open_question("bird"),
        reference_label="Steller's Jay (Cyanocitta stelleri)",
        reference_facts="Crested jay of western North America; black head and crest, blue body.",
        response="This is a Blue Jay, with a white face and a black necklace.",
    )
    assert open_question("bird") in prompt
    assert "Steller's Jay (Cyanocitta stelleri)" in prompt
    assert "black head and crest, blue body" in prompt
    assert "This is a Blue Jay, with a white face and a black necklace." in prompt
    # the rubric: both scales with every grade, and the strict reply format
    assert "RECOGNITION, an integer from 0 to 2" in prompt
    assert "CONTENT, an integer from 0 to 3" in prompt
    for grade in ("Give 0", "Give 1", "Give 2", "Give 3"):
        assert grade in prompt
    assert "Synonyms" in prompt and "scientific name" in prompt
    assert "hedges" in prompt
    assert "<recognition>R</recognition><content>C</content><reason>" in prompt
    # the answer sits between markers, after the reference: a model's answer cannot pass for the rubric
    assert prompt.index("----- ANSWER START -----") < prompt.index("This is a Blue Jay")
    assert prompt.index("This is a Blue Jay") < prompt.index("----- ANSWER END -----")


def test_the_rubric_itself_reads_as_no_scores():
    """A judge that echoes the rubric before its verdict must not leave a score behind."""
    prompt = judge_prompt(question="q", reference_label="l", reference_facts="", response="r")
    assert judge_scores_parse(prompt).recognition is None
    assert judge_scores_parse(prompt).content is None


def test_missing_facts_and_empty_answers_are_said_so():
    prompt = judge_prompt(question="q", reference_label="Eiffel Tower", reference_facts="  ", response="")
    assert "(none given: rely on your own knowledge of the reference)" in prompt
    assert "(empty answer)" in prompt


# --- reading the judge's reply --------------------------------------------------------------------------------

PARSE_CASES = [
    # (reply, recognition, content)
    # the requested form, and its variants in case and spacing
    ("<recognition>2</recognition><content>3</content><reason>Exact species.</reason>", 2, 3),
    ("<Recognition> 1 </Recognition>\n<CONTENT>\n0\n</CONTENT>", 1, 0),
    ("< recognition >0</ recognition > <content>2</content>", 0, 2),
    ("<recognition>2.0</recognition><content>3/3</content>", 2, 3),
    ("<recognition>'2'</recognition><content>1</content>", 2, 1),
    # labelled values
    ("Recognition: 2\nContent: 1", 2, 1),
    ("recognition score: 1/2, content score: 3/3", 1, 3),
    ("**Recognition:** 2\n**Content accuracy:** 2", 2, 2),
    ("recognition_score = 0; content_rating=1", 0, 1),
    ("RECOGNITION:2 CONTENT:3", 2, 3),
    # JSON, bare or fenced
    ('{"recognition": 2, "content": 1, "reason": "Right bird, wrong facts."}', 2, 1),
    ('```json\n{"recognition_score": "1", "content_score": "2"}\n```', 1, 2),
    # the last occurrence wins, whatever the forms
    ("<recognition>1</recognition><content>1</content> On reflection: <recognition>2</recognition>", 2, 1),
    ("Recognition: 0, content: 3. Correction: <content>2</content>", 0, 2),
    ('{"recognition": 1, "content": 2} {"recognition": 2, "content": 0}', 2, 0),
    # off the scale, not whole, or another scale: None, and a final bad word overrides an earlier good one
    ("<recognition>3</recognition><content>4</content>", None, None),
    ("<recognition>-1</recognition><content>2</content>", None, 2),
    ("Recognition: 1.5, content: 2/5", None, None),
    ("Recognition: 10, content: 30", None, None),
    ("<recognition>2</recognition><recognition>two</recognition><content>1</content>", None, 1),
    ("<recognition>R</recognition><content>C</content>", None, None),  # the format line echoed
    # one score only
    ("<recognition>2</recognition>", 2, None),
    ("content score: 0/3", None, 0),
    # nothing readable
    ("", None, None),
    ("   \n  ", None, None),
    ("The answer identifies the bird correctly and the content is accurate.", None, None),
    ("recognition: excellent, content: good", None, None),
    ("<recognition>2", None, None),  # never closed, and no label form either
    ("precontent: 2 and misrecognition: 1", None, None),  # the names must be whole words
    ("\x00\ufffd<<>>{{]]:::", None, None),
]


@pytest.mark.parametrize(("reply", "recognition", "content"), PARSE_CASES)
def test_judge_replies_are_read(reply, recognition, content):
    scores = judge_scores_parse(reply)
    assert (scores.recognition, scores.content) == (recognition, content)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            "<recognition>2</recognition><content>3</content><reason> Exact  species. </reason>",
            "Exact species.",
        ),
        (
            '{"recognition": 2, "content": 1, "reason": "Right bird, \\"wrong\\" facts."}',
            'Right bird, "wrong" facts.',
        ),
        ("Recognition: 1\nContent: 2\nReason: Names the genus only.", "Names the genus only."),
        ("Recognition: 1\nContent: 2\nNames the genus only.", "Names the genus only."),
        ("<recognition>2</recognition><content>3</content>", ""),
        ("", ""),
    ],
)
def test_the_reason_is_kept(reply, reason):
    assert judge_scores_parse(reply).reason == reason


def test_a_reason_recovered_from_free_text_is_bounded():
    assert len(judge_scores_parse("blah " * 1000).reason) == 500


def test_long_replies_parse_in_linear_time():
    """Runs of blank lines or decoration once made the reason search quadratic (a minute for 100,000 lines)."""
    for filler in ("\n" * 100_000, " \t*" * 30_000, "content " * 20_000):
        scores = judge_scores_parse(filler + "<recognition>1</recognition><content>2</content>")
        assert (scores.recognition, scores.content) == (1, 2)


RECOGNITION_VALUES = st.integers(min_value=0, max_value=2)
CONTENT_VALUES = st.integers(min_value=0, max_value=3)
SPACE = st.text(alphabet=" \t\n", max_size=3)


@given(text=st.text(max_size=300))
def test_the_parser_never_raises_and_only_returns_scores_on_the_scales(text):
    scores = judge_scores_parse(text)
    assert scores.recognition in (None, 0, 1, 2)
    assert scores.content in (None, 0, 1, 2, 3)
    assert isinstance(scores.reason, str)


@example(prefix="<reason>unclosed <content>3", recognition=1, content=0, space="", upper=False)
@given(
    prefix=st.text(max_size=200),
    recognition=RECOGNITION_VALUES,
    content=CONTENT_VALUES,
    space=SPACE,
    upper=st.booleans(),
)
def test_a_well_formed_tag_pair_at_the_end_always_reads_as_its_values(
    prefix, recognition, content, space, upper
):
    """Whatever came before (including other scores, half tags, junk), the final pair decides."""
    recognition_tag, content_tag = ("RECOGNITION", "Content") if upper else ("recognition", "content")
    reply = (
        f"{prefix}<{recognition_tag}>{space}{recognition}{space}</{recognition_tag}>{space}"
        f"<{content_tag}>{content}</{content_tag}><reason>Because.</reason>"
    )
    scores = judge_scores_parse(reply)
    assert (scores.recognition, scores.content, scores.reason) == (recognition, content, "Because.")


@given(
    recognition=RECOGNITION_VALUES,
    content=CONTENT_VALUES,
    noise=st.text(alphabet=string.ascii_letters + " .,", max_size=80),
)
def test_a_json_verdict_reads_as_its_values(recognition, content, noise):
    reply = noise + json.dumps({"recognition": recognition, "content": content, "reason": noise})
    scores = judge_scores_parse(reply)
    assert (scores.recognition, scores.content) == (recognition, content)


# --- judging a batch ------------------------------------------------------------------------------------------

_BETWEEN_MARKERS = re.compile(r"----- ANSWER START -----\n(.*)\n----- ANSWER END -----", re.DOTALL)
_REFERENCE = re.compile(r"Reference \(the true identity of what is pictured\):\n(.*?)\n")


class FakeJudge:
    """A judge that grades by reading its prompt: 2 when the answer names the reference, 1 when it names the
    reference's last word only ("jay" for "Steller's Jay"), else 0; content = the answer's count of "!" (up to
    3). Answers containing "GARBLE" get an unreadable reply; "GARBLE-ONCE" ones only until the retry reminder
    appears."""

    def __init__(self) -> None:
        self.settings = RunnerSettings(backend="openai", model="judge")
        self.batches: list[list[GenerationRequest]] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.batches.append(list(requests))
        return [GenerationResult(key=request.key, text=self._grade(request)) for request in requests]

    def close(self) -> None:
        pass

    def _grade(self, request: GenerationRequest) -> str:
        assert request.image_paths == ()  # the judge reads text only
        answer = _BETWEEN_MARKERS.search(request.prompt).group(1)
        reference = _REFERENCE.search(request.prompt).group(1)
        retried = request.prompt.endswith(RETRY_REMINDER)
        if "GARBLE-ONCE" in answer and not retried or "GARBLE-ALWAYS" in answer:
            return "I think the answer is pretty good overall."
        if reference.lower() in answer.lower():
            recognition = 2
        elif reference.split()[-1].lower() in answer.lower():
            recognition = 1
        else:
            recognition = 0
        content = min(answer.count("!"), 3)
        return f"<recognition>{recognition}</recognition><content>{content}</content><reason>Graded.</reason>"


def _item(key: str, response: str, label: str = "Steller's Jay") -> JudgeItem:
    return JudgeItem(
        key=key, question=open_question("bird"), reference_label=label, reference_facts="", response=response
    )


def test_every_item_is_judged_in_one_batch_in_order():
    judge = FakeJudge()
    items = [
        _item("exact", "A Steller's Jay!!!"),
        _item("coarse", "Some kind of jay!"),
        _item("wrong", "A crow."),
        _item("landmark", "The Eiffel Tower, Paris!!", label="Eiffel Tower"),
    ]
    scores = responses_judge(judge, items)
    assert [(score.recognition, score.content) for score in scores] == [(2, 3), (1, 1), (0, 0), (2, 2)]
    assert all(score.reason == "Graded." for score in scores)
    assert len(judge.batches) == 1
    assert [request.key for request in judge.batches[0]] == ["exact", "coarse", "wrong", "landmark"]


def test_only_unreadable_replies_are_asked_again_with_the_reminder():
    judge = FakeJudge()
    items = [
        _item("a", "A Steller's Jay!"),
        _item("b", "GARBLE-ONCE: a jay!!"),
        _item("c", "A crow."),
        _item("d", "GARBLE-ONCE: Steller's Jay"),
    ]
    scores = responses_judge(judge, items)
    assert [(score.recognition, score.content) for score in scores] == [(2, 1), (1, 2), (0, 0), (2, 0)]
    assert len(judge.batches) == 2
    assert [request.key for request in judge.batches[1]] == ["b", "d"]
    assert all(request.prompt.endswith(RETRY_REMINDER) for request in judge.batches[1])
    assert not any(request.prompt.endswith(RETRY_REMINDER) for request in judge.batches[0])


def test_replies_still_unreadable_after_the_retries_stay_unscored():
    judge = FakeJudge()
    items = [_item("a", "A Steller's Jay!"), _item("b", "GARBLE-ALWAYS jay")]
    scores = responses_judge(judge, items, retries=2)
    assert [request.key for batch in judge.batches for request in batch] == ["a", "b", "b", "b"]
    assert scores[0].parsed
    assert scores[1] == JudgeScores(None, None, "I think the answer is pretty good overall.")


def test_no_retries_asks_once():
    judge = FakeJudge()
    scores = responses_judge(judge, [_item("b", "GARBLE-ONCE jay")], retries=0)
    assert len(judge.batches) == 1
    assert not scores[0].parsed


def test_nothing_to_judge_calls_nobody():
    judge = FakeJudge()
    assert responses_judge(judge, []) == []
    assert judge.batches == []


def test_a_negative_retry_count_is_refused():
    with pytest.raises(ValueError, match="retries"):
        responses_judge(FakeJudge(), [_item("a", "x")], retries=-1)


class ShortJudge(FakeJudge):
    def generate(self, requests):
        return super().generate(requests)[:-1]


class ShuffledJudge(FakeJudge):
    def generate(self, requests):
        return list(reversed(super().generate(requests)))


@pytest.mark.parametrize(
    ("judge", "message"), [(ShortJudge(), "answered 1 of 2"), (ShuffledJudge(), "expected")]
)
def test_a_judge_that_breaks_the_protocol_is_an_error(judge, message):
    with pytest.raises(RunnerError, match=message):
        responses_judge(judge, [_item("a", "jay"), _item("b", "crow")])


# --- summary --------------------------------------------------------------------------------------------------


def test_the_summary_counts_averages_and_normalises_over_the_scored_items():
    scores = [
        JudgeScores(2, 3, ""),
        JudgeScores(2, 2, ""),
        JudgeScores(1, 1, ""),
        JudgeScores(0, 0, ""),
        JudgeScores(None, None, "garbled"),
        JudgeScores(2, None, "half read"),  # unparsed too: the means keep one population
    ]
    summary = recognition_summary(scores)
    assert summary["count"] == 6
    assert summary["scored"] == 4
    assert summary["unparsed"] == 2
    assert summary["recognition_mean"] == pytest.approx(5 / 4)
    assert summary["content_mean"] == pytest.approx(6 / 4)
    assert summary["recognition_accuracy"] == pytest.approx(2 / 4)
    assert summary["recognition_percent"] == pytest.approx(100 * (5 / 4) / 2)
    assert summary["content_percent"] == pytest.approx(100 * (6 / 4) / 3)
    assert summary["recognition_distribution"] == {"0": 1, "1": 1, "2": 2}
    assert summary["content_distribution"] == {"0": 1, "1": 1, "2": 1, "3": 1}
    assert json.loads(json.dumps(summary)) == summary


def test_perfect_scores_are_100_percent():
    summary = recognition_summary([JudgeScores(2, 3, "")] * 3)
    assert summary["recognition_accuracy"] == 1.0
    assert summary["recognition_percent"] == 100.0
    assert summary["content_percent"] == 100.0


@pytest.mark.parametrize("scores", [[], [JudgeScores(None, None, ""), JudgeScores(None, 1, "")]])
def test_nothing_scored_gives_no_means(scores):
    summary = recognition_summary(scores)
    assert summary["count"] == len(scores)
    assert summary["scored"] == 0
    assert summary["unparsed"] == len(scores)
    for key in (
        "recognition_mean",
        "content_mean",
        "recognition_accuracy",
        "recognition_percent",
        "content_percent",
    ):
        assert summary[key] is None
    assert summary["recognition_distribution"] == {"0": 0, "1": 0, "2": 0}
    assert summary["content_distribution"] == {"0": 0, "1": 0, "2": 0, "3": 0}
