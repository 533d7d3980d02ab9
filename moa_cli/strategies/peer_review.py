"""Peer review: the references answer, then each one reviews the others' answers, anonymised,
before the aggregator writes from the answers and the reviews (after llm-council's peer review).

Answers are labelled "Answer A", "Answer B", ... in the order of the round; no model name reaches a
reviewer or the aggregator, and no reviewer sees its own answer. A review is a critique ending in
a ranking; reviews that fail are left out. With fewer than two answers there is nothing to review,
and the aggregator merges what there is, as `synthesize` does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .base import Role, Round, Step, TurnSoFar, shuffle_seed
from .messages import letter, with_system
from .templates import SYNTHESIZE_STRATEGY

REVIEW = (
    "Other assistants have answered the latest user message. Their answers are below, each under an "
    "anonymous label. Review them critically: for each answer, say briefly what is right, what is "
    "wrong or missing, and what is unclear. Then rank them from best to worst on a last line of the "
    "form `Ranking: B > A`. Do not write an answer of your own and do not guess who wrote them."
)

AGGREGATE = (
    "Several assistants have answered the latest user message, and each then reviewed the others' "
    "answers without knowing who wrote them. The answers and the reviews are below. Weigh the "
    "reviews, but check them yourself: a review can be wrong too. Do not copy any one answer and do "
    "not mention the answers or the reviews. Write one reply of your own that is accurate, "
    "complete and well organised."
)


def labelled(items: list[tuple[str, str]], shuffle: int | None = None) -> str:
    """"Answer A:\\n..." blocks; the labels stay with their answers when the order is shuffled."""
    items = list(items)
    if shuffle is not None:
        random.Random(shuffle).shuffle(items)
    return "\n\n".join(f"{label}:\n{text.strip()}" for label, text in items)


@dataclass(frozen=True)
class PeerReview:
    name: str = "peer-review"
    description: str = "each reference critiques and ranks the others' anonymised answers, then the aggregator writes"

    def next_round(self, turn: TurnSoFar) -> Round | None:
        if turn.latest(Role.REVIEWER) is not None:
            return None
        first = SYNTHESIZE_STRATEGY.next_round(turn)  # the mix's reference layers, as they are
        if first is not None:
            return first
        answered = turn.latest(Role.REFERENCE)
        ok = answered.ok() if answered else []
        if len(ok) < 2:
            return None  # nothing to compare: the aggregator merges what there is
        answers = [(f"Answer {letter(i)}", result.text) for i, (_, result) in enumerate(ok)]
        seed = shuffle_seed(turn.mix)
        return Round(Role.REVIEWER, tuple(
            Step(step.model, with_system(
                turn.conversation, step.model.system,
                f"{REVIEW}\n\n{labelled([a for j, a in enumerate(answers) if j != i], seed)}"))
            for i, (step, _) in enumerate(ok)
        ))

    def aggregate(self, turn: TurnSoFar) -> Step:
        reviewed = turn.latest(Role.REVIEWER)
        reviews = [result.text for _, result in reviewed.ok()] if reviewed else []
        if not reviews:
            return SYNTHESIZE_STRATEGY.aggregate(turn)
        answers = [(f"Answer {letter(i)}", text) for i, text in enumerate(turn.answers())]
        model = turn.mix.aggregator
        body = (f"{AGGREGATE}\n\nAnswers:\n\n{labelled(answers, shuffle_seed(turn.mix))}\n\n"
                f"Reviews:\n\n{labelled([(f'Review {i}', r) for i, r in enumerate(reviews, 1)])}")
        return Step(model, with_system(turn.conversation, model.system, body))
