"""The question a pair asks, as the exports and the training prompt put it (paper section 4 and appendix C).

The model sees two images, explains what it compares, and ends with its answer, yes or no, inside
``<answer></answer>``: the reward reads only that span. As the paper found for object-instance data
(appendix A.2), the question defines an instance, so that two objects of one category don't pass for one.
"""

ANSWERS = ("yes", "no")

# The evaluation's prompts for object datasets (TWIN-Eval, ILIAS) reuse this definition.
OBJECT_INSTANCE_DEFINITION = (
    "An object instance is one particular physical "
    "object: two different objects of the same category or model (for example two earbuds of different "
    "colours, or two mugs with different prints) are different instances, even when they look alike."
)

PAIR_QUESTION = (
    "Do these two images show the same object instance? "
    + OBJECT_INSTANCE_DEFINITION
    + " Compare shape, colour, texture, markings and parts, and explain your reasoning. Then give your final "
    "answer, yes or no, inside <answer></answer> tags."
)


def pair_answer(same: bool) -> str:
    return "yes" if same else "no"
