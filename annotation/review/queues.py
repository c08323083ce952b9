"""What each review queue asks, the answers it offers and their default keys.

An *action* is one button (and one key). Several actions can share a *verdict*: rejecting an image as
"unclear" or as "not the object" are both the verdict ``reject_image``, with different reasons. Agreement
between annotators, gold answers and outcomes are all about verdicts; the reason travels along.
"""

from dataclasses import dataclass

from annotation.models import TaskKind

SKIP, UNDO, COMPARE, HELP = "skip", "undo", "compare", "help"
# Keys of the page itself, the same in every queue unless the user changes them. No queue's action uses "v".
COMMAND_KEYS = {SKIP: "n", UNDO: "u", COMPARE: "v", HELP: "?"}
COMMAND_LABELS = {
    SKIP: "Skip this task",
    UNDO: "Undo my last decision",
    COMPARE: "Compare side by side at full size",
    HELP: "Show or hide the keys",
}

# Keys the browser or the page need for themselves.
RESERVED_KEYS = {"Escape", "Tab", "Enter", " ", "F5"}


@dataclass(frozen=True)
class Action:
    code: str
    label: str
    verdict: str
    default_key: str
    reason: str = ""
    tone: str = "neutral"  # "accept" | "reject" | "neutral": the colour of its button


@dataclass(frozen=True)
class QueueDefinition:
    kind: str
    title: str
    question: str
    actions: tuple[Action, ...]

    def action(self, code: str) -> Action | None:
        return next((action for action in self.actions if action.code == code), None)

    def action_label(self, code: str) -> str:
        """The button's label of an answer, or its code when the queue no longer offers it."""
        action = self.action(code)
        return action.label if action else code

    @property
    def verdicts(self) -> list[str]:
        return list(dict.fromkeys(action.verdict for action in self.actions))

    def verdict_label(self, verdict: str) -> str:
        labels = [action.label for action in self.actions if action.verdict == verdict]
        if len(labels) == 1:
            return labels[0]
        return VERDICT_LABELS.get(verdict, verdict.replace("_", " "))


VERDICT_LABELS = {
    "reject_image": "Reject image",
    "reject_product": "Reject product",
}

# The reasons of appendix B: an image must clearly show and identify the object; a product must be one
# visually consistent object that fits its category.
IMAGE_VERIFICATION = QueueDefinition(
    kind=TaskKind.IMAGE_VERIFICATION,
    title="Image verification",
    question="Does this image clearly show the product's object?",
    actions=(
        Action("keep", "Keep", "keep", "k", tone="accept"),
        Action("reject_not_object", "Not the object", "reject_image", "1", "not_object", "reject"),
        Action("reject_unclear", "Unclear", "reject_image", "2", "unclear", "reject"),
        Action("reject_wrong_category", "Wrong category", "reject_image", "3", "wrong_category", "reject"),
        Action("reject_inconsistent", "Product inconsistent", "reject_image", "4", "inconsistent", "reject"),
        Action(
            "reject_product_inconsistent",
            "Reject product: several versions",
            "reject_product",
            "p",
            "inconsistent",
            "reject",
        ),
        Action(
            "reject_product_wrong_category",
            "Reject product: wrong category",
            "reject_product",
            "c",
            "wrong_category",
            "reject",
        ),
    ),
)

DUPLICATE_MERGE = QueueDefinition(
    kind=TaskKind.DUPLICATE_MERGE,
    title="Duplicate merge",
    question="Do these two listings show the same physical object?",
    actions=(
        Action("same", "Same instance: merge", "same", "s", tone="accept"),
        Action("different", "Different objects", "different", "d", tone="reject"),
    ),
)

HARD_NEGATIVE = QueueDefinition(
    kind=TaskKind.HARD_NEGATIVE,
    title="Hard-negative selection",
    question="Are these two different objects hard to tell apart?",
    actions=(
        Action("hard_negative", "Hard negative: keep", "hard_negative", "h", tone="accept"),
        Action("too_easy", "Too easy: drop", "too_easy", "e", tone="reject"),
        Action("same_object", "Actually the same object", "same_object", "s"),
    ),
)

SYNTHETIC_VALIDATION = QueueDefinition(
    kind=TaskKind.SYNTHETIC_VALIDATION,
    title="Synthetic validation",
    question="Is the generated image similar to this object, yet distinguishable from it?",
    actions=(
        Action("keep", "Keep: similar but different", "keep", "k", tone="accept"),
        Action("drop_dissimilar", "Drop: not similar", "drop_dissimilar", "d", "dissimilar", "reject"),
        Action(
            "drop_indistinguishable",
            "Drop: indistinguishable",
            "drop_indistinguishable",
            "i",
            "indistinguishable",
            "reject",
        ),
    ),
)

QUEUES: dict[str, QueueDefinition] = {
    queue.kind: queue for queue in (IMAGE_VERIFICATION, DUPLICATE_MERGE, HARD_NEGATIVE, SYNTHETIC_VALIDATION)
}

# The URL slug of each queue.
QUEUE_SLUGS = {
    TaskKind.IMAGE_VERIFICATION: "images",
    TaskKind.DUPLICATE_MERGE: "duplicates",
    TaskKind.HARD_NEGATIVE: "hard-negatives",
    TaskKind.SYNTHETIC_VALIDATION: "synthetic",
}
KIND_BY_SLUG = {slug: kind for kind, slug in QUEUE_SLUGS.items()}


def queue_definition(kind: str) -> QueueDefinition:
    try:
        return QUEUES[kind]
    except KeyError:
        raise ValueError(f"no review queue {kind!r}") from None
