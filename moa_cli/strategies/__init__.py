"""Registered MoA topologies: what each round asks, and what the aggregator is given.

    base.py         Role, the Strategy protocol, Round/Step (what a strategy plans), TurnSoFar
    messages.py     helpers that put earlier answers in front of a model
    registry.py     register / get / names: the one list of strategies
    templates.py    synthesize, rank, coding and user templates (one parameterised class)
    self_moa.py     Self-MoA: one model sampled several times
    peer_review.py  each reference reviews the others' anonymised answers before the aggregator

A new strategy is a module with a class that has `next_round` and `aggregate`, plus one line
below. The engine runs whatever it plans; config validation accepts any registered name.
"""

from .base import Played, Role, Round, Step, Strategy, TurnSoFar
from .registry import expected, get, names, problem, register, registered, unregister
from . import peer_review, self_moa, templates

# The registry: one line per built-in strategy; the first is the default.
for _strategy in (
    templates.SYNTHESIZE_STRATEGY,
    templates.RANK_STRATEGY,
    templates.CODING_STRATEGY,
    self_moa.SelfMoA(),
    peer_review.PeerReview(),
):
    register(_strategy)

DEFAULT = names()[0]

__all__ = [
    "DEFAULT", "Played", "Role", "Round", "Step", "Strategy", "TurnSoFar", "expected", "get", "names",
    "problem", "register", "registered", "unregister",
]
