"""The FGVQA questions, per domain and query type (paper appendix A.2, Figs. 12 to 17).

All prompts share one format and differ only in what counts as "the same": an object instance, a bird
species, an artwork, a landmark, a species. For object datasets (TWIN-Eval, ILIAS) the paper found it
necessary to define an object instance, as models otherwise called two same-category objects the same; the
definition is the one our training prompt uses. Every prompt ends by asking for an explanation and for the
final answer inside ``<answer></answer>``, which is what the parser reads. The images come before the text.
"""

from dataclasses import dataclass

from annotation.dataset.questions import OBJECT_INSTANCE_DEFINITION

DOMAINS = ("object", "bird", "artwork", "landmark", "species")
QUESTION_TYPES = ("pair", "multi", "open")


@dataclass(frozen=True)
class DomainWording:
    pair_subject: str  # completes "Do these two images show ..."
    multi_subject: str  # completes "How many of the other images show ..."
    definition: str  # what "the same" means here, or ""
    compare: str  # what to look at


DOMAIN_WORDING: dict[str, DomainWording] = {
    "object": DomainWording(
        pair_subject="the same object instance",
        multi_subject="the same object instance as the reference",
        definition=OBJECT_INSTANCE_DEFINITION,
        compare="shape, colour, texture, markings and parts",
    ),
    "bird": DomainWording(
        pair_subject="birds of the same species",
        multi_subject="a bird of the same species as the reference",
        definition="Different individuals of one species count as the same; similar-looking species do not.",
        compare="plumage, bill, eyes, legs, markings and body shape",
    ),
    "artwork": DomainWording(
        pair_subject="the same artwork",
        multi_subject="the same artwork as the reference",
        definition=(
            "The same artwork is one particular painting, sculpture or object, possibly seen from another "
            "viewpoint or in other light; works by the same artist or in the same style are different artworks."
        ),
        compare="composition, shapes, materials, colours and details",
    ),
    "landmark": DomainWording(
        pair_subject="the same landmark",
        multi_subject="the same landmark as the reference",
        definition=(
            "The same landmark may be seen from another side, distance, season or time of day; similar "
            "buildings or places elsewhere are different landmarks."
        ),
        compare="architecture, structure, surroundings and distinctive features",
    ),
    "species": DomainWording(
        pair_subject="organisms of the same species",
        multi_subject="an organism of the same species as the reference",
        definition="Different individuals of one species count as the same; related or look-alike species do not.",
        compare="shape, colour, patterns, and the parts that tell related species apart",
    ),
}


def _wording(domain: str) -> DomainWording:
    try:
        return DOMAIN_WORDING[domain]
    except KeyError:
        raise ValueError(f"unknown domain {domain!r}: use one of {', '.join(DOMAINS)}") from None


def pair_question(domain: str) -> str:
    """Two images: yes or no."""
    wording = _wording(domain)
    return (
        f"Do these two images show {wording.pair_subject}? {wording.definition} "
        f"Compare {wording.compare}, and explain your reasoning. "
        "Then give your final answer, yes or no, inside <answer></answer> tags."
    )


def multi_question(domain: str, candidates: int = 3) -> str:
    """A reference image first, then ``candidates`` images: how many of them match the reference."""
    wording = _wording(domain)
    return (
        f"The first image is a reference. How many of the other {candidates} images show "
        f"{wording.multi_subject}? {wording.definition} "
        f"Compare {wording.compare}, and explain your reasoning. "
        f"Then give your final answer, a number from 0 to {candidates}, inside <answer></answer> tags."
    )


# The reference evaluation (the authors' lmms-eval task) appends this instruction to every published FGVQA
# question; imported benchmarks keep it, so their scores compare with the published ones.
PUBLISHED_INSTRUCTION = "You MUST include an explanation AND use the answer tags <answer></answer>."


def published_question(question: str) -> str:
    """A published FGVQA question as the reference evaluation asks it."""
    question = question.strip()
    if question.endswith(PUBLISHED_INSTRUCTION):
        return question
    return f"{question} {PUBLISHED_INSTRUCTION}"
