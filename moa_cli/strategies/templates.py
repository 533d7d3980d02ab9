"""Template strategies: every reference round after the first merges the previous round's answers
with SYNTHESIZE, and the aggregator gets the last round's answers under one instruction.

`synthesize`, `rank` and `coding` are instances of the one class; so is every template a user
writes in a mix (`strategy = "... {answers} ..."`, optionally with {question}).
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Role, Round, Step, TurnSoFar, reference_layer, shuffle_seed
from .messages import with_answers

SYNTHESIZE = (
    "Several assistants have answered the latest user message. Their answers are listed below. "
    "Judge them critically: some may be wrong, biased or incomplete. Do not copy any one of them "
    "and do not mention that there were several answers. Write one reply of your own that is "
    "accurate, complete and well organised, using the best of what they offer.\n\n"
    "Answers:\n{answers}"
)

RANK = (
    "Several assistants have answered the latest user message. Their answers are listed below. "
    "Choose the single best answer and reply with its text exactly as written, with nothing "
    "before or after it.\n\nAnswers:\n{answers}"
)

CODING = (
    "Several programmers have answered the latest request. Their answers are listed below. "
    "Check each for bugs, missed edge cases and wrong APIs. Write one final answer with correct, "
    "complete, runnable code and a brief explanation. Do not mention the other answers.\n\n"
    "Answers:\n{answers}"
)


def is_template(text: str) -> bool:
    """A strategy string that is a template rather than a name."""
    return "{answers}" in text


@dataclass(frozen=True)
class TemplateStrategy:
    """The mix's reference layers one after the other, then the aggregator under `template`."""

    name: str
    template: str  # the aggregator's instruction: {answers}, optionally {question}
    description: str = ""

    def next_round(self, turn: TurnSoFar) -> Round | None:
        layer = reference_layer(turn.mix, turn)
        if layer is None:
            return None
        answers, seed = turn.answers(), shuffle_seed(turn.mix)  # one shuffle for the whole round
        return Round(Role.REFERENCE, tuple(
            Step(model, with_answers(turn.conversation, system=model.system, answers=answers,
                                     template=SYNTHESIZE, shuffle_seed=seed))
            for model in layer
        ))

    def aggregate(self, turn: TurnSoFar) -> Step:
        model = turn.mix.aggregator
        return Step(model, with_answers(turn.conversation, system=model.system, answers=turn.answers(),
                                        template=self.template, shuffle_seed=shuffle_seed(turn.mix)))


def from_template(text: str) -> TemplateStrategy:
    """The strategy a user's template string describes."""
    return TemplateStrategy(name="template", template=text, description="a template from the config")


SYNTHESIZE_STRATEGY = TemplateStrategy(
    "synthesize", SYNTHESIZE, "the aggregator writes one answer from the best of the reference answers")
RANK_STRATEGY = TemplateStrategy("rank", RANK, "the aggregator picks the best reference answer, verbatim")
CODING_STRATEGY = TemplateStrategy(
    "coding", CODING, "the aggregator checks the references' code for bugs and writes the final code")
