"""Self-MoA (Li et al. 2025, arXiv 2502.00674): one strong model sampled several times, the
samples merged by that model, beats mixing different models.

A mix that lists its samples (the built-in `self-moa` and `local` mixes list one model at several
temperatures) needs no strategy of its own: `synthesize` already runs it, and the panels tell the
samples apart by temperature. This strategy is for a mix that names only the model: with no
reference layers, it samples the aggregator's model SAMPLE_TEMPERATURES times, then aggregates.
With layers, it runs them as given, exactly as `synthesize` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Role, Round, Step, TurnSoFar
from .messages import with_answers
from .templates import SYNTHESIZE, SYNTHESIZE_STRATEGY

# The built-in self-moa mix's spread: low for a careful sample, up to 1.0 for a diverse one.
SAMPLE_TEMPERATURES = (0.3, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class SelfMoA:
    name: str = "self-moa"
    description: str = "one model sampled at several temperatures, then merged (no references: the aggregator's)"
    temperatures: tuple[float, ...] = SAMPLE_TEMPERATURES

    def next_round(self, turn: TurnSoFar) -> Round | None:
        if turn.mix.layers:
            return SYNTHESIZE_STRATEGY.next_round(turn)
        if turn.played:
            return None
        model = turn.mix.aggregator
        samples = [model.with_(temperature=t, seed=None if model.seed is None else model.seed + i + 1)
                   for i, t in enumerate(self.temperatures)]
        # The first round sees no answers, only the conversation.
        return Round(Role.REFERENCE, tuple(
            Step(m, with_answers(turn.conversation, system=m.system, answers=(), template=SYNTHESIZE))
            for m in samples
        ))

    def aggregate(self, turn: TurnSoFar) -> Step:
        return SYNTHESIZE_STRATEGY.aggregate(turn)
