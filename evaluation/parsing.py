"""Reading a model's final answer out of its response, as the reference FGVQA task reads it.

Pair queries: the first ``<answer>...</answer>`` block, and in it the last standalone "yes" or "no"; with no
usable block, the last standalone yes/no anywhere in the text. Multi queries: a lone digit 0 to 3 inside the
first block; otherwise the last standalone digit 0 to 3 in the text. Scoring is exact match against the
expected answer; a response with nothing readable is simply wrong (``parsed`` is empty).
"""

import re

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_ANSWER_TAG = re.compile(r"</?answer>", re.IGNORECASE)
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_COUNT = re.compile(r"\b([0-3])\b")
_LONE_COUNT = re.compile(r"^\s*([0-3])\s*$")
# A short reply that is a yes/no in other words ("Y", "True"), as the reference accepts.
_YES_WORDS = {"yes", "y", "yeah", "yep", "true", "1"}
_NO_WORDS = {"no", "n", "nope", "false", "0"}


def _first_block(text: str) -> str | None:
    match = _ANSWER_BLOCK.search(text)
    return match.group(1) if match else None


def _last_yes_no(text: str) -> str:
    found = _YES_NO.findall(text)
    if found:
        return found[-1].lower()
    token = re.sub(r"[^a-z0-9]+", "", text.lower())
    if token in _YES_WORDS:
        return "yes"
    if token in _NO_WORDS:
        return "no"
    return ""


def pair_answer_parse(response: str) -> str:
    """ "yes", "no", or "" when the response says neither."""
    block = _first_block(response)
    if block is not None:
        answer = _last_yes_no(block)
        if answer:
            return answer
    return _last_yes_no(_ANSWER_TAG.sub(" ", response))


def multi_answer_parse(response: str) -> str:
    """ "0" to "3", or "" when the response gives no count."""
    block = _first_block(response)
    if block is not None:
        lone = _LONE_COUNT.match(block)
        if lone:
            return lone.group(1)
    found = _COUNT.findall(_ANSWER_TAG.sub(" ", response))
    return found[-1] if found else ""


def answer_parse(question_type: str, response: str) -> str:
    if question_type == "pair":
        return pair_answer_parse(response)
    if question_type == "multi":
        return multi_answer_parse(response)
    raise ValueError(f"no final answer to parse for {question_type!r} queries")


def answer_is_correct(question_type: str, response: str, expected: str) -> tuple[str, bool]:
    """The parsed answer, and whether it matches the expected one exactly."""
    parsed = answer_parse(question_type, response)
    return parsed, bool(parsed) and parsed == expected.strip().lower()
